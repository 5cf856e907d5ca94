// SPDX-License-Identifier: MPL-2.0

//! The streaming engine against the official SAM2VideoPredictor on the golden
//! scenario (tests/fixtures/golden, made by models/make_golden.py): for every
//! frame and object, mask IoU >= 0.99, identical object-score sign, low-res
//! logits within 1e-3. Prints the figures.

mod common;

use std::path::Path;

use common::{fixtures, mask_iou, micro_dir, read_png, require_runtime};
use gstsam2::engine::model::{ModelDir, SessionOptions};
use gstsam2::engine::stages::Stages;
use gstsam2::engine::tracker::{Tracker, TrackerConfig};
use serde_json::Value;

const MIN_MASK_IOU: f64 = 0.99;
const MAX_LOGIT_DIFF: f32 = 1e-3;

fn tracker() -> Tracker {
    let rt = require_runtime();
    let model = ModelDir::open(&micro_dir()).expect("micro model");
    let stages =
        Stages::load(&model, rt.environment(), &SessionOptions::default()).expect("graphs load");
    Tracker::new(stages, model.manifest(), TrackerConfig::default()).expect("tracker")
}

fn points(p: &Value) -> Vec<[f32; 2]> {
    p["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|xy| {
            [
                xy[0].as_f64().unwrap() as f32,
                xy[1].as_f64().unwrap() as f32,
            ]
        })
        .collect()
}

fn labels(p: &Value) -> Vec<i32> {
    p["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as i32)
        .collect()
}

fn apply(tracker: &mut Tracker, p: &Value, dir: &Path) {
    let id = p["obj_id"].as_u64().unwrap() as u32;
    match p["kind"].as_str().unwrap() {
        "points" => {
            tracker
                .add_points(id, &points(p), &labels(p), true)
                .expect("points prompt");
        }
        "box" => {
            let b: Vec<f32> = p["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            tracker
                .add_box(id, [b[0], b[1], b[2], b[3]], &[], &[])
                .expect("box prompt");
        }
        "mask" => {
            let (_, _, color, data) = read_png(&dir.join(p["file"].as_str().unwrap()));
            assert_eq!(color, png::ColorType::Grayscale);
            let mask: Vec<u8> = data.iter().map(|v| u8::from(*v > 127)).collect();
            tracker.add_mask(id, &mask).expect("mask prompt");
        }
        "remove" => tracker.remove_object(id).expect("remove"),
        other => panic!("unknown prompt kind {other}"),
    }
}

#[test]
fn micro_golden_parity() {
    let dir = fixtures().join("golden");
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let bin = std::fs::read(dir.join("golden.bin")).unwrap();
    let (w, h) = (
        golden["frame_size"][0].as_u64().unwrap() as usize,
        golden["frame_size"][1].as_u64().unwrap() as usize,
    );
    let scenario = golden["scenario"].as_array().unwrap();
    let mut tracker = tracker();
    let l = tracker.dims().l;

    let mut min_iou = 1.0f64;
    let mut worst_iou_at = (0, 0);
    let mut max_logit = 0f32;
    let mut max_score = 0f32;
    let mut max_pred_iou = 0f32;
    let mut sign_mismatch = Vec::new();
    let mut entries = 0;
    for frame in golden["frames"].as_array().unwrap() {
        let t = frame["frame"].as_u64().unwrap();
        let (sw, sh, color, rgb) = read_png(&dir.join(format!("inputs/{t:05}.png")));
        assert_eq!(color, png::ColorType::Rgb);
        assert_eq!((sw, sh), (tracker.dims().s, tracker.dims().s));
        assert_eq!(tracker.begin_prepared_frame(&rgb, w, h).unwrap(), t);
        for p in scenario
            .iter()
            .filter(|p| p["frame"] == t && p["when"] == "before")
        {
            apply(&mut tracker, p, &dir);
        }
        tracker.track().expect("track");
        for p in scenario
            .iter()
            .filter(|p| p["frame"] == t && p["when"] == "after")
        {
            apply(&mut tracker, p, &dir);
        }
        let mut outs = tracker.outputs();
        outs.sort_by_key(|o| o.id);
        let masks = tracker.frame_masks(&outs).unwrap();
        let want = frame["objects"].as_array().unwrap();
        let ids: Vec<u32> = outs.iter().map(|o| o.id).collect();
        let want_ids: Vec<u32> = want
            .iter()
            .map(|o| o["obj_id"].as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, want_ids, "objects on frame {t}");
        for ((o, mask), g) in outs.iter().zip(&masks).zip(want) {
            entries += 1;
            let lo = g["logits_offset"].as_u64().unwrap() as usize;
            let mo = g["mask_offset"].as_u64().unwrap() as usize;
            let ref_logits: Vec<f32> = bin[lo..lo + l * l * 4]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let d = o
                .logits
                .data
                .iter()
                .zip(&ref_logits)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            max_logit = max_logit.max(d);
            if std::env::var_os("SAM2TRACK_PARITY_VERBOSE").is_some() {
                println!(
                    "frame {t:2} object {}: |logit diff| {d:.2e} score {:+.4} (ref {:+.4}) cond {}",
                    o.id,
                    o.object_score,
                    g["object_score"].as_f64().unwrap(),
                    o.is_cond
                );
            }
            let ref_mask: Vec<u8> = (0..w * h)
                .map(|i| (bin[mo + i / 8] >> (7 - i % 8)) & 1)
                .collect();
            let iou = mask_iou(mask, &ref_mask);
            if iou < min_iou {
                min_iou = iou;
                worst_iou_at = (t, o.id);
            }
            let score = g["object_score"].as_f64().unwrap() as f32;
            max_score = max_score.max((o.object_score - score).abs());
            if (o.object_score > 0.0) != (score > 0.0) {
                sign_mismatch.push((t, o.id, o.object_score, score));
            }
            max_pred_iou = max_pred_iou.max((o.iou - g["iou"].as_f64().unwrap() as f32).abs());
            assert_eq!(
                o.is_cond,
                g["is_cond"].as_bool().unwrap(),
                "is_cond of {} on {t}",
                o.id
            );
        }
    }
    println!(
        "golden parity over {entries} frame/object pairs: min mask IoU {min_iou:.5} \
         (frame {}, object {}), max |logit diff| {max_logit:.3e}, max |score diff| \
         {max_score:.3e}, max |IoU-prediction diff| {max_pred_iou:.3e}, score sign \
         mismatches {}",
        worst_iou_at.0,
        worst_iou_at.1,
        sign_mismatch.len()
    );
    assert!(
        sign_mismatch.is_empty(),
        "object-score sign differs: {sign_mismatch:?}"
    );
    assert!(min_iou >= MIN_MASK_IOU, "min mask IoU {min_iou}");
    assert!(max_logit <= MAX_LOGIT_DIFF, "max logit diff {max_logit}");
}
