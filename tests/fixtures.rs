// SPDX-License-Identifier: MPL-2.0

//! The committed fixtures (tests/fixtures/micro, tests/fixtures/golden) are
//! complete and consistent, match the scenario the engine parity tests rely on,
//! and the micro graphs run in ONNX Runtime from Rust.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{f32_outputs, fixtures, micro_dir, read_png, require_runtime, sha256_hex};
use gstsam2::engine::{manifest, model::ModelDir};
use serde_json::Value;

fn golden() -> Value {
    let path = fixtures().join("golden/golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with models/make_golden.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("golden.json is JSON")
}

fn micro() -> ModelDir {
    ModelDir::open(&micro_dir()).expect("tests/fixtures/micro opens")
}

fn u(v: &Value) -> usize {
    v.as_u64().expect("unsigned integer") as usize
}

/// Width, height, bit depth and colour type from a PNG's IHDR chunk.
fn png_header(path: &Path) -> (u32, u32, u8, u8) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20), bytes[24], bytes[25])
}

#[test]
fn golden_was_made_with_the_committed_micro_model() {
    let g = golden();
    let m = micro();
    assert_eq!(g["model_dir"], "../micro");
    for graph in manifest::GRAPH_NAMES {
        let recorded = g["model_graph_sha256"][graph]
            .as_str()
            .expect("sha256 recorded");
        assert_eq!(recorded, m.manifest().graphs[graph].sha256, "{graph}");
        assert_eq!(recorded, sha256_hex(&m.graph_path(graph)), "{graph} file");
    }
}

#[test]
fn golden_frames_and_prepared_inputs_are_complete() {
    let g = golden();
    let n = u(&g["num_frames"]);
    assert!(n >= 24, "at least 24 frames, got {n}");
    assert!(n >= 16, "clips must be >= 16 frames for streaming parity");
    let (w, h) = (
        g["frame_size"][0].as_u64().unwrap() as u32,
        g["frame_size"][1].as_u64().unwrap() as u32,
    );
    let s = micro().manifest().image_size;
    let dir = fixtures().join("golden");
    for i in 0..n {
        let frame = dir.join("frames").join(format!("{i:05}.png"));
        assert_eq!(png_header(&frame), (w, h, 8, 2), "{}", frame.display());
        let input = dir.join("inputs").join(format!("{i:05}.png"));
        assert_eq!(png_header(&input), (s, s, 8, 2), "{}", input.display());
    }
    assert!(!dir.join("frames").join(format!("{n:05}.png")).exists());
}

#[test]
fn golden_binary_layout_matches_the_index() {
    let g = golden();
    let m = micro();
    let l = m.manifest().low_res_mask_size as usize;
    let (w, h) = (u(&g["frame_size"][0]), u(&g["frame_size"][1]));
    let bin = std::fs::read(fixtures().join("golden/golden.bin")).expect("golden.bin");
    let logits_len = l * l * 4;
    let mask_len = (w * h).div_ceil(8);
    let mut expected_offset = 0;
    for frame in g["frames"].as_array().unwrap() {
        for obj in frame["objects"].as_array().unwrap() {
            let lo = u(&obj["logits_offset"]);
            let mo = u(&obj["mask_offset"]);
            assert_eq!(lo, expected_offset, "entries are contiguous");
            assert_eq!(mo, lo + logits_len);
            expected_offset = mo + mask_len;
            assert!(expected_offset <= bin.len());
            let logits: Vec<f32> = bin[lo..mo]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert!(logits.iter().all(|v| v.is_finite()));
            let ones: usize = bin[mo..mo + mask_len]
                .iter()
                .map(|b| b.count_ones() as usize)
                .sum();
            assert_eq!(ones, u(&obj["mask_area"]), "mask popcount = mask_area");
            let score = obj["object_score"].as_f64().unwrap();
            if score <= 0.0 {
                assert_eq!(ones, 0, "an absent object has an empty mask");
            }
        }
    }
    assert_eq!(expected_offset, bin.len(), "no trailing bytes");
}

#[test]
fn golden_scenario_covers_every_prompt_kind() {
    let g = golden();
    let scenario = g["scenario"].as_array().unwrap();
    let has = |pred: &dyn Fn(&Value) -> bool| scenario.iter().any(pred);
    let frame = |p: &Value| u(&p["frame"]);
    let labels = |p: &Value| -> Vec<i64> {
        p["labels"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_i64().unwrap()).collect())
            .unwrap_or_default()
    };
    assert!(has(&|p| p["kind"] == "points"
        && frame(p) == 0
        && labels(p) == [1]));
    assert!(has(&|p| p["kind"] == "box" && frame(p) == 0));
    assert!(has(&|p| p["kind"] == "points"
        && frame(p) > 0
        && p["when"] == "after"
        && labels(p).contains(&0)));
    assert!(has(&|p| p["when"] == "before"
        && frame(p) > 0
        && p["kind"] != "remove"));
    assert!(has(&|p| p["kind"] == "mask"));
    assert!(has(&|p| p["kind"] == "remove"));

    // per frame: the objects present follow the scenario
    let mut first_prompt: BTreeMap<u64, usize> = BTreeMap::new();
    let mut removed: BTreeMap<u64, usize> = BTreeMap::new();
    let mut prompted: BTreeSet<(usize, u64)> = BTreeSet::new();
    for p in scenario {
        let id = p["obj_id"].as_u64().unwrap();
        if p["kind"] == "remove" {
            removed.insert(id, frame(p));
        } else {
            first_prompt.entry(id).or_insert(frame(p));
            prompted.insert((frame(p), id));
        }
    }
    let mut signs = (0, 0);
    for fr in g["frames"].as_array().unwrap() {
        let t = u(&fr["frame"]);
        let ids: BTreeSet<u64> = fr["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["obj_id"].as_u64().unwrap())
            .collect();
        let want: BTreeSet<u64> = first_prompt
            .iter()
            .filter(|(id, f)| **f <= t && removed.get(id).is_none_or(|r| t < *r))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids, want, "objects on frame {t}");
        for o in fr["objects"].as_array().unwrap() {
            let id = o["obj_id"].as_u64().unwrap();
            let cond = o["is_cond"].as_bool().unwrap();
            assert_eq!(cond, prompted.contains(&(t, id)), "is_cond of {id} on {t}");
            if o["object_score"].as_f64().unwrap() > 0.0 {
                signs.0 += 1;
            } else {
                signs.1 += 1;
            }
        }
    }
    assert!(
        signs.0 > 0 && signs.1 > 0,
        "present and absent entries: {signs:?}"
    );
}

/// The image encoder of the micro model, run from Rust on two golden frames:
/// contract shapes, finite values, a constant position encoding and
/// frame-dependent features.
#[test]
fn micro_image_encoder_runs_on_golden_frames() {
    let rt = require_runtime();
    let m = micro();
    let mf = m.manifest();
    let mut session = m
        .load_checked(rt.environment(), manifest::IMAGE_ENCODER)
        .expect("image encoder loads and matches the contract");
    let s = mf.image_size as usize;
    let mut run = |i: usize| -> BTreeMap<String, (Vec<i64>, Vec<f32>)> {
        let path = fixtures().join(format!("golden/inputs/{i:05}.png"));
        let (w, h, color, rgb) = read_png(&path);
        assert_eq!(color, png::ColorType::Rgb, "{}", path.display());
        assert_eq!((w, h), (s, s));
        // the official normalisation: (u8 / 255 in f64) as f32, then (x - mean) / std
        let mut data = vec![0f32; 3 * s * s];
        for (p, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let x = (f64::from(px[c]) * mf.preprocess.scale) as f32;
                data[c * s * s + p] = (x - mf.preprocess.mean[c]) / mf.preprocess.std[c];
            }
        }
        let input = ort::value::Tensor::from_array((vec![1i64, 3, s as i64, s as i64], data))
            .expect("input tensor");
        let outputs = session
            .run(ort::inputs!["image" => input])
            .expect("image encoder runs");
        f32_outputs(&outputs)
    };
    let a = run(0);
    let b = run(20);
    let h = i64::from(mf.feat_size);
    let c = i64::from(mf.hidden_dim);
    let [c0, c1] = mf.high_res_channels.map(i64::from);
    assert_eq!(a["high_res_feat_0"].0, vec![1, c0, 4 * h, 4 * h]);
    assert_eq!(a["high_res_feat_1"].0, vec![1, c1, 2 * h, 2 * h]);
    assert_eq!(a["vision_feat"].0, vec![1, c, h, h]);
    assert_eq!(a["vision_pos"].0, vec![1, c, h, h]);
    for (_, (_, v)) in a.iter().chain(b.iter()) {
        assert!(v.iter().all(|x| x.is_finite()));
    }
    assert_eq!(
        a["vision_pos"].1, b["vision_pos"].1,
        "position encoding is constant"
    );
    let diff = a["vision_feat"]
        .1
        .iter()
        .zip(&b["vision_feat"].1)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        diff > 1e-3,
        "features depend on the frame (max diff {diff})"
    );
}
