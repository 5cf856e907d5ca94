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
//!   --save-masks DIR      write each frame's masks (object count 1 run... every run)
//!   --reference DIR       compare masks with an earlier --save-masks run (IoU)
//!   --element             also time sam2track in a 1080p pipeline against the
//!                         engine alone on the same frames (needs --video)
//!   --video FILE          the video for --element
//! ```
//!
//! `--frames` holds PNG frames (00000.png, ...) and `prompts.json`
//! (`{"points": [[x, y], ...]}` in frame pixels, one per object). Each run
//! gives objects 1..N one positive click on frame 0 and then tracks frame by
//! frame; a frame's time covers pre-processing (resize, normalise), the four
//! graphs and the frame-size masks the element would output. Prints one
//! `RESULT {json}` line per run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstsam2::engine::model::{ModelDir, SessionOptions};
use gstsam2::engine::runtime;
use gstsam2::engine::stages::{StageTimes, Stages};
use gstsam2::engine::tracker::{Frame, PixelFormat, Tracker, TrackerConfig};

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

struct Image {
    rgb: Vec<u8>,
    width: usize,
    height: usize,
}

fn read_png(path: &Path) -> Result<Image, Error> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    if info.color_type != png::ColorType::Rgb || info.bit_depth != png::BitDepth::Eight {
        return Err(format!("{}: not 8-bit RGB", path.display()).into());
    }
    buf.truncate(info.buffer_size());
    Ok(Image {
        rgb: buf,
        width: info.width as usize,
        height: info.height as usize,
    })
}

fn read_frames(dir: &Path, limit: usize) -> Result<Vec<Image>, Error> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    names.sort();
    if limit > 0 {
        names.truncate(limit);
    }
    names.iter().map(|p| read_png(p)).collect()
}

fn read_points(dir: &Path) -> Result<Vec<[f32; 2]>, Error> {
    let text = std::fs::read_to_string(dir.join("prompts.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let points = v["points"]
        .as_array()
        .ok_or("prompts.json: no \"points\" array")?;
    points
        .iter()
        .map(|p| {
            let x = p[0].as_f64().ok_or("prompts.json: bad point")?;
            let y = p[1].as_f64().ok_or("prompts.json: bad point")?;
            Ok([x as f32, y as f32])
        })
        .collect()
}

/// Resets the peak RSS (VmHWM) of this process (Linux `clear_refs`).
fn reset_peak_rss() -> Result<(), Error> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
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

/// Best-of-3 GFLOP/s of an n x n x n MatMul graph run by ONNX Runtime.
fn matmul_gflops(env: &ort::environment::Environment, path: &Path) -> Result<f64, Error> {
    let mut session = ort::session::Session::builder(env)?.commit_from_file(path)?;
    let n = 4096usize;
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 5) as f32 - 2.0) * 0.1).collect();
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let ta = ort::value::TensorRef::from_array_view(([n as i64, n as i64], a.as_slice()))?;
        let tb = ort::value::TensorRef::from_array_view(([n as i64, n as i64], b.as_slice()))?;
        let start = Instant::now();
        let out = session.run(ort::inputs!["A" => ta, "B" => tb])?;
        best = best.min(start.elapsed().as_secs_f64());
        drop(out);
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
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
        self.stages.image_encoder += stages.image_encoder;
        self.stages.memory_attention += stages.memory_attention;
        self.stages.mask_decoder += stages.mask_decoder;
        self.stages.memory_encoder += stages.memory_encoder;
    }

    fn per_frame(&self, d: Duration) -> f64 {
        ms(d) / self.frames.max(1) as f64
    }
}

fn mask_file(dir: &Path, objects: usize, frame: usize) -> PathBuf {
    dir.join(format!("objects{objects}-frame{frame:05}.bin"))
}

/// IoU of two binary masks; two empty masks agree fully.
fn iou(a: &[u8], b: &[u8]) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x != 0, *y != 0);
        inter += u64::from(x && y);
        union += u64::from(x || y);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
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
    let config = TrackerConfig {
        num_maskmem: args.memory_frames,
        ..TrackerConfig::default()
    };
    let stages = Stages::load(model, env, &options(args))?;
    let mut tracker = Tracker::new(stages, model.manifest(), config)?;
    let rss_loaded = status_kib("VmRSS")?;
    reset_peak_rss()?;
    let mut steady = Totals::default();
    let mut ious: Vec<f64> = Vec::new();
    // Masks empty in both runs (an object judged absent): they agree but say
    // nothing about mask quality.
    let mut both_empty = 0usize;
    let mut rss_at_warmup = 0;
    for (i, img) in frames.iter().enumerate() {
        let frame = Frame {
            data: &img.rgb,
            width: img.width,
            height: img.height,
            stride: img.width * 3,
            format: PixelFormat::Rgb,
        };
        let start = Instant::now();
        tracker.begin_frame(&frame)?;
        if i == 0 {
            for (k, p) in points.iter().take(count).enumerate() {
                tracker.add_points(k as u32 + 1, &[*p], &[1], true)?;
            }
        }
        let outputs = tracker.track()?;
        let masks = tracker.frame_masks_with_boxes(&outputs)?;
        let elapsed = start.elapsed();
        let stages = tracker.take_stage_times();
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
        if let Some(dir) = &args.save_masks {
            std::fs::create_dir_all(dir)?;
            std::fs::write(mask_file(dir, count, i), &flat)?;
        }
        if let Some(dir) = &args.reference {
            let reference = std::fs::read(mask_file(dir, count, i))?;
            if reference.len() != flat.len() {
                return Err(format!("reference masks of frame {i} differ in size").into());
            }
            let plane = img.width * img.height;
            for (a, b) in flat.chunks(plane).zip(reference.chunks(plane)) {
                ious.push(iou(a, b));
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
        let mean = ious.iter().sum::<f64>() / ious.len() as f64;
        let min = ious.iter().copied().fold(f64::INFINITY, f64::min);
        result["iou_vs_reference"] = serde_json::json!({
            "mean": mean,
            "min": min,
            "masks": ious.len(),
            "both_empty": both_empty,
        });
    }
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

/// Wall time of a pipeline run to EOS.
fn time_pipeline(description: &str) -> Result<Duration, Error> {
    use gst::prelude::*;
    let pipeline = gst::parse::launch(description)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => {
                pipeline.set_state(gst::State::Null)?;
                return Err(format!("{description}: {}", e.error()).into());
            }
            _ => {}
        }
    }
    let elapsed = start.elapsed();
    pipeline.set_state(gst::State::Null)?;
    Ok(elapsed)
}

/// sam2track in a decode → 1080p → sam2track → fakesink pipeline, against
/// the same decode alone and the engine alone on the same frames.
fn element_overhead(
    args: &Args,
    env: &ort::environment::Environment,
    model: &ModelDir,
    points: &[[f32; 2]],
    frame_size: (usize, usize),
) -> Result<serde_json::Value, Error> {
    let video = args.video.as_ref().ok_or("--element needs --video")?;
    let n = if args.num_frames > 0 {
        args.num_frames
    } else {
        12
    };
    gst::init()?;
    gstsam2::plugin_register_static()?;
    // The prompt in 1080p pixels (prompts.json is in benchmark-frame pixels).
    let [x, y] = points[0];
    let (fx, fy) = (
        x * 1920.0 / frame_size.0 as f32,
        y * 1080.0 / frame_size.1 as f32,
    );
    let source = format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! identity eos-after={n} \
         ! videoscale ! video/x-raw,width=1920,height=1080",
        video.display()
    );
    let threads = args.threads.map_or(0, |t| t as i32);
    let element = format!(
        "{source} ! sam2track mode=sync threads={threads} model-dir=\"{}\" prompt=\"1:point={fx},{fy}\" ! fakesink",
        model.dir().display()
    );
    // Engine alone on the same frames (RGB), same prompt.
    let frames = decode_1080p(video, n)?;
    let stages = Stages::load(model, env, &options(args))?;
    let mut tracker = Tracker::new(stages, model.manifest(), TrackerConfig::default())?;
    let start = Instant::now();
    for (i, img) in frames.iter().enumerate() {
        tracker.begin_frame(&Frame {
            data: &img.rgb,
            width: img.width,
            height: img.height,
            stride: img.width * 3,
            format: PixelFormat::Rgb,
        })?;
        if i == 0 {
            tracker.add_points(1, &[[fx, fy]], &[1], true)?;
        }
        let outputs = tracker.track()?;
        std::hint::black_box(tracker.frame_masks_with_boxes(&outputs)?);
    }
    let engine = start.elapsed();
    drop(tracker);
    let decode = time_pipeline(&format!("{source} ! fakesink"))?;
    let with_element = time_pipeline(&element)?;
    let engine_ms = ms(engine) / frames.len() as f64;
    let element_ms = ms(with_element.saturating_sub(decode)) / n as f64;
    Ok(serde_json::json!({
        "impl": "sam2track-element",
        "frames": n,
        "input": "1920x1080 I420 (avdec_h264 + videoscale)",
        "decode_ms_per_frame": ms(decode) / n as f64,
        "pipeline_ms_per_frame": ms(with_element) / n as f64,
        "element_ms_per_frame": element_ms,
        "engine_ms_per_frame": engine_ms,
        "overhead": element_ms / engine_ms - 1.0,
    }))
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let rt = runtime::acquire(None)?;
    let env = rt.environment();
    let model = ModelDir::open(&args.model)?;
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
        let result = run(&args, env, &model, &frames, &points, count)?;
        println!("RESULT {result}");
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
            serde_json::json!({"impl": "sam2track", "matmul_gflops": [peak_before, after]})
        );
    }
    Ok(())
}
