// SPDX-License-Identifier: MPL-2.0

//! Who runs the tracker, and when. In sync mode the streaming thread runs
//! each frame itself, on the buffer it holds (no copy), and waits for it. In
//! async mode it offers frames to the inference thread through a one-slot
//! mailbox where the newest frame wins (a frame with prompts is never
//! replaced: a later frame's prompts are given back instead), and every
//! frame carries the latest published result. The tracker sits behind its
//! own lock, so a switch between the modes only waits for the frame running.
//!
//! A flushing seek does not interrupt a frame ONNX Runtime is running: in
//! sync mode the seek waits for the streaming thread to finish that frame
//! (at most one inference), whose result is then dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::engine::tracker::Tracker;
use crate::sync;

use super::color::RgbConverter;
use super::infer::{self, Failure, FrameJob, JobOptions, Note, Notes, Outcome};
use super::prompt::Command;

/// A frame offered to the inference thread (async mode).
pub struct Job {
    /// The element's frame number.
    pub number: u64,
    /// A shallow copy of the input buffer (shares its memory).
    pub buffer: gst::Buffer,
    pub info: gst_video::VideoInfo,
    /// Prompts to apply on this frame, in order; new objects have their ids.
    pub commands: Vec<Command>,
    pub options: JobOptions,
}

/// Why a synchronous run gave no outcome.
#[derive(Debug, Clone)]
pub enum RunError {
    /// A flush came: the frame is dropped.
    Flushing,
    /// The stream cannot go on.
    Failed(Failure),
}

/// The hand-off state, under one lock with its condition variable.
#[derive(Default)]
struct Handoff {
    /// The next frame for the inference thread.
    slot: Option<Job>,
    /// The inference thread is running a frame.
    busy: bool,
    /// The latest result, any mode.
    latest: Option<Arc<Outcome>>,
    failure: Option<Failure>,
    flushing: bool,
    /// Flushes so far: results of an earlier epoch are not shown.
    epoch: u64,
    /// Drop every object and memory before the next frame.
    reset: bool,
    quit: bool,
}

/// What both runners share.
struct Shared {
    /// The tracker, and the converter of YUV frames for it.
    tracker: Mutex<(Tracker, RgbConverter)>,
    handoff: Mutex<Handoff>,
    changed: Condvar,
    has_objects: AtomicBool,
    notify: Box<dyn Fn(Note) + Send + Sync>,
    /// Testing aid (see [`test_panic_frame`]).
    panic_at: Option<u64>,
}

impl Shared {
    fn handoff(&self) -> MutexGuard<'_, Handoff> {
        sync::lock(&self.handoff)
    }

    /// Waits on the hand-off state until `ready` holds.
    fn wait_until(&self, ready: impl Fn(&Handoff) -> bool) -> MutexGuard<'_, Handoff> {
        let mut h = self.handoff();
        while !ready(&h) {
            h = sync::wait(&self.changed, h);
        }
        h
    }

    /// Runs `job` of flush epoch `epoch` on the tracker (on the calling
    /// thread) and publishes its result. `Ok(None)`: a flush came since the
    /// job was taken; the frame is dropped (and a reset waits for the next).
    fn run(&self, job: &FrameJob<'_>, epoch: u64) -> Result<Option<Arc<Outcome>>, Failure> {
        let mut guard = sync::lock(&self.tracker);
        let (tracker, converter) = &mut *guard;
        let mut notes = Notes::default();
        {
            let mut h = self.handoff();
            if h.flushing || h.epoch != epoch {
                return Ok(None);
            }
            if std::mem::take(&mut h.reset) {
                notes.release(tracker.object_ids());
                tracker.reset();
            }
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if self.panic_at == Some(job.number) {
                panic!("fault injected by {TEST_PANIC_ENV} on frame {}", job.number);
            }
            infer::run_frame(tracker, converter, job, &mut notes)
        }))
        .unwrap_or_else(|panic| Err(Failure::Panic(sync::panic_message(panic.as_ref()))));
        self.has_objects
            .store(!tracker.object_ids().is_empty(), Ordering::SeqCst);
        drop(guard);
        notes.send(job.number, &*self.notify);
        let mut h = self.handoff();
        let published = match result {
            Ok(mut outcome) => {
                outcome.epoch = epoch;
                let outcome = Arc::new(outcome);
                h.latest = Some(outcome.clone());
                Ok(Some(outcome))
            }
            Err(failure) => {
                h.failure = Some(failure.clone());
                Err(failure)
            }
        };
        self.changed.notify_all();
        published
    }
}

pub struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the inference thread for `tracker`; `notify` is called after
    /// each frame, on the thread that ran it. `panic_at`: a testing aid
    /// (debug builds, see [`test_panic_frame`]): that frame panics.
    pub fn spawn(
        tracker: Tracker,
        notify: Box<dyn Fn(Note) + Send + Sync>,
        panic_at: Option<u64>,
    ) -> std::io::Result<Worker> {
        let shared = Arc::new(Shared {
            tracker: Mutex::new((tracker, RgbConverter::default())),
            handoff: Mutex::default(),
            changed: Condvar::new(),
            has_objects: AtomicBool::new(false),
            notify,
            panic_at,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sam2track-infer".into())
            .spawn(move || inference_thread(&s))?;
        Ok(Worker {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs a frame on the calling thread and returns its result, after the
    /// frame the inference thread may be running or holding.
    pub fn run_sync(&self, job: &FrameJob<'_>) -> Result<Arc<Outcome>, RunError> {
        let epoch = {
            let h = self
                .shared
                .wait_until(|h| h.failure.is_some() || h.flushing || (h.slot.is_none() && !h.busy));
            if let Some(failure) = &h.failure {
                return Err(RunError::Failed(failure.clone()));
            }
            if h.flushing {
                return Err(RunError::Flushing);
            }
            h.epoch
        };
        let outcome = self
            .shared
            .run(job, epoch)
            .map_err(RunError::Failed)?
            .ok_or(RunError::Flushing)?;
        let h = self.shared.handoff();
        if h.flushing || h.epoch != epoch {
            return Err(RunError::Flushing);
        }
        Ok(outcome)
    }

    /// Offers `job` to the inference thread without waiting. Taken when the
    /// slot is empty or holds a frame without prompts (replaced); otherwise
    /// the job's prompts are given back to go with a later frame.
    pub fn offer(&self, job: Job) -> Result<(), Vec<Command>> {
        let mut h = self.shared.handoff();
        let prompted = h.slot.as_ref().is_some_and(|j| !j.commands.is_empty());
        if h.flushing || h.failure.is_some() || prompted {
            return Err(job.commands);
        }
        h.slot = Some(job);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// The most recent result of the current flush epoch.
    pub fn latest(&self) -> Option<Arc<Outcome>> {
        let h = self.shared.handoff();
        h.latest.clone().filter(|o| o.epoch == h.epoch)
    }

    /// Whether the tracker had objects after the last frame.
    pub fn has_objects(&self) -> bool {
        self.shared.has_objects.load(Ordering::SeqCst)
    }

    /// Whether the inference thread is running or holding a frame.
    pub fn is_busy(&self) -> bool {
        let h = self.shared.handoff();
        h.busy || h.slot.is_some()
    }

    /// Why frames cannot run any more, if they cannot.
    pub fn failure(&self) -> Option<Failure> {
        self.shared.handoff().failure.clone()
    }

    /// Drops the waiting frame and refuses frames until [`Worker::flush_stop`].
    pub fn flush_start(&self) {
        let mut h = self.shared.handoff();
        h.flushing = true;
        h.slot = None;
        self.shared.changed.notify_all();
    }

    /// Takes frames again; earlier results are forgotten, and with `reset`
    /// every object and memory is dropped before the next frame.
    pub fn flush_stop(&self, reset: bool) {
        let mut h = self.shared.handoff();
        h.flushing = false;
        h.slot = None;
        h.epoch += 1;
        if reset {
            h.reset = true;
            self.shared.has_objects.store(false, Ordering::SeqCst);
        }
        self.shared.changed.notify_all();
    }

    /// Waits until the inference thread runs and holds no frame (e.g. at EOS).
    pub fn drain(&self) {
        drop(
            self.shared
                .wait_until(|h| !(h.busy || h.slot.is_some()) || h.quit || h.failure.is_some()),
        );
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        {
            let mut h = self.shared.handoff();
            h.quit = true;
            h.slot = None;
            self.shared.changed.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Environment variable of the fault-injection testing aid: `NAME:FRAME`
/// makes the element named NAME panic while running frame FRAME. Read in
/// debug builds only (the tests'); release builds ignore it.
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

/// The async runner: frames from the slot, one at a time, until quit.
fn inference_thread(shared: &Shared) {
    loop {
        let (job, epoch) = {
            let mut h = shared.wait_until(|h| h.quit || h.slot.is_some());
            if h.quit {
                return;
            }
            let job = h.slot.take().expect("a frame in the slot");
            h.busy = true;
            (job, h.epoch)
        };
        let frame = FrameJob {
            number: job.number,
            buffer: job.buffer.as_ref(),
            info: &job.info,
            commands: &job.commands,
            options: job.options,
        };
        // a failure is published in the hand-off state
        let _ = shared.run(&frame, epoch);
        drop(job);
        let mut h = shared.handoff();
        h.busy = false;
        shared.changed.notify_all();
    }
}
