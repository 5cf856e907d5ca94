// SPDX-License-Identifier: MPL-2.0

//! GStreamer glue of the `sam2overlay` element.
//!
//! An in-place video filter: each frame's objects are read from
//! `Sam2FrameMeta` (or, without it, from the `Sam2ObjectMeta`s) and drawn
//! with [`draw::draw_objects`], the code `sam2track output=overlay` uses.
//! Frames without metadata pass unchanged.
//!
//! Labels (`labels=true`) are a `GstVideoOverlayComposition`: attached as a
//! `GstVideoOverlayCompositionMeta` when downstream takes the
//! `meta:GstVideoOverlayComposition` caps feature and lists the meta in its
//! ALLOCATION answer (e.g. glimagesink, which renders it), else blended into
//! the frame by GStreamer. The masks are always drawn into the frame.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::sam2track::draw::{self, MaskError};
use crate::sam2track::labels::{self, Label};
use crate::sam2track::meta::{self, ObjectInfo};
use crate::sam2track::overlay::{self, Style};
use crate::sam2track::style_props::{self, StyleSettings};
use crate::sync::lock;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "sam2overlay",
        gst::DebugColorFlags::empty(),
        Some("Draws SAM 2 object metadata into frames"),
    )
});

const PROP_LABELS: &str = "labels";

const OVERLAY_FEATURE: &glib::GStr = gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION;

/// User configuration, set through properties (the drawing ones are
/// `sam2track`'s, see [`style_props`]).
#[derive(Debug, Clone, Default)]
struct Settings {
    style: StyleSettings,
    labels: bool,
}

/// Stream state: reset in `start()` and on new caps.
#[derive(Debug, Default)]
struct State {
    info: Option<gst_video::VideoInfo>,
    /// The output caps carry `meta:GstVideoOverlayComposition`.
    overlay_caps: bool,
    /// Labels are attached (true) or blended (false): asked downstream at
    /// the first labelled frame after the caps.
    attach: Option<bool>,
    warned_transparent: bool,
    warned_mask: bool,
}

#[derive(Default)]
pub struct Sam2Overlay {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

/// `caps` with the overlay-composition feature added to (`with`) or
/// removed from every structure; ANY features read as system memory.
fn overlay_variant(caps: &gst::CapsRef, with: bool) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    for (s, f) in caps.iter_with_features() {
        let mut f = if f.is_any() {
            gst::CapsFeatures::new([gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY])
        } else {
            f.to_owned()
        };
        if with {
            f.add(OVERLAY_FEATURE);
        } else {
            f.remove(OVERLAY_FEATURE);
            if f.is_empty() {
                f.add(gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY);
            }
        }
        out.merge_structure_full(s.to_owned(), Some(f));
    }
    out
}

#[glib::object_subclass]
impl ObjectSubclass for Sam2Overlay {
    const NAME: &'static str = "GstSam2Overlay";
    type Type = super::Sam2Overlay;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for Sam2Overlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut specs = style_props::specs();
            specs.push(
                glib::ParamSpecBoolean::builder(PROP_LABELS)
                    .nick("Labels")
                    .blurb(
                        "Draw each object's id and score (\"#1 0.97\") above its box, in its \
                         colour; attached as an overlay composition when downstream renders \
                         those, else blended into the frame",
                    )
                    .default_value(false)
                    .mutable_playing()
                    .build(),
            );
            specs
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        gst::debug!(CAT, imp = self, "Setting {} to {:?}", pspec.name(), value);
        if s.style.set(pspec.name(), value) {
            return;
        }
        match pspec.name() {
            PROP_LABELS => {
                let labels = value.get().expect("type checked upstream");
                if std::mem::replace(&mut s.labels, labels) != labels {
                    // the output caps offer the overlay-composition feature
                    // with labels only: negotiate again at the next frame
                    drop(s);
                    self.obj().reconfigure_src();
                }
            }
            other => gst::warning!(CAT, imp = self, "Ignoring unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        if let Some(value) = s.style.get(pspec.name()) {
            return value;
        }
        match pspec.name() {
            PROP_LABELS => s.labels.to_value(),
            other => {
                // GObject only calls us for the properties we installed.
                gst::warning!(CAT, imp = self, "Unknown property {other}");
                pspec.default_value().clone()
            }
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Frames are drawn in place; never passthrough (metadata decides,
        // frame by frame, whether anything is drawn).
        self.obj().set_passthrough(false);
        self.obj().set_in_place(true);
        self.obj().set_qos(true);
    }
}

impl GstObjectImpl for Sam2Overlay {}

impl ElementImpl for Sam2Overlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "SAM 2 overlay",
                "Filter/Editor/Video",
                "Draws the objects of sam2track's metadata (masks, contours, background, \
                 labels) into the frames",
                "sam2track contributors",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = style_props::video_caps();
            // the labels may leave as an overlay composition meta
            let mut src_caps = overlay_variant(&caps, true);
            src_caps.merge(caps.clone());
            style_props::pad_templates(&src_caps, &caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Sam2Overlay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = State::default();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = State::default();
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        // Same caps both ways, except that with labels the output may also
        // carry the overlay-composition feature (first: preferred where
        // downstream takes it; whether it renders the meta is asked at the
        // first labelled frame).
        let plain = overlay_variant(caps, false);
        let other = if direction == gst::PadDirection::Sink && lock(&self.settings).labels {
            let mut with = overlay_variant(caps, true);
            with.merge(plain);
            with
        } else {
            plain
        };
        gst::trace!(CAT, imp = self, "{direction:?} {caps} -> {other}");
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Failed to parse input caps {incaps}"))?;
        let overlay_caps = outcaps
            .features(0)
            .is_some_and(|f| f.contains(OVERLAY_FEATURE));
        gst::debug!(CAT, imp = self, "Configured for {incaps} -> {outcaps}");
        let mut state = lock(&self.state);
        state.info = Some(info);
        state.overlay_caps = overlay_caps;
        state.attach = None;
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let objects = match meta::frame(buf) {
            Some(frame) => frame.objects,
            None => meta::objects(buf),
        };
        if objects.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let settings = lock(&self.settings).clone();
        let Some(info) = lock(&self.state).info.clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let style = settings.style.style();
        self.draw_masks(buf, &info, &objects, &style);
        if settings.labels {
            self.draw_labels(buf, &info, &objects, &style);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl Sam2Overlay {
    /// Draws the objects' masks (those that have one) into `buf`.
    fn draw_masks(
        &self,
        buf: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        objects: &[ObjectInfo],
        style: &Style,
    ) {
        let (w, h) = (info.width() as usize, info.height() as usize);
        let mut masks = Vec::with_capacity(objects.len());
        for o in objects {
            match draw::frame_mask(o, w, h) {
                Ok(mask) => masks.push((o.id, mask)),
                Err(err) => self.warn_mask(&err),
            }
        }
        if masks.is_empty() {
            return;
        }
        let masks: Vec<(u32, &[u8])> = masks.iter().map(|(id, m)| (*id, &m[..])).collect();
        match draw::draw_objects(buf, info, &masks, style) {
            Ok(drawn) => {
                if drawn.transparent_ignored {
                    let mut state = lock(&self.state);
                    style_props::warn_transparent(
                        self.obj().upcast_ref(),
                        &mut state.warned_transparent,
                        info.format(),
                    );
                }
            }
            Err(err) => gst::warning!(CAT, imp = self, "Frame not drawn: {err}"),
        }
    }

    /// An object without a usable mask: skipped, with one bus warning per
    /// run (debug log on every frame).
    fn warn_mask(&self, err: &MaskError) {
        gst::debug!(CAT, imp = self, "Not drawn: {err}");
        if !std::mem::replace(&mut lock(&self.state).warned_mask, true) {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                (
                    "Objects without a usable mask are not drawn (their labels are): {}",
                    err
                )
            );
        }
    }

    /// Labels the objects that have a box: attached or blended.
    fn draw_labels(
        &self,
        buf: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        objects: &[ObjectInfo],
        style: &Style,
    ) {
        let labels: Vec<Label> = objects
            .iter()
            .map(|o| Label {
                id: o.id,
                score: o.score,
                bbox: o.bbox,
                color: overlay::color_of(style, o.id),
            })
            .collect();
        let Some(composition) = labels::composition(&labels, info.width(), info.height()) else {
            return;
        };
        if self.attach() {
            match buf.meta_mut::<gst_video::VideoOverlayCompositionMeta>() {
                Some(mut meta) => {
                    // one composition per buffer: ours go on top of upstream's
                    let mut merged = meta.overlay_owned();
                    {
                        let merged = merged.make_mut();
                        for rect in composition.iter() {
                            merged.add_rectangle(&rect);
                        }
                    }
                    meta.set_overlay(&merged);
                }
                None => {
                    gst_video::VideoOverlayCompositionMeta::add(buf, &composition);
                }
            }
            return;
        }
        let blended = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, info)
            .and_then(|mut frame| composition.blend(&mut frame));
        if let Err(err) = blended {
            gst::warning!(CAT, imp = self, "Labels not blended: {err}");
        }
    }

    /// Whether labels are attached as a meta: the output caps carry the
    /// overlay-composition feature and downstream lists the meta in its
    /// ALLOCATION answer (asked once per caps).
    fn attach(&self) -> bool {
        {
            let state = lock(&self.state);
            if !state.overlay_caps {
                return false;
            }
            if let Some(attach) = state.attach {
                return attach;
            }
        }
        let src = self.obj().static_pad("src").expect("src pad");
        let caps = src.current_caps();
        let mut query = gst::query::Allocation::new(caps.as_ref(), false);
        let attach = src.peer_query(&mut query)
            && query
                .find_allocation_meta::<gst_video::VideoOverlayCompositionMeta>()
                .is_some();
        gst::debug!(
            CAT,
            imp = self,
            "Labels {} (downstream {} the overlay composition meta)",
            if attach { "attached" } else { "blended" },
            if attach { "renders" } else { "does not render" }
        );
        lock(&self.state).attach = Some(attach);
        attach
    }
}
