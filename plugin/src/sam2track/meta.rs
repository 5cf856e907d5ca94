// SPDX-License-Identifier: MPL-2.0

//! The metadata `sam2track` puts on buffers, and helpers to read it back.
//!
//! Per object, on every frame that has objects:
//! * a custom meta [`OBJECT_META`] (`GstCustomMeta`, readable from C with
//!   `gst_buffer_iterate_meta_filtered` + `gst_custom_meta_get_structure`)
//!   whose structure has the fields of [`ObjectInfo`];
//! * a `GstVideoRegionOfInterestMeta` of type [`ROI_TYPE`], id = object id,
//!   with a [`ROI_PARAM`] parameter structure (no mask), when the mask is
//!   not empty.
//!
//! Per frame, one custom meta [`FRAME_META`] with the frame fields and an
//! `objects` array of the same object structures: the easy way for Python
//! (`buffer.get_custom_meta("Sam2FrameMeta")`), which cannot iterate metas.

use gst::glib;
use gst::glib::value::ToSendValue;

/// Name of the per-object custom meta.
pub const OBJECT_META: &str = "Sam2ObjectMeta";
/// Name of the per-frame custom meta.
pub const FRAME_META: &str = "Sam2FrameMeta";
/// Structure name of objects inside the frame meta's `objects` array.
pub const OBJECT_STRUCTURE: &str = "sam2-object";
/// `roi_type` of the region-of-interest metas.
pub const ROI_TYPE: &str = "sam2";
/// Name of the parameter structure on the region-of-interest metas.
pub const ROI_PARAM: &str = "sam2";

/// Registers the custom metas (idempotent; called at plugin load).
pub fn register() {
    for name in [OBJECT_META, FRAME_META] {
        if !gst::meta::CustomMeta::is_registered(name) {
            gst::meta::CustomMeta::register(name, &[]);
        }
    }
}

/// One object on one frame, as the metadata carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    /// `object-id`: the id given with the prompt (or picked for a new object).
    pub id: u32,
    /// `x`, `y`, `width`, `height`: box of the mask in frame pixels
    /// (all 0 when the mask is empty).
    pub bbox: [u32; 4],
    /// `score`: probability that the object is visible (sigmoid of SAM 2's
    /// object score).
    pub score: f32,
    /// `iou`: SAM 2's predicted IoU of the mask.
    pub iou: f32,
    /// `occluded`: SAM 2 judges the object absent on this frame.
    pub occluded: bool,
    /// `stale`: the mask was computed on an earlier frame (live sources,
    /// when inference is slower than the frame rate).
    pub stale: bool,
    /// `frame-number`: the frame the mask was computed on (frames counted
    /// by the element from 0 since it started).
    pub frame_number: u64,
    /// `mask`: GRAY8 (0 or 255), `mask-width`×`mask-height`: the frame size
    /// or SAM 2's low resolution (`mask-resolution` property); absent with
    /// `mask-resolution=none`.
    pub mask: Option<gst::Buffer>,
    pub mask_width: u32,
    pub mask_height: u32,
}

impl ObjectInfo {
    fn fill(&self, b: gst::structure::Builder) -> gst::structure::Builder {
        let mut b = b
            .field("object-id", self.id)
            .field("x", self.bbox[0])
            .field("y", self.bbox[1])
            .field("width", self.bbox[2])
            .field("height", self.bbox[3])
            .field("score", self.score)
            .field("iou", self.iou)
            .field("occluded", self.occluded)
            .field("stale", self.stale)
            .field("frame-number", self.frame_number);
        if let Some(mask) = &self.mask {
            b = b
                .field("mask", mask)
                .field("mask-width", self.mask_width)
                .field("mask-height", self.mask_height);
        }
        b
    }

    /// The structure of this object (named [`OBJECT_STRUCTURE`]).
    pub fn to_structure(&self) -> gst::Structure {
        self.fill(gst::Structure::builder(OBJECT_STRUCTURE)).build()
    }

    fn roi_param(&self) -> gst::Structure {
        gst::Structure::builder(ROI_PARAM)
            .field("object-id", self.id)
            .field("score", self.score)
            .field("iou", self.iou)
            .field("occluded", self.occluded)
            .field("stale", self.stale)
            .field("frame-number", self.frame_number)
            .build()
    }

    /// Reads an object structure (per-object meta or frame meta item).
    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, glib::BoolError> {
        let get_u32 = |f: &str| {
            s.get::<u32>(f)
                .map_err(|e| glib::bool_error!("field {f}: {e}"))
        };
        Ok(ObjectInfo {
            id: get_u32("object-id")?,
            bbox: [
                get_u32("x")?,
                get_u32("y")?,
                get_u32("width")?,
                get_u32("height")?,
            ],
            score: s
                .get("score")
                .map_err(|e| glib::bool_error!("field score: {e}"))?,
            iou: s
                .get("iou")
                .map_err(|e| glib::bool_error!("field iou: {e}"))?,
            occluded: s
                .get("occluded")
                .map_err(|e| glib::bool_error!("field occluded: {e}"))?,
            stale: s
                .get("stale")
                .map_err(|e| glib::bool_error!("field stale: {e}"))?,
            frame_number: s
                .get("frame-number")
                .map_err(|e| glib::bool_error!("field frame-number: {e}"))?,
            mask: s.get::<gst::Buffer>("mask").ok(),
            mask_width: s.get("mask-width").unwrap_or(0),
            mask_height: s.get("mask-height").unwrap_or(0),
        })
    }

    /// The mask as 0/1 values, row by row (`mask_width` wide).
    pub fn mask_bits(&self) -> Option<Vec<u8>> {
        let map = self.mask.as_ref()?.map_readable().ok()?;
        Some(map.iter().map(|v| u8::from(*v != 0)).collect())
    }
}

/// Frame-level fields of the [`FRAME_META`] meta.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameInfo {
    /// `frame-number`: this frame's number (counted by the element from 0).
    pub frame_number: u64,
    /// `computed-frame-number`: the frame the masks were computed on.
    pub computed_frame_number: u64,
    /// `stale`: the masks come from an earlier frame.
    pub stale: bool,
    /// `objects`: array of [`OBJECT_STRUCTURE`] structures.
    pub objects: Vec<ObjectInfo>,
}

/// Adds the per-object, ROI and frame metas for `frame` to `buffer`.
pub fn attach(buffer: &mut gst::BufferRef, frame: &FrameInfo) {
    for object in &frame.objects {
        if let Ok(mut meta) = gst::meta::CustomMeta::add(buffer, OBJECT_META) {
            let s = meta.mut_structure();
            for (name, value) in object.to_structure().iter() {
                s.set_value(name, value.clone());
            }
        }
        let [x, y, w, h] = object.bbox;
        if w > 0 && h > 0 {
            let mut roi = gst_video::VideoRegionOfInterestMeta::add(buffer, ROI_TYPE, (x, y, w, h));
            roi.set_id(object.id as i32);
            roi.add_param(object.roi_param());
        }
    }
    if let Ok(mut meta) = gst::meta::CustomMeta::add(buffer, FRAME_META) {
        let s = meta.mut_structure();
        s.set("frame-number", frame.frame_number);
        s.set("computed-frame-number", frame.computed_frame_number);
        s.set("stale", frame.stale);
        s.set(
            "objects",
            gst::Array::new(
                frame
                    .objects
                    .iter()
                    .map(|o| o.to_structure().to_send_value()),
            ),
        );
    }
}

/// Reads the per-object metas of `buffer`.
pub fn objects(buffer: &gst::BufferRef) -> Vec<ObjectInfo> {
    // gst_meta_register_custom() registers the API type "<name>-api"
    let Some(api) = glib::Type::from_name(format!("{OBJECT_META}-api")) else {
        return Vec::new();
    };
    buffer
        .iter_meta::<gst::Meta>()
        .filter(|m| m.api() == api)
        .filter_map(|m| {
            // SAFETY: metas of this API type are GstCustomMeta (registered above)
            let s = unsafe {
                let s = gst::ffi::gst_custom_meta_get_structure(
                    m.as_ptr() as *mut gst::ffi::GstCustomMeta
                );
                gst::StructureRef::from_glib_borrow(s)
            };
            ObjectInfo::from_structure(s).ok()
        })
        .collect()
}

/// Reads the frame meta of `buffer`.
pub fn frame(buffer: &gst::BufferRef) -> Option<FrameInfo> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, FRAME_META).ok()?;
    let s = meta.structure();
    let objects = s
        .get::<gst::Array>("objects")
        .ok()?
        .iter()
        .filter_map(|v| v.get::<gst::Structure>().ok())
        .filter_map(|o| ObjectInfo::from_structure(&o).ok())
        .collect();
    Some(FrameInfo {
        frame_number: s.get("frame-number").ok()?,
        computed_frame_number: s.get("computed-frame-number").ok()?,
        stale: s.get("stale").ok()?,
        objects,
    })
}
