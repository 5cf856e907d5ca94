// SPDX-License-Identifier: MPL-2.0

//! The tracker's face: one call per frame. [`Tracker::step`] takes a frame
//! and the prompts given for it, and returns every object's result on it;
//! [`Tracker::correct`] takes prompts on a frame already tracked (a click on
//! what the user sees). Everything between (the order prompts apply in,
//! refusals, clicks that remove the object under them, masks at the frame
//! size and their boxes) happens here, once, for the element, the examples,
//! the benchmark and the tests alike.

use super::ops::{self, Plane};
use super::stages::StageTimes;
use super::tracker::{
    Frame, LABEL_NEGATIVE, LABEL_POSITIVE, ObjectOutput, Tracker, TrackerError, bounding_box,
    masks_from_logits,
};

/// A prompt for one frame, in pixels of that frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Clicks (x, y, positive) and/or a box (x0, y0, x1, y1) for object
    /// `id` (a new one when unknown); `clear`: forget the object's earlier
    /// clicks on this frame. A box comes first, as in SAM 2.
    Points {
        id: u32,
        clicks: Vec<([f32; 2], bool)>,
        bbox: Option<[f32; 4]>,
        clear: bool,
    },
    /// A `width`×`height` mask (non-zero: the object) for object `id`,
    /// resized to the frame (nearest) when its size differs.
    Mask {
        id: u32,
        width: usize,
        height: usize,
        data: Vec<u8>,
    },
    /// Stop tracking object `id`.
    Remove { id: u32 },
    /// Stop tracking whichever object covers this point of the previous
    /// result (drawn last, on top, when several do).
    RemoveAt { x: f32, y: f32 },
    /// Forget every object and the whole memory: the frame starts a new stream.
    Reset,
}

impl Prompt {
    /// The object the prompt names, if any.
    pub fn id(&self) -> Option<u32> {
        match self {
            Prompt::Points { id, .. } | Prompt::Mask { id, .. } | Prompt::Remove { id } => {
                Some(*id)
            }
            Prompt::RemoveAt { .. } | Prompt::Reset => None,
        }
    }
}

/// A frame for [`Tracker::step`].
#[derive(Debug, Clone, Copy)]
pub enum FrameInput<'a> {
    /// Packed RGB-family pixels of any size (resized to the model's input).
    Packed(Frame<'a>),
    /// Pixels already stretched to the model's S×S input (packed RGB), as
    /// the official loader prepares them, for a `width`×`height` frame.
    Prepared {
        rgb: &'a [u8],
        width: usize,
        height: usize,
    },
}

/// One object on one frame.
#[derive(Debug, Clone)]
pub struct ObjectResult {
    pub id: u32,
    /// Low-resolution logits (L×L), to make masks at another size.
    pub logits: Plane,
    /// 0/1 at the frame size (`> mask_threshold`, non-overlapping when configured).
    pub mask: Vec<u8>,
    /// Smallest box holding the mask: x0, y0, x1, y1 (exclusive); None: empty.
    pub bbox: Option<[u32; 4]>,
    /// Occlusion logit: > 0 means the object is present.
    pub object_score: f32,
    /// Predicted IoU of the mask.
    pub iou: f32,
    /// Whether the frame is a conditioning (prompted) frame of the object.
    pub is_cond: bool,
}

/// Every object's result on a frame, and what became of its prompts.
#[derive(Debug, Clone, Default)]
pub struct FrameResult {
    /// Index of the frame in the stream (0 after a reset); None when the
    /// frame needed no inference (no objects, no prompts).
    pub index: Option<u64>,
    pub width: usize,
    pub height: usize,
    pub objects: Vec<ObjectResult>,
    /// Prompts refused (the stream goes on without them), by their index in
    /// the prompts given, in order.
    pub refused: Vec<(usize, TrackerError)>,
    /// Ids that stopped being objects: removed by [`Prompt::RemoveAt`] or
    /// [`Prompt::Reset`], or refused as new objects.
    pub released: Vec<u32>,
    /// Time in each graph.
    pub times: StageTimes,
}

impl FrameResult {
    fn empty(width: usize, height: usize) -> Self {
        FrameResult {
            width,
            height,
            ..FrameResult::default()
        }
    }
}

impl FrameInput<'_> {
    fn size(&self) -> (usize, usize) {
        match self {
            FrameInput::Packed(f) => (f.width, f.height),
            FrameInput::Prepared { width, height, .. } => (*width, *height),
        }
    }
}

impl Tracker {
    /// Runs one frame: removals and resets first, then the frame is encoded
    /// (when there are objects or prompts), the prompts applied in order, and
    /// every other object tracked from its memory. `Err`: the inference
    /// itself failed (a graph error); refused prompts are in the result.
    pub fn step(
        &mut self,
        frame: FrameInput<'_>,
        prompts: &[Prompt],
    ) -> Result<FrameResult, TrackerError> {
        let (width, height) = frame.size();
        let mut result = FrameResult::empty(width, height);
        self.take_stage_times();
        let mut on_frame: Vec<(usize, &Prompt)> = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            match p {
                Prompt::Reset => {
                    result.released.extend(self.object_ids());
                    self.reset();
                    on_frame.clear();
                }
                Prompt::Remove { id } => {
                    on_frame.retain(|(_, q)| q.id() != Some(*id));
                    if let Err(err) = self.forget(*id) {
                        result.refused.push((i, err));
                    }
                }
                Prompt::RemoveAt { x, y } => {
                    // (an object removed by an earlier prompt of the frame is not hit)
                    let hit = self.object_at(*x, *y, width, height);
                    match hit.map(|id| (id, self.forget(id))) {
                        Some((id, Ok(()))) => {
                            on_frame.retain(|(_, q)| q.id() != Some(id));
                            result.released.push(id);
                        }
                        _ => result.refused.push((i, TrackerError::NothingThere)),
                    }
                }
                _ => on_frame.push((i, p)),
            }
        }
        if on_frame.is_empty() && self.object_ids().is_empty() {
            self.last = None;
            return Ok(result);
        }
        // (points, boxes and masks: encoded for prompts at once; the flag is
        // cleared whether the frame could be begun or not)
        self.encode_for_prompts = !on_frame.is_empty();
        let begun = match frame {
            FrameInput::Packed(f) => self.begin_frame(&f),
            FrameInput::Prepared { rgb, width, height } => {
                self.begin_prepared_frame(rgb, width, height)
            }
        };
        self.encode_for_prompts = false;
        let index = begun?;
        result.index = Some(index);
        self.apply(&on_frame, &mut result)?;
        let outputs = self.track()?;
        self.finish(outputs, result)
    }

    /// Prompts on the current frame after it was tracked (corrections of
    /// what was just shown); returns every object's result on it again.
    pub fn correct(&mut self, prompts: &[Prompt]) -> Result<FrameResult, TrackerError> {
        let index = self.frame_index().ok_or(TrackerError::NoFrame)?;
        let (width, height) = self.frame_size()?;
        let mut result = FrameResult::empty(width, height);
        result.index = Some(index);
        self.take_stage_times();
        let mut corrections = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            match p {
                Prompt::Points { .. } | Prompt::Mask { .. } => corrections.push((i, p)),
                // they act before a frame is encoded: give them to `step`
                _ => result.refused.push((i, TrackerError::NotACorrection)),
            }
        }
        self.apply(&corrections, &mut result)?;
        let outputs = self.outputs();
        self.finish(outputs, result)
    }

    /// Applies point, box and mask prompts on the current frame.
    fn apply(
        &mut self,
        prompts: &[(usize, &Prompt)],
        result: &mut FrameResult,
    ) -> Result<(), TrackerError> {
        let (width, height) = self.frame_size()?;
        for &(i, p) in prompts {
            let applied = match p {
                Prompt::Points {
                    id,
                    clicks,
                    bbox,
                    clear,
                } => {
                    let points: Vec<[f32; 2]> = clicks.iter().map(|(xy, _)| *xy).collect();
                    let labels: Vec<i32> = clicks
                        .iter()
                        .map(|(_, positive)| {
                            if *positive {
                                LABEL_POSITIVE
                            } else {
                                LABEL_NEGATIVE
                            }
                        })
                        .collect();
                    match bbox {
                        Some(b) => self.add_box(*id, *b, &points, &labels),
                        None => self.add_points(*id, &points, &labels, *clear),
                    }
                }
                Prompt::Mask {
                    id,
                    width: mw,
                    height: mh,
                    data,
                } => {
                    let mask = resize_nearest(data, *mw, *mh, width, height);
                    self.add_mask(*id, &mask)
                }
                Prompt::Remove { .. } | Prompt::RemoveAt { .. } | Prompt::Reset => {
                    unreachable!("taken out by step and correct")
                }
            };
            match applied {
                Ok(_) => {}
                Err(err @ TrackerError::Stage(_)) => return Err(err),
                Err(err) => {
                    if let Some(id) = p.id()
                        && !self.object_ids().contains(&id)
                    {
                        result.released.push(id);
                    }
                    result.refused.push((i, err));
                }
            }
        }
        Ok(())
    }

    /// Frame-size masks and boxes of `outputs`, kept for [`Prompt::RemoveAt`].
    fn finish(
        &mut self,
        outputs: Vec<ObjectOutput>,
        mut result: FrameResult,
    ) -> Result<FrameResult, TrackerError> {
        let (w, h) = self.frame_size()?;
        let logits: Vec<&Plane> = outputs.iter().map(|o| &o.logits).collect();
        let config = self.config();
        let masks = masks_from_logits(
            &logits,
            w,
            h,
            config.mask_threshold,
            config.non_overlap_masks,
        );
        result.objects = outputs
            .into_iter()
            .zip(masks)
            .map(|(o, mask)| ObjectResult {
                id: o.id,
                bbox: bounding_box(&mask, w),
                mask,
                logits: o.logits,
                object_score: o.object_score,
                iou: o.iou,
                is_cond: o.is_cond,
            })
            .collect();
        self.last = Some(LastResult {
            width: w,
            height: h,
            objects: result
                .objects
                .iter()
                .map(|o| (o.id, o.logits.clone()))
                .collect(),
        });
        result.times = self.take_stage_times();
        Ok(result)
    }

    /// Removes object `id`, also from the previous result clicks look at.
    fn forget(&mut self, id: u32) -> Result<(), TrackerError> {
        self.remove_object(id)?;
        if let Some(last) = &mut self.last {
            last.objects.retain(|(o, _)| *o != id);
        }
        Ok(())
    }

    /// The object covering (`x`, `y`) of a `width`×`height` frame on the
    /// previous result (scaled to its size when the frames differ).
    fn object_at(&self, x: f32, y: f32, width: usize, height: usize) -> Option<u32> {
        let last = self.last.as_ref()?;
        let px = (x * last.width as f32 / width.max(1) as f32).floor();
        let py = (y * last.height as f32 / height.max(1) as f32).floor();
        if !(px >= 0.0 && py >= 0.0 && (px as usize) < last.width && (py as usize) < last.height) {
            return None;
        }
        let mut values: Vec<f32> = last
            .objects
            .iter()
            .map(|(_, logits)| {
                ops::bilinear_at(logits, last.width, last.height, px as usize, py as usize)
            })
            .collect();
        let config = self.config();
        if config.non_overlap_masks && values.len() > 1 {
            let best = (0..values.len()).fold(0, |b, k| if values[k] > values[b] { k } else { b });
            for (k, v) in values.iter_mut().enumerate() {
                if k != best {
                    *v = v.min(-10.0);
                }
            }
        }
        last.objects
            .iter()
            .zip(values)
            .rev()
            .find(|(_, v)| *v > config.mask_threshold)
            .map(|((id, _), _)| *id)
    }
}

/// The previous result, for clicks that remove the object under them.
#[derive(Debug, Clone)]
pub(super) struct LastResult {
    width: usize,
    height: usize,
    objects: Vec<(u32, Plane)>,
}

/// A `w`×`h` mask at `width`×`height` as 0/1 (nearest neighbour).
pub fn resize_nearest(data: &[u8], w: usize, h: usize, width: usize, height: usize) -> Vec<u8> {
    let mut out = vec![0u8; width * height];
    if w == 0 || h == 0 || data.len() < w * h {
        return out;
    }
    for y in 0..height {
        let sy = (y * h / height.max(1)).min(h - 1);
        for x in 0..width {
            let sx = (x * w / width.max(1)).min(w - 1);
            out[y * width + x] = u8::from(data[sy * w + sx] != 0);
        }
    }
    out
}
