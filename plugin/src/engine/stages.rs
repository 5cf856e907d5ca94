// SPDX-License-Identifier: MPL-2.0

//! The four graphs of `models/CONTRACT.md` as typed calls: inputs are passed to
//! ONNX Runtime as views of the caller's buffers (no copies), outputs are
//! copied out once.

use ort::session::Session;
use ort::value::TensorRef;

use super::manifest::{self, Manifest};
use super::model::{ModelDir, ModelError, SessionOptions};

/// An ONNX Runtime failure while running a graph.
#[derive(Debug, Clone, thiserror::Error)]
#[error("ONNX Runtime failed running {graph}: {message}")]
pub struct StageError {
    pub graph: &'static str,
    pub message: String,
}

fn stage_err(graph: &'static str) -> impl Fn(ort::Error) -> StageError {
    move |e| StageError {
        graph,
        message: e.to_string(),
    }
}

/// Outputs of the image encoder for one frame.
#[derive(Debug, Clone)]
pub struct ImageFeatures {
    /// [1, C/8, 4H, 4W]
    pub high_res_0: Vec<f32>,
    /// [1, C/4, 2H, 2W]
    pub high_res_1: Vec<f32>,
    /// [1, C, H, W]
    pub vision_feat: Vec<f32>,
    /// [1, C, H, W]
    pub vision_pos: Vec<f32>,
}

/// Batched memory-attention inputs (see CONTRACT.md); `nm`, `p` are the padded
/// slot counts shared by the batch.
#[derive(Debug, Clone, Default)]
pub struct MemoryBatch {
    pub batch: usize,
    pub nm: usize,
    pub p: usize,
    /// [B, Nm, HW, Cm]
    pub memory: Vec<f32>,
    /// [B, Nm]
    pub tpos_index: Vec<i64>,
    /// [B, Nm]
    pub memory_valid: Vec<f32>,
    /// [B, P, C]
    pub obj_ptrs: Vec<f32>,
    /// [B, P]
    pub obj_ptr_tpos: Vec<f32>,
    /// [B, P]
    pub obj_ptr_valid: Vec<f32>,
}

/// Batched decoder prompt inputs; `n` points per object (padded with label -1).
#[derive(Debug, Clone)]
pub struct PromptBatch {
    pub batch: usize,
    pub n: usize,
    /// [B, N, 2] in model-input pixels
    pub coords: Vec<f32>,
    /// [B, N]
    pub labels: Vec<i32>,
    /// [B, 1, L, L]
    pub mask_input: Vec<f32>,
    /// [B]
    pub has_mask_input: Vec<f32>,
}

/// Decoder outputs for a batch of B objects.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// [B, 4, L, L]
    pub masks: Vec<f32>,
    /// [B, 4]
    pub iou: Vec<f32>,
    /// [B, 4, C]
    pub obj_ptr: Vec<f32>,
    /// [B]
    pub object_score: Vec<f32>,
}

/// Sizes used to shape the tensors.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub s: usize,
    pub c: usize,
    pub cm: usize,
    pub h: usize,
    pub l: usize,
    pub tokens: usize,
    pub c0: usize,
    pub c1: usize,
}

impl Dims {
    pub fn of(m: &Manifest) -> Self {
        Dims {
            s: m.image_size as usize,
            c: m.hidden_dim as usize,
            cm: m.mem_dim as usize,
            h: m.feat_size as usize,
            l: m.low_res_mask_size as usize,
            tokens: m.num_mask_tokens as usize,
            c0: m.high_res_channels[0] as usize,
            c1: m.high_res_channels[1] as usize,
        }
    }

    pub fn hw(&self) -> usize {
        self.h * self.h
    }
}

/// Time spent running each graph (and how often), since the last
/// [`Stages::take_times`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub image_encoder: std::time::Duration,
    pub memory_attention: std::time::Duration,
    pub mask_decoder: std::time::Duration,
    pub memory_encoder: std::time::Duration,
    /// Graph runs counted.
    pub runs: u32,
}

impl StageTimes {
    /// Time in all four graphs.
    pub fn total(&self) -> std::time::Duration {
        self.image_encoder + self.memory_attention + self.mask_decoder + self.memory_encoder
    }
}

/// The loaded graphs of one model.
pub struct Stages {
    pub dims: Dims,
    image_encoder: Session,
    memory_attention: Session,
    mask_decoder: Session,
    memory_encoder: Session,
    times: StageTimes,
}

fn shape(dims: &[usize]) -> Vec<i64> {
    dims.iter().map(|d| *d as i64).collect()
}

fn view<'a, T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static>(
    graph: &'static str,
    dims: &[usize],
    data: &'a [T],
) -> Result<TensorRef<'a, T>, StageError> {
    debug_assert_eq!(
        dims.iter().product::<usize>(),
        data.len(),
        "{graph} input size"
    );
    TensorRef::from_array_view((shape(dims), data)).map_err(stage_err(graph))
}

fn take(
    graph: &'static str,
    outputs: &ort::session::SessionOutputs<'_>,
    name: &str,
) -> Result<Vec<f32>, StageError> {
    let (_, data) = outputs[name]
        .try_extract_tensor::<f32>()
        .map_err(stage_err(graph))?;
    Ok(data.to_vec())
}

/// Runs graph `$graph` (`self.$session`) on `$inputs`, adding its time to
/// `self.times.$slot`.
macro_rules! run_timed {
    ($self:ident, $session:ident, $slot:ident, $graph:expr, $inputs:expr) => {{
        let start = std::time::Instant::now();
        let out = $self.$session.run($inputs).map_err(stage_err($graph));
        $self.times.$slot += start.elapsed();
        $self.times.runs += 1;
        out
    }};
}

impl Stages {
    /// Loads the four graphs and checks them against the contract.
    pub fn load(
        model: &ModelDir,
        environment: &ort::environment::Environment,
        options: &SessionOptions,
    ) -> Result<Self, ModelError> {
        Ok(Stages {
            dims: Dims::of(model.manifest()),
            image_encoder: model.load_checked_with(
                environment,
                manifest::IMAGE_ENCODER,
                options,
            )?,
            memory_attention: model.load_checked_with(
                environment,
                manifest::MEMORY_ATTENTION,
                options,
            )?,
            mask_decoder: model.load_checked_with(environment, manifest::MASK_DECODER, options)?,
            memory_encoder: model.load_checked_with(
                environment,
                manifest::MEMORY_ENCODER,
                options,
            )?,
            times: StageTimes::default(),
        })
    }

    /// Returns the graph times gathered so far and starts again from zero.
    pub fn take_times(&mut self) -> StageTimes {
        std::mem::take(&mut self.times)
    }

    /// `image`: [1, 3, S, S] normalised RGB.
    pub fn encode_image(&mut self, image: &[f32]) -> Result<ImageFeatures, StageError> {
        const G: &str = manifest::IMAGE_ENCODER;
        let d = self.dims;
        let input = view(G, &[1, 3, d.s, d.s], image)?;
        let out = run_timed!(
            self,
            image_encoder,
            image_encoder,
            G,
            ort::inputs!["image" => input]
        )?;
        Ok(ImageFeatures {
            high_res_0: take(G, &out, "high_res_feat_0")?,
            high_res_1: take(G, &out, "high_res_feat_1")?,
            vision_feat: take(G, &out, "vision_feat")?,
            vision_pos: take(G, &out, "vision_pos")?,
        })
    }

    /// Returns `pix_feat_with_mem` [B, C, H, W].
    pub fn attend(
        &mut self,
        features: &ImageFeatures,
        m: &MemoryBatch,
    ) -> Result<Vec<f32>, StageError> {
        const G: &str = manifest::MEMORY_ATTENTION;
        let d = self.dims;
        let feat = [1, d.c, d.h, d.h];
        let inputs = ort::inputs![
            "vision_feat" => view(G, &feat, &features.vision_feat)?,
            "vision_pos" => view(G, &feat, &features.vision_pos)?,
            "memory" => view(G, &[m.batch, m.nm, d.hw(), d.cm], &m.memory)?,
            "memory_tpos_index" => view(G, &[m.batch, m.nm], &m.tpos_index)?,
            "memory_valid" => view(G, &[m.batch, m.nm], &m.memory_valid)?,
            "obj_ptrs" => view(G, &[m.batch, m.p, d.c], &m.obj_ptrs)?,
            "obj_ptr_tpos" => view(G, &[m.batch, m.p], &m.obj_ptr_tpos)?,
            "obj_ptr_valid" => view(G, &[m.batch, m.p], &m.obj_ptr_valid)?,
        ];
        let out = run_timed!(self, memory_attention, memory_attention, G, inputs)?;
        take(G, &out, "pix_feat_with_mem")
    }

    /// `image_embed`: [B, C, H, W].
    pub fn decode(
        &mut self,
        features: &ImageFeatures,
        image_embed: &[f32],
        p: &PromptBatch,
    ) -> Result<DecoderOutput, StageError> {
        const G: &str = manifest::MASK_DECODER;
        let d = self.dims;
        let b = p.batch;
        let inputs = ort::inputs![
            "image_embed" => view(G, &[b, d.c, d.h, d.h], image_embed)?,
            "high_res_feat_0" => view(G, &[1, d.c0, 4 * d.h, 4 * d.h], &features.high_res_0)?,
            "high_res_feat_1" => view(G, &[1, d.c1, 2 * d.h, 2 * d.h], &features.high_res_1)?,
            "point_coords" => view(G, &[b, p.n, 2], &p.coords)?,
            "point_labels" => view(G, &[b, p.n], &p.labels)?,
            "mask_input" => view(G, &[b, 1, d.l, d.l], &p.mask_input)?,
            "has_mask_input" => view(G, &[b], &p.has_mask_input)?,
        ];
        let out = run_timed!(self, mask_decoder, mask_decoder, G, inputs)?;
        Ok(DecoderOutput {
            masks: take(G, &out, "masks")?,
            iou: take(G, &out, "iou_pred")?,
            obj_ptr: take(G, &out, "obj_ptr")?,
            object_score: take(G, &out, "object_score_logits")?,
        })
    }

    /// Returns `maskmem_features` [B, HW, Cm]; `masks`: [B, 1, L, L].
    pub fn encode_memory(
        &mut self,
        features: &ImageFeatures,
        masks: &[f32],
        is_mask_from_pts: &[f32],
        object_score: &[f32],
    ) -> Result<Vec<f32>, StageError> {
        const G: &str = manifest::MEMORY_ENCODER;
        let d = self.dims;
        let b = is_mask_from_pts.len();
        let inputs = ort::inputs![
            "vision_feat" => view(G, &[1, d.c, d.h, d.h], &features.vision_feat)?,
            "masks" => view(G, &[b, 1, d.l, d.l], masks)?,
            "is_mask_from_pts" => view(G, &[b], is_mask_from_pts)?,
            "object_score_logits" => view(G, &[b, 1], object_score)?,
        ];
        let out = run_timed!(self, memory_encoder, memory_encoder, G, inputs)?;
        take(G, &out, "maskmem_features")
    }
}
