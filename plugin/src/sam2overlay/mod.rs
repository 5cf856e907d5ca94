// SPDX-License-Identifier: MPL-2.0

//! The `sam2overlay` element: draws the objects of `sam2track`'s metadata
//! into the frames (masks, contours, background, labels), so that analysis
//! and drawing can be apart: after a `tee`, a `videoscale`, on another
//! branch. `sam2track output=overlay` draws through the same code
//! ([`crate::sam2track::draw`]).

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// Draws SAM 2 object metadata into video frames.
    pub struct Sam2Overlay(ObjectSubclass<imp::Sam2Overlay>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Registers the `sam2overlay` element with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::sam2track::meta::register();
    gst::Element::register(
        Some(plugin),
        "sam2overlay",
        gst::Rank::NONE,
        Sam2Overlay::static_type(),
    )
}
