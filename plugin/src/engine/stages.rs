// SPDX-License-Identifier: MPL-2.0

//! The four graphs of `models/CONTRACT.md` as typed calls, with the tensors
//! between them kept on the execution device.
//!
//! Every graph runs through an ONNX Runtime I/O binding: image features,
//! high-resolution features, memory-attention outputs, the decoder's masks and
//! the memory bank stay where the graphs run (the GPU with the CUDA provider,
//! the host with the CPU provider: the same code either way, so the default
//! test suite runs this path). The host sends what it computes (the frame,
//! prompts, the chosen masks fed back) and reads back only what it decides
//! with: scores, IoU predictions, object pointers (`C` floats each, blended
//! with `no_obj_ptr` by the object score on the host) and the one chosen mask
//! per object ([`Stages::mask_plane`]). Small helper graphs
//! ([`super::graphs`]) move and convert the bank on the device.

use std::sync::Arc;

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{DynValue, Tensor, TensorRefMut, Value, ValueTypeMarker};

use super::cpu::FlushSubnormals;
use super::graphs;
use super::manifest::{self, Manifest};
use super::model::{ExecutionProvider, ModelDir, ModelError, Placement, SessionOptions};
use super::session::{Source, load_session};
use crate::sync::lock;

/// An ONNX Runtime failure while running a graph.
#[derive(Debug, Clone, thiserror::Error)]
#[error("ONNX Runtime failed running {graph}: {message}")]
pub struct StageError {
    pub graph: &'static str,
    pub message: String,
}

fn stage_err<E: std::fmt::Display>(graph: &'static str) -> impl Fn(E) -> StageError {
    move |e| StageError {
        graph,
        message: e.to_string(),
    }
}

/// Outputs of the image encoder for one frame, on the execution device.
#[derive(Debug)]
pub struct ImageFeatures {
    /// [1, C/8, 4H, 4W]
    pub high_res_0: DynValue,
    /// [1, C/4, 2H, 2W]
    pub high_res_1: DynValue,
    /// [1, C, H, W]
    pub vision_feat: DynValue,
    /// [1, C, H, W]
    pub vision_pos: DynValue,
}

/// One stored memory (`maskmem_features` [HW, Cm] of one object on one
/// frame) on the execution device, in bf16 as the official predictor keeps
/// it: row `index` of the memory encoder's batch output, shared by the
/// objects encoded together and freed when the last of them is dropped.
#[derive(Debug, Clone)]
pub struct StoredMemory {
    batch: Arc<DynValue>,
    index: usize,
    bytes: usize,
}

impl StoredMemory {
    /// Bytes of this memory's features (bf16).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Memory-attention inputs of one object (see CONTRACT.md); `nm`, `p` are
/// the slot counts.
#[derive(Debug, Clone, Default)]
pub struct MemoryBatch {
    pub batch: usize,
    pub nm: usize,
    pub p: usize,
    /// [B, Nm]: the memory of each slot; None: padding (zeros, not valid)
    pub slots: Vec<Option<StoredMemory>>,
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
#[derive(Debug)]
pub struct DecoderOutput {
    /// [B, 4, L, L] on the execution device: read with [`Stages::mask_plane`]
    pub masks: DynValue,
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
    /// Tokens of one stored memory: H·W for SAM 2, the spatial perceiver's
    /// latents for EdgeTAM (`memory_tokens` in model.json).
    pub mt: usize,
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
            mt: m.memory_tokens() as usize,
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

impl std::ops::AddAssign for StageTimes {
    fn add_assign(&mut self, t: StageTimes) {
        self.image_encoder += t.image_encoder;
        self.memory_attention += t.memory_attention;
        self.mask_decoder += t.mask_decoder;
        self.memory_encoder += t.memory_encoder;
        self.runs += t.runs;
    }
}

impl StageTimes {
    /// Time in all four graphs.
    pub fn total(&self) -> std::time::Duration {
        self.image_encoder + self.memory_attention + self.mask_decoder + self.memory_encoder
    }
}

/// Where the tensors between graphs live.
struct Device {
    /// The execution device's memory (the host's with the CPU provider).
    info: MemoryInfo<'static>,
    /// Host memory, for what the host reads.
    host: MemoryInfo<'static>,
    allocator: Allocator,
    /// "cpu" or "cuda:N".
    name: String,
}

impl Device {
    fn host_only() -> Result<Self, ort::Error> {
        let host = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )?;
        Ok(Device {
            info: host.clone(),
            host,
            allocator: Allocator::default(),
            name: "cpu".into(),
        })
    }

    /// The CUDA device `device_id`, with an allocator of `session`'s.
    fn cuda(session: &Session, device_id: i32) -> Result<Self, ort::Error> {
        let info = MemoryInfo::new(
            AllocationDevice::CUDA,
            device_id,
            AllocatorType::Device,
            MemoryType::Default,
        )?;
        let allocator = Allocator::new(session, info.clone())?;
        Ok(Device {
            info,
            allocator,
            name: format!("cuda:{device_id}"),
            ..Device::host_only()?
        })
    }
}

/// Where an output goes.
enum Out<'a> {
    /// A new tensor on the execution device.
    Device,
    /// A new tensor in host memory.
    Host,
    /// A region of an existing device tensor.
    Into(TensorRefMut<'a, f32>),
}

/// A session with its I/O binding; inputs and outputs are bound anew for
/// each run (a kept output binding would make ONNX Runtime write the next
/// run's result into the buffer a previous result still lives in).
struct Graph {
    name: &'static str,
    session: Session,
    binding: IoBinding,
}

impl Graph {
    fn new(name: &'static str, session: Session) -> Result<Self, ModelError> {
        let binding = session
            .create_binding()
            .map_err(|e| ModelError::GraphLoad {
                graph: name,
                path: Default::default(),
                message: e.to_string(),
            })?;
        Ok(Graph {
            name,
            session,
            binding,
        })
    }

    fn input<T: ValueTypeMarker + ?Sized>(
        &mut self,
        name: &str,
        value: &Value<T>,
    ) -> Result<(), StageError> {
        self.binding
            .bind_input(name, value)
            .map_err(stage_err(self.name))
    }

    fn output(&mut self, name: &str, out: Out<'_>, device: &Device) -> Result<(), StageError> {
        match out {
            Out::Device => self.binding.bind_output_to_device(name, &device.info),
            Out::Host => self.binding.bind_output_to_device(name, &device.host),
            Out::Into(view) => self.binding.bind_output(name, view),
        }
        .map_err(stage_err(self.name))
    }

    /// Runs with what was bound since the last run; returns the outputs by name.
    fn run(&mut self, names: &[&str]) -> Result<Vec<DynValue>, StageError> {
        // this thread works in the parallel sections too (engine::cpu)
        let flush = FlushSubnormals::new();
        let out = self.session.run_binding(&self.binding);
        drop(flush);
        let mut out = out.map_err(stage_err(self.name))?;
        let values = names
            .iter()
            .map(|n| {
                out.remove(n).ok_or_else(|| StageError {
                    graph: self.name,
                    message: format!("no output {n}"),
                })
            })
            .collect();
        drop(out);
        self.binding.clear();
        values
    }
}

/// A host tensor of `dims` owning `data` (bound without a copy on the CPU;
/// ONNX Runtime copies it to the device otherwise).
fn host<T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static>(
    graph: &'static str,
    dims: &[usize],
    data: Vec<T>,
) -> Result<Tensor<T>, StageError> {
    debug_assert_eq!(
        dims.iter().product::<usize>(),
        data.len(),
        "{graph} input size"
    );
    Tensor::from_array((dims.to_vec(), data)).map_err(stage_err(graph))
}

/// Host floats of a tensor in host memory.
fn read(graph: &'static str, value: &DynValue) -> Result<Vec<f32>, StageError> {
    let (_, data) = value
        .try_extract_tensor::<f32>()
        .map_err(stage_err(graph))?;
    Ok(data.to_vec())
}

/// The region of `base` (f32, on its device) of shape `dims` starting at
/// element `offset`.
fn region<'a>(
    graph: &'static str,
    base: &'a mut Tensor<f32>,
    offset: usize,
    dims: &[usize],
) -> Result<TensorRefMut<'a, f32>, StageError> {
    let len: usize = dims.iter().product();
    assert!(
        offset + len <= base.shape().num_elements(),
        "{graph}: region {offset}+{len} outside its tensor"
    );
    let info = base.memory_info().to_owned();
    // Device memory is not dereferenced here: only the address moves.
    let ptr = base
        .data_ptr_mut()
        .cast::<u8>()
        .wrapping_add(offset * std::mem::size_of::<f32>())
        .cast();
    // SAFETY: `ptr` lies inside `base`'s buffer (checked above), on the
    // device `info` names, and the view borrows `base` mutably for its life.
    unsafe {
        TensorRefMut::from_raw(
            info,
            ptr,
            ort::value::Shape::new(dims.iter().map(|d| *d as i64)),
        )
    }
    .map_err(stage_err(graph))
}

/// Runs graph `$graph` (a [`Graph`] field) adding its time to
/// `self.times.$slot`; `$main`: counted in `runs`.
macro_rules! timed {
    ($self:ident, $slot:ident, $main:expr, $body:expr) => {{
        let start = std::time::Instant::now();
        let out = $body;
        $self.times.$slot += start.elapsed();
        if $main {
            $self.times.runs += 1;
        }
        out
    }};
}

/// The loaded graphs of one model, and the helper graphs that keep their
/// tensors on the execution device.
pub struct Stages {
    pub dims: Dims,
    device: Device,
    image_encoder: Graph,
    /// The model's image encoder for frames with prompts, if it has one
    /// ([`manifest::PROMPT_IMAGE_ENCODER`]).
    prompt_image_encoder: Option<Graph>,
    memory_attention: Graph,
    mask_decoder: Graph,
    memory_encoder: Graph,
    to_bf16: Graph,
    slot_f32: Graph,
    mask_plane: Graph,
    add_bias: Graph,
    /// bf16 zeros [1, Mt, Cm]: what a padding slot of the memory holds.
    zero_memory: StoredMemory,
    /// Device tensors kept for reuse (memory-attention inputs and outputs).
    pool: Vec<Tensor<f32>>,
    placements: Vec<(&'static str, Placement)>,
    times: StageTimes,
}

impl Stages {
    /// Loads the four graphs (checked against the contract) and the helper
    /// graphs, on `options`' provider.
    pub fn load(
        model: &ModelDir,
        environment: &ort::environment::Environment,
        options: &SessionOptions,
    ) -> Result<Self, ModelError> {
        let dims = Dims::of(model.manifest());
        let mut placements = Vec::new();
        let fallbacks_before = model.fallbacks().len();
        let mut main = |graph: &'static str, options: &SessionOptions| {
            let (session, placement) = model.load_placed(environment, graph, options)?;
            placements.push((graph, placement));
            Graph::new(graph, session)
        };
        let image_encoder = main(manifest::IMAGE_ENCODER, options)?;
        // The image encoder's provider decides where tensors live: with a CPU
        // fallback every graph (helpers included) runs on the CPU.
        let on_gpu = match options.provider {
            ExecutionProvider::Cpu => None,
            ExecutionProvider::Cuda { device_id } | ExecutionProvider::TensorRt { device_id } => {
                (model.fallbacks().len() == fallbacks_before).then_some(device_id)
            }
        };
        let options = &match on_gpu {
            Some(_) => options.clone(),
            None => SessionOptions {
                provider: ExecutionProvider::Cpu,
                ..options.clone()
            },
        };
        let memory_attention = main(manifest::MEMORY_ATTENTION, options)?;
        let mask_decoder = main(manifest::MASK_DECODER, options)?;
        let memory_encoder = main(manifest::MEMORY_ENCODER, options)?;
        let prompt_image_encoder = if model
            .manifest()
            .graphs
            .contains_key(manifest::PROMPT_IMAGE_ENCODER)
        {
            Some(main(manifest::PROMPT_IMAGE_ENCODER, options)?)
        } else {
            None
        };
        let device_err = |e: ort::Error| ModelError::GraphLoad {
            graph: manifest::IMAGE_ENCODER,
            path: model.graph_path(manifest::IMAGE_ENCODER),
            message: format!("cannot allocate on the execution device: {e}"),
        };
        let device = match on_gpu {
            Some(id) => Device::cuda(&image_encoder.session, id).map_err(device_err)?,
            None => Device::host_only().map_err(device_err)?,
        };
        // Helper graphs: not part of the model, always there. TensorRT would
        // build an engine for each; they run on CUDA.
        let helper_options = SessionOptions {
            provider: match options.provider {
                ExecutionProvider::TensorRt { device_id } => ExecutionProvider::Cuda { device_id },
                other => other,
            },
            ..options.clone()
        };
        let no_fallbacks = std::sync::Mutex::new(Vec::new());
        let mut helper = |name: &'static str, bytes: Vec<u8>| {
            let (session, placement) = load_session(
                environment,
                name,
                Source::Memory(&bytes),
                &helper_options,
                &no_fallbacks,
            )?;
            placements.push((name, placement));
            Graph::new(name, session)
        };
        let to_bf16 = helper(graphs::TO_BF16, graphs::to_bf16())?;
        let slot_f32 = helper(graphs::SLOT_F32, graphs::slot_f32())?;
        let mask_plane = helper(graphs::MASK_PLANE, graphs::mask_plane())?;
        let add_bias = helper(graphs::ADD_CHANNEL_BIAS, graphs::add_channel_bias())?;
        if let Some(reason) = lock(&no_fallbacks).first() {
            return Err(ModelError::Provider {
                provider: options.provider.name(),
                graph: graphs::TO_BF16,
                reason: reason.clone(),
            });
        }
        let mut stages = Stages {
            dims,
            device,
            image_encoder,
            prompt_image_encoder,
            memory_attention,
            mask_decoder,
            memory_encoder,
            to_bf16,
            slot_f32,
            mask_plane,
            add_bias,
            zero_memory: StoredMemory {
                batch: Arc::new(
                    Tensor::<f32>::from_array(([1usize], vec![0.0]))
                        .unwrap()
                        .into_dyn(),
                ),
                index: 0,
                bytes: 0,
            },
            pool: Vec::new(),
            placements,
            times: StageTimes::default(),
        };
        let mt_cm = dims.mt * dims.cm;
        stages.zero_memory = stages
            .store_bf16(
                host(graphs::TO_BF16, &[1, dims.mt, dims.cm], vec![0f32; mt_cm])
                    .map_err(|e| ModelError::GraphLoad {
                        graph: graphs::TO_BF16,
                        path: Default::default(),
                        message: e.to_string(),
                    })?
                    .into_dyn(),
            )
            .map_err(|e| ModelError::GraphLoad {
                graph: graphs::TO_BF16,
                path: Default::default(),
                message: e.to_string(),
            })?
            .remove(0);
        stages.times = StageTimes::default();
        Ok(stages)
    }

    /// Where the tensors between graphs live: "cpu" or "cuda:N".
    pub fn device(&self) -> &str {
        &self.device.name
    }

    /// Where ONNX Runtime placed each graph's nodes (model graphs, then helpers).
    pub fn placements(&self) -> &[(&'static str, Placement)] {
        &self.placements
    }

    /// Returns the graph times gathered so far and starts again from zero.
    pub fn take_times(&mut self) -> StageTimes {
        std::mem::take(&mut self.times)
    }

    /// A device tensor of `dims` (uninitialised), reused when one is pooled.
    fn pooled(&mut self, graph: &'static str, dims: &[usize]) -> Result<Tensor<f32>, StageError> {
        let want: Vec<i64> = dims.iter().map(|d| *d as i64).collect();
        if let Some(i) = self.pool.iter().position(|t| **t.shape() == *want) {
            return Ok(self.pool.swap_remove(i));
        }
        Tensor::<f32>::new(&self.device.allocator, dims.to_vec()).map_err(stage_err(graph))
    }

    /// Gives a tensor from [`Stages::pooled`] back (a few are kept).
    pub fn recycle(&mut self, tensor: Tensor<f32>) {
        if self.pool.len() < 4 {
            self.pool.push(tensor);
        }
    }

    /// Whether the model has an image encoder of its own for frames with
    /// prompts ([`Stages::encode_image_for_prompts`]).
    pub fn has_prompt_image_encoder(&self) -> bool {
        self.prompt_image_encoder.is_some()
    }

    /// `image`: [1, 3, S, S] normalised RGB.
    pub fn encode_image(&mut self, image: Vec<f32>) -> Result<ImageFeatures, StageError> {
        self.encode_image_with(image, false)
    }

    /// [`Stages::encode_image`] with the model's image encoder for frames with
    /// prompts, where it has one (else the same).
    pub fn encode_image_for_prompts(
        &mut self,
        image: Vec<f32>,
    ) -> Result<ImageFeatures, StageError> {
        self.encode_image_with(image, true)
    }

    fn encode_image_with(
        &mut self,
        image: Vec<f32>,
        for_prompts: bool,
    ) -> Result<ImageFeatures, StageError> {
        let d = self.dims;
        let (name, g) = match (for_prompts, &mut self.prompt_image_encoder) {
            (true, Some(g)) => (manifest::PROMPT_IMAGE_ENCODER, g),
            _ => (manifest::IMAGE_ENCODER, &mut self.image_encoder),
        };
        let input = host(name, &[1, 3, d.s, d.s], image)?;
        g.input("image", &input)?;
        for name in OUT_IMAGE {
            g.output(name, Out::Device, &self.device)?;
        }
        let mut out = timed!(self, image_encoder, true, g.run(&OUT_IMAGE))?;
        let mut next = || out.remove(0);
        Ok(ImageFeatures {
            high_res_0: next(),
            high_res_1: next(),
            vision_feat: next(),
            vision_pos: next(),
        })
    }

    /// `vision_feat + no_mem_embed` [1, C, H, W]: the features of a frame
    /// conditioned on no memory (`no_mem_embed`: C values).
    pub fn no_memory_features(
        &mut self,
        features: &ImageFeatures,
        no_mem_embed: &[f32],
    ) -> Result<DynValue, StageError> {
        const G: &str = graphs::ADD_CHANNEL_BIAS;
        let bias = host(G, &[1, self.dims.c, 1, 1], no_mem_embed.to_vec())?;
        let g = &mut self.add_bias;
        g.input("x", &features.vision_feat)?;
        g.input("bias", &bias)?;
        g.output("y", Out::Device, &self.device)?;
        let mut out = timed!(self, memory_attention, false, self.add_bias.run(&["y"]))?;
        Ok(out.remove(0))
    }

    /// Copies stored memory `m` (or zeros) into `into`, widened to f32.
    fn fill_slot(
        &mut self,
        m: Option<&StoredMemory>,
        into: TensorRefMut<'_, f32>,
    ) -> Result<(), StageError> {
        const G: &str = graphs::SLOT_F32;
        let m = m.unwrap_or(&self.zero_memory).clone();
        let index = host(G, &[1], vec![m.index as i64])?;
        let g = &mut self.slot_f32;
        g.input("data", &*m.batch)?;
        g.input("index", &index)?;
        g.output("y", Out::Into(into), &self.device)?;
        timed!(self, memory_attention, false, self.slot_f32.run(&["y"]))?;
        Ok(())
    }

    /// Memory attention of each object of `objects` (one [`MemoryBatch`] of
    /// one object each); returns `pix_feat_with_mem` [N, C, H, W] on the
    /// device, from the pool: give it back with [`Stages::recycle`].
    pub fn attend(
        &mut self,
        features: &ImageFeatures,
        objects: &[MemoryBatch],
    ) -> Result<Tensor<f32>, StageError> {
        const G: &str = manifest::MEMORY_ATTENTION;
        let d = self.dims;
        let per_object = d.c * d.hw();
        let mut out = self.pooled(G, &[objects.len(), d.c, d.h, d.h])?;
        for (k, m) in objects.iter().enumerate() {
            assert_eq!(m.batch, 1, "memory attention runs one object at a time");
            let slot = d.mt * d.cm;
            let mut memory = self.pooled(G, &[1, m.nm, d.mt, d.cm])?;
            for (s, stored) in m.slots.iter().enumerate() {
                let into = region(G, &mut memory, s * slot, &[1, d.mt, d.cm])?;
                self.fill_slot(stored.as_ref(), into)?;
            }
            let small = (
                host(G, &[1, m.nm], m.tpos_index.clone())?,
                host(G, &[1, m.nm], m.memory_valid.clone())?,
                host(G, &[1, m.p, d.c], m.obj_ptrs.clone())?,
                host(G, &[1, m.p], m.obj_ptr_tpos.clone())?,
                host(G, &[1, m.p], m.obj_ptr_valid.clone())?,
            );
            let g = &mut self.memory_attention;
            g.input("vision_feat", &features.vision_feat)?;
            g.input("vision_pos", &features.vision_pos)?;
            g.input("memory", &memory)?;
            g.input("memory_tpos_index", &small.0)?;
            g.input("memory_valid", &small.1)?;
            g.input("obj_ptrs", &small.2)?;
            g.input("obj_ptr_tpos", &small.3)?;
            g.input("obj_ptr_valid", &small.4)?;
            let into = region(G, &mut out, k * per_object, &[1, d.c, d.h, d.h])?;
            g.output("pix_feat_with_mem", Out::Into(into), &self.device)?;
            let run = timed!(
                self,
                memory_attention,
                true,
                self.memory_attention.run(&["pix_feat_with_mem"])
            );
            self.recycle(memory);
            run?;
        }
        Ok(out)
    }

    /// `image_embed`: [B, C, H, W] on the device.
    pub fn decode<T: ValueTypeMarker + ?Sized>(
        &mut self,
        features: &ImageFeatures,
        image_embed: &Value<T>,
        p: PromptBatch,
    ) -> Result<DecoderOutput, StageError> {
        const G: &str = manifest::MASK_DECODER;
        let d = self.dims;
        let b = p.batch;
        let coords = host(G, &[b, p.n, 2], p.coords)?;
        let labels = host(G, &[b, p.n], p.labels)?;
        let mask_input = host(G, &[b, 1, d.l, d.l], p.mask_input)?;
        let has_mask = host(G, &[b], p.has_mask_input)?;
        let g = &mut self.mask_decoder;
        g.input("image_embed", image_embed)?;
        g.input("high_res_feat_0", &features.high_res_0)?;
        g.input("high_res_feat_1", &features.high_res_1)?;
        g.input("point_coords", &coords)?;
        g.input("point_labels", &labels)?;
        g.input("mask_input", &mask_input)?;
        g.input("has_mask_input", &has_mask)?;
        g.output("masks", Out::Device, &self.device)?;
        for name in ["iou_pred", "obj_ptr", "object_score_logits"] {
            g.output(name, Out::Host, &self.device)?;
        }
        let out = timed!(
            self,
            mask_decoder,
            true,
            self.mask_decoder
                .run(&["masks", "iou_pred", "obj_ptr", "object_score_logits"])
        )?;
        let [masks, iou, obj_ptr, score] = <[DynValue; 4]>::try_from(out).expect("4 outputs");
        Ok(DecoderOutput {
            masks,
            iou: read(G, &iou)?,
            obj_ptr: read(G, &obj_ptr)?,
            object_score: read(G, &score)?,
        })
    }

    /// Mask `t` of object `b` of a decoder output: L×L logits, read to the host.
    pub fn mask_plane(
        &mut self,
        dec: &DecoderOutput,
        b: usize,
        t: usize,
    ) -> Result<Vec<f32>, StageError> {
        const G: &str = graphs::MASK_PLANE;
        let bi = host(G, &[1], vec![b as i64])?;
        let ti = host(G, &[1], vec![t as i64])?;
        let g = &mut self.mask_plane;
        g.input("data", &dec.masks)?;
        g.input("b", &bi)?;
        g.input("t", &ti)?;
        g.output("y", Out::Host, &self.device)?;
        let out = timed!(self, mask_decoder, false, self.mask_plane.run(&["y"]))?;
        read(G, &out[0])
    }

    /// bf16 copies of `x` [B, HW, Cm] (on the device), one per row.
    fn store_bf16(&mut self, x: DynValue) -> Result<Vec<StoredMemory>, StageError> {
        let d = self.dims;
        let g = &mut self.to_bf16;
        g.input("x", &x)?;
        g.output("y", Out::Device, &self.device)?;
        let out = timed!(self, memory_encoder, false, self.to_bf16.run(&["y"]))?;
        let rows = x.shape().first().copied().unwrap_or(0) as usize;
        let batch = Arc::new(out.into_iter().next().expect("one output"));
        Ok((0..rows)
            .map(|index| StoredMemory {
                batch: Arc::clone(&batch),
                index,
                bytes: d.mt * d.cm * 2,
            })
            .collect())
    }

    /// The memories of `b` objects (`masks`: [B, 1, L, L]), stored on the device.
    pub fn encode_memory(
        &mut self,
        features: &ImageFeatures,
        masks: Vec<f32>,
        is_mask_from_pts: Vec<f32>,
        object_score: Vec<f32>,
    ) -> Result<Vec<StoredMemory>, StageError> {
        const G: &str = manifest::MEMORY_ENCODER;
        let d = self.dims;
        let b = is_mask_from_pts.len();
        let masks = host(G, &[b, 1, d.l, d.l], masks)?;
        let flags = host(G, &[b], is_mask_from_pts)?;
        let scores = host(G, &[b, 1], object_score)?;
        let g = &mut self.memory_encoder;
        g.input("vision_feat", &features.vision_feat)?;
        g.input("masks", &masks)?;
        g.input("is_mask_from_pts", &flags)?;
        g.input("object_score_logits", &scores)?;
        g.output("maskmem_features", Out::Device, &self.device)?;
        let mut out = timed!(
            self,
            memory_encoder,
            true,
            self.memory_encoder.run(&["maskmem_features"])
        )?;
        self.store_bf16(out.remove(0))
    }
}

const OUT_IMAGE: [&str; 4] = [
    "high_res_feat_0",
    "high_res_feat_1",
    "vision_feat",
    "vision_pos",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ops, runtime};

    const MICRO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/micro");

    fn stages() -> (Arc<runtime::OrtRuntime>, Stages) {
        let rt = runtime::acquire(None)
            .unwrap_or_else(|e| panic!("ONNX Runtime does not load (run scripts/setup.sh): {e}"));
        let model = ModelDir::open(std::path::Path::new(MICRO)).expect("micro model");
        let stages =
            Stages::load(&model, rt.environment(), &SessionOptions::default()).expect("loads");
        (rt, stages)
    }

    fn host_floats(t: &Tensor<f32>) -> Vec<f32> {
        t.try_extract_tensor::<f32>().unwrap().1.to_vec()
    }

    /// The bank's helper graphs: memories are stored as bf16 rounded to
    /// nearest even (as torch's `.to(torch.bfloat16)`, which the engine's own
    /// `ops::f32_to_bf16` matches) and come back exactly, each in its slot;
    /// padding slots hold zeros.
    #[test]
    fn memories_round_to_bf16_and_fill_their_slots() {
        let (_rt, mut st) = stages();
        assert_eq!(st.device(), "cpu");
        let d = st.dims;
        let n = d.mt * d.cm;
        let mut x: Vec<f32> = (0..2 * n)
            .map(|i| ((i as f32 * 0.7311).sin() * 1000.0) / (1.0 + (i % 13) as f32))
            .collect();
        // ties: 1 + 1/256 rounds down to 1 (even), 1 + 3/256 up to 1 + 4/256
        x[..6].copy_from_slice(&[1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -2.5, 0.0, 1e-40, 3e38]);
        let stored = st
            .store_bf16(
                host("test", &[2, d.mt, d.cm], x.clone())
                    .unwrap()
                    .into_dyn(),
            )
            .unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[1].bytes(), n * 2);
        let mut slots = st.pooled("test", &[1, 3, d.mt, d.cm]).unwrap();
        for (s, m) in [Some(&stored[1]), None, Some(&stored[0])]
            .into_iter()
            .enumerate()
        {
            let into = region("test", &mut slots, s * n, &[1, d.mt, d.cm]).unwrap();
            st.fill_slot(m, into).unwrap();
        }
        let got = host_floats(&slots);
        let want = |v: f32| ops::bf16_to_f32(ops::f32_to_bf16(v));
        assert_eq!(
            got[0..n],
            x[n..].iter().map(|v| want(*v)).collect::<Vec<_>>()[..]
        );
        assert!(got[n..2 * n].iter().all(|v| *v == 0.0));
        assert_eq!(
            got[2 * n..],
            x[..n].iter().map(|v| want(*v)).collect::<Vec<_>>()[..]
        );
        assert_eq!(got[2 * n..2 * n + 2], [1.0, 1.0 + 4.0 / 256.0]);
    }

    /// The host reads exactly the chosen mask of a decoder output.
    #[test]
    fn mask_plane_reads_one_mask() {
        let (_rt, mut st) = stages();
        let (b, t, ll) = (3, 4, 5 * 5);
        let data: Vec<f32> = (0..b * t * ll).map(|i| i as f32).collect();
        let dec = DecoderOutput {
            masks: host("test", &[b, t, 5, 5], data).unwrap().into_dyn(),
            iou: Vec::new(),
            obj_ptr: Vec::new(),
            object_score: Vec::new(),
        };
        let plane = st.mask_plane(&dec, 2, 1).unwrap();
        let first = ((2 * t + 1) * ll) as f32;
        assert_eq!(plane, (0..ll).map(|i| first + i as f32).collect::<Vec<_>>());
    }

    /// Object features `vision_feat + no_mem_embed` per channel.
    #[test]
    fn channel_bias_is_added_per_channel() {
        let (_rt, mut st) = stages();
        let d = st.dims;
        let x: Vec<f32> = (0..d.c * d.hw()).map(|i| i as f32 * 0.5).collect();
        let bias: Vec<f32> = (0..d.c).map(|c| c as f32 * 100.0).collect();
        let features = ImageFeatures {
            high_res_0: host("t", &[1], vec![0f32]).unwrap().into_dyn(),
            high_res_1: host("t", &[1], vec![0f32]).unwrap().into_dyn(),
            vision_feat: host("t", &[1, d.c, d.h, d.h], x.clone())
                .unwrap()
                .into_dyn(),
            vision_pos: host("t", &[1], vec![0f32]).unwrap().into_dyn(),
        };
        let y = st.no_memory_features(&features, &bias).unwrap();
        let y = y.try_extract_tensor::<f32>().unwrap().1.to_vec();
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, x[i] + bias[i / d.hw()], "element {i}");
        }
    }
}
