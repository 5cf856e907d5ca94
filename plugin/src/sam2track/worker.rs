// SPDX-License-Identifier: MPL-2.0

//! The inference thread: it owns the [`Tracker`] and runs one frame at a
//! time. The streaming thread either waits for a frame's result (sync mode)
//! or offers frames and never waits (async mode: a frame is taken only
//! when the thread is free or its one-slot mailbox holds a frame without
//! prompts, so the lag is bounded by about one inference).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst_video::prelude::*;

use crate::engine::stages::StageTimes;
use crate::engine::step::{FrameInput, ObjectResult, Prompt};
use crate::engine::tracker::{Frame, PixelFormat, Tracker};
use crate::sync;

use super::overlay::{self, Layout, Yuv};
use super::prompt::{Command, Coord};

/// Per-job options read from the element's settings for each frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobOptions {
    pub mask_threshold: f32,
    pub non_overlap: bool,
    /// Testing aid: sleep this long after each inference.
    pub delay: Duration,
}

/// A frame to run.
pub struct Job {
    /// The element's frame number.
    pub number: u64,
    /// A shallow copy of the input buffer (shares its memory).
    pub buffer: gst::Buffer,
    pub info: gst_video::VideoInfo,
    /// Prompts to apply on this frame, in order; new objects already have ids.
    pub commands: Vec<Command>,
    pub options: JobOptions,
}

impl Job {
    pub fn has_commands(&self) -> bool {
        !self.commands.is_empty()
    }
}

/// Result of one frame.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub frame_number: u64,
    pub width: usize,
    pub height: usize,
    pub threshold: f32,
    pub non_overlap: bool,
    /// Every object's result (masks at `width`×`height`).
    pub objects: Vec<ObjectResult>,
    /// Time spent on the frame by the inference thread (0 when the frame
    /// needed no inference), the testing `delay` included.
    pub elapsed: Duration,
    /// Of which in the engine proper: pre-processing, prompts, the graphs,
    /// frame-size masks (not the conversion of YUV frames to RGB).
    pub engine: Duration,
    /// Of which in each graph.
    pub times: StageTimes,
    /// Flush epoch the frame belongs to.
    epoch: u64,
}

/// Things the worker tells the element about after a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Prompts the tracker refused on frame `frame`: (what, why) each, in
    /// order (the element posts one warning for them all).
    Refused {
        frame: u64,
        prompts: Vec<(String, String)>,
    },
    /// Ids that are no longer objects: removed by a click, or refused as
    /// new objects.
    Released(Vec<u32>),
}

/// What one frame has to tell, gathered while it runs.
#[derive(Debug, Default)]
struct Notes {
    refused: Vec<(String, String)>,
    released: Vec<u32>,
}

impl Notes {
    fn refuse(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.refused.push((what.into(), why.into()));
    }

    fn send(self, frame: u64, notify: &dyn Fn(Note)) {
        if !self.refused.is_empty() {
            notify(Note::Refused {
                frame,
                prompts: self.refused,
            });
        }
        if !self.released.is_empty() {
            notify(Note::Released(self.released));
        }
    }
}

/// Why a synchronous run gave no outcome.
#[derive(Debug, Clone)]
pub enum RunError {
    Flushing,
    /// Inference failed: the stream cannot go on.
    Fatal(String),
}

#[derive(Default)]
struct Inner {
    pending: Option<Job>,
    busy: bool,
    latest: Option<Arc<Outcome>>,
    fatal: Option<String>,
    quit: bool,
    flushing: bool,
    epoch: u64,
    /// Drop the tracker's objects and memory before the next job.
    reset: bool,
    has_objects: bool,
}

type Shared = Arc<(Mutex<Inner>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    sync::lock(&shared.0)
}

pub struct Worker {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the inference thread with `tracker`; `notify` is called on it.
    /// `panic_at`: a testing aid (debug builds, see [`test_panic_frame`]):
    /// the thread panics on that frame.
    pub fn spawn(
        tracker: Tracker,
        notify: Box<dyn Fn(Note) + Send>,
        panic_at: Option<u64>,
    ) -> std::io::Result<Worker> {
        let shared: Shared = Arc::default();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sam2track-infer".into())
            .spawn(move || run(s, tracker, notify, panic_at))?;
        Ok(Worker {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `job` and waits for its outcome.
    pub fn run_sync(&self, job: Job) -> Result<Arc<Outcome>, RunError> {
        let number = job.number;
        let mut inner = lock(&self.shared);
        loop {
            if let Some(err) = &inner.fatal {
                return Err(RunError::Fatal(err.clone()));
            }
            if inner.flushing {
                return Err(RunError::Flushing);
            }
            if inner.pending.is_none() && !inner.busy {
                break;
            }
            inner = sync::wait(&self.shared.1, inner);
        }
        let epoch = inner.epoch;
        inner.pending = Some(job);
        self.shared.1.notify_all();
        loop {
            if let Some(err) = &inner.fatal {
                return Err(RunError::Fatal(err.clone()));
            }
            if inner.flushing || inner.epoch != epoch {
                return Err(RunError::Flushing);
            }
            if let Some(out) = &inner.latest
                && out.frame_number == number
                && out.epoch == epoch
                && !inner.busy
            {
                return Ok(out.clone());
            }
            inner = sync::wait(&self.shared.1, inner);
        }
    }

    /// Offers `job` without waiting. Taken when the thread is idle or the
    /// waiting job carries no prompts (it is replaced); otherwise the job's
    /// prompts are given back so they can go with a later frame.
    pub fn offer(&self, job: Job) -> Result<(), Vec<Command>> {
        let mut inner = lock(&self.shared);
        if inner.flushing || inner.fatal.is_some() {
            return Err(job.commands);
        }
        match &inner.pending {
            Some(waiting) if waiting.has_commands() => return Err(job.commands),
            _ => {}
        }
        inner.pending = Some(job);
        self.shared.1.notify_all();
        Ok(())
    }

    /// The most recent outcome of the current flush epoch.
    pub fn latest(&self) -> Option<Arc<Outcome>> {
        let inner = lock(&self.shared);
        inner.latest.clone().filter(|o| o.epoch == inner.epoch)
    }

    /// Whether the tracker had objects after the last job.
    pub fn has_objects(&self) -> bool {
        lock(&self.shared).has_objects
    }

    /// Whether a job is running or waiting.
    pub fn is_busy(&self) -> bool {
        let inner = lock(&self.shared);
        inner.busy || inner.pending.is_some()
    }

    pub fn fatal(&self) -> Option<String> {
        lock(&self.shared).fatal.clone()
    }

    /// Unblocks waiters and refuses work until [`Worker::flush_stop`].
    pub fn flush_start(&self) {
        let mut inner = lock(&self.shared);
        inner.flushing = true;
        inner.pending = None;
        self.shared.1.notify_all();
    }

    /// Accepts work again; outcomes of earlier frames are forgotten, and
    /// with `reset` the tracker drops all objects and memory.
    pub fn flush_stop(&self, reset: bool) {
        let mut inner = lock(&self.shared);
        inner.flushing = false;
        inner.pending = None;
        inner.epoch += 1;
        if reset {
            inner.reset = true;
            inner.has_objects = false;
        }
        self.shared.1.notify_all();
    }

    /// Waits until no job is running or waiting (e.g. at EOS).
    pub fn drain(&self) {
        let mut inner = lock(&self.shared);
        while (inner.busy || inner.pending.is_some()) && !inner.quit && inner.fatal.is_none() {
            inner = sync::wait(&self.shared.1, inner);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        {
            let mut inner = lock(&self.shared);
            inner.quit = true;
            inner.pending = None;
            self.shared.1.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Environment variable of the fault-injection testing aid: `NAME:FRAME`
/// makes the inference thread of the element named NAME panic on frame
/// FRAME. Read in debug builds only (the tests'); release builds ignore it.
pub const TEST_PANIC_ENV: &str = "SAM2TRACK_TEST_PANIC";

/// The frame on which the element `name` must panic ([`TEST_PANIC_ENV`]).
pub fn test_panic_frame(name: &str) -> Option<u64> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let value = std::env::var(TEST_PANIC_ENV).ok()?;
    let (element, frame) = value.rsplit_once(':')?;
    (element == name).then(|| frame.parse().ok())?
}

fn run(
    shared: Shared,
    mut tracker: Tracker,
    notify: Box<dyn Fn(Note) + Send>,
    panic_at: Option<u64>,
) {
    loop {
        let (job, epoch, reset) = {
            let mut inner = lock(&shared);
            loop {
                if inner.quit {
                    return;
                }
                if let Some(job) = inner.pending.take() {
                    inner.busy = true;
                    let reset = std::mem::take(&mut inner.reset);
                    break (job, inner.epoch, reset);
                }
                inner = sync::wait(&shared.1, inner);
            }
        };
        if reset {
            tracker.reset();
        }
        let number = job.number;
        let mut notes = Notes::default();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if panic_at == Some(number) {
                panic!("fault injected by {TEST_PANIC_ENV} on frame {number}");
            }
            process(&mut tracker, job, &mut notes)
        }));
        notes.send(number, &*notify);
        let mut inner = lock(&shared);
        inner.busy = false;
        match result {
            Ok(Ok(mut outcome)) => {
                outcome.epoch = epoch;
                let outcome = Arc::new(outcome);
                inner.has_objects = !tracker.object_ids().is_empty();
                inner.latest = Some(outcome);
            }
            Ok(Err(err)) => inner.fatal = Some(err),
            Err(panic) => {
                let what = sync::panic_message(panic.as_ref());
                inner.fatal = Some(format!("the inference thread panicked: {what}"));
            }
        }
        shared.1.notify_all();
    }
}

/// Packed layout of the element's RGB formats.
pub fn packed_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as F;
    Some(match format {
        F::Rgb => PixelFormat::Rgb,
        F::Bgr => PixelFormat::Bgr,
        F::Rgba => PixelFormat::Rgba,
        F::Bgra => PixelFormat::Bgra,
        F::Rgbx => PixelFormat::Rgbx,
        F::Bgrx => PixelFormat::Bgrx,
        _ => return None,
    })
}

/// The YUV matrix of `info` (BT.709 when signalled, else BT.601).
pub fn yuv_of(info: &gst_video::VideoInfo) -> Yuv {
    let c = info.colorimetry();
    let mut m = if c.matrix() == gst_video::VideoColorMatrix::Bt709 {
        Yuv::BT709
    } else {
        Yuv::BT601
    };
    m.full_range = c.range() == gst_video::VideoColorRange::Range0_255;
    m
}

/// The engine prompt of `cmd` on a `width`×`height` frame (relative
/// coordinates resolved).
fn to_prompt(cmd: &Command, width: usize, height: usize) -> Prompt {
    let px = |c: &Coord, extent| c.resolve(extent);
    match cmd {
        Command::Prompt {
            id,
            clicks,
            bbox,
            clear,
        } => Prompt::Points {
            id: *id,
            clicks: clicks
                .iter()
                .map(|c| ([px(&c.x, width), px(&c.y, height)], c.positive))
                .collect(),
            bbox: bbox.map(|[x0, y0, x1, y1]| {
                [
                    px(&x0, width),
                    px(&y0, height),
                    px(&x1, width),
                    px(&y1, height),
                ]
            }),
            clear: *clear,
        },
        Command::Mask { id, mask } => Prompt::Mask {
            id: *id,
            width: mask.width,
            height: mask.height,
            data: mask.data.clone(),
        },
        Command::Remove { id } => Prompt::Remove { id: *id },
        Command::RemoveAt { x, y } => Prompt::RemoveAt {
            x: px(x, width),
            y: px(y, height),
        },
        Command::Reset => Prompt::Reset,
    }
}

/// Runs the engine on `job`'s frame. `Err`: fatal (inference failed).
fn process(tracker: &mut Tracker, job: Job, notes: &mut Notes) -> Result<Outcome, String> {
    let Job {
        number,
        buffer,
        info,
        commands,
        options,
    } = job;
    let (width, height) = (info.width() as usize, info.height() as usize);
    tracker.set_mask_output(options.mask_threshold, options.non_overlap);
    let prompts: Vec<Prompt> = commands
        .iter()
        .map(|c| to_prompt(c, width, height))
        .collect();
    let start = Instant::now();
    // YUV frames are converted only when the engine will read them
    let needs_pixels = !tracker.object_ids().is_empty()
        || prompts
            .iter()
            .any(|p| matches!(p, Prompt::Points { .. } | Prompt::Mask { .. }));
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
        .map_err(|err| format!("cannot read frame {number}: {err}"))?;
    let rgb;
    let (data, stride, format) = match packed_format(info.format()) {
        Some(format) => (
            frame.plane_data(0).map_err(|e| e.to_string())?,
            frame.plane_stride()[0] as usize,
            format,
        ),
        None if !needs_pixels => (&[][..], 0, PixelFormat::Rgb),
        None => {
            let layout = match info.format() {
                gst_video::VideoFormat::Nv12 => Layout::Nv12,
                gst_video::VideoFormat::I420 => Layout::I420,
                other => return Err(format!("unsupported format {other:?}")),
            };
            let planes: Vec<&[u8]> = (0..frame.n_planes())
                .map(|p| frame.plane_data(p).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            let strides: Vec<usize> = frame.plane_stride().iter().map(|s| *s as usize).collect();
            rgb = overlay::yuv_to_rgb(layout, yuv_of(&info), width, height, &planes, &strides);
            (&rgb[..], width * 3, PixelFormat::Rgb)
        }
    };
    let input = FrameInput::Packed(Frame {
        data,
        width,
        height,
        stride,
        format,
    });
    let engine_start = Instant::now();
    let result = tracker
        .step(input, &prompts)
        .map_err(|err| format!("frame {number}: {err}"))?;
    let engine = engine_start.elapsed();
    drop(frame);
    drop(buffer);
    for (i, err) in &result.refused {
        notes.refuse(commands[*i].to_string(), err.to_string());
    }
    notes.released.extend(&result.released);
    let inferred = result.index.is_some();
    if inferred && !options.delay.is_zero() {
        std::thread::sleep(options.delay);
    }
    Ok(Outcome {
        frame_number: number,
        width,
        height,
        threshold: options.mask_threshold,
        non_overlap: options.non_overlap,
        objects: result.objects,
        // the testing delay stands for a slower engine: it counts
        elapsed: if inferred {
            start.elapsed()
        } else {
            Duration::ZERO
        },
        engine: if inferred { engine } else { Duration::ZERO },
        times: result.times,
        epoch: 0,
    })
}
