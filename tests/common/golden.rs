// SPDX-License-Identifier: MPL-2.0

//! The golden scenario (tests/fixtures/golden, made by models/make_golden.py)
//! through a tracker, every frame/object compared with the official
//! predictor's output. Shared by tests/engine_parity.rs (through `common`)
//! and examples/gpu_check.rs (which includes this file next to images.rs),
//! so that the parity can also be run on a GPU provider.

use std::path::Path;

use gstsam2::engine::step::{FrameInput, Prompt};
use gstsam2::engine::tracker::Tracker;
use serde_json::Value;

use super::images::{decode_png, mask_iou};

/// Smallest mask IoU the fp32 engine must keep against the official predictor.
pub const MIN_MASK_IOU: f64 = 0.99;
/// Largest |low-res logit difference| the fp32 engine may have.
pub const MAX_LOGIT_DIFF: f32 = 1e-3;

type Result<T> = std::result::Result<T, String>;

/// The engine prompt of one golden-scenario prompt.
fn prompt(p: &Value, dir: &Path) -> Result<Prompt> {
    let id = p["obj_id"].as_u64().ok_or("prompt without obj_id")? as u32;
    let numbers = |key: &str| -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for v in p[key]
            .as_array()
            .ok_or_else(|| format!("prompt without {key}"))?
        {
            match v.as_array() {
                Some(xy) => out.extend(xy.iter().filter_map(|c| c.as_f64()).map(|c| c as f32)),
                None => out.push(v.as_f64().ok_or_else(|| format!("bad {key}"))? as f32),
            }
        }
        Ok(out)
    };
    Ok(match p["kind"].as_str().unwrap_or("") {
        "points" => {
            let labels = numbers("labels")?;
            Prompt::Points {
                id,
                clicks: numbers("points")?
                    .chunks_exact(2)
                    .zip(labels)
                    .map(|(xy, l)| ([xy[0], xy[1]], l == 1.0))
                    .collect(),
                bbox: None,
                clear: true,
            }
        }
        "box" => {
            let b = numbers("box")?;
            if b.len() != 4 {
                return Err(format!("box prompt with {} numbers", b.len()));
            }
            Prompt::Points {
                id,
                clicks: Vec::new(),
                bbox: Some([b[0], b[1], b[2], b[3]]),
                clear: true,
            }
        }
        "mask" => {
            let file = p["file"].as_str().ok_or("mask prompt without file")?;
            let (mw, mh, color, data) = decode_png(&dir.join(file))?;
            if color != png::ColorType::Grayscale {
                return Err(format!("{file}: not a grayscale PNG"));
            }
            Prompt::Mask {
                id,
                width: mw,
                height: mh,
                data: data.iter().map(|v| u8::from(*v > 127)).collect(),
            }
        }
        "remove" => Prompt::Remove { id },
        other => return Err(format!("unknown prompt kind {other:?}")),
    })
}

/// One frame/object pair of the golden scenario: the engine against the
/// official predictor.
pub struct Entry {
    pub frame: u64,
    pub id: u32,
    pub iou: f64,
    pub logit_diff: f32,
    pub score: f32,
    pub ref_score: f32,
    pub pred_iou_diff: f32,
}

/// Runs the golden scenario in `dir` (golden.json, golden.bin, inputs/,
/// prompt masks) through `tracker` and compares every frame/object with the
/// official predictor's output. `Err`: the run itself went wrong (a graph
/// error, a refused prompt, other objects or conditioning frames than the
/// official ones); differences in values are in the entries.
pub fn run_scenario(tracker: &mut Tracker, dir: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read_to_string(dir.join("golden.json"))
        .map_err(|e| format!("{}: {e}", dir.join("golden.json").display()))?;
    let golden: Value = serde_json::from_str(&text).map_err(|e| format!("golden.json: {e}"))?;
    let bin = std::fs::read(dir.join("golden.bin"))
        .map_err(|e| format!("{}: {e}", dir.join("golden.bin").display()))?;
    let size = |i: usize| golden["frame_size"][i].as_u64().map(|v| v as usize);
    let (w, h) = size(0).zip(size(1)).ok_or("golden.json: no frame_size")?;
    let scenario = golden["scenario"]
        .as_array()
        .ok_or("golden.json: no scenario")?;
    let frames = golden["frames"]
        .as_array()
        .ok_or("golden.json: no frames")?;
    // the inputs folder, relative to `dir` (the EdgeTAM golden shares the SAM 2 golden's)
    let inputs = dir.join(golden["inputs_dir"].as_str().unwrap_or("inputs"));
    let (s, l) = (tracker.dims().s, tracker.dims().l);
    let mut entries = Vec::new();
    for frame in frames {
        let t = frame["frame"].as_u64().ok_or("frame without index")?;
        let input_png = inputs.join(format!("{t:05}.png"));
        let (sw, sh, color, rgb) = decode_png(&input_png)?;
        if color != png::ColorType::Rgb || (sw, sh) != (s, s) {
            return Err(format!(
                "{} is not an RGB {s}x{s} image (the model's input size)",
                input_png.display()
            ));
        }
        let prompts = |when: &str| -> Result<Vec<Prompt>> {
            scenario
                .iter()
                .filter(|p| p["frame"] == t && p["when"] == when)
                .map(|p| prompt(p, dir))
                .collect()
        };
        let input = FrameInput::Prepared {
            rgb: &rgb,
            width: w,
            height: h,
        };
        let mut result = tracker
            .step(input, &prompts("before")?)
            .map_err(|e| format!("frame {t}: {e}"))?;
        if result.index != Some(t) {
            return Err(format!("frame {t} came out as {:?}", result.index));
        }
        let after = prompts("after")?;
        if !after.is_empty() {
            if !result.refused.is_empty() {
                return Err(format!("frame {t}: refused {:?}", result.refused));
            }
            result = tracker
                .correct(&after)
                .map_err(|e| format!("frame {t}, corrections: {e}"))?;
        }
        if !result.refused.is_empty() {
            return Err(format!("frame {t}: refused {:?}", result.refused));
        }
        let mut outs = result.objects;
        outs.sort_by_key(|o| o.id);
        let want = frame["objects"].as_array().ok_or("frame without objects")?;
        let ids: Vec<u32> = outs.iter().map(|o| o.id).collect();
        let want_ids: Vec<u32> = want
            .iter()
            .map(|o| o["obj_id"].as_u64().unwrap_or(0) as u32)
            .collect();
        if ids != want_ids {
            return Err(format!(
                "objects on frame {t}: {ids:?}, the official predictor's {want_ids:?}"
            ));
        }
        for (o, g) in outs.iter().zip(want) {
            let offset = |key: &str| g[key].as_u64().map(|v| v as usize);
            let (lo, mo) = offset("logits_offset")
                .zip(offset("mask_offset"))
                .ok_or("object without offsets")?;
            let ref_logits = bin
                .get(lo..lo + l * l * 4)
                .ok_or("golden.bin too short")?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            let d = o
                .logits
                .data
                .iter()
                .zip(ref_logits)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let ref_score = g["object_score"].as_f64().unwrap_or(f64::NAN) as f32;
            if std::env::var_os("SAM2TRACK_PARITY_VERBOSE").is_some() {
                println!(
                    "frame {t:2} object {}: |logit diff| {d:.2e} score {:+.4} (ref {ref_score:+.4}) cond {}",
                    o.id, o.object_score, o.is_cond
                );
            }
            let packed = bin
                .get(mo..mo + (w * h).div_ceil(8))
                .ok_or("golden.bin too short")?;
            let ref_mask: Vec<u8> = (0..w * h)
                .map(|i| (packed[i / 8] >> (7 - i % 8)) & 1)
                .collect();
            if Some(o.is_cond) != g["is_cond"].as_bool() {
                return Err(format!("is_cond of {} on frame {t} differs", o.id));
            }
            entries.push(Entry {
                frame: t,
                id: o.id,
                iou: mask_iou(&o.mask, &ref_mask),
                logit_diff: d,
                score: o.object_score,
                ref_score,
                pred_iou_diff: (o.iou - g["iou"].as_f64().unwrap_or(f64::NAN) as f32).abs(),
            });
        }
    }
    if entries.is_empty() {
        return Err("the golden scenario has no frame/object pairs".into());
    }
    Ok(entries)
}

/// The figures of a golden run.
pub struct Summary {
    pub pairs: usize,
    pub min_iou: f64,
    pub mean_iou: f64,
    /// (frame, object) of the smallest IoU.
    pub worst: (u64, u32),
    pub max_logit_diff: f32,
    pub max_score_diff: f32,
    pub max_pred_iou_diff: f32,
    /// (frame, object, score, official score) whose object-score sign differs.
    pub sign_mismatches: Vec<(u64, u32, f32, f32)>,
}

impl Summary {
    pub fn of(entries: &[Entry]) -> Summary {
        let worst = entries
            .iter()
            .min_by(|a, b| a.iou.total_cmp(&b.iou))
            .map_or((0, 0, 1.0), |e| (e.frame, e.id, e.iou));
        Summary {
            pairs: entries.len(),
            min_iou: worst.2,
            mean_iou: entries.iter().map(|e| e.iou).sum::<f64>() / entries.len().max(1) as f64,
            worst: (worst.0, worst.1),
            max_logit_diff: entries.iter().map(|e| e.logit_diff).fold(0f32, f32::max),
            max_score_diff: entries
                .iter()
                .map(|e| (e.score - e.ref_score).abs())
                .fold(0f32, f32::max),
            max_pred_iou_diff: entries.iter().map(|e| e.pred_iou_diff).fold(0f32, f32::max),
            sign_mismatches: entries
                .iter()
                .filter(|e| (e.score > 0.0) != (e.ref_score > 0.0))
                .map(|e| (e.frame, e.id, e.score, e.ref_score))
                .collect(),
        }
    }

    /// Whether the fp32 limits hold (IoU, logits, object-score signs).
    pub fn within_fp32_limits(&self) -> bool {
        self.sign_mismatches.is_empty()
            && self.min_iou >= MIN_MASK_IOU
            && self.max_logit_diff <= MAX_LOGIT_DIFF
    }

    /// Prints the figures (`label` first) and fails the test when they are
    /// outside the fp32 limits: a score-sign mismatch, IoU or logits.
    #[allow(dead_code)] // used by the tests, not by examples/gpu_check.rs
    pub fn assert_fp32_parity(&self, label: &str) {
        println!(
            "{label} over {} frame/object pairs: min mask IoU {:.5} \
             (frame {}, object {}), max |logit diff| {:.3e}, max |score diff| \
             {:.3e}, max |IoU-prediction diff| {:.3e}, score sign mismatches {}",
            self.pairs,
            self.min_iou,
            self.worst.0,
            self.worst.1,
            self.max_logit_diff,
            self.max_score_diff,
            self.max_pred_iou_diff,
            self.sign_mismatches.len()
        );
        assert!(
            self.sign_mismatches.is_empty(),
            "object-score sign differs: {:?}",
            self.sign_mismatches
        );
        assert!(
            self.min_iou >= MIN_MASK_IOU,
            "min mask IoU {}",
            self.min_iou
        );
        assert!(
            self.max_logit_diff <= MAX_LOGIT_DIFF,
            "max logit diff {}",
            self.max_logit_diff
        );
    }
}
