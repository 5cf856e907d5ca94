// SPDX-License-Identifier: MPL-2.0

//! The `sam2track` element.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// SAM 2 video object segmentation / tracking filter.
    pub struct Sam2Track(ObjectSubclass<imp::Sam2Track>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Registers the `sam2track` element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "sam2track",
        gst::Rank::NONE,
        Sam2Track::static_type(),
    )
}
