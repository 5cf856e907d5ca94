// SPDX-License-Identifier: MPL-2.0

//! `sam2` GStreamer plugin: the `sam2track` element runs Meta's SAM 2 video
//! segmentation through ONNX Runtime; `sam2overlay` draws its metadata.
//!
//! The crate is split in two layers:
//! - [`engine`]: model loading and inference, free of any GStreamer type so
//!   it can be unit-tested on its own;
//! - the elements: `sam2track`, the GStreamer glue around the engine, and
//!   `sam2overlay`, which draws `sam2track`'s metadata into frames (with
//!   `sam2track`'s drawing code).

use gst::glib;

pub mod engine;
pub mod sam2overlay;
pub mod sam2track;
mod sync;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    sam2track::register(plugin)?;
    sam2overlay::register(plugin)
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
