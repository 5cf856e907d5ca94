// SPDX-License-Identifier: MPL-2.0

//! The `sam2overlay` element: `sam2track output=meta ! sam2overlay` draws
//! the same pixels as `sam2track output=overlay` (formats, background
//! modes, colours), after `videoscale`, from low-resolution masks; frames
//! without metadata pass unchanged; labels land next to the boxes, blended
//! or attached as an overlay composition for a downstream that renders it.
//!
//! Frames are the 192x108 golden frames with the micro model (its point and
//! box masks cover most of the frame: object 3, prompted by a mask, gives a
//! smaller box on frame 0).

mod common;

use common::micro_dir;
use common::stream::*;
use gst::prelude::*;
use gst_video::prelude::*;
use gstsam2::sam2track::draw;
use gstsam2::sam2track::labels;
use gstsam2::sam2track::meta::{self, FrameInfo, ObjectInfo};

/// Frames pushed per pipeline.
const FRAMES: usize = 4;
/// Columns and rows of object 3's mask prompt.
const MASK_X: std::ops::Range<usize> = 31..98;
const MASK_Y: std::ops::Range<usize> = 21..76;

/// A harness around `[videoconvert ! video/x-raw,format=F !] sam2track
/// name=t mode=sync model-dir=<micro> prompt=<golden> {track} ! {after}`,
/// with object 3 added by a mask prompt; `configure` runs before the caps
/// are set (sink caps, allocation metas).
fn pipeline(
    format: &str,
    track: &str,
    after: &str,
    configure: impl FnOnce(&mut gst_check::Harness),
) -> (gst_check::Harness, gst::Bin) {
    init();
    let track = format!(
        "sam2track name=t mode=sync model-dir=\"{}\" prompt=\"{GOLDEN_PROMPT}\" {track} ! {after}",
        micro_dir().display()
    );
    let desc = if format == "RGB" {
        track
    } else {
        format!("videoconvert ! video/x-raw,format={format} ! {track}")
    };
    let mut h = gst_check::Harness::new_parse(&desc);
    let bin = h.element().unwrap().downcast::<gst::Bin>().unwrap();
    configure(&mut h);
    let mask: Vec<u8> = (0..H)
        .flat_map(|y| (0..W).map(move |x| u8::from(MASK_X.contains(&x) && MASK_Y.contains(&y))))
        .collect();
    let id: u32 = bin.by_name("t").unwrap().emit_by_name(
        "add-mask",
        &[
            &3u32,
            &gst::Buffer::from_mut_slice(mask),
            &(W as u32),
            &(H as u32),
        ],
    );
    assert_eq!(id, 3);
    h.set_src_caps_str(RGB_CAPS);
    (h, bin)
}

/// Output buffers of golden frames 0..FRAMES through [`pipeline`], and the
/// output caps.
fn run(format: &str, track: &str, after: &str) -> (Vec<gst::Buffer>, gst::Caps) {
    let (mut h, _) = pipeline(format, track, after, |_| {});
    let out = (0..FRAMES).map(|t| push_pull(&mut h, t)).collect();
    (out, h.sinkpad().unwrap().current_caps().unwrap())
}

fn bytes(buffer: &gst::Buffer) -> Vec<u8> {
    buffer.map_readable().unwrap().to_vec()
}

/// Plane 0 (packed pixels or luma): bytes, stride, bytes per pixel.
fn plane0(buffer: &gst::Buffer, caps: &gst::Caps) -> (Vec<u8>, usize, usize) {
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info).unwrap();
    let stride = frame.plane_stride()[0] as usize;
    let bpp = info.format_info().pixel_stride()[0] as usize;
    (frame.plane_data(0).unwrap().to_vec(), stride, bpp)
}

/// Pixels (x, y) whose plane-0 bytes differ between `a` and `b`.
fn changed(a: &gst::Buffer, b: &gst::Buffer, caps: &gst::Caps) -> Vec<(usize, usize)> {
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let (pa, stride, bpp) = plane0(a, caps);
    let (pb, _, _) = plane0(b, caps);
    let mut out = Vec::new();
    for y in 0..info.height() as usize {
        for x in 0..info.width() as usize {
            let p = y * stride + x * bpp;
            if pa[p..p + bpp] != pb[p..p + bpp] {
                out.push((x, y));
            }
        }
    }
    out
}

fn overlay_element(bin: &gst::Bin) -> gst::Element {
    bin.by_name("o").expect("sam2overlay named o")
}

// ------------------------------------------------------------------ parity

#[test]
fn draws_the_pixels_sam2track_draws() {
    let styles = [
        "",
        "background=solid background-color=0x0000ff",
        "background=blur blur-radius=4",
        "overlay-alpha=0.8 contour-width=3 colors=\"<0xff0000, 0x00ff00>\"",
    ];
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for format in ["RGB", "RGBA", "NV12", "I420"] {
        for style in styles {
            cases.push((format, style));
        }
    }
    cases.push(("RGBA", "background=transparent"));
    cases.push(("BGRx", "background=solid"));
    for (format, style) in cases {
        let (undrawn, caps) = run(format, "output=meta", "identity");
        let (reference, ref_caps) = run(format, &format!("output=overlay {style}"), "identity");
        let (drawn, caps2) = run(format, "output=meta", &format!("sam2overlay {style}"));
        let structure = |c: &gst::Caps| c.structure(0).unwrap().to_owned();
        assert_eq!(structure(&caps), structure(&ref_caps));
        assert_eq!(structure(&caps), structure(&caps2));
        for t in 0..FRAMES {
            assert!(
                bytes(&drawn[t]) == bytes(&reference[t]),
                "{format} [{style}] frame {t}: sam2overlay differs from sam2track output=overlay \
                 ({} pixels)",
                changed(&drawn[t], &reference[t], &caps).len()
            );
            assert_ne!(
                bytes(&drawn[t]),
                bytes(&undrawn[t]),
                "{format} [{style}] frame {t}: nothing drawn"
            );
            // the metadata goes on
            assert_eq!(meta::frame(&drawn[t]), meta::frame(&undrawn[t]));
        }
    }
}

#[test]
fn transparent_without_alpha_warns_once() {
    let (mut h, bin) = pipeline(
        "RGB",
        "output=meta",
        "sam2overlay name=o background=transparent",
        |_| {},
    );
    let bus = bus_of(&overlay_element(&bin));
    let (undrawn, _) = run("RGB", "output=meta", "identity");
    let (plain, _) = run("RGB", "output=meta", "sam2overlay");
    for t in 0..FRAMES {
        let out = push_pull(&mut h, t);
        // drawn as with the background left alone
        assert_eq!(bytes(&out), bytes(&plain[t]), "frame {t}");
        assert_ne!(bytes(&out), bytes(&undrawn[t]), "frame {t}");
    }
    let w = warnings(&bus);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("transparent needs RGBA"), "{w:?}");
}

// --------------------------------------------------- other frames and masks

#[test]
fn draws_after_videoscale() {
    let scale = "videoscale ! capsfilter caps=video/x-raw,width=96,height=54";
    let (undrawn, caps) = run("RGB", "output=meta", scale);
    let (drawn, caps2) = run("RGB", "output=meta", &format!("{scale} ! sam2overlay"));
    assert_eq!(
        caps, caps2,
        "same caps out (no overlay feature without labels)"
    );
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((info.width(), info.height()), (96, 54));
    for t in 0..FRAMES {
        let objects = meta::frame(&drawn[t]).unwrap().objects;
        let mut union = vec![false; 96 * 54];
        for o in &objects {
            assert_eq!((o.mask_width, o.mask_height), (96, 54), "scaled masks");
            for (u, m) in union.iter_mut().zip(o.mask_bits().unwrap()) {
                *u |= m != 0;
            }
        }
        let inside = union.iter().filter(|u| **u).count();
        assert!(inside > 0);
        let diff = changed(&undrawn[t], &drawn[t], &caps);
        let changed_inside = diff.iter().filter(|(x, y)| union[y * 96 + x]).count();
        assert_eq!(
            changed_inside,
            diff.len(),
            "frame {t}: background pixels changed"
        );
        assert!(
            changed_inside * 10 >= inside * 9,
            "frame {t}: {changed_inside} of {inside} object pixels drawn"
        );
    }
}

#[test]
fn low_resolution_masks_are_resized_and_missing_ones_skipped() {
    let (frame_size, caps) = run("RGB", "output=meta", "identity");
    let (low_undrawn, _) = run("RGB", "output=meta mask-resolution=low", "identity");
    let (low, _) = run("RGB", "output=meta mask-resolution=low", "sam2overlay");
    for t in 0..FRAMES {
        let objects = meta::frame(&low[t]).unwrap().objects;
        let frame_objects = meta::frame(&frame_size[t]).unwrap().objects;
        let mut union = vec![false; W * H];
        for (o, f) in objects.iter().zip(&frame_objects) {
            assert_eq!((o.mask_width, o.mask_height), (32, 32));
            // the nearest-neighbour resize puts the mask where sam2track's
            // frame-size mask is (IoU within the 32x32 grid's blockiness)
            let resized = draw::frame_mask(o, W, H).unwrap();
            let exact = f.mask_bits().unwrap();
            let iou = common::mask_iou(&resized, &exact);
            // (the micro model's masks are ragged: up to a 6x3 px cell off)
            assert!(iou >= 0.7, "frame {t} object {}: IoU {iou}", o.id);
            if (t, o.id) == (0, 3) {
                // the compact object: same place, same box within a cell
                assert!(iou >= 0.9, "IoU {iou}");
                let bits: Vec<u8> = resized.iter().map(|v| u8::from(*v != 0)).collect();
                let xs = (0..W).filter(|x| (0..H).any(|y| bits[y * W + x] != 0));
                let ys = (0..H).filter(|y| (0..W).any(|x| bits[y * W + x] != 0));
                let (x0, x1) = (xs.clone().min().unwrap(), xs.max().unwrap() + 1);
                let (y0, y1) = (ys.clone().min().unwrap(), ys.max().unwrap() + 1);
                let [bx, by, bw, bh] = f.bbox.map(|v| v as usize);
                for (got, want) in [(x0, bx), (x1, bx + bw), (y0, by), (y1, by + bh)] {
                    assert!(
                        got.abs_diff(want) <= 6,
                        "{:?} vs {:?}",
                        (x0, y0, x1, y1),
                        f.bbox
                    );
                }
            }
            for (u, m) in union.iter_mut().zip(resized.iter()) {
                *u |= *m != 0;
            }
        }
        let diff = changed(&low_undrawn[t], &low[t], &caps);
        assert!(!diff.is_empty(), "frame {t}: nothing drawn");
        assert!(
            diff.iter().all(|(x, y)| union[y * W + x]),
            "frame {t}: drawn outside the resized masks"
        );
    }

    // no mask in the metadata: nothing drawn, one warning
    let (mut h, bin) = pipeline(
        "RGB",
        "output=meta mask-resolution=none",
        "sam2overlay name=o background=solid",
        |_| {},
    );
    let bus = bus_of(&overlay_element(&bin));
    for t in 0..FRAMES {
        let out = push_pull(&mut h, t);
        assert_eq!(ids(&out), vec![1, 2, 3]);
        assert_eq!(bytes(&out), frame_rgb(t), "frame {t}");
    }
    let w = warnings(&bus);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("no mask"), "{w:?}");
}

#[test]
fn frames_without_metadata_pass_unchanged() {
    init();
    // no sam2track at all
    let mut h = gst_check::Harness::new_parse("sam2overlay background=solid labels=true");
    h.set_src_caps_str(RGB_CAPS);
    for t in 0..FRAMES {
        let out = push_pull(&mut h, t);
        assert_eq!(bytes(&out), frame_rgb(t), "frame {t}");
        assert!(meta::frame(&out).is_none());
    }
    // a frame meta without objects (no prompt yet): unchanged as well, as
    // sam2track leaves it
    let (mut h, _) = harness(
        "RGB",
        "output=meta ! sam2overlay background=solid labels=true",
    );
    for t in 0..FRAMES {
        let out = push_pull(&mut h, t);
        assert!(meta::frame(&out).unwrap().objects.is_empty());
        assert_eq!(bytes(&out), frame_rgb(t), "frame {t}");
    }
}

#[test]
fn per_object_metas_are_enough() {
    // the frame meta dropped (only object metas left): drawn the same
    init();
    let (with_frame_meta, caps) = run("RGB", "output=meta", "sam2overlay");
    let (metas, _) = run("RGB", "output=meta", "identity");
    let mut h = gst_check::Harness::new("sam2overlay");
    h.set_src_caps(caps);
    for t in 0..FRAMES {
        let mut input = gst::Buffer::from_mut_slice(frame_rgb(t));
        {
            let b = input.get_mut().unwrap();
            let frame = meta::frame(&metas[t]).unwrap();
            // object metas only: attach() adds both, then the frame meta goes
            meta::attach(b, &frame);
            let frame_meta = gst::meta::CustomMeta::from_mut_buffer(b, meta::FRAME_META).unwrap();
            frame_meta.remove().unwrap();
        }
        assert!(meta::frame(&input).is_none());
        assert_eq!(meta::objects(&input).len(), 3);
        let out = h.push_and_pull(input).unwrap();
        assert_eq!(bytes(&out), bytes(&with_frame_meta[t]), "frame {t}");
    }
}

// ------------------------------------------------------------------ labels

/// Where the label of `o` goes in a `w × h` frame (x, y, width, height).
fn label_rect(o: &ObjectInfo, w: u32, h: u32) -> (usize, usize, usize, usize) {
    let (lw, lh) = labels::size(&labels::text(o.id, o.score), labels::scale_for(h));
    let (x, y) = labels::placement(o.bbox, lw, lh, w, h);
    (x as usize, y as usize, lw, lh)
}

#[test]
fn labels_change_pixels_next_to_the_boxes_only() {
    for format in ["RGB", "NV12"] {
        let (plain, caps) = run(format, "output=meta", "sam2overlay");
        let (labelled, _) = run(format, "output=meta", "sam2overlay labels=true");
        for t in 0..FRAMES {
            let objects = meta::frame(&labelled[t]).unwrap().objects;
            let rects: Vec<_> = objects
                .iter()
                .filter(|o| o.bbox[2] > 0)
                .map(|o| (o, label_rect(o, W as u32, H as u32)))
                .collect();
            assert!(!rects.is_empty());
            let diff = changed(&plain[t], &labelled[t], &caps);
            let within = |(x, y): (usize, usize),
                          (rx, ry, rw, rh): (usize, usize, usize, usize)| {
                (rx..rx + rw).contains(&x) && (ry..ry + rh).contains(&y)
            };
            for p in &diff {
                assert!(
                    rects.iter().any(|(_, r)| within(*p, *r)),
                    "{format} frame {t}: pixel {p:?} changed away from the labels {rects:?}"
                );
            }
            for (o, r) in &rects {
                let [bx, by, bw, _] = o.bbox.map(|v| v as usize);
                // on the box's top edge (above it, or inside at the frame's top)
                assert!(r.1 + r.3 == by || r.1 == by, "{r:?} vs {:?}", o.bbox);
                assert!(r.0 <= bx + bw && r.0 + r.2 >= bx);
                let n = diff.iter().filter(|p| within(**p, *r)).count();
                assert!(
                    n * 4 >= r.2 * r.3,
                    "{format} frame {t} object {}: {n} pixels of its label changed",
                    o.id
                );
            }
        }
        // frame 0: object 3's box is inside the frame, its label above it
        let o3 = meta::frame(&labelled[0]).unwrap().objects[2].clone();
        assert_eq!(o3.id, 3);
        assert!(o3.bbox[1] > 7, "{:?}", o3.bbox);
        let r = label_rect(&o3, W as u32, H as u32);
        assert_eq!(r.1 + r.3, o3.bbox[1] as usize);
    }
}

#[test]
fn labels_are_attached_when_downstream_renders_them() {
    let has_feature = |caps: &gst::Caps| {
        caps.features(0)
            .unwrap()
            .contains(gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION)
    };
    let (mut h, bin) = pipeline("RGB", "output=meta", "sam2overlay name=o", |h| {
        h.set_sink_caps_str(
            "video/x-raw(memory:SystemMemory, meta:GstVideoOverlayComposition); video/x-raw",
        );
        h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    });
    // without labels the caps stay plain
    let first = push_pull(&mut h, 0);
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert!(!has_feature(&caps), "{caps}");
    assert!(
        first
            .meta::<gst_video::VideoOverlayCompositionMeta>()
            .is_none()
    );
    // labels on while playing: the caps take the feature, labels are attached
    overlay_element(&bin).set_property("labels", true);
    let attached: Vec<gst::Buffer> = (1..FRAMES).map(|t| push_pull(&mut h, t)).collect();
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert!(has_feature(&caps), "{caps}");

    let (plain, _) = run("RGB", "output=meta", "sam2overlay");
    let (blended, blended_caps) = run("RGB", "output=meta", "sam2overlay labels=true");
    // a downstream taking any caps but not rendering the meta: blended
    assert!(has_feature(&blended_caps), "{blended_caps}");
    let info = gst_video::VideoInfo::from_caps(&blended_caps).unwrap();
    for (i, attached) in attached.iter().enumerate() {
        let t = i + 1;
        // the masks are drawn, the labels are not
        assert_eq!(bytes(attached), bytes(&plain[t]), "frame {t}");
        assert!(
            blended[t]
                .meta::<gst_video::VideoOverlayCompositionMeta>()
                .is_none()
        );
        assert_ne!(bytes(&blended[t]), bytes(&plain[t]), "frame {t}");
        let meta = attached
            .meta::<gst_video::VideoOverlayCompositionMeta>()
            .expect("composition meta");
        let composition = meta.overlay_owned();
        let boxed = meta::frame(attached)
            .unwrap()
            .objects
            .iter()
            .filter(|o| o.bbox[2] > 0)
            .count();
        assert_eq!(composition.n_rectangles() as usize, boxed);
        // rendering it gives what the element blends
        let mut rendered = attached.copy_deep().unwrap();
        {
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(
                rendered.get_mut().unwrap(),
                &info,
            )
            .unwrap();
            composition.blend(&mut frame).unwrap();
        }
        assert_eq!(bytes(&rendered), bytes(&blended[t]), "frame {t}");
    }
}

// -------------------------------------------------------------- properties

#[test]
fn drawing_properties_are_sam2track_s_and_change_while_playing() {
    init();
    let track = gst::ElementFactory::make("sam2track").build().unwrap();
    let overlay = gst::ElementFactory::make("sam2overlay").build().unwrap();
    for name in [
        "overlay-alpha",
        "contour-width",
        "colors",
        "background",
        "background-color",
        "blur-radius",
    ] {
        let a = track.find_property(name).unwrap();
        let b = overlay.find_property(name).unwrap();
        assert_eq!(a.value_type(), b.value_type(), "{name}");
        assert_eq!(a.blurb(), b.blurb(), "{name}");
        assert_eq!(a.flags(), b.flags(), "{name}");
        assert!(
            b.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING),
            "{name}"
        );
        assert_eq!(
            format!("{:?}", a.default_value()),
            format!("{:?}", b.default_value()),
            "{name}"
        );
        assert_eq!(
            format!("{:?}", track.property_value(name)),
            format!("{:?}", overlay.property_value(name)),
            "{name}"
        );
    }
    let labels = overlay.find_property("labels").unwrap();
    assert_eq!(labels.default_value().get::<bool>(), Ok(false));
    assert!(labels.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING));

    // set while playing: the next frame follows
    let (undrawn, _) = run("RGB", "output=meta", "identity");
    let (solid, _) = run("RGB", "output=meta", "sam2overlay background=solid");
    let (mut h, bin) = pipeline("RGB", "output=meta", "sam2overlay name=o", |_| {});
    let o = overlay_element(&bin);
    assert_ne!(bytes(&push_pull(&mut h, 0)), bytes(&solid[0]));
    o.set_property_from_str("background", "solid");
    assert_eq!(bytes(&push_pull(&mut h, 1)), bytes(&solid[1]));
    o.set_property("overlay-alpha", 0.0f64);
    o.set_property("contour-width", 0u32);
    o.set_property_from_str("background", "none");
    assert_eq!(bytes(&push_pull(&mut h, 2)), bytes(&undrawn[2]));
}

// ------------------------------------------------------------------ timing

/// A 1920x1080 frame of `format` with two objects in its metadata (an
/// ellipse and a rectangle, frame-size masks), and the masks.
fn frame_1080p(info: &gst_video::VideoInfo) -> (gst::Buffer, Vec<Vec<u8>>) {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buffer.get_mut().unwrap();
        let mut map = b.map_writable().unwrap();
        for (i, v) in map.iter_mut().enumerate() {
            *v = (i * 7 % 251) as u8;
        }
    }
    let ellipse: Vec<u8> = (0..w * h)
        .map(|p| {
            let (x, y) = ((p % w) as f32 - 700.0, (p / w) as f32 - 560.0);
            u8::from((x / 260.0).powi(2) + (y / 420.0).powi(2) < 1.0)
        })
        .collect();
    let rect: Vec<u8> = (0..w * h)
        .map(|p| u8::from((1100..1500).contains(&(p % w)) && (300..800).contains(&(p / w))))
        .collect();
    let masks = vec![ellipse, rect];
    let boxes = [[440, 140, 520, 840], [1100, 300, 400, 500]];
    let objects = masks
        .iter()
        .enumerate()
        .map(|(i, m)| ObjectInfo {
            id: i as u32 + 1,
            bbox: boxes[i],
            score: 0.9,
            iou: 0.9,
            occluded: false,
            stale: false,
            frame_number: 0,
            mask: Some(gst::Buffer::from_mut_slice(
                m.iter().map(|v| v * 255).collect::<Vec<u8>>(),
            )),
            mask_width: w as u32,
            mask_height: h as u32,
            prompted: false,
            label: None,
            detection_id: None,
        })
        .collect();
    meta::attach(
        buffer.get_mut().unwrap(),
        &FrameInfo {
            frame_number: 0,
            computed_frame_number: 0,
            stale: false,
            objects,
        },
    );
    (buffer, masks)
}

/// Milliseconds per 1080p frame with 2 objects: sam2overlay (metadata read,
/// masks mapped, drawn; the harness's buffer handling included) against
/// the drawing sam2track does itself (label map, contours, draw from its
/// 0/1 masks). `cargo test --release --test overlay_element -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn timing_1080p() {
    init();
    const ROUNDS: usize = 40;
    for format in ["I420", "RGB", "RGBA"] {
        for props in ["", "labels=true", "background=blur"] {
            let caps: gst::Caps =
                format!("video/x-raw,format={format},width=1920,height=1080,framerate=30/1")
                    .parse()
                    .unwrap();
            let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
            let (frame, masks) = frame_1080p(&info);
            let mut h = gst_check::Harness::new("sam2overlay");
            let element = h.element().unwrap();
            for prop in props.split_whitespace() {
                let (k, v) = prop.split_once('=').unwrap();
                element.set_property_from_str(k, v);
            }
            h.set_src_caps(caps);
            let style_of = |el: &gst::Element| {
                let bg: gstsam2::sam2track::BackgroundMode = el.property("background");
                gstsam2::sam2track::overlay::Style {
                    alpha: el.property::<f64>("overlay-alpha") as f32,
                    contour_width: el.property("contour-width"),
                    colors: gstsam2::sam2track::overlay::DEFAULT_COLORS.to_vec(),
                    background: draw::background_of(bg),
                    background_color: el.property("background-color"),
                    blur_radius: el.property("blur-radius"),
                }
            };
            let style = style_of(&element);
            // the two alternate, so that the machine's drift hits both alike
            let (mut element_ms, mut own_ms) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                let input = frame.copy_deep().unwrap();
                let start = std::time::Instant::now();
                let out = h.push_and_pull(input).unwrap();
                element_ms.push(start.elapsed().as_secs_f64() * 1e3);
                drop(out);

                let mut input = frame.copy_deep().unwrap();
                let start = std::time::Instant::now();
                let objects: Vec<(u32, &[u8])> = masks
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (i as u32 + 1, m.as_slice()))
                    .collect();
                draw::draw_objects(input.get_mut().unwrap(), &info, &objects, &style).unwrap();
                own_ms.push(start.elapsed().as_secs_f64() * 1e3);
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "1080p {format:4} 2 objects [{props:15}] sam2overlay {:6.2} ms/frame, \
                 sam2track's own drawing {:6.2} ms/frame (median of {ROUNDS})",
                median(&mut element_ms),
                median(&mut own_ms)
            );
        }
    }
}
