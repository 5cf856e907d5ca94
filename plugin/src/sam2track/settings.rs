// SPDX-License-Identifier: MPL-2.0

//! The `sam2track` properties: their specs, the [`Settings`] they fill, and
//! what the engine, the worker and the drawing take from them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::engine::model::{self, ExecutionProvider, GpuOptions, SessionOptions};
use crate::engine::tracker::TrackerConfig;

use super::detections::{self, RoiPrompts, Rules};
use super::infer::JobOptions;
use super::overlay::Style;
use super::style_props::{self, StyleSettings};
use super::{ConvSearch, MaskResolution, Mode, OnFlush, Output, Provider};

pub const PROP_MODEL_DIR: &str = "model-dir";
pub const PROP_ORT_LIBRARY: &str = "ort-library";
pub const PROP_PROVIDER: &str = "provider";
pub const PROP_DEVICE_ID: &str = "device-id";
pub const PROP_FALLBACK: &str = "fallback-to-cpu";
pub const PROP_GPU_MEMORY_LIMIT: &str = "gpu-memory-limit";
pub const PROP_CUDNN_CONV_SEARCH: &str = "cudnn-conv-search";
pub const PROP_TF32: &str = "tf32";
pub const PROP_TRT_ENGINE_CACHE: &str = "trt-engine-cache";
pub const PROP_TRT_FP16: &str = "trt-fp16";
pub const PROP_THREADS: &str = "threads";
pub const PROP_MASK_THRESHOLD: &str = "mask-threshold";
pub const PROP_MEMORY_FRAMES: &str = "memory-frames";
pub const PROP_MAX_COND_FRAMES: &str = "max-cond-frames";
pub const PROP_MAX_OBJECTS: &str = "max-objects";
pub const PROP_NON_OVERLAP: &str = "non-overlap";
pub const PROP_OUTPUT: &str = "output";
pub const PROP_MASK_RESOLUTION: &str = "mask-resolution";
pub const PROP_POST_MESSAGES: &str = "post-messages";
pub const PROP_PROMPT: &str = "prompt";
pub const PROP_PROMPT_FILE: &str = "prompt-file";
pub const PROP_SELECTED_OBJECT: &str = "selected-object";
pub const PROP_NAVIGATION: &str = "navigation";
pub const PROP_MODE: &str = "mode";
pub const PROP_ON_FLUSH: &str = "on-flush";
pub const PROP_INFERENCE_DELAY: &str = "inference-delay";
pub const PROP_ROI_PROMPTS: &str = "roi-prompts";
pub const PROP_ROI_TYPES: &str = "roi-types";
pub const PROP_ROI_MATCH_IOU: &str = "roi-match-iou";
pub const PROP_ROI_REFRESH_INTERVAL: &str = "roi-refresh-interval";
pub const PROP_ROI_DRIFT_IOU: &str = "roi-drift-iou";
pub const PROP_REMOVE_AFTER: &str = "remove-after";
pub const PROP_SHARE_MODEL: &str = "share-model";

/// Largest `max-objects` (object labels of the overlay fit in a byte).
const MAX_OBJECTS_LIMIT: u32 = 64;

/// User configuration, set through properties.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The drawing properties (shared with `sam2overlay`).
    pub style: StyleSettings,
    pub model_dir: Option<PathBuf>,
    pub ort_library: Option<PathBuf>,
    pub provider: Provider,
    pub device_id: i32,
    pub fallback_to_cpu: bool,
    /// MiB; 0: no limit.
    pub gpu_memory_limit: u32,
    pub cudnn_conv_search: ConvSearch,
    pub tf32: bool,
    pub trt_engine_cache: Option<PathBuf>,
    pub trt_fp16: bool,
    pub threads: u32,
    pub mask_threshold: f32,
    pub memory_frames: u32,
    pub max_cond_frames: i32,
    pub max_objects: u32,
    pub non_overlap: bool,
    pub output: Output,
    pub mask_resolution: MaskResolution,
    pub post_messages: bool,
    pub prompt: Option<String>,
    pub prompt_file: Option<PathBuf>,
    pub selected_object: u32,
    pub navigation: bool,
    pub mode: Mode,
    pub on_flush: OnFlush,
    pub inference_delay_ms: u32,
    pub roi_prompts: RoiPrompts,
    /// `roi-types` as set (comma-separated; empty: every type but sam2track's).
    pub roi_types: String,
    pub roi_match_iou: f32,
    pub roi_refresh_interval: u32,
    pub roi_drift_iou: f32,
    pub remove_after: u32,
    pub share_model: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model_dir: None,
            ort_library: None,
            provider: Provider::Cpu,
            device_id: 0,
            fallback_to_cpu: true,
            gpu_memory_limit: 0,
            cudnn_conv_search: ConvSearch::Exhaustive,
            tf32: true,
            trt_engine_cache: None,
            trt_fp16: false,
            threads: 0,
            mask_threshold: 0.0,
            memory_frames: 0,
            max_cond_frames: -1,
            max_objects: 16,
            non_overlap: false,
            output: Output::Both,
            style: StyleSettings::default(),
            mask_resolution: MaskResolution::Frame,
            post_messages: false,
            prompt: None,
            prompt_file: None,
            selected_object: 0,
            navigation: true,
            mode: Mode::Auto,
            on_flush: OnFlush::Reset,
            inference_delay_ms: 0,
            roi_prompts: RoiPrompts::None,
            roi_types: String::new(),
            roi_match_iou: 0.3,
            roi_refresh_interval: 30,
            roi_drift_iou: 0.5,
            remove_after: 0,
            share_model: true,
        }
    }
}

impl Settings {
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            intra_threads: (self.threads > 0).then_some(self.threads as usize),
            provider: match self.provider {
                Provider::Cpu => ExecutionProvider::Cpu,
                Provider::Cuda => ExecutionProvider::Cuda {
                    device_id: self.device_id,
                },
                Provider::TensorRt => ExecutionProvider::TensorRt {
                    device_id: self.device_id,
                },
            },
            fallback_to_cpu: self.fallback_to_cpu,
            gpu: GpuOptions {
                memory_limit: (self.gpu_memory_limit > 0)
                    .then(|| self.gpu_memory_limit as usize * MIB),
                conv_search: match self.cudnn_conv_search {
                    ConvSearch::Exhaustive => model::ConvSearch::Exhaustive,
                    ConvSearch::Heuristic => model::ConvSearch::Heuristic,
                    ConvSearch::Default => model::ConvSearch::Default,
                },
                tf32: self.tf32,
                trt_engine_cache: self.trt_engine_cache.clone(),
                trt_fp16: self.trt_fp16,
            },
        }
    }

    pub fn tracker_config(&self) -> TrackerConfig {
        TrackerConfig {
            mask_threshold: self.mask_threshold,
            max_objects: self.max_objects as usize,
            num_maskmem: (self.memory_frames > 0).then_some(self.memory_frames),
            max_cond_frames_in_attn: Some(self.max_cond_frames),
            max_obj_ptrs: None,
            non_overlap_masks: self.non_overlap,
        }
    }

    pub fn style(&self) -> Style {
        self.style.style()
    }

    /// What the detection association runs with.
    pub fn roi_rules(&self) -> Rules {
        Rules {
            mode: self.roi_prompts,
            types: detections::parse_types(&self.roi_types),
            match_iou: self.roi_match_iou,
            refresh_interval: self.roi_refresh_interval,
            drift_iou: self.roi_drift_iou,
            remove_after: self.remove_after,
        }
    }

    pub fn job_options(&self) -> JobOptions {
        JobOptions {
            mask_threshold: self.mask_threshold,
            non_overlap: self.non_overlap,
            delay: Duration::from_millis(u64::from(self.inference_delay_ms)),
        }
    }
}

/// Converts an optional string property value into an optional path; an
/// empty string means "unset".
fn string_from_value(value: &glib::Value) -> Option<String> {
    value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
}

fn path_to_value(path: Option<&Path>) -> glib::Value {
    path.map(|p| p.to_string_lossy().into_owned()).to_value()
}

const MIB: usize = 1 << 20;

/// The property specs, in the order `gst-inspect-1.0` shows them.
pub fn specs() -> Vec<glib::ParamSpec> {
    let d = Settings::default();
    [
        glib::ParamSpecString::builder(PROP_MODEL_DIR)
            .nick("Model directory")
            .blurb(
                "Path to an exported SAM 2 model directory, containing model.json and \
                 the ONNX graphs it references (required)",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder(PROP_ORT_LIBRARY)
            .nick("ONNX Runtime library")
            .blurb(
                "Path to the ONNX Runtime shared library (libonnxruntime.so). When \
                 unset: ORT_DYLIB_PATH, then the folder filled by scripts/setup.sh, \
                 then the system library search path",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default(PROP_PROVIDER, d.provider)
            .nick("Execution provider")
            .blurb("Where the networks run")
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder(PROP_DEVICE_ID)
            .nick("GPU device")
            .blurb("GPU index for the cuda and tensorrt providers")
            .minimum(0)
            .maximum(255)
            .default_value(d.device_id)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder(PROP_FALLBACK)
            .nick("Fall back to CPU")
            .blurb(
                "When the GPU provider cannot be used, run on the CPU (with a warning \
                 on the bus) instead of failing to start",
            )
            .default_value(d.fallback_to_cpu)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder(PROP_GPU_MEMORY_LIMIT)
            .nick("GPU memory limit")
            .blurb("Most GPU memory the CUDA provider's arena takes, in MiB (0: no limit)")
            .maximum(1 << 20)
            .default_value(d.gpu_memory_limit)
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default(PROP_CUDNN_CONV_SEARCH, d.cudnn_conv_search)
            .nick("cuDNN convolution search")
            .blurb("How the CUDA provider picks cuDNN convolution algorithms")
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder(PROP_TF32)
            .nick("TF32")
            .blurb(
                "Let the CUDA provider use TF32 tensor cores for fp32 products (Ampere and \
                 later: faster, ~10-bit mantissa)",
            )
            .default_value(d.tf32)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder(PROP_TRT_ENGINE_CACHE)
            .nick("TensorRT engine cache")
            .blurb(
                "Folder keeping TensorRT engines across starts (unset: every start builds \
                 them again before the first frame)",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder(PROP_TRT_FP16)
            .nick("TensorRT fp16")
            .blurb("Build fp16 TensorRT engines")
            .default_value(d.trt_fp16)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder(PROP_THREADS)
            .nick("Threads")
            .blurb(
                "CPU threads per network (0: one per core; more than the cores is \
                 capped to the number of cores at start)",
            )
            .maximum(256)
            .default_value(d.threads)
            .mutable_ready()
            .build(),
        glib::ParamSpecFloat::builder(PROP_MASK_THRESHOLD)
            .nick("Mask threshold")
            .blurb(
                "Logit above which a pixel belongs to an object (0 as SAM 2; higher: \
                 tighter masks)",
            )
            .minimum(-20.0)
            .maximum(20.0)
            .default_value(d.mask_threshold)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder(PROP_MEMORY_FRAMES)
            .nick("Memory frames")
            .blurb(
                "Frames kept in each object's memory, the prompted frame included \
                 (0: the model's, 7 for SAM 2; fewer is faster and forgets sooner)",
            )
            .maximum(7)
            .default_value(d.memory_frames)
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder(PROP_MAX_COND_FRAMES)
            .nick("Max prompted frames")
            .blurb(
                "Prompted (conditioning) frames attended to per object: -1 all (as \
                 SAM 2), or >= 2 to bound the cost of many corrections",
            )
            .minimum(-1)
            .maximum(1000)
            .default_value(d.max_cond_frames)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder(PROP_MAX_OBJECTS)
            .nick("Max objects")
            .blurb("Most objects tracked at once; prompts for more are refused")
            .minimum(1)
            .maximum(MAX_OBJECTS_LIMIT)
            .default_value(d.max_objects)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder(PROP_NON_OVERLAP)
            .nick("Non-overlapping masks")
            .blurb("Each pixel goes to the highest-scoring object only")
            .default_value(d.non_overlap)
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default(PROP_OUTPUT, d.output)
            .nick("Output")
            .blurb("Metadata, overlay drawn into the frames, or both")
            .mutable_playing()
            .build(),
    ]
    .into_iter()
    .chain(style_props::specs())
    .chain([
        glib::ParamSpecEnum::builder_with_default(PROP_MASK_RESOLUTION, d.mask_resolution)
            .nick("Mask resolution")
            .blurb("Resolution of the GRAY8 masks in the metadata")
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder(PROP_POST_MESSAGES)
            .nick("Post messages")
            .blurb("Post a sam2-frame element message with the objects of every frame")
            .default_value(d.post_messages)
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder(PROP_PROMPT)
            .nick("Prompt")
            .blurb(
                "Prompts for the next frame (the first one when set before PLAYING), \
                 e.g. \"1:point=320,240;2:box=10,10,200,180;1:neg=40,60\"; \
                 numbers are pixels, or percent of the frame with a % suffix",
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder(PROP_PROMPT_FILE)
            .nick("Prompt file")
            .blurb(
                "File of 'FRAME|TIME PROMPTS' lines (e.g. \"0 1:point=10,20\", \
                 \"2.5s 2:box=1,1,90,90\") applied when the stream reaches them",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder(PROP_SELECTED_OBJECT)
            .nick("Selected object")
            .blurb(
                "Object that clicks refine (0: each left click starts a new object, \
                 shift-clicks refine the last one)",
            )
            .default_value(d.selected_object)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder(PROP_NAVIGATION)
            .nick("Navigation")
            .blurb(
                "Take mouse clicks from the video sink as prompts: left click adds, \
                 shift-click excludes, right click removes the object under it",
            )
            .default_value(d.navigation)
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default(PROP_MODE, d.mode)
            .nick("Mode")
            .blurb(
                "sync: every frame is inferred and the stream waits; async: never wait, \
                 frames carry the latest masks marked stale; auto: async for live sources",
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default(PROP_ON_FLUSH, d.on_flush)
            .nick("On flush")
            .blurb("What a flushing seek does to the objects and memory")
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder(PROP_INFERENCE_DELAY)
            .nick("Inference delay")
            .blurb(
                "Testing aid: milliseconds added to every inference, to try live \
                 behaviour with a small model",
            )
            .maximum(60_000)
            .default_value(d.inference_delay_ms)
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default(PROP_ROI_PROMPTS, d.roi_prompts)
            .nick("ROI prompts")
            .blurb(
                "Take box prompts from upstream detections (GstVideoRegionOfInterestMeta): \
                 none; new: a detection matching no tracked object starts one; refresh: \
                 also re-prompt matched objects with the detection's box",
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder(PROP_ROI_TYPES)
            .nick("ROI types")
            .blurb(
                "Comma-separated region-of-interest types taken as detections (e.g. \
                 \"person,car\"; empty: every type but sam2track's own \"sam2\")",
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecFloat::builder(PROP_ROI_MATCH_IOU)
            .nick("ROI match IoU")
            .blurb(
                "IoU from which a detection belongs to a tracked object (against the \
                 detection last matched to it, or its mask's box)",
            )
            .minimum(0.01)
            .maximum(1.0)
            .default_value(d.roi_match_iou)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder(PROP_ROI_REFRESH_INTERVAL)
            .nick("ROI refresh interval")
            .blurb(
                "roi-prompts=refresh: frames between re-prompts of an object with its \
                 matched detection's box (0: only when the mask drifts)",
            )
            .maximum(1_000_000)
            .default_value(d.roi_refresh_interval)
            .mutable_playing()
            .build(),
        glib::ParamSpecFloat::builder(PROP_ROI_DRIFT_IOU)
            .nick("ROI drift IoU")
            .blurb(
                "roi-prompts=refresh: re-prompt at once when the mask's box and the \
                 matched detection's box overlap less than this IoU",
            )
            .minimum(0.0)
            .maximum(1.0)
            .default_value(d.roi_drift_iou)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder(PROP_REMOVE_AFTER)
            .nick("Remove after")
            .blurb(
                "Remove an object judged absent (occluded or empty mask) on this many \
                 consecutive inferred frames with no detection matched to it (0: never); \
                 ids are not reused",
            )
            .maximum(1_000_000)
            .default_value(d.remove_after)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoolean::builder(PROP_SHARE_MODEL)
            .nick("Share model")
            .blurb(
                "Share the loaded networks with the other sam2track elements of the \
                 process that use the same model directory, provider and session \
                 options (one copy of the weights; each element keeps its own objects \
                 and memory; their frames take turns on the networks)",
            )
            .default_value(d.share_model)
            .mutable_ready()
            .build(),
    ])
    .collect()
}

impl Settings {
    /// Sets property `name` (of [`specs`]) from `value`, of its type.
    pub fn set(&mut self, name: &str, value: &glib::Value) {
        if self.style.set(name, value) {
            return;
        }
        match name {
            PROP_MODEL_DIR => self.model_dir = string_from_value(value).map(PathBuf::from),
            PROP_ORT_LIBRARY => self.ort_library = string_from_value(value).map(PathBuf::from),
            PROP_PROVIDER => self.provider = value.get().expect("type checked upstream"),
            PROP_DEVICE_ID => self.device_id = value.get().expect("type checked upstream"),
            PROP_FALLBACK => self.fallback_to_cpu = value.get().expect("type checked upstream"),
            PROP_GPU_MEMORY_LIMIT => {
                self.gpu_memory_limit = value.get().expect("type checked upstream")
            }
            PROP_CUDNN_CONV_SEARCH => {
                self.cudnn_conv_search = value.get().expect("type checked upstream")
            }
            PROP_TF32 => self.tf32 = value.get().expect("type checked upstream"),
            PROP_TRT_ENGINE_CACHE => {
                self.trt_engine_cache = string_from_value(value).map(PathBuf::from)
            }
            PROP_TRT_FP16 => self.trt_fp16 = value.get().expect("type checked upstream"),
            PROP_THREADS => self.threads = value.get().expect("type checked upstream"),
            PROP_MASK_THRESHOLD => {
                self.mask_threshold = value.get().expect("type checked upstream")
            }
            PROP_MEMORY_FRAMES => self.memory_frames = value.get().expect("type checked upstream"),
            PROP_MAX_COND_FRAMES => {
                self.max_cond_frames = value.get().expect("type checked upstream")
            }
            PROP_MAX_OBJECTS => self.max_objects = value.get().expect("type checked upstream"),
            PROP_NON_OVERLAP => self.non_overlap = value.get().expect("type checked upstream"),
            PROP_OUTPUT => self.output = value.get().expect("type checked upstream"),
            PROP_MASK_RESOLUTION => {
                self.mask_resolution = value.get().expect("type checked upstream")
            }
            PROP_POST_MESSAGES => self.post_messages = value.get().expect("type checked upstream"),
            PROP_PROMPT => self.prompt = string_from_value(value),
            PROP_PROMPT_FILE => self.prompt_file = string_from_value(value).map(PathBuf::from),
            PROP_SELECTED_OBJECT => {
                self.selected_object = value.get().expect("type checked upstream")
            }
            PROP_NAVIGATION => self.navigation = value.get().expect("type checked upstream"),
            PROP_MODE => self.mode = value.get().expect("type checked upstream"),
            PROP_ON_FLUSH => self.on_flush = value.get().expect("type checked upstream"),
            PROP_INFERENCE_DELAY => {
                self.inference_delay_ms = value.get().expect("type checked upstream")
            }
            PROP_ROI_PROMPTS => self.roi_prompts = value.get().expect("type checked upstream"),
            PROP_ROI_TYPES => self.roi_types = string_from_value(value).unwrap_or_default(),
            PROP_ROI_MATCH_IOU => self.roi_match_iou = value.get().expect("type checked upstream"),
            PROP_ROI_REFRESH_INTERVAL => {
                self.roi_refresh_interval = value.get().expect("type checked upstream")
            }
            PROP_ROI_DRIFT_IOU => self.roi_drift_iou = value.get().expect("type checked upstream"),
            PROP_REMOVE_AFTER => self.remove_after = value.get().expect("type checked upstream"),
            PROP_SHARE_MODEL => self.share_model = value.get().expect("type checked upstream"),
            // GObject only calls with the properties installed
            other => unreachable!("unknown property {other}"),
        }
    }

    /// The value of property `pspec`.
    pub fn get(&self, pspec: &glib::ParamSpec) -> glib::Value {
        if let Some(value) = self.style.get(pspec.name()) {
            return value;
        }
        match pspec.name() {
            PROP_MODEL_DIR => path_to_value(self.model_dir.as_deref()),
            PROP_ORT_LIBRARY => path_to_value(self.ort_library.as_deref()),
            PROP_PROVIDER => self.provider.to_value(),
            PROP_DEVICE_ID => self.device_id.to_value(),
            PROP_FALLBACK => self.fallback_to_cpu.to_value(),
            PROP_GPU_MEMORY_LIMIT => self.gpu_memory_limit.to_value(),
            PROP_CUDNN_CONV_SEARCH => self.cudnn_conv_search.to_value(),
            PROP_TF32 => self.tf32.to_value(),
            PROP_TRT_ENGINE_CACHE => path_to_value(self.trt_engine_cache.as_deref()),
            PROP_TRT_FP16 => self.trt_fp16.to_value(),
            PROP_THREADS => self.threads.to_value(),
            PROP_MASK_THRESHOLD => self.mask_threshold.to_value(),
            PROP_MEMORY_FRAMES => self.memory_frames.to_value(),
            PROP_MAX_COND_FRAMES => self.max_cond_frames.to_value(),
            PROP_MAX_OBJECTS => self.max_objects.to_value(),
            PROP_NON_OVERLAP => self.non_overlap.to_value(),
            PROP_OUTPUT => self.output.to_value(),
            PROP_MASK_RESOLUTION => self.mask_resolution.to_value(),
            PROP_POST_MESSAGES => self.post_messages.to_value(),
            PROP_PROMPT => self.prompt.to_value(),
            PROP_PROMPT_FILE => path_to_value(self.prompt_file.as_deref()),
            PROP_SELECTED_OBJECT => self.selected_object.to_value(),
            PROP_NAVIGATION => self.navigation.to_value(),
            PROP_MODE => self.mode.to_value(),
            PROP_ON_FLUSH => self.on_flush.to_value(),
            PROP_INFERENCE_DELAY => self.inference_delay_ms.to_value(),
            PROP_ROI_PROMPTS => self.roi_prompts.to_value(),
            PROP_ROI_TYPES => self.roi_types.to_value(),
            PROP_ROI_MATCH_IOU => self.roi_match_iou.to_value(),
            PROP_ROI_REFRESH_INTERVAL => self.roi_refresh_interval.to_value(),
            PROP_ROI_DRIFT_IOU => self.roi_drift_iou.to_value(),
            PROP_REMOVE_AFTER => self.remove_after.to_value(),
            PROP_SHARE_MODEL => self.share_model.to_value(),
            // GObject only calls with the properties installed
            other => unreachable!("unknown property {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_properties_reach_the_session_options() {
        let mut s = Settings::default();
        assert_eq!(s.session_options().gpu, GpuOptions::default());
        s.set(PROP_GPU_MEMORY_LIMIT, &2048u32.to_value());
        s.set(PROP_CUDNN_CONV_SEARCH, &ConvSearch::Heuristic.to_value());
        s.set(PROP_TF32, &false.to_value());
        s.set(PROP_TRT_ENGINE_CACHE, &"/var/cache/sam2".to_value());
        s.set(PROP_TRT_FP16, &true.to_value());
        let gpu = s.session_options().gpu;
        assert_eq!(gpu.memory_limit, Some(2048 << 20));
        assert_eq!(gpu.conv_search, model::ConvSearch::Heuristic);
        assert!(!gpu.tf32 && gpu.trt_fp16);
        assert_eq!(gpu.trt_engine_cache, Some(PathBuf::from("/var/cache/sam2")));
        // unset again
        s.set(PROP_GPU_MEMORY_LIMIT, &0u32.to_value());
        s.set(PROP_TRT_ENGINE_CACHE, &"".to_value());
        let gpu = s.session_options().gpu;
        assert_eq!((gpu.memory_limit, gpu.trt_engine_cache), (None, None));
    }
}
