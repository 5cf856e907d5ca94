// SPDX-License-Identifier: MPL-2.0

//! The streaming engine with the micro model: bad input is refused with a
//! clear error and leaves the tracker usable; frame layouts; bounded memory
//! on a long stream.

mod common;

use common::{micro_dir, read_png, require_runtime};
use gstsam2::engine::model::{ModelDir, SessionOptions};
use gstsam2::engine::runtime;
use gstsam2::engine::stages::Stages;
use gstsam2::engine::tracker::{
    Frame, PixelFormat, Tracker, TrackerConfig, TrackerError, resize_like_pil,
};

const W: usize = 96;
const H: usize = 64;

fn tracker_with(config: TrackerConfig) -> Tracker {
    let rt = require_runtime();
    let model = ModelDir::open(&micro_dir()).expect("micro model");
    let options = SessionOptions {
        intra_threads: Some(1),
        ..SessionOptions::default()
    };
    let stages = Stages::load(&model, rt.environment(), &options).expect("graphs load");
    Tracker::new(stages, model.manifest(), config).expect("tracker")
}

/// Stages that loaded (e.g. after a CPU fallback) track: one click on a
/// synthetic frame gives one object.
fn tracks_one_click(stages: Stages, model: &ModelDir) {
    let mut tr = Tracker::new(stages, model.manifest(), TrackerConfig::default()).unwrap();
    let f = synthetic(0);
    tr.begin_frame(&rgb_frame(&f)).unwrap();
    tr.add_points(1, &[[20.0, 16.0]], &[1], true).unwrap();
    assert_eq!(tr.track().unwrap().len(), 1);
}

/// A synthetic RGB frame: a moving bright square on a gradient.
fn synthetic(t: usize) -> Vec<u8> {
    let mut v = vec![0u8; W * H * 3];
    let (cx, cy) = (20 + (t * 3) % 50, 16 + (t * 2) % 30);
    for y in 0..H {
        for x in 0..W {
            let p = (y * W + x) * 3;
            let inside = x.abs_diff(cx) < 10 && y.abs_diff(cy) < 10;
            v[p] = if inside { 230 } else { (x * 2) as u8 };
            v[p + 1] = if inside { 40 } else { (y * 3) as u8 };
            v[p + 2] = ((x + y + t) % 256) as u8;
        }
    }
    v
}

fn rgb_frame(data: &[u8]) -> Frame<'_> {
    Frame {
        data,
        width: W,
        height: H,
        stride: W * 3,
        format: PixelFormat::Rgb,
    }
}

/// The suite runs on the ONNX Runtime it means to: the pinned one, or the
/// release named by SAM2TRACK_EXPECT_ORT_VERSION (CI's run on the oldest
/// supported release sets it with ORT_DYLIB_PATH).
#[test]
fn runs_on_the_expected_onnx_runtime() {
    let runtime = require_runtime();
    let version = runtime.version();
    println!(
        "ONNX Runtime {version} from {}",
        runtime.library().display()
    );
    let expected = match std::env::var("SAM2TRACK_EXPECT_ORT_VERSION") {
        Ok(v) => v,
        Err(_) if std::env::var_os(runtime::DYLIB_PATH_ENV).is_some() => {
            // a developer's own library: only its version must be readable
            assert!(version.starts_with("1."), "{version}");
            return;
        }
        Err(_) => runtime::ORT_VERSION.to_owned(),
    };
    assert_eq!(version, expected);
}

/// The frame -> S×S resize reproduces the official loader's (Pillow's
/// BICUBIC) on the golden frames: the inputs the official predictor saw.
#[test]
fn frame_resize_matches_the_official_inputs() {
    let dir = common::fixtures().join("golden");
    let (mut sum, mut equal, mut max, mut count) = (0u64, 0u64, 0u8, 0u64);
    for t in 0..32 {
        let (w, h, _, rgb) = read_png(&dir.join(format!("frames/{t:05}.png")));
        let (s, _, _, want) = read_png(&dir.join(format!("inputs/{t:05}.png")));
        let got = resize_like_pil(&rgb, w, h, s);
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            let d = a.abs_diff(*b);
            sum += u64::from(d);
            equal += u64::from(d == 0);
            max = max.max(d);
            count += 1;
        }
    }
    let (mean, share) = (sum as f64 / count as f64, equal as f64 / count as f64);
    println!(
        "resize vs official inputs: mean |diff| {mean:.3}, {:.1}% equal, max {max}",
        share * 100.0
    );
    assert!(
        mean < 0.3 && share > 0.75 && max <= 8,
        "mean {mean}, equal {share}, max {max}"
    );
}

#[test]
fn bad_input_is_refused_and_the_tracker_goes_on() {
    let mut tr = tracker_with(TrackerConfig {
        max_objects: 2,
        ..TrackerConfig::default()
    });
    // before any frame
    assert!(matches!(
        tr.add_points(1, &[[10.0, 10.0]], &[1], true),
        Err(TrackerError::NoFrame)
    ));
    assert!(matches!(tr.track(), Err(TrackerError::NoFrame)));
    // zero-size frame
    let e = tr
        .begin_frame(&Frame {
            data: &[],
            width: 0,
            height: 10,
            stride: 0,
            format: PixelFormat::Rgb,
        })
        .unwrap_err();
    assert!(matches!(e, TrackerError::EmptyFrame { .. }), "{e}");
    // too little data for the frame
    let short = vec![0u8; 10];
    let e = tr.begin_frame(&rgb_frame(&short)).unwrap_err();
    assert!(e.to_string().contains("needs"), "{e}");

    let f0 = synthetic(0);
    assert_eq!(tr.begin_frame(&rgb_frame(&f0)).unwrap(), 0);
    tr.add_points(1, &[[20.0, 16.0]], &[1], true).unwrap();

    let e = tr.add_points(2, &[[200.0, 10.0]], &[1], true).unwrap_err();
    assert!(matches!(e, TrackerError::PointOutside { .. }), "{e}");
    assert!(
        e.to_string().contains("(200, 10)") && e.to_string().contains("96x64"),
        "{e}"
    );
    let e = tr.add_points(2, &[[10.0, 10.0]], &[7], true).unwrap_err();
    assert!(matches!(e, TrackerError::BadLabel(7)), "{e}");
    let e = tr.add_points(2, &[[10.0, 10.0]], &[], true).unwrap_err();
    assert!(matches!(e, TrackerError::LabelCount(1, 0)), "{e}");
    let e = tr
        .add_box(2, [30.0, 30.0, 30.0, 50.0], &[], &[])
        .unwrap_err();
    assert!(matches!(e, TrackerError::EmptyBox { .. }), "{e}");
    let e = tr
        .add_box(2, [50.0, 10.0, 40.0, 20.0], &[], &[])
        .unwrap_err();
    assert!(matches!(e, TrackerError::EmptyBox { .. }), "{e}");
    let e = tr.add_mask(2, &[1u8; 10]).unwrap_err();
    assert!(
        matches!(e, TrackerError::MaskSize { got: 10, need, .. } if need == W * H),
        "{e}"
    );
    let e = tr.remove_object(9).unwrap_err();
    assert!(matches!(e, TrackerError::UnknownObject(9)), "{e}");
    let e = tr.clear_prompts(9).unwrap_err();
    assert!(matches!(e, TrackerError::UnknownObject(9)), "{e}");
    // refused prompts did not create objects
    assert_eq!(tr.object_ids(), vec![1]);

    tr.add_box(2, [60.0, 30.0, 90.0, 60.0], &[], &[]).unwrap();
    let e = tr.add_points(3, &[[5.0, 5.0]], &[1], true).unwrap_err();
    assert!(
        matches!(e, TrackerError::TooManyObjects { max: 2, id: 3 }),
        "{e}"
    );
    assert!(e.to_string().contains("at most 2 objects"), "{e}");

    // the stream goes on with both objects
    let outs = tr.track().unwrap();
    assert_eq!(outs.iter().map(|o| o.id).collect::<Vec<_>>(), vec![1, 2]);
    for t in 1..4 {
        let f = synthetic(t);
        tr.begin_frame(&rgb_frame(&f)).unwrap();
        let outs = tr.track().unwrap();
        assert_eq!(outs.len(), 2);
        assert!(outs.iter().all(|o| !o.is_cond));
        let masks = tr.frame_masks(&outs).unwrap();
        assert!(masks.iter().all(|m| m.len() == W * H));
    }
    // removing one frees a slot
    tr.remove_object(2).unwrap();
    tr.add_points(3, &[[5.0, 5.0]], &[1], true).unwrap();
    assert_eq!(tr.object_ids(), vec![1, 3]);
}

#[test]
fn pixel_layouts_and_strides_give_the_same_features() {
    let rgb = synthetic(5);
    let mut outs = Vec::new();
    // RGB, BGRx with padding at the end of each row, RGBA
    let stride = W * 4 + 8;
    let mut bgrx = vec![0u8; stride * H];
    let mut rgba = vec![0u8; W * H * 4];
    for y in 0..H {
        for x in 0..W {
            let s = (y * W + x) * 3;
            let d = y * stride + x * 4;
            bgrx[d] = rgb[s + 2];
            bgrx[d + 1] = rgb[s + 1];
            bgrx[d + 2] = rgb[s];
            bgrx[d + 3] = 0x55;
            let a = (y * W + x) * 4;
            rgba[a..a + 3].copy_from_slice(&rgb[s..s + 3]);
            rgba[a + 3] = 255;
        }
    }
    for frame in [
        rgb_frame(&rgb),
        Frame {
            data: &bgrx,
            width: W,
            height: H,
            stride,
            format: PixelFormat::Bgrx,
        },
        Frame {
            data: &rgba,
            width: W,
            height: H,
            stride: W * 4,
            format: PixelFormat::Rgba,
        },
    ] {
        let mut tr = tracker_with(TrackerConfig::default());
        tr.begin_frame(&frame).unwrap();
        let o = tr.add_points(1, &[[40.0, 30.0]], &[1], true).unwrap();
        outs.push(o.logits.data);
    }
    assert_eq!(outs[0], outs[1], "BGRx with row padding reads like RGB");
    assert_eq!(outs[0], outs[2], "RGBA reads like RGB");
}

fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// 2,000 frames, 3 objects: what the engine stores after frame 2,000 equals
/// what it stored after frame 50.
#[test]
fn memory_is_bounded_on_a_long_stream() {
    const FRAMES: usize = 2000;
    let mut tr = tracker_with(TrackerConfig::default());
    let s = tr.dims().s;
    // prepared S×S frames: no resize cost, the memory bank is what is measured
    let frames: Vec<Vec<u8>> = (0..16)
        .map(|t| {
            (0..s * s * 3)
                .map(|i| ((i * 7 + t * 13 + (i / (s * 3)) * 5) % 256) as u8)
                .collect()
        })
        .collect();
    let mut at_50 = None;
    let mut rss_50 = None;
    for t in 0..FRAMES {
        tr.begin_prepared_frame(&frames[t % frames.len()], 160, 120)
            .unwrap();
        if t == 0 {
            tr.add_points(1, &[[30.0, 30.0]], &[1], true).unwrap();
            tr.add_box(2, [80.0, 20.0, 150.0, 100.0], &[], &[]).unwrap();
        }
        if t == 10 {
            tr.add_points(3, &[[100.0, 90.0], [20.0, 100.0]], &[1, 0], true)
                .unwrap();
        }
        let outs = tr.track().unwrap();
        assert_eq!(outs.len(), if t < 10 { 2 } else { 3 });
        if t == 49 {
            at_50 = Some((tr.stored_bytes(), tr.stored_memories()));
            rss_50 = vm_rss_kib();
        }
    }
    let at_end = (tr.stored_bytes(), tr.stored_memories());
    let rss_end = vm_rss_kib();
    println!(
        "memory bank after frame 50: {:?} (bytes, memories), after frame {FRAMES}: {at_end:?}; \
         VmRSS {rss_50:?} KiB -> {rss_end:?} KiB",
        at_50.unwrap()
    );
    assert_eq!(Some(at_end), at_50);
    // 3 objects: 1 conditioning memory each + frames t-15..t (pointers reach 15 back)
    assert_eq!(at_end.1, 3 * (1 + 16));
}

/// A GPU provider that cannot be used is an error naming it, unless the CPU
/// fallback is allowed; then the graphs load on the CPU and the fallback is
/// reported.
#[test]
fn unavailable_gpu_provider_errors_or_falls_back() {
    use gstsam2::engine::model::{ExecutionProvider, ModelError};
    let rt = require_runtime();
    let model = ModelDir::open(&micro_dir()).expect("micro model");
    // The set-up library is the CPU build of ONNX Runtime: CUDA can never register
    // (and without the `cuda` feature it is not compiled in at all).
    let strict = SessionOptions {
        provider: ExecutionProvider::Cuda { device_id: 0 },
        ..SessionOptions::default()
    };
    let err = match Stages::load(&model, rt.environment(), &strict) {
        Err(e) => e,
        Ok(_) => panic!("CUDA cannot load with the CPU-only ONNX Runtime"),
    };
    assert!(
        matches!(
            err,
            ModelError::Provider {
                provider: "cuda",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("execution provider cuda"), "{err}");
    if cfg!(feature = "cuda") {
        // the set-up folder's library is the CPU build: said in words
        assert!(err.to_string().contains("is a CPU build"), "{err}");
    }
    println!("strict: {err}");
    let lenient = SessionOptions {
        fallback_to_cpu: true,
        ..strict
    };
    let stages = Stages::load(&model, rt.environment(), &lenient).expect("CPU fallback");
    let fallbacks = model.fallbacks();
    // said once: the first graph's fallback puts the whole model on the CPU
    assert_eq!(fallbacks.len(), 1, "{fallbacks:?}");
    assert!(fallbacks[0].contains("running on the CPU"), "{fallbacks:?}");
    tracks_one_click(stages, &model);
}

/// With a limit on conditioning frames in attention, repeated corrections do
/// not grow the memory bank either.
#[test]
fn conditioning_memory_is_bounded_with_a_limit() {
    let mut tr = tracker_with(TrackerConfig {
        max_cond_frames_in_attn: Some(2),
        ..TrackerConfig::default()
    });
    let mut counts = Vec::new();
    for t in 0..100 {
        let f = synthetic(t);
        tr.begin_frame(&rgb_frame(&f)).unwrap();
        if t == 0 {
            tr.add_points(1, &[[20.0, 16.0]], &[1], true).unwrap();
        }
        tr.track().unwrap();
        if t % 5 == 0 && t > 0 {
            // a correction on the frame just tracked: a new conditioning frame
            let o = tr.add_points(1, &[[70.0, 50.0]], &[0], true).unwrap();
            assert!(o.is_cond);
        }
        counts.push(tr.stored_memories());
    }
    println!(
        "memories held at frames 49 and 99: {} {}",
        counts[49], counts[99]
    );
    assert_eq!(counts[49], counts[99]);
    // 2 selected conditioning frames + frames t-15..t (some of them conditioning)
    assert!(counts[99] <= 2 + 16, "{}", counts[99]);
}

/// Clearing a correction on the current frame re-tracks the object there; an
/// object whose only prompt is cleared is dropped.
#[test]
fn clear_prompts_reverts_the_frame() {
    let mut tr = tracker_with(TrackerConfig::default());
    let f0 = synthetic(0);
    tr.begin_frame(&rgb_frame(&f0)).unwrap();
    tr.add_points(1, &[[20.0, 16.0]], &[1], true).unwrap();
    tr.track().unwrap();
    let f1 = synthetic(1);
    tr.begin_frame(&rgb_frame(&f1)).unwrap();
    let tracked = tr.track().unwrap().remove(0);
    assert!(!tracked.is_cond);
    let corrected = tr.add_points(1, &[[80.0, 50.0]], &[0], true).unwrap();
    assert!(corrected.is_cond);
    assert!(
        corrected.object_score != tracked.object_score,
        "the correction changes the output"
    );
    tr.clear_prompts(1).unwrap();
    let again = tr.track().unwrap().remove(0);
    assert!(!again.is_cond);
    assert_eq!(again.object_score, tracked.object_score);
    assert!(
        again.logits == tracked.logits,
        "re-tracking gives the tracked output"
    );
    // a new object whose only prompt is cleared before tracking disappears
    tr.add_points(2, &[[50.0, 30.0]], &[1], true).unwrap();
    tr.clear_prompts(2).unwrap();
    assert_eq!(tr.object_ids(), vec![1]);
}

/// With non_overlap_masks, no pixel belongs to two objects (they overlap
/// without it); boxes enclose their masks.
#[test]
fn non_overlapping_masks_and_boxes() {
    let (_, _, _, rgb) = read_png(&micro_dir().join("../golden/inputs/00000.png"));
    let overlap = |non_overlap_masks: bool| {
        let mut tr = tracker_with(TrackerConfig {
            non_overlap_masks,
            ..TrackerConfig::default()
        });
        tr.begin_prepared_frame(&rgb, 192, 108).unwrap();
        tr.add_points(1, &[[80.0, 45.0]], &[1], true).unwrap();
        tr.add_box(2, [106.0, 57.0, 137.0, 82.0], &[], &[]).unwrap();
        let outs = tr.track().unwrap();
        assert!(outs.iter().all(|o| o.object_score > 0.0));
        let masks = tr.frame_masks_with_boxes(&outs).unwrap();
        for m in &masks {
            let [x0, y0, x1, y1] = m.bbox.expect("non-empty mask");
            for (i, v) in m.mask.iter().enumerate() {
                let (x, y) = ((i % 192) as u32, (i / 192) as u32);
                let inside = x >= x0 && x < x1 && y >= y0 && y < y1;
                assert!(*v == 0 || inside, "pixel outside the box");
            }
        }
        masks[0]
            .mask
            .iter()
            .zip(&masks[1].mask)
            .filter(|(a, b)| **a != 0 && **b != 0)
            .count()
    };
    assert!(
        overlap(false) > 0,
        "the two objects overlap without the rule"
    );
    assert_eq!(overlap(true), 0, "a pixel in two objects");
}

/// A golden frame (192x108 RGB) as an engine frame.
fn packed(png: &common::Png) -> gstsam2::engine::step::FrameInput<'_> {
    gstsam2::engine::step::FrameInput::Packed(Frame {
        data: &png.3,
        width: png.0,
        height: png.1,
        stride: png.0 * 3,
        format: PixelFormat::Rgb,
    })
}

/// `Tracker::step`'s removals: a click removes the object under it on the
/// previous result, once; a second click or removal of the same object on
/// the frame is refused, never an error that would end the stream; a reset
/// releases every id; corrections cannot remove.
#[test]
fn removals_on_one_frame_are_refused_not_fatal() {
    use gstsam2::engine::step::Prompt;
    let mut tr = tracker_with(TrackerConfig::default());
    // the golden frames, where the micro model's objects have pixels
    let golden = |t: usize| {
        let path = common::fixtures().join(format!("golden/frames/{t:05}.png"));
        read_png(&path)
    };
    let point = |id| Prompt::Points {
        id,
        clicks: vec![([80.0, 45.0], true)],
        bbox: None,
        clear: false,
    };
    let f0 = golden(0);
    let w = f0.0;
    let r = tr.step(packed(&f0), &[point(1)]).unwrap();
    assert_eq!(r.objects.len(), 1);
    let p = r.objects[0]
        .mask
        .iter()
        .position(|v| *v != 0)
        .expect("object 1 has pixels");
    let (x, y) = ((p % w) as f32, (p / w) as f32);
    let f1 = golden(1);
    let r = tr
        .step(
            packed(&f1),
            &[
                Prompt::RemoveAt { x, y },
                Prompt::RemoveAt { x, y },
                Prompt::Remove { id: 1 },
            ],
        )
        .expect("no failure");
    assert!(r.objects.is_empty() && tr.object_ids().is_empty());
    assert_eq!(r.released, vec![1]);
    assert!(
        matches!(
            r.refused.as_slice(),
            [
                (1, TrackerError::NothingThere),
                (2, TrackerError::UnknownObject(1))
            ]
        ),
        "{:?}",
        r.refused
    );
    // a reset releases the ids it drops
    let f2 = golden(2);
    tr.step(packed(&f2), &[point(4), point(5)]).unwrap();
    let r = tr.step(packed(&f2), &[Prompt::Reset, point(6)]).unwrap();
    assert_eq!(r.released, vec![4, 5]);
    assert_eq!(tr.object_ids(), vec![6]);
    // corrections are points, boxes and masks only
    let r = tr
        .correct(&[Prompt::Remove { id: 6 }, Prompt::Reset])
        .unwrap();
    assert!(
        r.refused
            .iter()
            .all(|(_, e)| matches!(e, TrackerError::NotACorrection)),
        "{:?}",
        r.refused
    );
    assert_eq!(r.refused.len(), 2);
    assert_eq!(tr.object_ids(), vec![6]);
}

/// The CUDA build of ONNX Runtime on a machine without CUDA: asking for the
/// CUDA provider names every missing library at once (ONNX Runtime names
/// only the first), and the CPU fallback still runs.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs the onnxruntime-gpu build on a machine without CUDA: \
            scripts/setup.sh --ort-version gpu-1.31.1, then ORT_DYLIB_PATH=\
            .ort/gpu-1.31.1/lib/libonnxruntime.so.1.31.1 cargo test --features cuda \
            --test engine -- --ignored gpu_build (.ci/run does)"]
fn gpu_build_without_cuda_names_the_missing_libraries() {
    use gstsam2::engine::model::ExecutionProvider;
    let rt = require_runtime();
    let dir = rt.library().parent().expect("a library path").to_path_buf();
    assert!(
        dir.join("libonnxruntime_providers_cuda.so").is_file(),
        "ORT_DYLIB_PATH must name the onnxruntime-gpu build, not {}",
        rt.library().display()
    );
    let model = ModelDir::open(&micro_dir()).expect("micro model");
    let strict = SessionOptions {
        provider: ExecutionProvider::Cuda { device_id: 0 },
        ..SessionOptions::default()
    };
    let err = match Stages::load(&model, rt.environment(), &strict) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("CUDA loaded: this machine has CUDA, the test is for one without"),
    };
    println!("{err}");
    for lib in [
        "libcublasLt.so.13",
        "libcublas.so.13",
        "libcurand.so.10",
        "libcudart.so.13",
        "libcuda.so.1",
        "libcudnn.so.9",
    ] {
        assert!(err.contains(lib), "{lib} not named: {err}");
    }
    assert!(err.contains("LD_LIBRARY_PATH"), "{err}");
    let lenient = SessionOptions {
        fallback_to_cpu: true,
        ..strict
    };
    let stages = Stages::load(&model, rt.environment(), &lenient).expect("CPU fallback");
    tracks_one_click(stages, &model);
}

/// Where the graphs run is known and logged: with the CPU provider every
/// graph, model and helpers, is placed whole on ONNX Runtime's CPU provider
/// and the tensors between them live in host memory.
#[test]
fn placements_are_read_from_onnx_runtime() {
    let rt = require_runtime();
    let model = ModelDir::open(&micro_dir()).expect("micro model");
    let stages = Stages::load(&model, rt.environment(), &SessionOptions::default()).unwrap();
    assert_eq!(stages.device(), "cpu");
    let placements = stages.placements();
    assert_eq!(
        placements.len(),
        8,
        "4 model graphs and 4 helpers: {placements:?}"
    );
    for (graph, p) in placements {
        assert_eq!(p.providers.len(), 1, "{graph}: {p:?}");
        assert_eq!(p.providers[0].provider, "CPUExecutionProvider", "{graph}");
        assert!(p.providers[0].nodes >= 1, "{graph}: {p:?}");
        assert!(p.compute_on_cpu().is_empty(), "{graph}");
    }
    assert_eq!(placements[0].0, "image_encoder");
    assert!(
        placements[0].1.providers[0].nodes > 50,
        "{:?}",
        placements[0]
    );
}
