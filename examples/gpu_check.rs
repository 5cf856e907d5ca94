// SPDX-License-Identifier: MPL-2.0

//! The engine alone on a chosen execution provider, without GStreamer (it
//! links no GStreamer library, so it runs where only ONNX Runtime and the
//! CUDA libraries are): what `scripts/gpu-check.sh` runs on a GPU machine.
//!
//! ```text
//! gpu_check info
//!     the ONNX Runtime found (ORT_DYLIB_PATH, ...) and its version
//! gpu_check parity --model DIR --golden DIR [provider options]
//!     the golden scenario (tests/fixtures/golden) as tests/engine_parity.rs
//!     runs it, against the official predictor's outputs: min/mean mask IoU,
//!     max |low-res logit difference|, object-score sign mismatches (figures,
//!     not a pass/fail: an fp16 model is expected to differ more)
//! gpu_check bench --model DIR --frames DIR [--objects 1,4] [--num-frames N]
//!                 [--warmup N] [provider options]
//!     as examples/bench.rs: objects 1..N get one positive click on frame 0
//!     (prompts.json), then every frame is tracked (`Tracker::step`: resize,
//!     the four graphs, frame-size masks); steady-state ms/frame and FPS from
//!     frame --warmup on (default 8: the memory bank is full)
//! provider options:
//!   --provider cpu|cuda|tensorrt   (default cpu; device 0; cuda needs the
//!                                   `cuda` feature, tensorrt the `tensorrt` one)
//!   --tf32 on|off                  TF32 maths on CUDA (default on, the element's)
//!   --trt-fp16                     TensorRT builds fp16 engines
//!   --trt-cache DIR                TensorRT engine cache
//!   --threads N                    ONNX Runtime threads per graph
//!   --label TEXT                   copied into the RESULT line
//! ```
//!
//! Prints one `RESULT {json}` line per parity run or object count. A GPU
//! provider that cannot run is an error (no CPU fallback), so a figure
//! labelled cuda is one measured on CUDA.

#[path = "common/bench_input.rs"]
mod bench_input;
#[path = "../tests/common/golden.rs"]
mod golden;
#[path = "../tests/common/images.rs"]
mod images;

use bench_input::{clicks, read_frames, read_points};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gstsam2::engine::model::{ExecutionProvider, GpuOptions, ModelDir, SessionOptions};
use gstsam2::engine::runtime;
use gstsam2::engine::stages::{StageTimes, Stages};
use gstsam2::engine::step::FrameInput;
use gstsam2::engine::tracker::{Tracker, TrackerConfig};
use serde_json::json;

type Error = Box<dyn std::error::Error>;

#[derive(Default)]
struct Args {
    command: String,
    model: PathBuf,
    golden: PathBuf,
    frames: PathBuf,
    objects: Vec<usize>,
    num_frames: usize,
    warmup: usize,
    provider: String,
    tf32: bool,
    trt_fp16: bool,
    trt_cache: Option<PathBuf>,
    threads: Option<usize>,
    label: String,
}

fn parse_args() -> Result<Args, Error> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        command: it.next().unwrap_or_default(),
        objects: vec![1, 4],
        warmup: 8,
        provider: "cpu".into(),
        tf32: true,
        ..Args::default()
    };
    while let Some(flag) = it.next() {
        if flag == "--trt-fp16" {
            a.trt_fp16 = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => a.model = value.into(),
            "--golden" => a.golden = value.into(),
            "--frames" => a.frames = value.into(),
            "--objects" => {
                a.objects = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--num-frames" => a.num_frames = value.parse()?,
            "--warmup" => a.warmup = value.parse()?,
            "--provider" => a.provider = value,
            "--tf32" => {
                a.tf32 = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err("--tf32 takes on or off".into()),
                }
            }
            "--trt-cache" => a.trt_cache = Some(value.into()),
            "--threads" => a.threads = Some(value.parse()?),
            "--label" => a.label = value,
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    Ok(a)
}

fn session_options(a: &Args) -> Result<SessionOptions, Error> {
    let provider = match a.provider.as_str() {
        "cpu" => ExecutionProvider::Cpu,
        "cuda" => ExecutionProvider::Cuda { device_id: 0 },
        "tensorrt" => ExecutionProvider::TensorRt { device_id: 0 },
        other => return Err(format!("--provider {other}: not cpu, cuda or tensorrt").into()),
    };
    Ok(SessionOptions {
        intra_threads: a.threads,
        provider,
        fallback_to_cpu: false,
        gpu: GpuOptions {
            tf32: a.tf32,
            trt_fp16: a.trt_fp16,
            trt_engine_cache: a.trt_cache.clone(),
            ..GpuOptions::default()
        },
    })
}

/// The fields every RESULT line carries.
fn common(a: &Args, rt: &runtime::OrtRuntime, kind: &str) -> serde_json::Value {
    json!({
        "kind": kind,
        "label": a.label,
        "provider": a.provider,
        "tf32": a.tf32,
        "trt_fp16": a.trt_fp16,
        "model": a.model.display().to_string(),
        "ort_version": rt.version(),
        "ort_library": rt.library().display().to_string(),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn new_tracker(
    a: &Args,
    env: &ort::environment::Environment,
    model: &ModelDir,
) -> Result<(Tracker, Duration), Error> {
    let start = Instant::now();
    let stages = Stages::load(model, env, &session_options(a)?)?;
    let loaded = start.elapsed();
    if let Some(f) = model.fallbacks().first() {
        return Err(format!("a graph fell back to the CPU: {f}").into());
    }
    // Where ONNX Runtime put the nodes: compute on the CPU in a GPU run is a finding.
    eprintln!("  tensors between graphs on {}", stages.device());
    for (graph, p) in stages.placements() {
        let heavy = p.compute_on_cpu();
        eprintln!(
            "  placement {graph}: {}{}",
            p.summary(),
            if heavy.is_empty() {
                String::new()
            } else {
                format!("  <-- compute on the CPU: {heavy:?}")
            }
        );
    }
    Ok((
        Tracker::new(stages, model.manifest(), TrackerConfig::default())?,
        loaded,
    ))
}

/// Graphs (model and helpers) with arithmetic ops ONNX Runtime placed on the
/// CPU while others run on the GPU: `{graph: [[op, count], ...]}`.
fn compute_on_cpu(tracker: &Tracker) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (graph, p) in tracker.placements() {
        let heavy = p.compute_on_cpu();
        if !heavy.is_empty() {
            out.insert(graph.to_string(), json!(heavy));
        }
    }
    serde_json::Value::Object(out)
}

fn parity(a: &Args, rt: &runtime::OrtRuntime) -> Result<(), Error> {
    let model = ModelDir::open(&a.model)?;
    let (mut tracker, load) = new_tracker(a, rt.environment(), &model)?;
    let start = Instant::now();
    let entries = golden::run_scenario(&mut tracker, &a.golden)?;
    let s = golden::Summary::of(&entries);
    let mut out = common(a, rt, "parity");
    out["pairs"] = json!(s.pairs);
    out["min_iou"] = json!(s.min_iou);
    out["mean_iou"] = json!(s.mean_iou);
    out["worst_frame_object"] = json!([s.worst.0, s.worst.1]);
    out["max_logit_diff"] = json!(s.max_logit_diff);
    out["max_score_diff"] = json!(s.max_score_diff);
    out["max_pred_iou_diff"] = json!(s.max_pred_iou_diff);
    out["score_sign_mismatches"] = json!(s.sign_mismatches.len());
    out["within_fp32_limits"] = json!(s.within_fp32_limits());
    out["limits"] =
        json!({"min_iou": golden::MIN_MASK_IOU, "max_logit_diff": golden::MAX_LOGIT_DIFF});
    out["load_s"] = json!(load.as_secs_f64());
    out["run_s"] = json!(start.elapsed().as_secs_f64());
    out["compute_on_cpu"] = compute_on_cpu(&tracker);
    println!("RESULT {out}");
    Ok(())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .map_or(f64::NAN, |kib: f64| kib / 1024.0)
}

fn bench(a: &Args, rt: &runtime::OrtRuntime) -> Result<(), Error> {
    let model = ModelDir::open(&a.model)?;
    let points = read_points(&a.frames)?;
    let frames = read_frames(&a.frames, a.num_frames)?;
    if frames.len() <= a.warmup {
        return Err(format!(
            "{} frames in {}: need more than --warmup {}",
            frames.len(),
            a.frames.display(),
            a.warmup
        )
        .into());
    }
    for &count in &a.objects {
        if count > points.len() {
            return Err(format!(
                "prompts.json has {} points, {count} objects asked",
                points.len()
            )
            .into());
        }
        let (mut tracker, load) = new_tracker(a, rt.environment(), &model)?;
        let mut times = Vec::new();
        let mut stages = StageTimes::default();
        for (i, img) in frames.iter().enumerate() {
            let prompts = clicks(i, &points, count);
            let start = Instant::now();
            let result = tracker.step(FrameInput::Packed(img.frame()), &prompts)?;
            let elapsed = start.elapsed();
            if let Some((i, err)) = result.refused.first() {
                return Err(format!("prompt {i} refused: {err}").into());
            }
            std::hint::black_box(&result.objects);
            times.push(elapsed);
            if i >= a.warmup {
                stages += result.times;
            }
            eprintln!(
                "  {} {} objects={count} frame {i}: {:.1} ms",
                a.label,
                a.provider,
                ms(elapsed)
            );
        }
        let steady: Vec<f64> = times[a.warmup..].iter().map(|d| ms(*d)).collect();
        let n = steady.len() as f64;
        let mean = steady.iter().sum::<f64>() / n;
        let mut sorted = steady.clone();
        sorted.sort_by(f64::total_cmp);
        let per = |d: Duration| ms(d) / n;
        let mut out = common(a, rt, "bench");
        out["objects"] = json!(count);
        out["image_size"] = json!(tracker.dims().s);
        out["frame_size"] = json!([frames[0].width, frames[0].height]);
        out["frames"] = json!(frames.len());
        out["steady_frames"] = json!(steady.len());
        out["ms_per_frame"] = json!(mean);
        out["fps"] = json!(1e3 / mean);
        out["ms_median"] = json!(sorted[sorted.len() / 2]);
        out["ms_min"] = json!(sorted[0]);
        out["ms_max"] = json!(sorted[sorted.len() - 1]);
        out["first_frame_ms"] = json!(ms(times[0]));
        out["stages_ms"] = json!({
            "image_encoder": per(stages.image_encoder),
            "memory_attention": per(stages.memory_attention),
            "mask_decoder": per(stages.mask_decoder),
            "memory_encoder": per(stages.memory_encoder),
            "other": mean - per(stages.total()),
        });
        out["load_s"] = json!(load.as_secs_f64());
        out["peak_rss_mib"] = json!(peak_rss_mib());
        out["compute_on_cpu"] = compute_on_cpu(&tracker);
        println!("RESULT {out}");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Display, not Debug: the message names what is missing
            eprintln!("gpu_check: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    let a = parse_args()?;
    let rt = runtime::acquire(None)?;
    match a.command.as_str() {
        "info" => {
            println!(
                "RESULT {}",
                json!({"kind": "info", "ort_version": rt.version(),
                       "ort_library": rt.library().display().to_string(),
                       "cuda_feature": cfg!(feature = "cuda")})
            );
            Ok(())
        }
        "parity" => parity(&a, &rt),
        "bench" => bench(&a, &rt),
        other => Err(format!(
            "unknown command {other:?}: info, parity or bench (see examples/gpu_check.rs)"
        )
        .into()),
    }
}
