// SPDX-License-Identifier: MPL-2.0

//! `sam2` GStreamer plugin: the `sam2track` element runs Meta's SAM 2 video
//! segmentation through ONNX Runtime.
//!
//! The crate is split in two layers:
//! - [`engine`]: model loading and inference, free of any GStreamer type so
//!   it can be unit-tested on its own;
//! - `sam2track`: the GStreamer element glue around the engine.

use gst::glib;

pub mod engine;
pub mod sam2track;
mod sync;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    sam2track::register(plugin)
}

gst::plugin_define!(
    sam2,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // GStreamer's short licence identifier for MPL-2.0.
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "Unknown package origin",
    env!("BUILD_REL_DATE")
);
