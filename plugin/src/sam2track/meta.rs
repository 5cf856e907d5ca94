// SPDX-License-Identifier: MPL-2.0

//! The metadata `sam2track` puts on buffers, and helpers to read it back.
//!
//! Per object, on every frame that has objects:
//! * a custom meta [`OBJECT_META`] (`GstCustomMeta`, readable from C with
//!   `gst_buffer_iterate_meta_filtered` + `gst_custom_meta_get_structure`)
//!   whose structure has the fields of [`ObjectInfo`];
//! * a `GstVideoRegionOfInterestMeta` of type [`ROI_TYPE`], id = object id,
//!   with a [`ROI_PARAM`] parameter structure (no mask), when the mask is
//!   not empty; for an object started by an upstream detection
//!   (`roi-prompts`), `parent_id` = the detection's ROI meta id, and
//!   `label` / `detection-id` fields in both structures.
//!
//! Per frame, one custom meta [`FRAME_META`] with the frame fields and an
//! `objects` array of the same object structures: the easy way for Python
//! (`buffer.get_custom_meta("Sam2FrameMeta")`), which cannot iterate metas.
//!
//! # Downstream elements
//!
//! The custom metas have the tags of `GstVideoRegionOfInterestMeta`
//! (`video`, `orientation`, `size`), so elements treat them alike; their
//! transform function copies them, scales them, or drops them. As read in
//! the GStreamer 1.22 sources and checked by tests/meta_transform.rs:
//!
//! * elements in passthrough (same caps in and out) or working in place, and
//!   buffer copies (`gst_buffer_copy`), keep them unchanged;
//! * `videoconvert`, `videoscale`, `videoconvertscale` (one implementation
//!   since 1.22) call the scale transform for `size`-tagged metas, also when
//!   only the format changes: boxes (`x`, `y`, `width`, `height`, in both
//!   metas) are scaled to the output size, the start rounded down and the end
//!   up; frame-size masks are resized nearest-neighbour, with `mask-width`
//!   and `mask-height`; low-resolution masks (`mask-resolution=low`, over
//!   the whole frame) are kept as they are;
//! * `videocrop` and `videoflip` (not in passthrough) give no transform:
//!   `GstVideoFilter` copies only metas without tags or tagged `video`
//!   alone, and drops ours and the ROI metas alike. Exception: when downstream accepts `GstVideoCropMeta`,
//!   `videocrop` crops in place by adding one, and all metas stay in the
//!   uncropped frame's pixels (subtract the crop meta's `x`, `y`);
//! * the ROI metas are GStreamer's: the scale transform scales their
//!   rectangle but drops their parameters, so after `videoconvert` or
//!   `videoscale` a ROI meta has no [`ROI_PARAM`] structure; its id is still
//!   the object id, to join with [`OBJECT_META`] (`object-id`).
//!
//! Other transforms (the crop / flip matrix that `videocrop` and `videoflip`
//! pass from GStreamer 1.28) are not handled: the metas are dropped rather
//! than left stale. GStreamer 1.20's `videoscale` copies a meta again,
//! unscaled, when its scale transform returns TRUE: ours returns FALSE there.

use std::ptr;

use gst::glib;
use gst::glib::translate::{FromGlib, IntoGlib, ToGlibPtr};
use gst::glib::value::ToSendValue;
use gst::meta::{MetaTag, MetaTransform};
use gst_video::video_meta::{VideoMetaTransformScale, tags as video_tags};

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
///
/// Both are tagged like `GstVideoRegionOfInterestMeta` (`video`,
/// `orientation`, `size`) and share [`transform_meta`], so elements keep,
/// scale or drop them as they do the ROI metas (see the module docs).
pub fn register() {
    for name in [OBJECT_META, FRAME_META] {
        if gst::meta::CustomMeta::is_registered(name) {
            continue;
        }
        let mut tags = [
            video_tags::Video::TAG_NAME.as_ptr(),
            video_tags::Orientation::TAG_NAME.as_ptr(),
            video_tags::Size::TAG_NAME.as_ptr(),
            ptr::null(),
        ];
        // CustomMeta::register_with_transform() does not pass the transform
        // data (the sizes of a scale), hence the FFI call.
        // SAFETY: NULL-terminated array of static strings, copied by GStreamer;
        // transform_meta() has the GstCustomMetaTransformFunction signature.
        unsafe {
            gst::ffi::gst_meta_register_custom(
                name.to_glib_none().0,
                tags.as_mut_ptr(),
                Some(transform_meta),
                ptr::null_mut(),
                None,
            );
        }
    }
}

/// `GstCustomMetaTransformFunction` of both metas.
///
/// * copy (`gst_buffer_copy()`, elements that keep the frame as it is): the
///   meta is copied unchanged;
/// * scale (`GST_VIDEO_META_TRANSFORM_IS_SCALE`, what videoconvert /
///   videoscale / videoconvertscale call for `size`-tagged metas, also when
///   only the format changes): boxes are scaled to the output size, masks of
///   the input frame size are resized nearest-neighbour to the output size,
///   other masks (low resolution) are kept;
/// * anything else (e.g. the crop/flip matrix of GStreamer >= 1.28): not
///   handled, the meta is dropped rather than left stale.
unsafe extern "C" fn transform_meta(
    dest: *mut gst::ffi::GstBuffer,
    meta: *mut gst::ffi::GstCustomMeta,
    _src: *mut gst::ffi::GstBuffer,
    type_: glib::ffi::GQuark,
    data: glib::ffi::gpointer,
    _user_data: glib::ffi::gpointer,
) -> glib::ffi::gboolean {
    // SAFETY: GStreamer passes a writable destination buffer and one of our
    // custom metas (CustomMeta is a transparent wrapper of GstCustomMeta).
    let (dest, meta, type_) = unsafe {
        (
            gst::BufferRef::from_mut_ptr(dest),
            &*(meta as *const gst::meta::CustomMeta),
            glib::Quark::from_glib(type_),
        )
    };
    let structure = meta.structure();
    // GStreamer names the structure of a custom meta after the meta
    let name = structure.name().as_str();
    let done = if type_ == gst::meta::MetaTransformCopy::quark() {
        add_meta(dest, name, structure)
    } else if type_ == VideoMetaTransformScale::quark() && !data.is_null() {
        // SAFETY: the data of a scale transform is a GstVideoMetaTransform,
        // of which VideoMetaTransformScale is a transparent wrapper.
        let scale = unsafe { &*(data as *const VideoMetaTransformScale) };
        let size = |info: &gst_video::VideoInfo| (info.width(), info.height());
        let scaled = Scale::new(size(scale.in_info()), size(scale.out_info()))
            .and_then(|s| s.structure(structure));
        // GStreamer 1.20's videoscale copies a meta a second time, unscaled,
        // when its scale transform returns TRUE (fixed in 1.21.1).
        scaled.is_some_and(|s| add_meta(dest, name, &s)) && gst::version() >= (1, 21, 1, 0)
    } else {
        false
    };
    done.into_glib()
}

/// Adds the custom meta `name` with the fields of `structure` to `buffer`.
fn add_meta(buffer: &mut gst::BufferRef, name: &str, structure: &gst::StructureRef) -> bool {
    let Ok(mut meta) = gst::meta::CustomMeta::add(buffer, name) else {
        return false;
    };
    let s = meta.mut_structure();
    for (name, value) in structure.iter() {
        s.set_value(name, value.clone());
    }
    true
}

/// A change of frame size, applied to the boxes and frame-size masks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    from: (u32, u32),
    to: (u32, u32),
}

impl Scale {
    fn new(from: (u32, u32), to: (u32, u32)) -> Option<Self> {
        (from.0 > 0 && from.1 > 0 && to.0 > 0 && to.1 > 0).then_some(Scale { from, to })
    }

    /// An object or frame meta structure at the new size (`None` when a
    /// mask cannot be read).
    fn structure(self, s: &gst::StructureRef) -> Option<gst::Structure> {
        let mut s = s.to_owned();
        if self.from == self.to {
            return Some(s);
        }
        if let Ok(objects) = s.get::<gst::Array>("objects") {
            let objects = objects
                .iter()
                .map(|v| {
                    let o = v.get::<gst::Structure>().ok()?;
                    Some(self.object(&o)?.to_send_value())
                })
                .collect::<Option<Vec<_>>>()?;
            s.set("objects", gst::Array::new(objects));
            Some(s)
        } else {
            self.object(&s)
        }
    }

    /// An object structure at the new size.
    fn object(self, s: &gst::StructureRef) -> Option<gst::Structure> {
        let mut out = s.to_owned();
        let get = |f: &str| s.get::<u32>(f).ok();
        if let (Some(x), Some(y), Some(w), Some(h)) =
            (get("x"), get("y"), get("width"), get("height"))
            && w > 0
            && h > 0
        {
            let (x, w) = span(x, w, self.from.0, self.to.0);
            let (y, h) = span(y, h, self.from.1, self.to.1);
            out.set("x", x);
            out.set("y", y);
            out.set("width", w);
            out.set("height", h);
        }
        // frame-size masks follow the frame, low-resolution ones (SAM 2's
        // square, over the whole frame) stay valid as they are
        if (get("mask-width"), get("mask-height")) == (Some(self.from.0), Some(self.from.1))
            && let Ok(mask) = s.get::<gst::Buffer>("mask")
        {
            out.set("mask", self.mask(&mask)?);
            out.set("mask-width", self.to.0);
            out.set("mask-height", self.to.1);
        }
        Some(out)
    }

    /// A frame-size mask resized nearest-neighbour (pixel centres).
    fn mask(self, mask: &gst::BufferRef) -> Option<gst::Buffer> {
        let (fw, fh) = (self.from.0 as usize, self.from.1 as usize);
        let (tw, th) = (self.to.0 as usize, self.to.1 as usize);
        let map = mask.map_readable().ok()?;
        if map.len() < fw * fh {
            return None;
        }
        Some(gst::Buffer::from_mut_slice(super::draw::resize_nearest(
            &map, fw, fh, tw, th,
        )))
    }
}

/// Scales the pixel span `start..start + len` of a `from`-pixel axis to a
/// `to`-pixel one: the start rounded down, the end up, so that the span
/// covers the same part of the frame; at least one pixel.
fn span(start: u32, len: u32, from: u32, to: u32) -> (u32, u32) {
    let (from, to) = (u64::from(from), u64::from(to));
    let end = u64::from(start) + u64::from(len);
    let start = (u64::from(start) * to / from).min(to - 1);
    let end = (end * to).div_ceil(from).clamp(start + 1, to);
    (start as u32, (end - start) as u32)
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
    /// `prompted`: a prompt ran for the object on the frame the mask was
    /// computed on (a conditioning frame: a click, a box, a detection's box
    /// with `roi-prompts`).
    pub prompted: bool,
    /// `label`: the `roi_type` of the upstream detection that started the
    /// object (`roi-prompts`); absent for objects started otherwise.
    pub label: Option<String>,
    /// `detection-id`: that detection's region-of-interest meta id (also
    /// the `parent_id` of the object's ROI meta); absent with `label`.
    pub detection_id: Option<i32>,
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
            .field("frame-number", self.frame_number)
            .field("prompted", self.prompted);
        if let Some(mask) = &self.mask {
            b = b
                .field("mask", mask)
                .field("mask-width", self.mask_width)
                .field("mask-height", self.mask_height);
        }
        if let Some(label) = &self.label {
            b = b.field("label", label);
        }
        if let Some(id) = self.detection_id {
            b = b.field("detection-id", id);
        }
        b
    }

    /// The structure of this object (named [`OBJECT_STRUCTURE`]).
    pub fn to_structure(&self) -> gst::Structure {
        self.fill(gst::Structure::builder(OBJECT_STRUCTURE)).build()
    }

    fn roi_param(&self) -> gst::Structure {
        let mut b = gst::Structure::builder(ROI_PARAM)
            .field("object-id", self.id)
            .field("score", self.score)
            .field("iou", self.iou)
            .field("occluded", self.occluded)
            .field("stale", self.stale)
            .field("frame-number", self.frame_number);
        if let Some(label) = &self.label {
            b = b.field("label", label);
        }
        if let Some(id) = self.detection_id {
            b = b.field("detection-id", id);
        }
        b.build()
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
            prompted: s.get("prompted").unwrap_or(false),
            label: s.get::<String>("label").ok(),
            detection_id: s.get::<i32>("detection-id").ok(),
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
        add_meta(buffer, OBJECT_META, &object.to_structure());
        let [x, y, w, h] = object.bbox;
        if w > 0 && h > 0 {
            let mut roi = gst_video::VideoRegionOfInterestMeta::add(buffer, ROI_TYPE, (x, y, w, h));
            roi.set_id(object.id as i32);
            if let Some(parent) = object.detection_id {
                roi.set_parent_id(parent);
            }
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
