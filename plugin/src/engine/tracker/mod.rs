// SPDX-License-Identifier: MPL-2.0

//! The streaming SAM 2 tracker: the official `SAM2VideoPredictor` driven one
//! frame at a time, batched over objects, with a memory bank that keeps only
//! what the official selection rules can still read.
//!
//! Per frame: [`Tracker::begin_frame`] (encode the image; prompts given now act
//! on this frame before it is tracked, like `add_new_points_or_box` on a frame
//! not tracked yet), [`Tracker::track`] (every object without a prompt on this
//! frame is tracked from its memory, as `propagate_in_video` for one frame),
//! then optionally more prompts (corrections of what was just tracked, as a
//! click on a frame the user is looking at). See `engine/README.md` for the
//! mapping to the official code.

use std::collections::BTreeMap;

use super::manifest::{self, Manifest, Settings};
use super::ops::Plane;
use super::shared::SharedStages;
use super::stages::{Dims, ImageFeatures, PromptBatch, StageError, StageTimes, StoredMemory};

mod frame;
mod heads;
mod memory;
mod prompts;

pub use frame::{Frame, PixelFormat, resize_like_pil};
use heads::HeadOutput;
pub use heads::{bounding_box, masks_from_logits};

/// `NO_OBJ_SCORE` of the official code: the logits of an absent object.
pub const NO_OBJ_SCORE: f32 = -1024.0;
/// Clamp of previous logits fed back as a mask prompt (`add_new_points_or_box`).
const PREV_LOGITS_CLAMP: f32 = 32.0;
/// Logit scale/bias of a mask prompt used directly as output (`_use_mask_as_output`).
const MASK_OUT_SCALE: f32 = 20.0;
const MASK_OUT_BIAS: f32 = -10.0;

/// Most prompt points (clicks, and 2 per box) one object takes on one frame.
/// Each prompt reruns the mask decoder on all of the object's points of the
/// frame, so without a bound a flood of clicks costs quadratic time; SAM 2
/// was trained with up to 8 correction clicks and gains nothing from more.
pub const MAX_POINTS_PER_FRAME: usize = 64;

/// Label values of prompt points (as the official predictor).
pub const LABEL_NEGATIVE: i32 = 0;
pub const LABEL_POSITIVE: i32 = 1;
pub const LABEL_BOX_TOP_LEFT: i32 = 2;
pub const LABEL_BOX_BOTTOM_RIGHT: i32 = 3;
const LABEL_PAD: i32 = -1;

/// Why a call was refused. The tracker stays usable after any of these.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrackerError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("no frame yet: call begin_frame before giving prompts or tracking")]
    NoFrame,
    #[error("frame of zero size ({width}x{height})")]
    EmptyFrame { width: usize, height: usize },
    #[error(
        "frame data has {got} bytes, {width}x{height} {format:?} with stride {stride} needs {need}"
    )]
    FrameData {
        width: usize,
        height: usize,
        stride: usize,
        format: PixelFormat,
        got: usize,
        need: usize,
    },
    #[error("unknown object id {0}")]
    UnknownObject(u32),
    #[error("no object there")]
    NothingThere,
    #[error("removals and resets act before a frame, not as corrections of a tracked frame")]
    NotACorrection,
    #[error("point ({x}, {y}) is outside the {width}x{height} frame")]
    PointOutside {
        x: f32,
        y: f32,
        width: usize,
        height: usize,
    },
    #[error("point label {0} is not 0 (negative) or 1 (positive)")]
    BadLabel(i32),
    #[error("{0} points but {1} labels")]
    LabelCount(usize, usize),
    #[error("no points given")]
    NoPoints,
    #[error("empty box ({x0}, {y0})-({x1}, {y1}): need x0 < x1 and y0 < y1 inside the frame")]
    EmptyBox { x0: f32, y0: f32, x1: f32, y1: f32 },
    #[error("mask of {got} values, the frame is {width}x{height} ({need} values)")]
    MaskSize {
        got: usize,
        width: usize,
        height: usize,
        need: usize,
    },
    #[error(
        "object {id} would have {count} prompt points on this frame, more than the {max} allowed"
    )]
    TooManyPoints { id: u32, count: usize, max: usize },
    #[error("at most {max} objects are tracked; object {id} would be one more")]
    TooManyObjects { max: usize, id: u32 },
    #[error("{0}")]
    Config(String),
}

/// User options (the element's properties map onto these).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// Logit threshold of the output masks (the official predictor uses 0).
    pub mask_threshold: f32,
    /// Maximum number of objects tracked at once.
    pub max_objects: usize,
    /// Memory frames per object (1..=7, conditioning frame included); None: the model's.
    pub num_maskmem: Option<u32>,
    /// Conditioning frames attended to (-1: all, else >= 2); None: the model's.
    pub max_cond_frames_in_attn: Option<i32>,
    /// Object pointers attended to (>= 2); None: the model's.
    pub max_obj_ptrs: Option<u32>,
    /// Each pixel goes to the highest-scoring object only (official `non_overlap_masks`).
    pub non_overlap_masks: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            mask_threshold: 0.0,
            max_objects: 16,
            num_maskmem: None,
            max_cond_frames_in_attn: None,
            max_obj_ptrs: None,
            non_overlap_masks: false,
        }
    }
}

/// One object on the current frame.
#[derive(Debug, Clone)]
pub struct ObjectOutput {
    pub id: u32,
    /// Chosen low-res logits, L×L.
    pub logits: Plane,
    /// Occlusion logit: > 0 means the object is present.
    pub object_score: f32,
    /// Predicted IoU of the chosen mask.
    pub iou: f32,
    /// Whether this frame is a conditioning (prompted) frame for the object.
    pub is_cond: bool,
}

/// An object's mask at frame size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameMask {
    /// W×H, 1 = object.
    pub mask: Vec<u8>,
    /// Smallest box holding the mask: x0, y0, x1, y1 (exclusive), in frame
    /// pixels; None for an empty mask.
    pub bbox: Option<[u32; 4]>,
}

/// A stored memory: bf16 features [Mt, Cm] (on the execution device) and
/// the object pointer [C] (host).
#[derive(Debug, Clone)]
struct Memory {
    features: StoredMemory,
    ptr: Vec<f32>,
}

#[derive(Debug, Clone)]
struct Pending {
    out: HeadOutput,
    is_cond: bool,
}

#[derive(Debug)]
struct Object {
    id: u32,
    cond: BTreeMap<u64, Memory>,
    non_cond: BTreeMap<u64, Memory>,
    /// Output on the current frame, with whether it is a conditioning output.
    current: Option<(HeadOutput, bool)>,
    /// Tracked (propagated) on the current frame.
    tracked: bool,
    /// Prompt result on the current frame whose memory is not encoded yet.
    pending: Option<Pending>,
    /// Points given on the current frame (model-input pixels, labels).
    points: Vec<([f32; 2], i32)>,
}

impl Object {
    fn new(id: u32) -> Self {
        Object {
            id,
            cond: BTreeMap::new(),
            non_cond: BTreeMap::new(),
            current: None,
            tracked: false,
            pending: None,
            points: Vec::new(),
        }
    }

    fn stored_bytes(&self) -> usize {
        self.cond
            .values()
            .chain(self.non_cond.values())
            .map(|m| m.features.bytes() + m.ptr.len() * 4)
            .sum()
    }
}

struct Current {
    index: u64,
    width: usize,
    height: usize,
    features: ImageFeatures,
    /// The normalised image, kept until the frame's first prompt when the model
    /// has an image encoder for frames with prompts and these features come
    /// from the other one ([`Tracker::take_current_for_prompt`]).
    image: Option<Vec<f32>>,
}

/// Effective memory rules (model settings with the user's overrides).
#[derive(Debug, Clone)]
struct Rules {
    num_maskmem: u32,
    max_cond: i32,
    max_ptrs: u32,
    stride: u32,
}

/// The streaming tracker for one stream.
pub struct Tracker {
    stages: SharedStages,
    dims: Dims,
    settings: Settings,
    preprocess: manifest::Preprocess,
    no_mem_embed: Vec<f32>,
    no_obj_ptr: Vec<f32>,
    mask_downsample_w: Vec<f32>,
    mask_downsample_b: f32,
    config: TrackerConfig,
    rules: Rules,
    objects: Vec<Object>,
    current: Option<Current>,
    next_index: u64,
    /// The model has an image encoder for frames with prompts
    /// ([`manifest::PROMPT_IMAGE_ENCODER`]).
    prompt_encoder: bool,
    /// The next frame gets prompts: encode it with that encoder at once.
    pub(super) encode_for_prompts: bool,
    /// The previous frame's result ([`Tracker::step`]), for clicks on it.
    pub(super) last: Option<super::step::LastResult>,
}

impl Tracker {
    /// A tracker on `stages`: its own ([`Stages`](super::stages::Stages)) or shared with other
    /// trackers ([`SharedStages::load`]).
    pub fn new(
        stages: impl Into<SharedStages>,
        manifest: &Manifest,
        config: TrackerConfig,
    ) -> Result<Self, TrackerError> {
        let st = &manifest.settings;
        let rules = Rules {
            num_maskmem: config.num_maskmem.unwrap_or(st.num_maskmem),
            max_cond: config
                .max_cond_frames_in_attn
                .unwrap_or(st.max_cond_frames_in_attn),
            max_ptrs: config.max_obj_ptrs.unwrap_or(st.max_obj_ptrs_in_encoder),
            stride: st.memory_temporal_stride_for_eval.max(1),
        };
        if !(1..=st.num_maskmem).contains(&rules.num_maskmem) {
            return Err(TrackerError::Config(format!(
                "num-maskmem {} must be within 1..={}",
                rules.num_maskmem, st.num_maskmem
            )));
        }
        if rules.max_cond != -1 && rules.max_cond < 2 {
            return Err(TrackerError::Config(format!(
                "max conditioning frames {} must be -1 (all) or at least 2",
                rules.max_cond
            )));
        }
        if rules.max_ptrs < 2 {
            return Err(TrackerError::Config(format!(
                "max object pointers {} must be at least 2",
                rules.max_ptrs
            )));
        }
        if config.max_objects == 0 {
            return Err(TrackerError::Config(
                "max objects must be at least 1".into(),
            ));
        }
        let stages: SharedStages = stages.into();
        let prompt_encoder = stages.has_prompt_image_encoder();
        let w = manifest.constant(manifest::CONST_MASK_DOWNSAMPLE_WEIGHT);
        Ok(Tracker {
            dims: stages.dims(),
            stages,
            settings: st.clone(),
            preprocess: manifest.preprocess.clone(),
            no_mem_embed: manifest.constant(manifest::CONST_NO_MEM_EMBED).data.clone(),
            no_obj_ptr: manifest.constant(manifest::CONST_NO_OBJ_PTR).data.clone(),
            mask_downsample_w: w.data.clone(),
            mask_downsample_b: manifest.constant(manifest::CONST_MASK_DOWNSAMPLE_BIAS).data[0],
            config,
            rules,
            objects: Vec::new(),
            current: None,
            next_index: 0,
            prompt_encoder,
            encode_for_prompts: false,
            last: None,
        })
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Index of the current frame (0 for the first frame of the stream).
    pub fn frame_index(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.index)
    }

    /// Ids of the objects tracked, in the order they were added.
    pub fn object_ids(&self) -> Vec<u32> {
        self.objects.iter().map(|o| o.id).collect()
    }

    /// Bytes of memory-bank tensors held (features and pointers of all objects).
    pub fn stored_bytes(&self) -> usize {
        self.objects.iter().map(Object::stored_bytes).sum()
    }

    /// Number of stored memories (conditioning + non-conditioning, all objects).
    pub fn stored_memories(&self) -> usize {
        self.objects
            .iter()
            .map(|o| o.cond.len() + o.non_cond.len())
            .sum()
    }

    fn object_index(&self, id: u32) -> Option<usize> {
        self.objects.iter().position(|o| o.id == id)
    }

    // ------------------------------------------------------------------ frames

    /// Encodes and stores the memories of prompt results on the current frame
    /// (`propagate_in_video_preflight`).
    fn flush_pending(&mut self) -> Result<(), TrackerError> {
        let idx: Vec<usize> = (0..self.objects.len())
            .filter(|i| self.objects[*i].pending.is_some())
            .collect();
        if idx.is_empty() {
            return Ok(());
        }
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let outs: Vec<HeadOutput> = idx
            .iter()
            .map(|i| self.objects[*i].pending.as_ref().unwrap().out.clone())
            .collect();
        let feats = self.encode_memories(&cur.features, &outs, true);
        let t = cur.index;
        self.current = Some(cur);
        let feats = feats?;
        for (k, i) in idx.into_iter().enumerate() {
            let o = &mut self.objects[i];
            let p = o.pending.take().unwrap();
            let mem = Memory {
                features: feats[k].clone(),
                ptr: p.out.ptr,
            };
            if p.is_cond {
                o.cond.insert(t, mem);
                o.non_cond.remove(&t);
            } else {
                o.non_cond.insert(t, mem);
            }
        }
        Ok(())
    }

    fn encode_memories(
        &mut self,
        features: &ImageFeatures,
        outs: &[HeadOutput],
        from_prompts: bool,
    ) -> Result<Vec<StoredMemory>, TrackerError> {
        let masks: Vec<f32> = outs.iter().flat_map(|o| o.logits.iter().copied()).collect();
        let flags = vec![if from_prompts { 1.0 } else { 0.0 }; outs.len()];
        let scores: Vec<f32> = outs.iter().map(|o| o.object_score).collect();
        Ok(self.stages.encode_memory(features, masks, flags, scores)?)
    }

    /// Takes the current frame for a prompt. With an image encoder for frames
    /// with prompts (a fast model's fp32 one next to its int8 one), a frame
    /// encoded by the other is encoded again by it first: the prompted frame's
    /// mask, and its memory, which conditions every later frame, get that
    /// encoder's features. (Objects tracked on the frame before the prompt
    /// keep their outputs.)
    fn take_current_for_prompt(&mut self) -> Result<Current, TrackerError> {
        let mut cur = self.current.take().ok_or(TrackerError::NoFrame)?;
        if let Some(image) = cur.image.take() {
            match self.stages.encode_image_for_prompts(image) {
                Ok(features) => cur.features = features,
                Err(err) => {
                    self.current = Some(cur);
                    return Err(err.into());
                }
            }
        }
        Ok(cur)
    }

    // ----------------------------------------------------------------- prompts

    /// Size of the current frame.
    pub fn frame_size(&self) -> Result<(usize, usize), TrackerError> {
        self.current
            .as_ref()
            .map(|c| (c.width, c.height))
            .ok_or(TrackerError::NoFrame)
    }

    /// Index of object `id`, added if new (within `max_objects`).
    fn object_for_prompt(&mut self, id: u32) -> Result<usize, TrackerError> {
        if let Some(i) = self.object_index(id) {
            return Ok(i);
        }
        if self.objects.len() >= self.config.max_objects {
            return Err(TrackerError::TooManyObjects {
                max: self.config.max_objects,
                id,
            });
        }
        self.objects.push(Object::new(id));
        Ok(self.objects.len() - 1)
    }

    /// Forgets object `id` and everything it stored.
    pub fn remove_object(&mut self, id: u32) -> Result<(), TrackerError> {
        let i = self
            .object_index(id)
            .ok_or(TrackerError::UnknownObject(id))?;
        self.objects.remove(i);
        Ok(())
    }

    /// Drops every object and memory; the next frame starts a new stream.
    pub fn reset(&mut self) {
        self.objects.clear();
        self.current = None;
        self.next_index = 0;
        self.last = None;
    }

    // ---------------------------------------------------------------- tracking

    /// Tracks every object that has no output on the current frame yet, then
    /// returns all objects' outputs on it.
    pub fn track(&mut self) -> Result<Vec<ObjectOutput>, TrackerError> {
        self.frame_size()?;
        self.flush_pending()?;
        let t = self.current.as_ref().unwrap().index;
        let todo: Vec<usize> = (0..self.objects.len())
            .filter(|i| {
                let o = &self.objects[*i];
                !o.cond.contains_key(&t) && o.current.is_none()
            })
            .collect();
        // objects without any memory (e.g. prompts cleared) cannot be tracked
        let todo: Vec<usize> = todo
            .into_iter()
            .filter(|i| !self.objects[*i].cond.is_empty())
            .collect();
        if !todo.is_empty() {
            let cur = self.current.take().unwrap();
            let result = self.track_batch(&todo, &cur);
            self.current = Some(cur);
            let outs = result?;
            for (i, out) in todo.iter().zip(outs) {
                self.objects[*i].current = Some((out, false));
            }
        }
        for o in &mut self.objects {
            o.tracked = true;
        }
        self.prune(t);
        Ok(self.outputs())
    }

    fn track_batch(
        &mut self,
        todo: &[usize],
        cur: &Current,
    ) -> Result<Vec<HeadOutput>, TrackerError> {
        // Memory attention one object at a time: its work is per object anyway
        // (each attends to its own memory), and one object's attention
        // matrices at a time keep the process's peak memory that of one object.
        let batches: Vec<_> = todo
            .iter()
            .map(|&i| self.memory_batch(&[i], cur.index))
            .collect();
        let embed = self.stages.attend(&cur.features, &batches)?;
        let b = todo.len();
        let l = self.dims.l;
        let prompts = PromptBatch {
            batch: b,
            n: 1,
            coords: vec![0.0; 2 * b],
            labels: vec![LABEL_PAD; b],
            mask_input: vec![0.0; b * l * l],
            has_mask_input: vec![0.0; b],
        };
        let dec = self.stages.decode(&cur.features, &embed, prompts);
        self.stages.recycle(embed);
        let dec = dec?;
        let multimask = self.use_multimask(false, 0);
        let outs = (0..b)
            .map(|k| self.select(&dec, k, multimask))
            .collect::<Result<Vec<HeadOutput>, _>>()?;
        let feats = self.encode_memories(&cur.features, &outs, false)?;
        for ((i, out), f) in todo.iter().zip(&outs).zip(feats) {
            self.objects[*i].non_cond.insert(
                cur.index,
                Memory {
                    features: f,
                    ptr: out.ptr.clone(),
                },
            );
        }
        Ok(outs)
    }

    // --------------------------------------------------------------- helpers

    /// `vision_feat + no_mem_embed` ([1, C, H, W], on the device): an
    /// initial conditioning frame.
    fn no_mem_features(&mut self, f: &ImageFeatures) -> Result<ort::value::DynValue, StageError> {
        self.stages.no_memory_features(f, &self.no_mem_embed)
    }

    // ----------------------------------------------------------------- output

    fn output_of(&self, i: usize) -> ObjectOutput {
        let o = &self.objects[i];
        let (h, is_cond) = o.current.as_ref().expect("object has an output");
        ObjectOutput {
            id: o.id,
            logits: Plane::new(self.dims.l, self.dims.l, h.logits.clone()),
            object_score: h.object_score,
            iou: h.iou,
            is_cond: *is_cond,
        }
    }

    /// Outputs of every object that has one on the current frame.
    pub fn outputs(&self) -> Vec<ObjectOutput> {
        (0..self.objects.len())
            .filter(|i| self.objects[*i].current.is_some())
            .map(|i| self.output_of(i))
            .collect()
    }

    /// [`Tracker::frame_masks`] with each mask's bounding box.
    pub fn frame_masks_with_boxes(
        &self,
        outputs: &[ObjectOutput],
    ) -> Result<Vec<FrameMask>, TrackerError> {
        let (w, _) = self.frame_size()?;
        Ok(self
            .frame_masks(outputs)?
            .into_iter()
            .map(|mask| {
                let bbox = bounding_box(&mask, w);
                FrameMask { mask, bbox }
            })
            .collect())
    }

    /// Binary masks (0/1) at frame size of `outputs`, in the same order:
    /// logits resized bilinearly to the frame, then `> mask_threshold`
    /// (with `non_overlap_masks`, only the highest-scoring object keeps a pixel).
    pub fn frame_masks(&self, outputs: &[ObjectOutput]) -> Result<Vec<Vec<u8>>, TrackerError> {
        let (w, h) = self.frame_size()?;
        let logits: Vec<&Plane> = outputs.iter().map(|o| &o.logits).collect();
        Ok(masks_from_logits(
            &logits,
            w,
            h,
            self.config.mask_threshold,
            self.config.non_overlap_masks,
        ))
    }

    /// Where ONNX Runtime placed each graph's nodes (see [`Stages::placements`]).
    pub fn placements(&self) -> &[(&'static str, super::model::Placement)] {
        self.stages.placements()
    }

    /// Where the tensors between graphs live: "cpu" or "cuda:N".
    pub fn device(&self) -> &str {
        self.stages.device()
    }

    /// Trackers running on this one's graphs (1: its own).
    pub fn stage_users(&self) -> usize {
        self.stages.users()
    }

    /// Time spent in each graph since the last call (see [`StageTimes`]).
    pub fn take_stage_times(&mut self) -> StageTimes {
        self.stages.take_times()
    }

    /// Changes how the masks made from now on are cut from the logits:
    /// `threshold` and `non_overlap` (see [`TrackerConfig`]).
    pub fn set_mask_output(&mut self, threshold: f32, non_overlap: bool) {
        self.config.mask_threshold = threshold;
        self.config.non_overlap_masks = non_overlap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounding_boxes() {
        #[rustfmt::skip]
        let m = [
            0, 0, 0, 0,
            0, 1, 0, 0,
            0, 0, 1, 1,
        ];
        assert_eq!(bounding_box(&m, 4), Some([1, 1, 4, 3]));
        assert_eq!(bounding_box(&[0; 6], 3), None);
        assert_eq!(bounding_box(&[1], 1), Some([0, 0, 1, 1]));
    }
}
