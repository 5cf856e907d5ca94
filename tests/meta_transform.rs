// SPDX-License-Identifier: MPL-2.0

//! What becomes of the `sam2track` metadata downstream: the transform
//! function of the custom metas on its own, then `videoscale`,
//! `videoconvert`, `videocrop` and `videoflip` behind the element with the
//! micro model (upstream metas are read by a probe on the element's source
//! pad, in the same run).

mod common;

use std::sync::{Arc, Mutex};

use common::micro_dir;
use common::stream::{self, GOLDEN_PROMPT, RGB_CAPS, frame_buffer, init};
use gst::glib;
use gst::prelude::*;
use gst_video::video_meta::VideoMetaTransformScale;
use gstsam2::sam2track::meta::{self, FrameInfo, ObjectInfo};

/// Frames pushed per pipeline.
const FRAMES: usize = 2;
/// Columns and rows of object 3's mask prompt.
const MASK_X: std::ops::Range<u32> = 31..98;
const MASK_Y: std::ops::Range<u32> = 21..76;
const W: u32 = stream::W as u32;
const H: u32 = stream::H as u32;

/// A ROI meta of ours: id, rectangle, whether it has the `sam2` param.
type Roi = (i32, (u32, u32, u32, u32), bool);

/// What a buffer carries: object metas, frame meta, ROI metas, crop meta.
#[derive(Debug, Clone)]
struct Metas {
    objects: Vec<ObjectInfo>,
    frame: Option<FrameInfo>,
    rois: Vec<Roi>,
    /// The `GstVideoCropMeta` rectangle.
    crop: Option<(u32, u32, u32, u32)>,
}

impl Metas {
    fn of(buffer: &gst::BufferRef) -> Self {
        let mut objects = meta::objects(buffer);
        objects.sort_by_key(|o| o.id);
        let mut rois: Vec<_> = buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter(|r| r.roi_type() == meta::ROI_TYPE)
            .map(|r| (r.id(), r.rect(), r.param(meta::ROI_PARAM).is_some()))
            .collect();
        rois.sort();
        Metas {
            objects,
            frame: meta::frame(buffer),
            rois,
            crop: buffer.meta::<gst_video::VideoCropMeta>().map(|m| m.rect()),
        }
    }

    fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.frame.is_none() && self.rois.is_empty()
    }
}

/// Runs golden frames 0..FRAMES through `sam2track ! <downstream>` (after
/// `configure` on the harness and its bin); returns per frame the metas on
/// sam2track's source pad and after `downstream`, and the output caps.
fn run(
    props: &str,
    downstream: &str,
    configure: impl FnOnce(&mut gst_check::Harness, &gst::Bin),
) -> (Vec<(Metas, Metas)>, gst::Caps) {
    init();
    let desc = format!(
        "sam2track name=t mode=sync model-dir=\"{}\" prompt=\"{GOLDEN_PROMPT}\" {props} ! {downstream}",
        micro_dir().display()
    );
    let mut h = gst_check::Harness::new_parse(&desc);
    let bin = h.element().unwrap().downcast::<gst::Bin>().unwrap();
    configure(&mut h, &bin);
    let upstream = Arc::new(Mutex::new(Vec::new()));
    let seen = upstream.clone();
    bin.by_name("t")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                seen.lock().unwrap().push(Metas::of(buffer));
            }
            gst::PadProbeReturn::Ok
        })
        .unwrap();
    h.set_src_caps_str(RGB_CAPS);
    // the micro model's point and box masks cover about the whole frame: a
    // mask prompt gives object 3 a box inside it on frame 0
    let mask: Vec<u8> = (0..H)
        .flat_map(|y| (0..W).map(move |x| u8::from(MASK_X.contains(&x) && MASK_Y.contains(&y))))
        .collect();
    let id: u32 = bin.by_name("t").unwrap().emit_by_name(
        "add-mask",
        &[&3u32, &gst::Buffer::from_mut_slice(mask), &W, &H],
    );
    assert_eq!(id, 3);
    let mut downstream = Vec::new();
    for t in 0..FRAMES {
        h.push(frame_buffer(t)).expect("push");
        downstream.push(Metas::of(&h.pull().expect("a buffer comes out")));
    }
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let upstream = upstream.lock().unwrap().clone();
    assert_eq!(upstream.len(), FRAMES);
    // the run is only telling with boxed objects, one inside the frame
    for up in &upstream {
        assert_eq!(
            up.objects.iter().map(|o| o.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let boxed = up.objects.iter().filter(|o| o.bbox[2] > 0).count();
        assert_eq!(up.rois.len(), boxed);
    }
    let [x, y, w, h] = upstream[0].objects[2].bbox;
    assert!(
        x > 0 && y > 0 && x + w < W && y + h < H,
        "object 3 on frame 0: {:?}",
        [x, y, w, h]
    );
    (upstream.into_iter().zip(downstream).collect(), caps)
}

/// `v` scaled by 1/2 within 1 px.
fn assert_half(got: u32, v: u32, what: &str) {
    assert!(
        (f64::from(got) - f64::from(v) / 2.0).abs() <= 1.0,
        "{what}: {got} is not {v}/2 within 1 px"
    );
}

/// Whether the frame meta lists the same objects as the object metas.
fn frame_lists_objects(m: &Metas) -> bool {
    m.frame.as_ref().is_some_and(|f| {
        let mut objects = f.objects.clone();
        objects.sort_by_key(|o| o.id);
        objects == m.objects
    })
}

/// A buffer carrying the metas of one frame with one object (box 20,10
/// 40x30) whose mask is `mask_size` (frame-size masks: the box filled).
fn meta_buffer(mask_size: (u32, u32)) -> (gst::Buffer, ObjectInfo) {
    let (mw, mh) = mask_size;
    let mask: Vec<u8> = (0..mh)
        .flat_map(|y| {
            (0..mw).map(move |x| {
                if (20..60).contains(&x) && (10..40).contains(&y) {
                    255
                } else {
                    0
                }
            })
        })
        .collect();
    let object = ObjectInfo {
        id: 7,
        bbox: [20, 10, 40, 30],
        score: 0.9,
        iou: 0.8,
        occluded: false,
        stale: false,
        frame_number: 3,
        mask: Some(gst::Buffer::from_mut_slice(mask)),
        mask_width: mw,
        mask_height: mh,
        prompted: true,
        label: Some("car".into()),
        detection_id: Some(12),
    };
    let mut buffer = gst::Buffer::new();
    meta::attach(
        buffer.get_mut().unwrap(),
        &FrameInfo {
            frame_number: 3,
            computed_frame_number: 3,
            stale: false,
            objects: vec![object.clone()],
        },
    );
    (buffer, object)
}

/// Applies `transform` to every meta of `buffer`; returns the metas of the
/// destination buffer.
fn transformed<MT: gst::meta::MetaTransform>(buffer: &gst::Buffer, transform: &MT) -> Metas {
    let mut dest = gst::Buffer::new();
    for m in buffer.iter_meta::<gst::Meta>() {
        // a failed transform leaves the meta out, like elements do
        let _ = m.transform(dest.get_mut().unwrap(), transform);
    }
    Metas::of(&dest)
}

fn info(width: u32, height: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
        .build()
        .unwrap()
}

// ------------------------------------------------------ transform function

/// Width and height of video caps.
fn frame_size(caps: &gst::Caps) -> (i32, i32) {
    let s = caps.structure(0).expect("caps with a structure");
    (s.get("width").unwrap(), s.get("height").unwrap())
}

#[test]
fn metas_are_tagged_like_the_roi_meta() {
    init();
    use gst_video::video_meta::tags;
    for name in [meta::OBJECT_META, meta::FRAME_META] {
        let api = glib::Type::from_name(format!("{name}-api")).expect("registered");
        assert!(gst::meta::meta_api_type_has_tag::<tags::Video>(api));
        assert!(gst::meta::meta_api_type_has_tag::<tags::Size>(api));
        assert!(gst::meta::meta_api_type_has_tag::<tags::Orientation>(api));
        assert!(!gst::meta::meta_api_type_has_tag::<tags::Colorspace>(api));
        assert_eq!(
            gst::meta::meta_api_type_get_tags(api),
            gst::meta::meta_api_type_get_tags(gst_video::VideoRegionOfInterestMeta::meta_api()),
            "{name}"
        );
    }
}

#[test]
fn copy_keeps_and_scale_rescales_boxes_and_frame_size_masks() {
    init();
    let (buffer, object) = meta_buffer((160, 90));

    let copy = transformed(&buffer, &gst::meta::MetaTransformCopy::new(..));
    assert_eq!(copy.objects, vec![object.clone()]);
    assert!(frame_lists_objects(&copy));

    let same = transformed(
        &buffer,
        &VideoMetaTransformScale::new(&info(160, 90), &info(160, 90)),
    );
    assert_eq!(same.objects, vec![object.clone()]);

    // 160x90 -> 80x45: box 20,10 40x30 -> 10,5 20x15
    let half = transformed(
        &buffer,
        &VideoMetaTransformScale::new(&info(160, 90), &info(80, 45)),
    );
    assert!(frame_lists_objects(&half));
    let o = &half.objects[0];
    assert_eq!(o.bbox, [10, 5, 20, 15]);
    assert_eq!((o.mask_width, o.mask_height), (80, 45));
    let bits = o.mask_bits().unwrap();
    assert_eq!(bits.len(), 80 * 45);
    for y in 0..45 {
        for x in 0..80 {
            let inside = (10..30).contains(&x) && (5..20).contains(&y);
            assert_eq!(bits[y * 80 + x], u8::from(inside), "({x}, {y})");
        }
    }
    assert_eq!(
        (o.id, o.score, o.iou, o.frame_number),
        (7, 0.9, 0.8, 3),
        "other fields kept"
    );

    // 160x90 -> 48x27 (not a divisor): the box still covers the object
    let odd = transformed(
        &buffer,
        &VideoMetaTransformScale::new(&info(160, 90), &info(48, 27)),
    );
    let o = &odd.objects[0];
    assert_eq!(o.bbox, [6, 3, 12, 9]);
    assert_eq!((o.mask_width, o.mask_height), (48, 27));
}

/// A transform type the metas do not know (like GStreamer 1.28's matrix).
struct UnknownTransform(u8);

// SAFETY: as_ptr() points to a GLibType that lives as long as self
unsafe impl gst::meta::MetaTransform for UnknownTransform {
    type GLibType = u8;

    fn quark() -> glib::Quark {
        glib::Quark::from_str("sam2-test-unknown-transform")
    }

    fn as_ptr(&self) -> *const u8 {
        &self.0
    }
}

#[test]
fn unknown_transforms_drop_the_metas() {
    init();
    let (buffer, _) = meta_buffer((160, 90));
    let out = transformed(&buffer, &UnknownTransform(0));
    assert!(out.objects.is_empty() && out.frame.is_none());
}

#[test]
fn low_resolution_masks_are_kept_by_a_scale() {
    init();
    let (buffer, object) = meta_buffer((64, 64));
    let half = transformed(
        &buffer,
        &VideoMetaTransformScale::new(&info(160, 90), &info(80, 45)),
    );
    let o = &half.objects[0];
    assert_eq!(o.bbox, [10, 5, 20, 15]);
    assert_eq!((o.mask_width, o.mask_height), (64, 64));
    assert_eq!(o.mask, object.mask);
}

// ------------------------------------------------------------- elements

#[test]
fn videoscale_scales_boxes_and_masks() {
    let (frames, caps) = run(
        "",
        "videoscale ! capsfilter caps=video/x-raw,width=96,height=54",
        |_, _| (),
    );
    assert_eq!(frame_size(&caps), (96, 54));
    for (t, (up, down)) in frames.iter().enumerate() {
        assert_eq!(
            down.objects.iter().map(|o| o.id).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "frame {t}: one object meta per object, no unscaled copy"
        );
        assert!(frame_lists_objects(down), "frame {t}: frame meta");
        for (u, d) in up.objects.iter().zip(&down.objects) {
            let what = |f: &str| format!("frame {t} object {} {f}", u.id);
            if u.bbox[2] == 0 {
                assert_eq!(d.bbox, [0; 4], "{}", what("empty box"));
            }
            for (i, f) in ["x", "y", "width", "height"].iter().enumerate() {
                assert_half(d.bbox[i], u.bbox[i], &what(f));
            }
            assert_eq!((d.mask_width, d.mask_height), (96, 54), "{}", what("mask"));
            // nearest neighbour: each pixel is one of its 2x2 source block
            let (ub, db) = (u.mask_bits().unwrap(), d.mask_bits().unwrap());
            assert_eq!(db.len(), 96 * 54);
            for y in 0..54 {
                for x in 0..96 {
                    let block = [(0, 0), (1, 0), (0, 1), (1, 1)]
                        .map(|(dx, dy)| ub[(2 * y + dy) * W as usize + 2 * x + dx]);
                    assert!(
                        block.contains(&db[y * 96 + x]),
                        "{} ({x}, {y})",
                        what("mask")
                    );
                }
            }
            assert_eq!(db.contains(&1), ub.contains(&1), "{}", what("mask area"));
            assert_eq!(
                (d.score, d.iou, d.occluded, d.frame_number),
                (u.score, u.iou, u.occluded, u.frame_number)
            );
        }
        // GStreamer scales the ROI metas itself (x * 96 / 192, w * 96 / 192);
        // their id is our object id
        let want: Vec<_> = up
            .rois
            .iter()
            .map(|(id, (x, y, w, h), _)| (*id, (x / 2, y / 2, w / 2, h / 2)))
            .collect();
        let got: Vec<_> = down.rois.iter().map(|(id, r, _)| (*id, *r)).collect();
        assert_eq!(got, want, "frame {t}: ROI metas");
        check_roi_params(&up.rois, &down.rois, "videoscale");
    }
}

#[test]
fn videoscale_keeps_low_resolution_masks() {
    let (frames, _) = run(
        "mask-resolution=low",
        "videoscale ! capsfilter caps=video/x-raw,width=96,height=54",
        |_, _| (),
    );
    for (t, (up, down)) in frames.iter().enumerate() {
        assert_eq!(down.objects.len(), up.objects.len(), "frame {t}");
        for (u, d) in up.objects.iter().zip(&down.objects) {
            assert_eq!(
                u.mask_width, u.mask_height,
                "low-resolution masks are square"
            );
            assert_ne!(u.mask_width, W);
            assert_eq!((d.mask_width, d.mask_height), (u.mask_width, u.mask_height));
            assert_eq!(d.mask, u.mask);
            for i in 0..4 {
                assert_half(d.bbox[i], u.bbox[i], "box");
            }
        }
    }
}

#[test]
fn videoconvert_keeps_the_metas() {
    let (frames, caps) = run(
        "",
        "videoconvert ! capsfilter caps=video/x-raw,format=I420",
        |_, _| (),
    );
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<&str>("format").unwrap(), "I420");
    for (t, (up, down)) in frames.iter().enumerate() {
        assert_eq!(down.objects, up.objects, "frame {t}: object metas");
        assert_eq!(down.frame, up.frame, "frame {t}: frame meta");
        let rects = |m: &Metas| {
            m.rois
                .iter()
                .map(|(id, r, _)| (*id, *r))
                .collect::<Vec<_>>()
        };
        assert_eq!(rects(down), rects(up), "frame {t}: ROI metas");
        check_roi_params(&up.rois, &down.rois, "videoconvert");
    }
}

/// videoconvert / videoscale (videoconvertscale since 1.22) call the ROI
/// meta's scale transform (also when only the format changes), which
/// GStreamer writes without the params: 1.22 drops our `sam2` param.
fn check_roi_params(up: &[Roi], down: &[Roi], element: &str) {
    assert!(up.iter().all(|r| r.2), "sam2track sets the param");
    let kept = down.iter().filter(|r| r.2).count();
    println!(
        "{}: {element} keeps the ROI param on {kept} of {} ROI metas",
        gst::version_string(),
        down.len()
    );
    if gst::version() < (1, 23, 0, 0) {
        assert_eq!(kept, 0, "1.22 drops the ROI params ({element})");
    }
}

/// `b` after cropping `left` and `top` columns and rows (0 when nothing is
/// left).
fn cropped(b: [u32; 4], left: u32, top: u32) -> [u32; 4] {
    let x0 = b[0].max(left);
    let y0 = b[1].max(top);
    let x1 = (b[0] + b[2]).max(x0);
    let y1 = (b[1] + b[3]).max(y0);
    if x1 == x0 || y1 == y0 {
        [0; 4]
    } else {
        [x0 - left, y0 - top, x1 - x0, y1 - y0]
    }
}

/// Checks that the downstream object boxes are `expect`ed transforms of the
/// upstream ones (where there are metas at all).
fn assert_transformed(up: &Metas, down: &Metas, expect: impl Fn([u32; 4]) -> [u32; 4], what: &str) {
    let from_frame = down.frame.iter().flat_map(|f| &f.objects);
    for d in down.objects.iter().chain(from_frame) {
        let u = up.objects.iter().find(|u| u.id == d.id).unwrap();
        assert_eq!(d.bbox, expect(u.bbox), "{what}: object {}", d.id);
    }
    for (id, (x, y, w, h), _) in &down.rois {
        let (_, (ux, uy, uw, uh), _) = up.rois.iter().find(|r| r.0 == *id).unwrap();
        assert_eq!(
            [*x, *y, *w, *h],
            expect([*ux, *uy, *uw, *uh]),
            "{what}: ROI {id}"
        );
    }
}

#[test]
fn videocrop_never_leaves_stale_boxes() {
    let (frames, caps) = run("", "videocrop left=40 top=20", |_, _| ());
    assert_eq!(frame_size(&caps), (152, 88));
    for (t, (up, down)) in frames.iter().enumerate() {
        println!(
            "{}: videocrop frame {t}: {} object metas, frame meta {}, {} ROI metas",
            gst::version_string(),
            down.objects.len(),
            down.frame.is_some(),
            down.rois.len()
        );
        // never the uncropped coordinates: cropped, or absent
        assert_transformed(up, down, |b| cropped(b, 40, 20), &format!("frame {t}"));
        // GStreamer 1.22's videocrop transforms nothing: all dropped
        if gst::version() < (1, 23, 0, 0) {
            assert!(down.is_empty(), "frame {t}: {down:?}");
        }
    }
}

#[test]
fn videocrop_with_crop_meta_keeps_full_frame_coordinates() {
    // downstream accepting GstVideoCropMeta: videocrop crops in place by
    // adding a crop meta; every meta stays in the uncropped frame's pixels
    let (frames, caps) = run("", "videocrop left=40 top=20", |h, _| {
        h.add_propose_allocation_meta(gst_video::VideoMeta::meta_api(), None);
        h.add_propose_allocation_meta(gst_video::VideoCropMeta::meta_api(), None);
    });
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<i32>("width").unwrap(), 152);
    for (t, (up, down)) in frames.iter().enumerate() {
        assert_eq!(down.crop, Some((40, 20, 152, 88)), "frame {t}: crop meta");
        assert_eq!(down.objects, up.objects, "frame {t}");
        assert_eq!(down.frame, up.frame, "frame {t}");
        assert_eq!(down.rois, up.rois, "frame {t}");
    }
}

#[test]
fn videoflip_never_leaves_stale_boxes() {
    // (set after construction: 1.22.0's videoflip resets a method given at
    // construction time, fixed in 1.22.3)
    let (frames, _) = run("", "videoflip name=flip", |_, bin| {
        let flip = bin.by_name("flip").unwrap();
        flip.set_property_from_str("method", "horizontal-flip");
    });
    let mirrored = |[x, y, w, h]: [u32; 4]| {
        if w == 0 { [0; 4] } else { [W - x - w, y, w, h] }
    };
    for (t, (up, down)) in frames.iter().enumerate() {
        println!(
            "{}: videoflip frame {t}: {} object metas, frame meta {}, {} ROI metas",
            gst::version_string(),
            down.objects.len(),
            down.frame.is_some(),
            down.rois.len()
        );
        assert_transformed(up, down, mirrored, &format!("frame {t}"));
        if gst::version() < (1, 23, 0, 0) {
            assert!(down.is_empty(), "frame {t}: {down:?}");
        }
    }
}
