// SPDX-License-Identifier: MPL-2.0

//! The committed micro EdgeTAM model (tests/fixtures/micro-edgetam, written by
//! `models/export.py --config micro-edgetam --random-weights --seed 0`): its
//! manifest and graphs pass the contract with EdgeTAM's memory layout (a
//! memory frame is the spatial perceiver's latents, not the feature grid), and
//! the memory encoder's output feeds memory attention, and the tracker runs it,
//! in parity with the official EdgeTAM predictor on its golden scenario
//! (tests/fixtures/golden-edgetam).

mod common;

use common::{f32_outputs, micro_edgetam_dir, require_runtime, sha256_hex};
use gstsam2::engine::{manifest, model::ModelDir};

fn micro_edgetam() -> ModelDir {
    ModelDir::open(&micro_edgetam_dir()).expect("tests/fixtures/micro-edgetam opens")
}

/// Deterministic, varied test values.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn f32_tensor(shape: Vec<i64>, data: Vec<f32>) -> ort::value::DynValue {
    ort::value::Tensor::from_array((shape, data))
        .expect("tensor")
        .into_dyn()
}

#[test]
fn micro_edgetam_opens_and_its_graphs_pass_the_contract() {
    let m = micro_edgetam();
    let mf = m.manifest();
    assert_eq!(mf.model.family, "micro-edgetam");
    assert_eq!(mf.memory_tokens(), 24);
    assert_ne!(mf.memory_tokens(), mf.feat_size * mf.feat_size);
    for graph in manifest::GRAPH_NAMES {
        assert_eq!(
            mf.graphs[graph].sha256,
            sha256_hex(&m.graph_path(graph)),
            "{graph}: model.json records another file (re-export the fixture)"
        );
    }
    let rt = require_runtime();
    m.check_graphs(rt.environment())
        .expect("every micro EdgeTAM graph matches the contract");
}

/// Memory encoder (mask + features -> perceiver latents) for two objects, its
/// output as the memory of memory attention: the shapes chain, the values are
/// finite and the objects' memories differ.
#[test]
fn micro_edgetam_memory_encoder_feeds_memory_attention() {
    let rt = require_runtime();
    let m = micro_edgetam();
    let mf = m.manifest();
    let (c, cm, h, l) = (
        i64::from(mf.hidden_dim),
        i64::from(mf.mem_dim),
        i64::from(mf.feat_size),
        i64::from(mf.low_res_mask_size),
    );
    let mt = i64::from(mf.memory_tokens());
    let feat_n = (c * h * h) as usize;
    let vision_feat = values(feat_n, 1);
    let vision_pos = values(feat_n, 2);

    let mut enc = m
        .load_checked(rt.environment(), manifest::MEMORY_ENCODER)
        .unwrap();
    let masks = values((2 * l * l) as usize, 3)
        .iter()
        .map(|x| x * 8.0)
        .collect();
    let out = enc
        .run(ort::inputs![
            "vision_feat" => f32_tensor(vec![1, c, h, h], vision_feat.clone()),
            "masks" => f32_tensor(vec![2, 1, l, l], masks),
            "is_mask_from_pts" => f32_tensor(vec![2], vec![1.0, 0.0]),
            "object_score_logits" => f32_tensor(vec![2, 1], vec![2.0, -3.0]),
        ])
        .expect("memory encoder runs");
    let out = f32_outputs(&out);
    let (shape, memory) = &out["maskmem_features"];
    assert_eq!(shape, &vec![2, mt, cm]);
    assert!(memory.iter().all(|x| x.is_finite()));
    let per_object = (mt * cm) as usize;
    assert_ne!(memory[..per_object], memory[per_object..]);

    let mut att = m
        .load_checked(rt.environment(), manifest::MEMORY_ATTENTION)
        .unwrap();
    let index = ort::value::Tensor::from_array((vec![2i64, 1], vec![6i64, 6]))
        .unwrap()
        .into_dyn();
    let out = att
        .run(ort::inputs![
            "vision_feat" => f32_tensor(vec![1, c, h, h], vision_feat),
            "vision_pos" => f32_tensor(vec![1, c, h, h], vision_pos),
            "memory" => f32_tensor(vec![2, 1, mt, cm], memory.clone()),
            "memory_tpos_index" => index,
            "memory_valid" => f32_tensor(vec![2, 1], vec![1.0, 1.0]),
            "obj_ptrs" => f32_tensor(vec![2, 1, c], values((2 * c) as usize, 4)),
            "obj_ptr_tpos" => f32_tensor(vec![2, 1], vec![0.0, 0.0]),
            "obj_ptr_valid" => f32_tensor(vec![2, 1], vec![1.0, 1.0]),
        ])
        .expect("memory attention runs on the perceiver's memory");
    let out = f32_outputs(&out);
    let (shape, feat) = &out["pix_feat_with_mem"];
    assert_eq!(shape, &vec![2, c, h, h]);
    assert!(feat.iter().all(|x| x.is_finite()));
    assert_ne!(
        feat[..feat_n],
        feat[feat_n..],
        "memory changes the features"
    );
}

/// The tracker runs the micro EdgeTAM like a SAM 2 model: clicks, a box, a
/// mask and an object added mid-stream, tracked frame after frame with every
/// stored memory of the perceiver's size (`memory_tokens` × Cm bf16 plus the
/// C-float pointer), the bank bounded. (Parity with the official EdgeTAM
/// predictor: `micro_edgetam_golden_parity`.)
#[test]
fn tracker_runs_micro_edgetam() {
    use gstsam2::engine::stages::Stages;
    use gstsam2::engine::tracker::{Frame, PixelFormat, Tracker, TrackerConfig};
    const W: usize = 96;
    const H: usize = 64;
    let rt = require_runtime();
    let model = micro_edgetam();
    let m = model.manifest();
    let stages = Stages::load(&model, rt.environment(), &Default::default()).expect("loads");
    let mut tr = Tracker::new(stages, m, TrackerConfig::default()).expect("tracker");
    let per_memory = (m.memory_tokens() * m.mem_dim * 2 + m.hidden_dim * 4) as usize;
    assert_ne!(
        m.memory_tokens(),
        m.feat_size * m.feat_size,
        "EdgeTAM compresses memories"
    );
    let frame = |t: usize| -> Vec<u8> {
        (0..W * H * 3)
            .map(|i| {
                let (p, c) = (i / 3, i % 3);
                let (x, y) = (p % W, p / W);
                let inside = x.abs_diff(20 + t * 3) < 10 && y.abs_diff(20 + t) < 10;
                if inside {
                    [230, 40, 90][c]
                } else {
                    ((x * 2 + y * c + t) % 256) as u8
                }
            })
            .collect()
    };
    let mut most = 0;
    for t in 0..14 {
        let rgb = frame(t);
        tr.begin_frame(&Frame {
            data: &rgb,
            width: W,
            height: H,
            stride: W * 3,
            format: PixelFormat::Rgb,
        })
        .expect("frame");
        if t == 0 {
            tr.add_points(1, &[[20.0, 20.0], [60.0, 50.0]], &[1, 0], true)
                .unwrap();
            tr.add_box(2, [50.0, 10.0, 90.0, 40.0], &[], &[]).unwrap();
            let mut mask = vec![0u8; W * H];
            for y in 40..60 {
                mask[y * W..y * W + 30].fill(1);
            }
            tr.add_mask(3, &mask).unwrap();
        }
        if t == 6 {
            tr.add_points(4, &[[70.0, 30.0]], &[1], true).unwrap();
        }
        let out = tr.track().expect("tracks");
        let want = if t >= 6 { 4 } else { 3 };
        assert_eq!(out.len(), want, "frame {t}");
        for o in &out {
            assert!(
                o.logits.data.iter().all(|v| v.is_finite()),
                "frame {t} object {}",
                o.id
            );
        }
        assert_eq!(
            tr.stored_bytes(),
            tr.stored_memories() * per_memory,
            "frame {t}"
        );
        most = most.max(tr.stored_memories());
    }
    // 4 objects, each: its conditioning frame + at most max(num_maskmem - 1, max_ptrs - 1) others
    let reach = (m.settings.num_maskmem - 1).max(m.settings.max_obj_ptrs_in_encoder - 1) as usize;
    assert!(most <= 4 * (1 + reach), "{most} memories");
    println!("micro EdgeTAM: 14 frames, 4 objects, at most {most} memories of {per_memory} bytes");
}

/// The golden scenario of the official EdgeTAM predictor
/// (tests/fixtures/golden-edgetam, made by `models/make_golden.py --family
/// edgetam`) through the engine with the micro EdgeTAM: for every frame and
/// object, mask IoU >= 0.99, identical object-score sign, low-res logits
/// within 1e-3. The official EdgeTAM predictor is the older SAM 2 one (new
/// objects only before tracking starts, a prompt frame is a conditioning frame
/// for every object), so its scenario adds every object on frame 0 and prompts
/// every live object on each later prompt frame: no object mid-stream (see
/// EDGETAM_SCENARIO in models/make_golden.py).
#[test]
fn micro_edgetam_golden_parity() {
    use common::golden::{self, Summary};
    use common::{fixtures, session_options};
    use gstsam2::engine::stages::Stages;
    use gstsam2::engine::tracker::{Tracker, TrackerConfig};
    let rt = require_runtime();
    let model = micro_edgetam();
    let stages = Stages::load(&model, rt.environment(), &session_options()).expect("loads");
    let mut tracker =
        Tracker::new(stages, model.manifest(), TrackerConfig::default()).expect("tracker");
    let entries = golden::run_scenario(&mut tracker, &fixtures().join("golden-edgetam"))
        .unwrap_or_else(|e| panic!("EdgeTAM golden scenario: {e}"));
    let s = Summary::of(&entries);
    s.assert_fp32_parity("EdgeTAM golden parity");
}
