// SPDX-License-Identifier: MPL-2.0

//! The engine's benchmark (run through `scripts/bench.sh`, which also runs the
//! official predictor on the same frames and prints the comparison).
//!
//! ```text
//! cargo run --release --example bench -- --model DIR --frames DIR [options]
//!   --objects 1,2,4,8     object counts, one run each
//!   --num-frames N        frames used (default: all PNGs in --frames)
//!   --warmup N            frames before the steady state (default 8: memory full)
//!   --threads N           ONNX Runtime threads per graph (default: one per core)
//!   --memory-frames N     memory frames per object (speed knob; default: the model's)
//!   --matmul FILE         an ONNX MatMul graph (A, B: 4096x4096): prints its GFLOP/s
//!   --paired 1,4          with --matmul: for these object counts, one more pass
//!                         that times the matmul between the steady-state frames
//!   --save-masks DIR      write each frame's masks and low-res logits (every run)
//!   --reference DIR       compare masks with an earlier --save-masks run (mask IoU,
//!                         background IoU; low-res logit difference where it saved them)
//!   --element             also time sam2track in a 1080p pipeline against the
//!                         engine alone on the same frames (needs --video)
//!   --video FILE          the video for --element
//! ```
//!
//! `--element` times each frame from sam2track's sink pad to its source pad
//! (`mode=sync`, pad probes: decoding and model loading are outside) and the
//! engine alone (`Tracker::step` from RGB, frame-size masks) on the
//! same frames, in alternating passes (the VM's speed drifts; each frame keeps
//! its best time), and averages the steady-state frames. Within each element
//! pass it also splits every frame's time into the engine's (the
//! `inference-time` of the element's `sam2-frame` message) and the element's
//! own (conversion, overlay, metadata, messages, thread hand-off): that ratio
//! does not suffer from the drift between passes. Environment:
//! `BENCH_ELEMENT_PASSES` (default 2), `BENCH_ELEMENT_OUTPUT` (the element's
//! `output`, default `both`), `BENCH_ELEMENT_TRACE` (per-frame engine times).
//!
//! `--paired` measures the heavy stages' throughput against the matmul
//! measured next to them: the VM's speed drifts by 10-40% within a run, so
//! a matmul figure taken minutes before or after says little about the speed
//! a stage ran at. In that pass every steady-state frame is bracketed by two
//! matmul measurements (best of 2 runs each) and reported with their mean; the
//! report divides each stage's FLOPs per frame by its time and by that mean.
//!
//! `--frames` holds PNG frames (00000.png, ...) and `prompts.json`
//! (`{"points": [[x, y], ...]}` in frame pixels, one per object). Each run
//! gives objects 1..N one positive click on frame 0 and then tracks frame by
//! frame; a frame's time covers pre-processing (resize, normalise), the four
//! graphs and the frame-size masks the element would output. Prints one
//! `RESULT {json}` line per run.

#[path = "common/bench_input.rs"]
mod bench_input;
#[path = "../tests/common/images.rs"]
mod images;

use bench_input::{Image, clicks, read_frames, read_points};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstsam2::engine::cpu;
use gstsam2::engine::model::{ModelDir, SessionOptions};
use gstsam2::engine::ops::{Plane, resize_bilinear};
use gstsam2::engine::runtime;
use gstsam2::engine::stages::{StageTimes, Stages};
use gstsam2::engine::step::{FrameInput, FrameResult};
use gstsam2::engine::tracker::{Tracker, TrackerConfig};

type Error = Box<dyn std::error::Error>;

struct Args {
    model: PathBuf,
    frames: PathBuf,
    objects: Vec<usize>,
    num_frames: usize,
    warmup: usize,
    threads: Option<usize>,
    memory_frames: Option<u32>,
    matmul: Option<PathBuf>,
    paired: Vec<usize>,
    save_masks: Option<PathBuf>,
    reference: Option<PathBuf>,
    element: bool,
    video: Option<PathBuf>,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        model: PathBuf::new(),
        frames: PathBuf::new(),
        objects: vec![1, 2, 4, 8],
        num_frames: 0,
        warmup: 8,
        threads: None,
        memory_frames: None,
        matmul: None,
        paired: Vec::new(),
        save_masks: None,
        reference: None,
        element: false,
        video: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--element" {
            a.element = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => a.model = value.into(),
            "--frames" => a.frames = value.into(),
            "--objects" => {
                a.objects = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--num-frames" => a.num_frames = value.parse()?,
            "--warmup" => a.warmup = value.parse()?,
            "--threads" => a.threads = Some(value.parse()?),
            "--memory-frames" => a.memory_frames = Some(value.parse()?),
            "--matmul" => a.matmul = Some(value.into()),
            "--paired" => a.paired = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--save-masks" => a.save_masks = Some(value.into()),
            "--reference" => a.reference = Some(value.into()),
            "--video" => a.video = Some(value.into()),
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    if a.model.as_os_str().is_empty() || a.frames.as_os_str().is_empty() {
        return Err("usage: bench --model DIR --frames DIR [options] (see the source)".into());
    }
    Ok(a)
}

/// Resets the peak RSS (VmHWM) of this process (Linux `clear_refs`).
fn reset_peak_rss() -> Result<(), Error> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

/// The CPU flags that decide which kernels ONNX Runtime and PyTorch can use.
const CPU_FLAGS: &[&str] = &[
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
];

/// This machine's CPU as every RESULT line records it: model name, logical
/// CPUs, and which of [`CPU_FLAGS`] it has (from /proc/cpuinfo; figures from
/// different CPUs must never share a table).
fn cpu_info() -> serde_json::Value {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let has: Vec<&str> = CPU_FLAGS
        .iter()
        .copied()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    let logical = text.lines().filter(|l| l.starts_with("processor")).count();
    serde_json::json!({"model": field("model name"), "logical_cpus": logical, "flags": has})
}

fn status_kib(field: &str) -> Result<u64, Error> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    let line = text
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .ok_or_else(|| format!("{field} not in /proc/self/status"))?;
    Ok(line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn options(args: &Args) -> SessionOptions {
    SessionOptions {
        intra_threads: args.threads,
        ..SessionOptions::default()
    }
}

/// An n x n x n fp32 MatMul graph run by ONNX Runtime (n = 4096).
struct MatMul {
    session: ort::session::Session,
    a: Vec<f32>,
    b: Vec<f32>,
}

impl MatMul {
    const N: usize = 4096;

    fn load(env: &ort::environment::Environment, path: &Path) -> Result<Self, Error> {
        let n = Self::N;
        Ok(Self {
            session: ort::session::Session::builder(env)?.commit_from_file(path)?,
            a: (0..n * n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect(),
            b: (0..n * n).map(|i| ((i % 5) as f32 - 2.0) * 0.1).collect(),
        })
    }

    /// GFLOP/s of the best of `reps` runs.
    fn gflops(&mut self, reps: usize) -> Result<f64, Error> {
        let n = Self::N as i64;
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let ta = ort::value::TensorRef::from_array_view(([n, n], self.a.as_slice()))?;
            let tb = ort::value::TensorRef::from_array_view(([n, n], self.b.as_slice()))?;
            let start = Instant::now();
            let out = self.session.run(ort::inputs!["A" => ta, "B" => tb])?;
            best = best.min(start.elapsed().as_secs_f64());
            drop(out);
        }
        Ok(2.0 * (Self::N as f64).powi(3) / best / 1e9)
    }
}

/// Best-of-4 GFLOP/s of the MatMul graph at `path` (its own session, dropped after).
fn matmul_gflops(env: &ort::environment::Environment, path: &Path) -> Result<f64, Error> {
    MatMul::load(env, path)?.gflops(4)
}

/// A tracker with the run's options (`--threads`, `--memory-frames`).
fn new_tracker(
    args: &Args,
    env: &ort::environment::Environment,
    model: &ModelDir,
) -> Result<Tracker, Error> {
    let config = TrackerConfig {
        num_maskmem: args.memory_frames,
        ..TrackerConfig::default()
    };
    let stages = Stages::load(model, env, &options(args))?;
    Ok(Tracker::new(stages, model.manifest(), config)?)
}

/// Frame `i` through the tracker as the element does (`Tracker::step`): on
/// frame 0 one positive click per object (`count` objects); frame-size masks.
fn track_frame(
    tracker: &mut Tracker,
    img: &Image,
    i: usize,
    points: &[[f32; 2]],
    count: usize,
) -> Result<FrameResult, Error> {
    let prompts = clicks(i, points, count);
    let result = tracker.step(FrameInput::Packed(img.frame()), &prompts)?;
    if let Some((i, err)) = result.refused.first() {
        return Err(format!("prompt {i} refused: {err}").into());
    }
    Ok(result)
}

/// The `--paired` pass: `count` objects tracked over all frames, each steady-state
/// frame bracketed by matmul measurements (see the module documentation). Peak RSS
/// means nothing here (the matmul's buffers are alive), so none is reported.
fn paired(
    args: &Args,
    env: &ort::environment::Environment,
    model: &ModelDir,
    frames: &[Image],
    points: &[[f32; 2]],
    count: usize,
    matmul: &Path,
) -> Result<serde_json::Value, Error> {
    let mut mm = MatMul::load(env, matmul)?;
    let mut tracker = new_tracker(args, env, model)?;
    let mut pairs = Vec::new();
    let mut before = None;
    for (i, img) in frames.iter().enumerate() {
        if i >= args.warmup && before.is_none() {
            before = Some(mm.gflops(2)?);
        }
        let stages = track_frame(&mut tracker, img, i, points, count)?.times;
        if let Some(b) = before {
            let after = mm.gflops(2)?;
            eprintln!(
                "  paired objects={count} frame {i}: matmul {b:.0}/{after:.0} GFLOP/s, encoder {:.0} ms, attention {:.0} ms",
                ms(stages.image_encoder),
                ms(stages.memory_attention)
            );
            pairs.push(serde_json::json!({
                "frame": i,
                "matmul_gflops": (b + after) / 2.0,
                "matmul_gflops_before_after": [b, after],
                "stages_ms": {
                    "image_encoder": ms(stages.image_encoder),
                    "memory_attention": ms(stages.memory_attention),
                    "mask_decoder": ms(stages.mask_decoder),
                    "memory_encoder": ms(stages.memory_encoder),
                },
            }));
            before = Some(after);
        }
    }
    Ok(serde_json::json!({
        "impl": "sam2track-paired",
        "objects": count,
        "image_size": tracker.dims().s,
        "memory_frames": args.memory_frames,
        "pairs": pairs,
    }))
}

#[derive(Default)]
struct Totals {
    frames: usize,
    total: Duration,
    stages: StageTimes,
}

impl Totals {
    fn add(&mut self, total: Duration, stages: StageTimes) {
        self.frames += 1;
        self.total += total;
        self.stages += stages;
    }

    fn per_frame(&self, d: Duration) -> f64 {
        ms(d) / self.frames.max(1) as f64
    }
}

fn mask_file(dir: &Path, objects: usize, frame: usize) -> PathBuf {
    dir.join(format!("objects{objects}-frame{frame:05}.bin"))
}

/// The low-res logits next to the masks (`--save-masks`): per object a u32 LE
/// side L, then L x L f32 LE (the official's masks have no such file).
fn logits_file(dir: &Path, objects: usize, frame: usize) -> PathBuf {
    dir.join(format!("objects{objects}-frame{frame:05}.logits"))
}

fn write_logits(path: &Path, planes: &[&Plane]) -> Result<(), Error> {
    let mut bytes = Vec::new();
    for p in planes {
        bytes.extend_from_slice(&(p.width as u32).to_le_bytes());
        bytes.extend(p.data.iter().flat_map(|v| v.to_le_bytes()));
    }
    Ok(std::fs::write(path, bytes)?)
}

fn read_logits(path: &Path) -> Result<Vec<Plane>, Error> {
    let bytes = std::fs::read(path)?;
    let mut planes = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let word = |i: usize| -> Result<[u8; 4], Error> {
            Ok(bytes
                .get(i..i + 4)
                .ok_or_else(|| format!("{}: truncated", path.display()))?
                .try_into()?)
        };
        let side = u32::from_le_bytes(word(at)?) as usize;
        at += 4;
        let mut data = Vec::with_capacity(side * side);
        for _ in 0..side * side {
            data.push(f32::from_le_bytes(word(at)?));
            at += 4;
        }
        planes.push(Plane::new(side, side, data));
    }
    Ok(planes)
}

/// Share of the frame each object's mask covers, and how alike the objects
/// are (IoU of every pair of objects' masks on one frame): with plain random
/// weights every mask covers most of the frame and all objects look alike,
/// which makes any IoU meaningless. And how confident the masks are, from the
/// low-res logits: the median logit inside each mask, and the low-res pixels
/// within `MARGIN` of the threshold per pixel of the mask. A trained model's
/// masks usually sit far from the threshold except at their edges; where many
/// pixels sit near it, a small numeric change (a speed mode) moves the mask a
/// lot. And on the prompted frame, whether each object's click lies inside its
/// own mask and how alike the objects' masks are there: a model whose masks do
/// not follow their prompts gives every object the same region, which makes the
/// objects' masks, and any IoU at several objects, say nothing more than one.
#[derive(Default)]
struct MaskStats {
    areas: Vec<f64>,
    pair_ious: Vec<f64>,
    inside_logit: Vec<f64>,
    near_threshold: Vec<f64>,
    clicks_inside: usize,
    clicks: usize,
    prompted_pair_ious: Vec<f64>,
}

/// |low-res logit| under which a pixel counts as near the threshold (0).
const MARGIN: f32 = 1.0;

impl MaskStats {
    /// Adds one frame; returns the IoU of each pair of its objects' masks.
    fn add(&mut self, masks: &[&[u8]], logits: &[&Plane]) -> Vec<f64> {
        for m in masks {
            let on = m.iter().filter(|v| **v != 0).count();
            self.areas.push(on as f64 / m.len().max(1) as f64);
        }
        for l in logits {
            let mut inside: Vec<f32> = l.data.iter().copied().filter(|v| *v > 0.0).collect();
            if inside.is_empty() {
                continue;
            }
            inside.sort_by(f32::total_cmp);
            self.inside_logit.push(f64::from(inside[inside.len() / 2]));
            let near = l.data.iter().filter(|v| v.abs() < MARGIN).count();
            self.near_threshold.push(near as f64 / inside.len() as f64);
        }
        let mut pairs = Vec::new();
        for (i, a) in masks.iter().enumerate() {
            for b in &masks[i + 1..] {
                pairs.push(images::mask_iou(a, b));
            }
        }
        self.pair_ious.extend_from_slice(&pairs);
        pairs
    }

    /// The prompted frame: each object's mask (row-major, `width` pixels a row)
    /// with the click it was prompted by (frame pixels), and the frame's pair
    /// IoUs as `add` returned them.
    fn add_prompted(&mut self, prompted: &[(&[u8], [f32; 2])], width: usize, pairs: Vec<f64>) {
        for (m, p) in prompted {
            let height = m.len() / width.max(1);
            let x = (p[0].max(0.0) as usize).min(width.saturating_sub(1));
            let y = (p[1].max(0.0) as usize).min(height.saturating_sub(1));
            self.clicks += 1;
            self.clicks_inside += usize::from(m.get(y * width + x).is_some_and(|v| *v != 0));
        }
        self.prompted_pair_ious = pairs;
    }

    fn json(&self) -> serde_json::Value {
        let q = |v: &[f64], f: f64| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v.get(((v.len() as f64 - 1.0) * f).round() as usize)
                .copied()
        };
        let dist = |v: &[f64]| {
            serde_json::json!({"min": q(v, 0.0), "p10": q(v, 0.1), "median": q(v, 0.5),
                "p90": q(v, 0.9), "max": q(v, 1.0), "n": v.len()})
        };
        serde_json::json!({"area": dist(&self.areas), "object_pair_iou": dist(&self.pair_ious),
            "inside_logit_median": dist(&self.inside_logit),
            "near_threshold_per_mask_pixel": dist(&self.near_threshold),
            "near_threshold_margin": MARGIN,
            "prompted_frame": {"clicks_inside_own_mask": self.clicks_inside, "clicks": self.clicks,
                "object_pair_iou": dist(&self.prompted_pair_ious)}})
    }
}

fn run(
    args: &Args,
    env: &ort::environment::Environment,
    model: &ModelDir,
    frames: &[Image],
    points: &[[f32; 2]],
    count: usize,
) -> Result<serde_json::Value, Error> {
    let mut tracker = new_tracker(args, env, model)?;
    let rss_loaded = status_kib("VmRSS")?;
    reset_peak_rss()?;
    let mut steady = Totals::default();
    let mut ious: Vec<f64> = Vec::new();
    // IoU of the complements: a mask covering most of the frame scores a high
    // IoU whatever its edges; its background does not.
    let mut bg_ious: Vec<f64> = Vec::new();
    // Masks empty in both runs (an object judged absent): they agree but say
    // nothing about mask quality.
    let mut both_empty = 0usize;
    // |low-res logit - reference logit| over every pixel of every object-frame
    let (mut logit_sum, mut logit_n, mut logit_max) = (0f64, 0usize, 0f32);
    let mut stats = MaskStats::default();
    let mut rss_at_warmup = 0;
    for (i, img) in frames.iter().enumerate() {
        let start = Instant::now();
        let result = track_frame(&mut tracker, img, i, points, count)?;
        let masks = &result.objects;
        let elapsed = start.elapsed();
        let stages = result.times;
        eprintln!(
            "  sam2track objects={count} frame {i}: {:.0} ms (encoder {:.0}, attention {:.0}, decoder {:.0}, memory encoder {:.0})",
            ms(elapsed),
            ms(stages.image_encoder),
            ms(stages.memory_attention),
            ms(stages.mask_decoder),
            ms(stages.memory_encoder)
        );
        if i >= args.warmup {
            steady.add(elapsed, stages);
        }
        if std::env::var_os("BENCH_RSS_TRACE").is_some() {
            eprintln!("    rss {} MiB", status_kib("VmRSS")? / 1024);
        }
        if i + 1 == args.warmup {
            rss_at_warmup = status_kib("VmRSS")?;
        }
        let flat: Vec<u8> = masks.iter().flat_map(|m| m.mask.iter().copied()).collect();
        let pairs = stats.add(
            &masks.iter().map(|m| m.mask.as_slice()).collect::<Vec<_>>(),
            &masks.iter().map(|m| &m.logits).collect::<Vec<_>>(),
        );
        if i == 0 {
            // clicks() gives object id k the k-th point
            let prompted: Vec<(&[u8], [f32; 2])> = masks
                .iter()
                .filter_map(|m| {
                    let k = (m.id as usize).checked_sub(1)?;
                    points.get(k).map(|p| (m.mask.as_slice(), *p))
                })
                .collect();
            stats.add_prompted(&prompted, img.width, pairs);
        }
        if let Some(dir) = &args.save_masks {
            std::fs::create_dir_all(dir)?;
            std::fs::write(mask_file(dir, count, i), &flat)?;
            let planes: Vec<&Plane> = masks.iter().map(|m| &m.logits).collect();
            write_logits(&logits_file(dir, count, i), &planes)?;
        }
        if let Some(path) = args
            .reference
            .as_ref()
            .map(|dir| logits_file(dir, count, i))
            .filter(|p| p.is_file())
        {
            // a speed mode at another input size: its logits resampled to the
            // reference's side (F.interpolate bilinear) before the comparison
            for (m, r) in masks.iter().zip(read_logits(&path)?) {
                let ours = if m.logits.width == r.width {
                    m.logits.clone()
                } else {
                    resize_bilinear(&m.logits, r.width, r.height)
                };
                for (a, b) in ours.data.iter().zip(&r.data) {
                    let d = (a - b).abs();
                    logit_sum += f64::from(d);
                    logit_max = logit_max.max(d);
                }
                logit_n += r.data.len();
            }
        }
        if let Some(dir) = &args.reference {
            let reference = std::fs::read(mask_file(dir, count, i))?;
            if reference.len() != flat.len() {
                return Err(format!("reference masks of frame {i} differ in size").into());
            }
            let plane = img.width * img.height;
            for (a, b) in flat.chunks(plane).zip(reference.chunks(plane)) {
                ious.push(images::mask_iou(a, b));
                let not = |m: &[u8]| m.iter().map(|v| u8::from(*v == 0)).collect::<Vec<u8>>();
                bg_ious.push(images::mask_iou(&not(a), &not(b)));
                let empty = |m: &[u8]| m.iter().all(|v| *v == 0);
                both_empty += usize::from(empty(a) && empty(b));
            }
        }
    }
    if steady.frames == 0 {
        return Err(format!(
            "no steady-state frames: {} frames, --warmup {}",
            frames.len(),
            args.warmup
        )
        .into());
    }
    let st = &steady.stages;
    let graphs = st.image_encoder + st.memory_attention + st.mask_decoder + st.memory_encoder;
    let mut result = serde_json::json!({
        "impl": "sam2track",
        "objects": count,
        "image_size": tracker.dims().s,
        "memory_frames": args.memory_frames,
        "frames": frames.len(),
        "steady_frames": steady.frames,
        "ms_per_frame": steady.per_frame(steady.total),
        "stages_ms": {
            "image_encoder": steady.per_frame(st.image_encoder),
            "memory_attention": steady.per_frame(st.memory_attention),
            "mask_decoder": steady.per_frame(st.mask_decoder),
            "memory_encoder": steady.per_frame(st.memory_encoder),
            "other": steady.per_frame(steady.total.saturating_sub(graphs)),
        },
        "peak_rss_mib": status_kib("VmHWM")? as f64 / 1024.0,
        "rss_mib_loaded": rss_loaded as f64 / 1024.0,
        "rss_mib_at_warmup": rss_at_warmup as f64 / 1024.0,
        "rss_mib_at_end": status_kib("VmRSS")? as f64 / 1024.0,
    });
    if !ious.is_empty() {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        // ious runs frame by frame, `count` masks a frame: where the lowest one is, and
        // the lowest on the prompted frame (0) and on the tracked frames apart
        let lowest = (0..ious.len())
            .min_by(|&a, &b| ious[a].total_cmp(&ious[b]))
            .unwrap_or(0);
        let (prompted, tracked) = ious.split_at(count.min(ious.len()));
        result["iou_vs_reference"] = serde_json::json!({
            "mean": mean(&ious),
            "min": min(&ious),
            "min_at": {"frame": lowest / count, "object": lowest % count},
            "prompted_frame_min": min(prompted),
            "tracked_frames_min": if tracked.is_empty() { None } else { Some(min(tracked)) },
            "background_mean": mean(&bg_ious),
            "background_min": min(&bg_ious),
            "masks": ious.len(),
            "both_empty": both_empty,
        });
        if logit_n > 0 {
            result["iou_vs_reference"]["low_res_logit_abs_diff"] =
                serde_json::json!({"mean": logit_sum / logit_n as f64, "max": logit_max});
        }
    }
    result["masks"] = stats.json();
    Ok(result)
}

/// Frames of `video` scaled to 1080p, as RGB (for the engine alone) .
fn decode_1080p(video: &Path, limit: usize) -> Result<Vec<Image>, Error> {
    use gst::prelude::*;
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! videoscale ! videoconvert \
         ! video/x-raw,format=RGB,width=1920,height=1080 ! appsink name=sink sync=false",
        video.display()
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let sink = pipeline
        .by_name("sink")
        .ok_or("no sink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "not an appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Ok(sample) = sink.pull_sample() else {
            break;
        };
        let buffer = sample.buffer().ok_or("no buffer")?;
        let info = gst_video::VideoInfo::from_caps(sample.caps().ok_or("no caps")?)?;
        let map = buffer.map_readable()?;
        let stride = info.stride()[0] as usize;
        let mut rgb = Vec::with_capacity(1920 * 1080 * 3);
        for y in 0..1080 {
            rgb.extend_from_slice(&map[y * stride..y * stride + 1920 * 3]);
        }
        out.push(Image {
            rgb,
            width: 1920,
            height: 1080,
        });
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(out)
}

/// Per-frame time of sam2track in a decode → 1080p → sam2track → fakesink
/// pipeline (from a buffer entering its sink pad to it leaving its source pad,
/// `mode=sync`), against the engine alone on the same frames, both averaged
/// over the steady-state frames (from `--warmup`). Decoding, model loading
/// and the first frames are outside both figures.
fn element_overhead(
    args: &Args,
    env: &ort::environment::Environment,
    model: &ModelDir,
    points: &[[f32; 2]],
    frame_size: (usize, usize),
) -> Result<serde_json::Value, Error> {
    use gst::prelude::*;
    let video = args.video.as_ref().ok_or("--element needs --video")?;
    let n = if args.num_frames > 0 {
        args.num_frames
    } else {
        12
    };
    if n <= args.warmup {
        return Err(format!("--element needs more than --warmup {} frames", args.warmup).into());
    }
    gst::init()?;
    gstsam2::plugin_register_static()?;
    // The prompt in 1080p pixels (prompts.json is in benchmark-frame pixels).
    let [x, y] = points[0];
    let (fx, fy) = (
        x * 1920.0 / frame_size.0 as f32,
        y * 1080.0 / frame_size.1 as f32,
    );
    let threads = args.threads.map_or(0, |t| t as i32);
    let output = std::env::var("BENCH_ELEMENT_OUTPUT").unwrap_or_else(|_| "both".into());
    let description = format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! identity eos-after={n} \
         ! videoscale ! video/x-raw,width=1920,height=1080 \
         ! sam2track name=track mode=sync output={output} threads={threads} model-dir=\"{}\" \
           post-messages=true prompt=\"1:point={fx},{fy}\" ! fakesink",
        video.display(),
        model.dir().display()
    );

    // Engine alone on the same frames (RGB), same prompt.
    let frames = decode_1080p(video, n)?;
    let engine_pass = || -> Result<Vec<Duration>, Error> {
        let stages = Stages::load(model, env, &options(args))?;
        let mut tracker = Tracker::new(stages, model.manifest(), TrackerConfig::default())?;
        let mut times = Vec::new();
        for (i, img) in frames.iter().enumerate() {
            let start = Instant::now();
            let result = std::hint::black_box(track_frame(&mut tracker, img, i, &[[fx, fy]], 1)?);
            times.push(start.elapsed());
            if std::env::var_os("BENCH_ELEMENT_TRACE").is_some() {
                let t = result.times;
                eprintln!(
                    "  engine alone frame {i}: {:.1} ms, host {:.1} ms",
                    ms(start.elapsed()),
                    ms(start.elapsed().saturating_sub(t.total()))
                );
            }
        }
        Ok(times)
    };
    // Per pass: each frame's time inside the element and, of it, in the engine
    // (the `inference-time` of its sam2-frame message).
    let inside: Mutex<Vec<(Vec<Duration>, Vec<Duration>)>> = Mutex::default();
    let element_pass = || -> Result<Vec<Duration>, Error> {
        let pipeline = gst::parse::launch(&description)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline")?;
        let track = pipeline.by_name("track").ok_or("no sam2track")?;
        let stamps: [Arc<Mutex<Vec<Instant>>>; 2] = Default::default();
        for (pad, stamps) in ["sink", "src"].iter().zip(&stamps) {
            let stamps = stamps.clone();
            track.static_pad(pad).ok_or("no pad")?.add_probe(
                gst::PadProbeType::BUFFER,
                move |_, _| {
                    stamps.lock().unwrap().push(Instant::now());
                    gst::PadProbeReturn::Ok
                },
            );
        }
        let bus = pipeline.bus().ok_or("no bus")?;
        pipeline.set_state(gst::State::Playing)?;
        let mut engine = vec![Duration::ZERO; n];
        for msg in bus.iter_timed(gst::ClockTime::NONE) {
            match msg.view() {
                gst::MessageView::Eos(..) => break,
                gst::MessageView::Error(e) => {
                    pipeline.set_state(gst::State::Null)?;
                    return Err(format!("{description}: {}", e.error()).into());
                }
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure().filter(|s| s.name() == "sam2-frame") {
                        let frame = s.get::<u64>("frame-number")? as usize;
                        let t = s.get::<gst::ClockTime>("inference-time")?;
                        if frame < n {
                            engine[frame] = Duration::from_nanos(t.nseconds());
                        }
                    }
                }
                _ => {}
            }
        }
        pipeline.set_state(gst::State::Null)?;
        let (entered, left) = (stamps[0].lock().unwrap(), stamps[1].lock().unwrap());
        if entered.len() < n || left.len() < n {
            return Err(format!(
                "{} frames in, {} out of sam2track, at least {n} expected",
                entered.len(),
                left.len()
            )
            .into());
        }
        let times: Vec<Duration> = (0..n).map(|i| left[i] - entered[i]).collect();
        inside.lock().unwrap().push((times.clone(), engine));
        Ok(times)
    };
    // The VM's speed drifts: alternate the two, keep each frame's best time.
    let passes = std::env::var("BENCH_ELEMENT_PASSES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2)
        .max(1);
    let steady = args.warmup..n;
    let mean_ms =
        |t: &[Duration]| steady.clone().map(|i| ms(t[i])).sum::<f64>() / steady.len() as f64;
    let (mut engine_best, mut element_best) = (vec![Duration::MAX; n], vec![Duration::MAX; n]);
    let (mut engine_passes, mut element_passes) = (Vec::new(), Vec::new());
    for _ in 0..passes {
        for (pass, best, means) in [
            (
                &engine_pass as &dyn Fn() -> Result<Vec<Duration>, Error>,
                &mut engine_best,
                &mut engine_passes,
            ),
            (&element_pass, &mut element_best, &mut element_passes),
        ] {
            let times = pass()?;
            means.push(mean_ms(&times));
            for (b, t) in best.iter_mut().zip(times) {
                *b = (*b).min(t);
            }
        }
    }
    let (element_ms, engine_ms) = (mean_ms(&element_best), mean_ms(&engine_best));
    // The element's own share, frame by frame within one pass (free of the
    // drift between passes): time inside the element minus the engine's.
    let inside = inside.into_inner().unwrap();
    let count = (inside.len() * steady.len()) as f64;
    let (mut own_ms, mut inner_ms) = (0.0, 0.0);
    for (element, engine) in &inside {
        for i in steady.clone() {
            own_ms += ms(element[i].saturating_sub(engine[i])) / count;
            inner_ms += ms(engine[i]) / count;
        }
    }
    let host = element_host_costs(&frames[0]);
    Ok(serde_json::json!({
        "impl": "sam2track-element",
        "frames": n,
        "steady_frames": steady.len(),
        "passes": passes,
        "output": output,
        "input": "1920x1080 I420 (avdec_h264 + videoscale)",
        "element_ms_per_frame": element_ms,
        "engine_ms_per_frame": engine_ms,
        "element_ms_per_pass": element_passes,
        "engine_ms_per_pass": engine_passes,
        "overhead": element_ms / engine_ms - 1.0,
        "element_own_ms_per_frame": own_ms,
        "engine_in_element_ms_per_frame": inner_ms,
        "own_overhead": own_ms / inner_ms,
        "host_ms": host,
    }))
}

/// Best-of-5 ms of the work the element does on top of the engine at 1080p
/// with the default style: I420 → RGB for the engine, and the overlay of one
/// object (label map, contour, blend into the I420 frame; a synthetic
/// ellipse covering ~20% of the frame: the cost does not depend on the shape).
fn element_host_costs(frame: &Image) -> serde_json::Value {
    use gstsam2::sam2track::color::{RgbConverter, Yuv};
    use gstsam2::sam2track::overlay::{self, Canvas, Layout, Marks, Style};
    let (w, h) = (frame.width, frame.height);
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                f();
                ms(start.elapsed())
            })
            .fold(f64::INFINITY, f64::min)
    };
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut y: Vec<u8> = frame.rgb.chunks_exact(3).map(|p| p[1]).collect();
    let (mut u, mut v) = (vec![128u8; cw * ch], vec![128u8; cw * ch]);
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w as u32, h as u32)
        .build()
        .expect("1080p I420 info");
    let i420 = gst::Buffer::with_size(info.size()).expect("an I420 buffer");
    let mut converter = RgbConverter::default();
    let yuv = best(&mut || {
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(i420.as_ref(), &info)
            .expect("mapped");
        std::hint::black_box(converter.convert(&frame).expect("converted"));
    });
    let mask: Vec<u8> = (0..w * h)
        .map(|p| {
            let (dx, dy) = (
                (p % w) as f32 / w as f32 - 0.5,
                (p / w) as f32 / h as f32 - 0.5,
            );
            u8::from(dx * dx + dy * dy < 0.065)
        })
        .collect();
    let style = Style {
        colors: vec![0xff0000],
        ..Style::default()
    };
    let draw = best(&mut || {
        let labels = overlay::label_map(&[&mask], w, h);
        let edges = overlay::edges(&labels, w, h, style.contour_width);
        overlay::draw(
            Canvas {
                layout: Layout::I420,
                yuv: Yuv::BT709,
                width: w,
                height: h,
                planes: &mut [&mut y, &mut u, &mut v],
                strides: &[w, cw, cw],
            },
            Marks {
                labels: &labels,
                edges: &edges,
                colors: &style.colors,
            },
            &style,
        );
    });
    serde_json::json!({"i420_to_rgb": yuv, "overlay_one_object": draw})
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let rt = runtime::acquire(None)?;
    let env = rt.environment();
    let model = ModelDir::open(&args.model)?;
    // int8 graphs whose products saturate on this CPU (engine::cpu): their
    // figures would be those of wrong arithmetic
    let saturating = cpu::saturating_graphs(model.manifest(), cpu::Int8Products::detect());
    if let Some(text) = cpu::int8_saturation_warning(model.manifest(), cpu::Int8Products::detect())
    {
        eprintln!("WARNING: {text}");
    }
    let points = read_points(&args.frames)?;
    let frames = read_frames(&args.frames, args.num_frames)?;
    if frames.len() <= args.warmup {
        return Err(format!(
            "{} frames in {}: need more than --warmup {}",
            frames.len(),
            args.frames.display(),
            args.warmup
        )
        .into());
    }
    let peak_before = match &args.matmul {
        Some(path) => Some(matmul_gflops(env, path)?),
        None => None,
    };
    if let Some(p) = peak_before {
        println!("ONNX Runtime matmul 4096^3 fp32: {p:.1} GFLOP/s");
    }
    for &count in &args.objects {
        if count > points.len() {
            return Err(format!(
                "prompts.json has {} points, {count} objects asked",
                points.len()
            )
            .into());
        }
        let mut result = run(&args, env, &model, &frames, &points, count)?;
        result["cpu"] = cpu_info();
        result["int8_saturating_graphs"] = serde_json::json!(saturating);
        println!("RESULT {result}");
    }
    if let Some(path) = &args.matmul {
        for &count in &args.paired {
            if count > points.len() {
                return Err(
                    format!("--paired {count}: prompts.json has {} points", points.len()).into(),
                );
            }
            let result = paired(&args, env, &model, &frames, &points, count, path)?;
            println!("RESULT {result}");
        }
    } else if !args.paired.is_empty() {
        return Err("--paired needs --matmul".into());
    }
    if args.element {
        let size = (frames[0].width, frames[0].height);
        let result = element_overhead(&args, env, &model, &points, size)?;
        println!("RESULT {result}");
    }
    if let Some(path) = &args.matmul {
        let after = matmul_gflops(env, path)?;
        println!("ONNX Runtime matmul 4096^3 fp32 after: {after:.1} GFLOP/s");
        println!(
            "RESULT {}",
            serde_json::json!({"impl": "sam2track", "matmul_gflops": [peak_before, after], "cpu": cpu_info()})
        );
    }
    Ok(())
}
