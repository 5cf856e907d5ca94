// SPDX-License-Identifier: MPL-2.0

//! SAM's heads after the mask decoder: the official choice of mask, IoU
//! and object pointer (multimask rule, stability fallback, occlusion blend),
//! and the post-processing of low-resolution logits into frame masks.

use super::{NO_OBJ_SCORE, Tracker};
use crate::engine::ops::{self, Plane};
use crate::engine::stages::{DecoderOutput, StageError};

/// Result of the SAM heads for one object on one frame.
#[derive(Debug, Clone)]
pub(super) struct HeadOutput {
    pub(super) logits: Vec<f32>,
    pub(super) object_score: f32,
    pub(super) iou: f32,
    pub(super) ptr: Vec<f32>,
}

impl Tracker {
    /// `SAM2Base._use_multimask`.
    pub(super) fn use_multimask(&self, is_init: bool, num_points: usize) -> bool {
        let st = &self.settings;
        st.multimask_output_in_sam
            && (is_init || st.multimask_output_for_tracking)
            && (st.multimask_min_pt_num as usize..=st.multimask_max_pt_num as usize)
                .contains(&num_points)
    }

    pub(super) fn blend_no_obj_ptr(&self, ptr: &[f32], lambda: f32) -> Vec<f32> {
        let fixed = self.settings.fixed_no_obj_ptr;
        ptr.iter()
            .zip(&self.no_obj_ptr)
            .map(|(p, n)| {
                let p = if fixed { lambda * p } else { *p };
                p + (1.0 - lambda) * n
            })
            .collect()
    }

    /// The official selection of mask, IoU and pointer for object `b` of a
    /// decoder batch (`MaskDecoder.forward` + `_forward_sam_heads`); reads the
    /// chosen mask (and token 0's for the stability test) from the device.
    pub(super) fn select(
        &mut self,
        dec: &DecoderOutput,
        b: usize,
        multimask: bool,
    ) -> Result<HeadOutput, StageError> {
        let d = self.dims;
        let st = &self.settings;
        let iou = |t: usize| dec.iou[b * d.tokens + t];
        let ptr = |t: usize| &dec.obj_ptr[(b * d.tokens + t) * d.c..(b * d.tokens + t + 1) * d.c];
        // argmax over the multimask tokens 1..=3 (first maximum, as torch.argmax)
        let best = (2..d.tokens).fold(1, |best, t| if iou(t) > iou(best) { t } else { best });
        let (mask_t, ptr_t, mask) = if multimask {
            let p = if st.use_multimask_token_for_obj_ptr {
                best
            } else {
                0
            };
            (best, p, None)
        } else if st.dynamic_multimask_via_stability {
            let delta = st.dynamic_multimask_stability_delta;
            let thresh = st.dynamic_multimask_stability_thresh;
            let first = self.stages.mask_plane(dec, b, 0)?;
            if ops::stability_score(&first, delta) < thresh {
                (best, 0, None)
            } else {
                (0, 0, Some(first))
            }
        } else {
            (0, 0, None)
        };
        let st = &self.settings;
        let iou_v = iou(mask_t);
        let score = dec.object_score[b];
        let appearing = !st.pred_obj_scores || score > 0.0;
        let logits = match (appearing, mask) {
            (false, _) => vec![NO_OBJ_SCORE; d.l * d.l],
            (true, Some(mask)) => mask,
            (true, None) => self.stages.mask_plane(dec, b, mask_t)?,
        };
        let st = &self.settings;
        let ptr_v = if st.pred_obj_scores {
            let lambda = if st.soft_no_obj_ptr {
                ops::sigmoid(score)
            } else if appearing {
                1.0
            } else {
                0.0
            };
            self.blend_no_obj_ptr(ptr(ptr_t), lambda)
        } else {
            ptr(ptr_t).to_vec()
        };
        Ok(HeadOutput {
            logits,
            object_score: score,
            iou: iou_v,
            ptr: ptr_v,
        })
    }
}

/// Bounding box of the non-zero pixels of a `width`-wide mask.
pub fn bounding_box(mask: &[u8], width: usize) -> Option<[u32; 4]> {
    let mut b: Option<[usize; 4]> = None;
    for (y, row) in mask.chunks_exact(width).enumerate() {
        let Some(x0) = row.iter().position(|v| *v != 0) else {
            continue;
        };
        let x1 = row.iter().rposition(|v| *v != 0).unwrap() + 1;
        b = Some(match b {
            None => [x0, y, x1, y + 1],
            Some([a0, b0, a1, _]) => [a0.min(x0), b0, a1.max(x1), y + 1],
        });
    }
    b.map(|v| v.map(|x| x as u32))
}

/// Binary masks (0/1) of `width`×`height` from low-res logits (the official
/// post-processing, see [`Tracker::frame_masks`]); usable for any output
/// size, e.g. to show an older result on a frame of another size.
pub fn masks_from_logits(
    logits: &[&Plane],
    width: usize,
    height: usize,
    threshold: f32,
    non_overlap: bool,
) -> Vec<Vec<u8>> {
    let mut planes: Vec<Plane> = logits
        .iter()
        .map(|l| ops::resize_bilinear(l, width, height))
        .collect();
    if non_overlap && planes.len() > 1 {
        for p in 0..width * height {
            let best = (0..planes.len()).fold(0, |b, k| {
                if planes[k].data[p] > planes[b].data[p] {
                    k
                } else {
                    b
                }
            });
            for (k, plane) in planes.iter_mut().enumerate() {
                if k != best {
                    plane.data[p] = plane.data[p].min(-10.0);
                }
            }
        }
    }
    planes
        .iter()
        .map(|p| p.data.iter().map(|v| u8::from(*v > threshold)).collect())
        .collect()
}
