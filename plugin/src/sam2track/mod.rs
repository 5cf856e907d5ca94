// SPDX-License-Identifier: MPL-2.0

//! The `sam2track` element.
//!
//! * [`imp`]: GStreamer glue (properties, caps, events, signals, state);
//! * [`color`]: YUV matrices and NV12/I420 to RGB;
//! * `detections`: box prompts from upstream detections, track lifecycle;
//! * `events`: prompt event structures (re-exported by [`prompt`]);
//! * `ids`: object ids in use and the ids of new objects;
//! * `inbox`: every prompt waiting for a frame;
//! * `infer`: one frame through the engine;
//! * `navigation`: mouse clicks as prompts;
//! * `output`: the metadata, overlay and messages of each frame;
//! * `settings`: the properties and what they configure;
//! * `signals`: the action signals;
//! * `startup`: what the element loads when it starts;
//! * [`style_props`]: the drawing properties `sam2overlay` shares;
//! * [`prompt`]: prompt grammar, prompt files and event structures;
//! * [`meta`]: the metadata put on buffers and helpers to read it;
//! * [`overlay`]: drawing masks into frames;
//! * [`draw`]: drawing objects into a GStreamer buffer (shared with
//!   `sam2overlay`);
//! * [`labels`]: object id / score labels as an overlay composition;
//! * `worker`: the inference thread that owns the engine.

use gst::glib;
use gst::prelude::*;

pub mod color;
mod detections;
pub mod draw;
mod events;
mod ids;
mod imp;
mod inbox;
mod infer;
pub mod labels;
pub mod meta;
mod navigation;
mod output;
pub mod overlay;
pub mod prompt;
mod settings;
mod signals;
mod startup;
pub mod style_props;
mod worker;

glib::wrapper! {
    /// SAM 2 video object segmentation / tracking filter.
    pub struct Sam2Track(ObjectSubclass<imp::Sam2Track>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// What the element outputs (`output` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstSam2TrackOutput")]
pub enum Output {
    #[enum_value(name = "Metadata only (buffers pass unchanged)", nick = "meta")]
    Meta = 0,
    #[enum_value(name = "Overlay drawn into the frames only", nick = "overlay")]
    Overlay = 1,
    #[default]
    #[enum_value(name = "Metadata and overlay", nick = "both")]
    Both = 2,
}

impl Output {
    pub fn meta(self) -> bool {
        self != Output::Overlay
    }
    pub fn overlay(self) -> bool {
        self != Output::Meta
    }
}

/// Background treatment of the overlay (`background` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstSam2TrackBackground")]
pub enum BackgroundMode {
    #[default]
    #[enum_value(name = "Leave the background as it is", nick = "none")]
    None = 0,
    #[enum_value(name = "Blur the background", nick = "blur")]
    Blur = 1,
    #[enum_value(name = "Replace the background by background-color", nick = "solid")]
    Solid = 2,
    #[enum_value(
        name = "Make the background transparent (alpha 0; RGBA/BGRA only)",
        nick = "transparent"
    )]
    Transparent = 3,
}

/// Execution provider (`provider` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstSam2TrackProvider")]
pub enum Provider {
    #[default]
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 0,
    #[enum_value(
        name = "CUDA (needs the cuda feature and onnxruntime-gpu)",
        nick = "cuda"
    )]
    Cuda = 1,
    #[enum_value(
        name = "TensorRT (needs the tensorrt feature and onnxruntime-gpu with TensorRT)",
        nick = "tensorrt"
    )]
    TensorRt = 2,
}

/// How the CUDA provider picks cuDNN convolution algorithms
/// (`cudnn-conv-search` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstSam2TrackConvSearch")]
pub enum ConvSearch {
    #[default]
    #[enum_value(
        name = "Benchmark every algorithm at the first frame (ONNX Runtime's default)",
        nick = "exhaustive"
    )]
    Exhaustive = 0,
    #[enum_value(name = "cuDNN's heuristics (a faster first frame)", nick = "heuristic")]
    Heuristic = 1,
    #[enum_value(name = "cuDNN's default algorithm", nick = "default")]
    Default = 2,
}

/// When the streaming thread waits for inference (`mode` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstSam2TrackMode")]
pub enum Mode {
    #[default]
    #[enum_value(name = "async when upstream is live, sync otherwise", nick = "auto")]
    Auto = 0,
    #[enum_value(
        name = "Every frame is inferred; the stream waits for it",
        nick = "sync"
    )]
    Sync = 1,
    #[enum_value(
        name = "Never wait: frames carry the latest masks, marked stale",
        nick = "async"
    )]
    Async = 2,
}

/// What a flush (seek) does to the tracker (`on-flush` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstSam2TrackOnFlush")]
pub enum OnFlush {
    #[default]
    #[enum_value(name = "Forget all objects and memory", nick = "reset")]
    Reset = 0,
    #[enum_value(name = "Keep objects and memory, go on tracking", nick = "keep")]
    Keep = 1,
}

/// Resolution of the masks in the metadata (`mask-resolution` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstSam2TrackMaskResolution")]
pub enum MaskResolution {
    #[default]
    #[enum_value(name = "Frame size", nick = "frame")]
    Frame = 0,
    #[enum_value(name = "SAM 2 low resolution (square, e.g. 256x256)", nick = "low")]
    Low = 1,
    #[enum_value(name = "No mask in the metadata", nick = "none")]
    None = 2,
}

/// Registers the `sam2track` element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::register();
    gst::Element::register(
        Some(plugin),
        "sam2track",
        gst::Rank::NONE,
        Sam2Track::static_type(),
    )
}
