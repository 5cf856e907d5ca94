// SPDX-License-Identifier: MPL-2.0

//! Prompts on the current frame: clicks and boxes (the mask decoder on the
//! object's points of the frame, with its previous logits as the mask
//! prompt), masks (used directly as the output), and clearing them
//! (`add_new_points_or_box`, `add_new_mask`, `clear_all_prompts_in_frame`
//! of the official predictor).

use super::heads::HeadOutput;
use super::{
    LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT, LABEL_NEGATIVE, LABEL_PAD, LABEL_POSITIVE,
    MASK_OUT_BIAS, MASK_OUT_SCALE, MAX_POINTS_PER_FRAME, ObjectOutput, PREV_LOGITS_CLAMP, Pending,
    Tracker, TrackerError,
};
use crate::engine::ops::{self, Plane};
use crate::engine::stages::PromptBatch;

impl Tracker {
    fn check_point(&self, x: f32, y: f32) -> Result<(), TrackerError> {
        let (w, h) = self.frame_size()?;
        if !(x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0) || x > w as f32 || y > h as f32
        {
            return Err(TrackerError::PointOutside {
                x,
                y,
                width: w,
                height: h,
            });
        }
        Ok(())
    }

    /// Frame pixels to model-input pixels, as the official predictor:
    /// `points / [W, H] * S` in f32.
    fn to_model(&self, x: f32, y: f32) -> [f32; 2] {
        let (w, h) = self.frame_size().expect("checked");
        let s = self.dims.s as f32;
        [x / w as f32 * s, y / h as f32 * s]
    }

    /// Positive (1) / negative (0) clicks for object `id` on the current frame,
    /// in frame pixels. `clear_old`: forget points given earlier on this frame.
    /// Adds the object if it is new.
    pub fn add_points(
        &mut self,
        id: u32,
        points: &[[f32; 2]],
        labels: &[i32],
        clear_old: bool,
    ) -> Result<ObjectOutput, TrackerError> {
        self.frame_size()?;
        if points.is_empty() {
            return Err(TrackerError::NoPoints);
        }
        let new = self.clicks(points, labels)?;
        self.prompt_points(id, new, clear_old)
    }

    /// A box prompt (x0, y0, x1, y1 in frame pixels), optionally with clicks;
    /// replaces the points given earlier on this frame (a box must come first).
    pub fn add_box(
        &mut self,
        id: u32,
        bbox: [f32; 4],
        points: &[[f32; 2]],
        labels: &[i32],
    ) -> Result<ObjectOutput, TrackerError> {
        let (w, h) = self.frame_size()?;
        let [x0, y0, x1, y1] = bbox;
        if !(bbox.iter().all(|v| v.is_finite())
            && x0 >= 0.0
            && y0 >= 0.0
            && x1 <= w as f32
            && y1 <= h as f32
            && x0 < x1
            && y0 < y1)
        {
            return Err(TrackerError::EmptyBox { x0, y0, x1, y1 });
        }
        let clicks = self.clicks(points, labels)?;
        let mut new = vec![
            (self.to_model(x0, y0), LABEL_BOX_TOP_LEFT),
            (self.to_model(x1, y1), LABEL_BOX_BOTTOM_RIGHT),
        ];
        new.extend(clicks);
        self.prompt_points(id, new, true)
    }

    /// Runs a prompt on object `id` (added if new); a new object is dropped
    /// again when the prompt fails, so a refused prompt leaves no trace.
    fn prompt_object(
        &mut self,
        id: u32,
        run: impl FnOnce(&mut Self, usize) -> Result<ObjectOutput, TrackerError>,
    ) -> Result<ObjectOutput, TrackerError> {
        let existed = self.object_index(id).is_some();
        let oi = self.object_for_prompt(id)?;
        let result = run(self, oi);
        if result.is_err() && !existed {
            self.objects.remove(oi);
        }
        result
    }

    fn prompt_points(
        &mut self,
        id: u32,
        new: Vec<([f32; 2], i32)>,
        clear_old: bool,
    ) -> Result<ObjectOutput, TrackerError> {
        self.prompt_object(id, |tr, oi| tr.run_point_prompt(oi, new, clear_old))
    }

    /// Checks clicks (frame pixels, labels 0/1) and converts them to model pixels.
    fn clicks(
        &self,
        points: &[[f32; 2]],
        labels: &[i32],
    ) -> Result<Vec<([f32; 2], i32)>, TrackerError> {
        if points.len() != labels.len() {
            return Err(TrackerError::LabelCount(points.len(), labels.len()));
        }
        points
            .iter()
            .zip(labels)
            .map(|(p, l)| {
                self.check_point(p[0], p[1])?;
                if *l != LABEL_NEGATIVE && *l != LABEL_POSITIVE {
                    return Err(TrackerError::BadLabel(*l));
                }
                Ok((self.to_model(p[0], p[1]), *l))
            })
            .collect()
    }

    fn run_point_prompt(
        &mut self,
        oi: usize,
        new: Vec<([f32; 2], i32)>,
        clear_old: bool,
    ) -> Result<ObjectOutput, TrackerError> {
        let is_init = !self.objects[oi].tracked;
        let is_cond = is_init || self.settings.add_all_frames_to_correct_as_cond;
        let mut points = if clear_old {
            Vec::new()
        } else {
            self.objects[oi].points.clone()
        };
        points.extend(new);
        if points.len() > MAX_POINTS_PER_FRAME {
            return Err(TrackerError::TooManyPoints {
                id: self.objects[oi].id,
                count: points.len(),
                max: MAX_POINTS_PER_FRAME,
            });
        }
        // previous logits on this frame (pending prompt result, else the tracked output)
        let prev: Option<Vec<f32>> = {
            let o = &self.objects[oi];
            o.pending
                .as_ref()
                .filter(|p| p.is_cond == is_cond)
                .map(|p| p.out.logits.clone())
                .or_else(|| o.current.as_ref().map(|(h, _)| h.logits.clone()))
        };
        let cur = self.take_current_for_prompt()?;
        let result = (|| {
            let l = self.dims.l;
            let (mask_input, has) = match prev {
                Some(p) => (
                    p.iter()
                        .map(|v| v.clamp(-PREV_LOGITS_CLAMP, PREV_LOGITS_CLAMP))
                        .collect(),
                    1.0,
                ),
                None => (vec![0.0; l * l], 0.0),
            };
            let prompts = PromptBatch {
                batch: 1,
                n: points.len(),
                coords: points.iter().flat_map(|(p, _)| *p).collect(),
                labels: points.iter().map(|(_, l)| *l).collect(),
                mask_input,
                has_mask_input: vec![has],
            };
            let dec = if is_init {
                let embed = self.no_mem_features(&cur.features)?;
                self.stages.decode(&cur.features, &embed, prompts)?
            } else {
                let batch = self.memory_batch(&[oi], cur.index);
                let embed = self.stages.attend(&cur.features, &[batch])?;
                let dec = self.stages.decode(&cur.features, &embed, prompts);
                self.stages.recycle(embed);
                dec?
            };
            let multimask = self.use_multimask(is_init, points.len());
            Ok::<_, TrackerError>(self.select(&dec, 0, multimask)?)
        })();
        self.current = Some(cur);
        let out = result?;
        let o = &mut self.objects[oi];
        o.points = points;
        o.pending = Some(Pending {
            out: out.clone(),
            is_cond,
        });
        o.current = Some((out, is_cond));
        Ok(self.output_of(oi))
    }

    /// A mask prompt for object `id` on the current frame: `mask` is W×H
    /// (frame size), non-zero = object. Used directly as the output
    /// (`use_mask_input_as_output_without_sam`); an empty mask marks the object
    /// absent on this frame.
    pub fn add_mask(&mut self, id: u32, mask: &[u8]) -> Result<ObjectOutput, TrackerError> {
        let (w, h) = self.frame_size()?;
        if mask.len() != w * h {
            return Err(TrackerError::MaskSize {
                got: mask.len(),
                width: w,
                height: h,
                need: w * h,
            });
        }
        self.prompt_object(id, |tr, oi| tr.run_mask_prompt(oi, mask, w, h))
    }

    fn run_mask_prompt(
        &mut self,
        oi: usize,
        mask: &[u8],
        w: usize,
        h: usize,
    ) -> Result<ObjectOutput, TrackerError> {
        let s = self.dims.s;
        let l = self.dims.l;
        let is_init = !self.objects[oi].tracked;
        let is_cond = is_init || self.settings.add_all_frames_to_correct_as_cond;
        let plane = Plane::new(
            w,
            h,
            mask.iter()
                .map(|v| if *v > 0 { 1.0 } else { 0.0 })
                .collect(),
        );
        let binary = if (w, h) == (s, s) {
            plane
        } else {
            let r = ops::resize_bilinear_aa(&plane, s, s);
            Plane::new(
                s,
                s,
                r.data
                    .iter()
                    .map(|v| if *v >= 0.5 { 1.0 } else { 0.0 })
                    .collect(),
            )
        };
        let appearing = binary.data.iter().any(|v| *v > 0.0);
        let high = Plane::new(
            s,
            s,
            binary
                .data
                .iter()
                .map(|v| v * MASK_OUT_SCALE + MASK_OUT_BIAS)
                .collect(),
        );
        let low = ops::resize_bilinear_aa(&high, l, l);
        let down = ops::conv4x4_stride4(&binary, &self.mask_downsample_w, self.mask_downsample_b);
        let cur = self.take_current_for_prompt()?;
        let prompts = PromptBatch {
            batch: 1,
            n: 1,
            coords: vec![0.0, 0.0],
            labels: vec![LABEL_PAD],
            mask_input: down.data,
            has_mask_input: vec![1.0],
        };
        let dec = self
            .stages
            .decode(&cur.features, &cur.features.vision_feat, prompts);
        self.current = Some(cur);
        let dec = dec?;
        // pointer of token 0 with the decoder's occlusion blend, then the mask's own
        let head = self.select(&dec, 0, false)?;
        let lambda = if appearing { 1.0 } else { 0.0 };
        let ptr = self.blend_no_obj_ptr(&head.ptr, lambda);
        let out = HeadOutput {
            logits: low.data,
            object_score: MASK_OUT_SCALE * lambda + MASK_OUT_BIAS,
            iou: 1.0,
            ptr,
        };
        let o = &mut self.objects[oi];
        o.points.clear();
        o.pending = Some(Pending {
            out: out.clone(),
            is_cond,
        });
        o.current = Some((out, is_cond));
        Ok(self.output_of(oi))
    }

    /// Removes object `id`'s prompts on the current frame: its output there
    /// reverts to tracking (or the object is dropped if it has no memory yet).
    pub fn clear_prompts(&mut self, id: u32) -> Result<(), TrackerError> {
        let i = self
            .object_index(id)
            .ok_or(TrackerError::UnknownObject(id))?;
        let o = &mut self.objects[i];
        let t = self.current.as_ref().map(|c| c.index);
        if let Some(t) = t
            && let Some(m) = o.cond.remove(&t)
        {
            o.non_cond.insert(t, m);
        }
        o.pending = None;
        o.points.clear();
        if o.tracked {
            // keep the tracked output only if it came from tracking
            if matches!(o.current, Some((_, true))) {
                o.current = None;
                o.tracked = false;
            }
        } else {
            o.current = None;
        }
        if o.cond.is_empty() && o.non_cond.is_empty() && o.current.is_none() {
            self.objects.remove(i);
        }
        Ok(())
    }
}
