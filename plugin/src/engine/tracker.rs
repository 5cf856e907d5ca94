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
use super::ops::{self, Plane};
use super::stages::{
    DecoderOutput, Dims, ImageFeatures, MemoryBatch, PromptBatch, StageError, StageTimes, Stages,
};

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

/// Byte layouts of packed RGB frames the tracker reads directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
}

impl PixelFormat {
    /// Bytes per pixel and the byte offsets of R, G, B.
    fn layout(self) -> (usize, [usize; 3]) {
        match self {
            PixelFormat::Rgb => (3, [0, 1, 2]),
            PixelFormat::Bgr => (3, [2, 1, 0]),
            PixelFormat::Rgba | PixelFormat::Rgbx => (4, [0, 1, 2]),
            PixelFormat::Bgra | PixelFormat::Bgrx => (4, [2, 1, 0]),
        }
    }
}

/// A packed frame in memory.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    /// Bytes per row.
    pub stride: usize,
    pub format: PixelFormat,
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

/// A stored memory: bf16 features [HW, Cm] and the object pointer [C].
#[derive(Debug, Clone)]
struct Memory {
    features: Vec<u16>,
    ptr: Vec<f32>,
}

/// Result of the SAM heads for one object on one frame.
#[derive(Debug, Clone)]
struct HeadOutput {
    logits: Vec<f32>,
    object_score: f32,
    iou: f32,
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
            .map(|m| m.features.len() * 2 + m.ptr.len() * 4)
            .sum()
    }
}

struct Current {
    index: u64,
    width: usize,
    height: usize,
    features: ImageFeatures,
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
    stages: Stages,
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
    /// The previous frame's result ([`Tracker::step`]), for clicks on it.
    pub(super) last: Option<super::step::LastResult>,
}

impl Tracker {
    pub fn new(
        stages: Stages,
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
        let w = manifest.constant(manifest::CONST_MASK_DOWNSAMPLE_WEIGHT);
        Ok(Tracker {
            dims: stages.dims,
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

    /// Starts the next frame from a packed RGB(A)/BGR(x) frame of any size:
    /// stretched to S×S with an antialiased bilinear filter, then normalised.
    pub fn begin_frame(&mut self, frame: &Frame<'_>) -> Result<u64, TrackerError> {
        let (bpp, offs) = frame.format.layout();
        if frame.width == 0 || frame.height == 0 {
            return Err(TrackerError::EmptyFrame {
                width: frame.width,
                height: frame.height,
            });
        }
        let need = frame.stride * (frame.height - 1) + frame.width * bpp;
        if frame.stride < frame.width * bpp || frame.data.len() < need {
            return Err(TrackerError::FrameData {
                width: frame.width,
                height: frame.height,
                stride: frame.stride,
                format: frame.format,
                got: frame.data.len(),
                need,
            });
        }
        let s = self.dims.s;
        let mut rgb = vec![0u8; 3 * s * s];
        for (c, off) in offs.iter().enumerate() {
            let mut plane = Vec::with_capacity(frame.width * frame.height);
            for y in 0..frame.height {
                let row = &frame.data[y * frame.stride..];
                plane.extend((0..frame.width).map(|x| f32::from(row[x * bpp + off])));
            }
            let plane = Plane::new(frame.width, frame.height, plane);
            let plane = if (frame.width, frame.height) == (s, s) {
                plane
            } else {
                ops::resize_bilinear_aa(&plane, s, s)
            };
            for (p, v) in plane.data.iter().enumerate() {
                rgb[p * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        self.begin_prepared_frame(&rgb, frame.width, frame.height)
    }

    /// Starts the next frame from an image already stretched to S×S (packed
    /// RGB, u8), as the official loader prepares it; `width`×`height` is the
    /// original frame size that prompts and output masks refer to.
    pub fn begin_prepared_frame(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<u64, TrackerError> {
        let s = self.dims.s;
        if width == 0 || height == 0 {
            return Err(TrackerError::EmptyFrame { width, height });
        }
        if rgb.len() != 3 * s * s {
            return Err(TrackerError::FrameData {
                width: s,
                height: s,
                stride: 3 * s,
                format: PixelFormat::Rgb,
                got: rgb.len(),
                need: 3 * s * s,
            });
        }
        let pp = &self.preprocess;
        let mut image = vec![0f32; 3 * s * s];
        for (p, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // numpy: u8 / 255.0 in float64, stored as float32, then (x - mean) / std
                let x = (f64::from(px[c]) * pp.scale) as f32;
                image[c * s * s + p] = (x - pp.mean[c]) / pp.std[c];
            }
        }
        let features = self.stages.encode_image(&image)?;
        // Memories of the previous frame's prompts use that frame's features.
        self.flush_pending()?;
        let index = self.next_index;
        self.next_index += 1;
        self.current = Some(Current {
            index,
            width,
            height,
            features,
        });
        for o in &mut self.objects {
            o.current = None;
            o.tracked = false;
            o.points.clear();
        }
        Ok(index)
    }

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
    ) -> Result<Vec<Vec<u16>>, TrackerError> {
        let masks: Vec<f32> = outs.iter().flat_map(|o| o.logits.iter().copied()).collect();
        let flags = vec![if from_prompts { 1.0 } else { 0.0 }; outs.len()];
        let scores: Vec<f32> = outs.iter().map(|o| o.object_score).collect();
        let feats = self
            .stages
            .encode_memory(features, &masks, &flags, &scores)?;
        let per = self.dims.hw() * self.dims.cm;
        Ok(feats
            .chunks_exact(per)
            .map(|c| c.iter().map(|v| ops::f32_to_bf16(*v)).collect())
            .collect())
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
        let cur = self.current.take().ok_or(TrackerError::NoFrame)?;
        let result = (|| {
            let embed = if is_init {
                self.no_mem_features(&cur.features)
            } else {
                let batch = self.memory_batch(&[oi], cur.index);
                self.stages.attend(&cur.features, &batch)?
            };
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
            let dec = self.stages.decode(&cur.features, &embed, &prompts)?;
            let multimask = self.use_multimask(is_init, points.len());
            Ok::<_, TrackerError>(self.select(&dec, 0, multimask))
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
        let cur = self.current.take().ok_or(TrackerError::NoFrame)?;
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
            .decode(&cur.features, &cur.features.vision_feat, &prompts);
        self.current = Some(cur);
        let dec = dec?;
        // pointer of token 0 with the decoder's occlusion blend, then the mask's own
        let head = self.select(&dec, 0, false);
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

    /// Forgets object `id` and everything it stored.
    pub fn remove_object(&mut self, id: u32) -> Result<(), TrackerError> {
        let i = self
            .object_index(id)
            .ok_or(TrackerError::UnknownObject(id))?;
        self.objects.remove(i);
        Ok(())
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
        let mut embed = Vec::new();
        for &i in todo {
            let batch = self.memory_batch(&[i], cur.index);
            embed.extend(self.stages.attend(&cur.features, &batch)?);
        }
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
        let dec = self.stages.decode(&cur.features, &embed, &prompts)?;
        let multimask = self.use_multimask(false, 0);
        let outs: Vec<HeadOutput> = (0..b).map(|k| self.select(&dec, k, multimask)).collect();
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

    /// Drops memories the selection rules can no longer reach: after frame t,
    /// prompts on t still read non-conditioning memories back to
    /// t − (num_maskmem − 1)·stride (spatial) and t − (max_ptrs − 1) (pointers).
    fn prune(&mut self, t: u64) {
        let r = &self.rules;
        let reach = u64::from(((r.num_maskmem - 1) * r.stride).max(r.max_ptrs - 1));
        let oldest = t.saturating_sub(reach);
        for o in &mut self.objects {
            o.non_cond = o.non_cond.split_off(&oldest);
            // with a limit, only the `max_cond` most recent conditioning frames are ever
            // selected again; older ones are read only inside the non-conditioning reach
            if r.max_cond > 0 && o.cond.len() > r.max_cond as usize {
                let surplus = o.cond.len() - r.max_cond as usize;
                let old: Vec<u64> = o.cond.keys().copied().take(surplus).collect();
                for f in old.into_iter().filter(|f| *f < oldest) {
                    o.cond.remove(&f);
                }
            }
        }
    }

    // --------------------------------------------------------------- helpers

    /// `vision_feat + no_mem_embed` ([1, C, H, W]): an initial conditioning frame.
    fn no_mem_features(&self, f: &ImageFeatures) -> Vec<f32> {
        let hw = self.dims.hw();
        f.vision_feat
            .chunks_exact(hw)
            .zip(&self.no_mem_embed)
            .flat_map(|(ch, e)| ch.iter().map(move |v| v + e))
            .collect()
    }

    /// `SAM2Base._use_multimask`.
    fn use_multimask(&self, is_init: bool, num_points: usize) -> bool {
        let st = &self.settings;
        st.multimask_output_in_sam
            && (is_init || st.multimask_output_for_tracking)
            && (st.multimask_min_pt_num as usize..=st.multimask_max_pt_num as usize)
                .contains(&num_points)
    }

    fn blend_no_obj_ptr(&self, ptr: &[f32], lambda: f32) -> Vec<f32> {
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
    /// decoder batch (`MaskDecoder.forward` + `_forward_sam_heads`).
    fn select(&self, dec: &DecoderOutput, b: usize, multimask: bool) -> HeadOutput {
        let d = self.dims;
        let st = &self.settings;
        let ll = d.l * d.l;
        let mask = |t: usize| &dec.masks[(b * d.tokens + t) * ll..(b * d.tokens + t + 1) * ll];
        let iou = |t: usize| dec.iou[b * d.tokens + t];
        let ptr = |t: usize| &dec.obj_ptr[(b * d.tokens + t) * d.c..(b * d.tokens + t + 1) * d.c];
        // argmax over the multimask tokens 1..=3 (first maximum, as torch.argmax)
        let best = (2..d.tokens).fold(1, |best, t| if iou(t) > iou(best) { t } else { best });
        let (mask_t, iou_v, ptr_t) = if multimask {
            let p = if st.use_multimask_token_for_obj_ptr {
                best
            } else {
                0
            };
            (best, iou(best), p)
        } else if st.dynamic_multimask_via_stability
            && ops::stability_score(mask(0), st.dynamic_multimask_stability_delta)
                < st.dynamic_multimask_stability_thresh
        {
            (best, iou(best), 0)
        } else {
            (0, iou(0), 0)
        };
        let score = dec.object_score[b];
        let (logits, ptr_v) = if st.pred_obj_scores {
            let appearing = score > 0.0;
            let lambda = if st.soft_no_obj_ptr {
                1.0 / (1.0 + (-score).exp())
            } else if appearing {
                1.0
            } else {
                0.0
            };
            let logits = if appearing {
                mask(mask_t).to_vec()
            } else {
                vec![NO_OBJ_SCORE; ll]
            };
            (logits, self.blend_no_obj_ptr(ptr(ptr_t), lambda))
        } else {
            (mask(mask_t).to_vec(), ptr(ptr_t).to_vec())
        };
        HeadOutput {
            logits,
            object_score: score,
            iou: iou_v,
            ptr: ptr_v,
        }
    }

    /// `select_closest_cond_frames`: (selected, unselected) conditioning frames.
    fn split_cond(&self, o: &Object, t: u64) -> (Vec<u64>, Vec<u64>) {
        let all: Vec<u64> = o.cond.keys().copied().collect();
        let max = self.rules.max_cond;
        if max == -1 || all.len() <= max as usize {
            return (all, Vec::new());
        }
        let mut selected = Vec::new();
        if let Some(b) = all.iter().copied().filter(|f| *f < t).max() {
            selected.push(b);
        }
        if let Some(a) = all.iter().copied().filter(|f| *f >= t).min() {
            selected.push(a);
        }
        let mut rest: Vec<u64> = all
            .iter()
            .copied()
            .filter(|f| !selected.contains(f))
            .collect();
        rest.sort_by_key(|f| f.abs_diff(t));
        let remain = (max as usize).saturating_sub(selected.len());
        selected.extend(rest.into_iter().take(remain));
        let unselected = all.into_iter().filter(|f| !selected.contains(f)).collect();
        selected.sort_unstable();
        (selected, unselected)
    }

    /// Memory-attention inputs for objects `objs` on frame `t`
    /// (`_prepare_memory_conditioned_features`), padded to a common length.
    fn memory_batch(&self, objs: &[usize], t: u64) -> MemoryBatch {
        let d = self.dims;
        let r = &self.rules;
        let per = d.hw() * d.cm;
        let signed = self.settings.use_signed_tpos_enc_to_obj_ptrs;
        let t_diff_max = (r.max_ptrs - 1) as f32;
        // per object: (memory refs with tpos index) and (pointer refs with tpos)
        let mut mems: Vec<Vec<(&Memory, i64)>> = Vec::new();
        let mut ptrs: Vec<Vec<(&Memory, f32)>> = Vec::new();
        for &i in objs {
            let o = &self.objects[i];
            let (selected, unselected) = self.split_cond(o, t);
            let lookup = |f: u64| {
                o.non_cond
                    .get(&f)
                    .or_else(|| unselected.contains(&f).then(|| &o.cond[&f]))
            };
            let mut m: Vec<(&Memory, i64)> = selected
                .iter()
                .map(|f| (&o.cond[f], i64::from(r.num_maskmem) - 1))
                .collect();
            for t_pos in 1..r.num_maskmem {
                let t_rel = u64::from(r.num_maskmem - t_pos);
                let stride = u64::from(r.stride);
                let prev = if t_rel == 1 {
                    t.checked_sub(1)
                } else {
                    t.checked_sub(2)
                        .map(|v| (v / stride) * stride)
                        .and_then(|v| v.checked_sub((t_rel - 2) * stride))
                };
                if let Some(mem) = prev.and_then(lookup) {
                    m.push((mem, i64::from(r.num_maskmem - t_pos) - 1));
                }
            }
            let mut p: Vec<(&Memory, f32)> = selected
                .iter()
                .filter(|f| !self.settings.only_obj_ptrs_in_the_past_for_eval || **f <= t)
                .map(|f| {
                    let diff = t as i64 - *f as i64;
                    let diff = if signed { diff } else { diff.abs() };
                    (&o.cond[f], diff as f32 / t_diff_max)
                })
                .collect();
            for t_diff in 1..u64::from(r.max_ptrs) {
                let Some(f) = t.checked_sub(t_diff) else {
                    break;
                };
                if let Some(mem) = lookup(f) {
                    p.push((mem, t_diff as f32 / t_diff_max));
                }
            }
            mems.push(m);
            ptrs.push(p);
        }
        let b = objs.len();
        let nm = mems.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let np = ptrs.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut batch = MemoryBatch {
            batch: b,
            nm,
            p: np,
            memory: vec![0.0; b * nm * per],
            tpos_index: vec![0; b * nm],
            memory_valid: vec![0.0; b * nm],
            obj_ptrs: vec![0.0; b * np * d.c],
            obj_ptr_tpos: vec![0.0; b * np],
            obj_ptr_valid: vec![0.0; b * np],
        };
        for (k, (m, p)) in mems.iter().zip(&ptrs).enumerate() {
            for (s, (mem, idx)) in m.iter().enumerate() {
                let dst = &mut batch.memory[(k * nm + s) * per..(k * nm + s + 1) * per];
                for (x, v) in dst.iter_mut().zip(&mem.features) {
                    *x = ops::bf16_to_f32(*v);
                }
                batch.tpos_index[k * nm + s] = *idx;
                batch.memory_valid[k * nm + s] = 1.0;
            }
            for (s, (mem, tpos)) in p.iter().enumerate() {
                batch.obj_ptrs[(k * np + s) * d.c..(k * np + s + 1) * d.c]
                    .copy_from_slice(&mem.ptr);
                batch.obj_ptr_tpos[k * np + s] = if self.settings.add_tpos_enc_to_obj_ptrs {
                    *tpos
                } else {
                    0.0
                };
                batch.obj_ptr_valid[k * np + s] = 1.0;
            }
        }
        batch
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
