// SPDX-License-Identifier: MPL-2.0

//! GStreamer glue of the `sam2track` element.
//!
//! This file holds the subclass methods: properties, caps, events, state
//! changes and the per-frame path. Frames run through the engine on the
//! streaming thread (sync mode) or on the inference thread of
//! [`super::worker`] without the streaming thread ever waiting (async
//! mode, for live sources), see the README's "Live sources" section.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::engine::runtime;
use crate::sync::lock;

mod detect;
mod intake;
mod latency;

use super::OnFlush;
use super::detections::Associator;
use super::inbox::{Channel, Inbox};
use super::infer::{Failure, FrameJob, Note, Outcome};
use super::output::Output;
use super::prompt::{self, PromptError};
use super::settings::{self, *};
use super::signals;
use super::startup::{self, Loaded};
use super::style_props;
use super::worker::{self, Job, RunError, Worker};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "sam2track",
        gst::DebugColorFlags::empty(),
        Some("SAM 2 video segmentation and tracking"),
    )
});

/// Runtime state: created in `start()`, dropped in `stop()`.
struct State {
    /// Keeps ONNX Runtime referenced while the worker's sessions live.
    _runtime: Arc<runtime::OrtRuntime>,
    worker: Arc<Worker>,
    video_info: Option<gst_video::VideoInfo>,
    /// Frames received since start.
    frames: u64,
    /// Whether upstream is live (from a LATENCY query), None: not asked yet.
    upstream_live: Option<bool>,
    /// Longest inference seen, and the latency last reported for it.
    max_inference: Duration,
    reported_latency: gst::ClockTime,
}

#[derive(Default)]
pub struct Sam2Track {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Prompts waiting for a frame, and the object ids. Not under `state`:
    /// signals must not wait on inference or drawing.
    inbox: Mutex<Inbox>,
    /// What frames carry out; streaming thread only (not under `state`:
    /// drawing holds no lock others wait on).
    output: Mutex<Output>,
    /// Upstream detections against tracked objects (`roi-prompts`) and the
    /// lost-object count (`remove-after`).
    detections: Mutex<Associator>,
}

#[glib::object_subclass]
impl ObjectSubclass for Sam2Track {
    const NAME: &'static str = "GstSam2Track";
    type Type = super::Sam2Track;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for Sam2Track {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(settings::specs);
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(signals::specs);
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        // As gst-plugins-rs elements: what only takes effect at start is
        // refused while running, rather than shown by the getter but not used.
        if pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY) && lock(&self.state).is_some() {
            gst::element_imp_warning!(
                self,
                gst::CoreError::StateChange,
                (
                    "Ignored setting '{}': it can only be changed in the NULL or READY state \
                     (stop the pipeline first)",
                    pspec.name()
                ),
                ["refused value {:?}", value]
            );
            return;
        }
        gst::debug!(CAT, imp = self, "Setting {} to {:?}", pspec.name(), value);
        let mut s = lock(&self.settings);
        s.set(pspec.name(), value);
        if pspec.name() == settings::PROP_PROMPT {
            let pending = s.prompt.is_some();
            drop(s);
            lock(&self.inbox).set_prompt_pending(pending);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        lock(&self.settings).get(pspec)
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Buffers are written in place (metadata, overlay); never passthrough.
        self.obj().set_passthrough(false);
        self.obj().set_in_place(true);
        // As video filters: frames already too late for the sink are dropped
        // before inference (the base class posts the QoS messages).
        self.obj().set_qos(true);
    }
}

impl GstObjectImpl for Sam2Track {}

impl ElementImpl for Sam2Track {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "SAM 2 video tracker",
                "Filter/Analyzer/Video",
                "Segments and tracks objects in video with Meta's SAM 2 through ONNX Runtime",
                "sam2track contributors",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = style_props::video_caps();
            style_props::pad_templates(&caps, &caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Sam2Track {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let mut settings = lock(&self.settings).clone();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        if settings.threads > cores {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                (
                    "'{}' is {}, more than the {} CPU cores here: using {} (more threads than \
                     cores only slow inference down)",
                    PROP_THREADS,
                    settings.threads,
                    cores,
                    cores
                )
            );
            settings.threads = cores;
        }

        let Loaded {
            runtime,
            tracker,
            schedule,
        } = startup::load(&self.obj(), &settings)?;

        let weak = self.obj().downgrade();
        let notify = Box::new(move |note: Note| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().take_note(note);
            }
        });
        let panic_at = worker::test_panic_frame(&self.obj().name());
        let worker = Worker::spawn(tracker, notify, panic_at).map_err(|err| {
            gst::error_msg!(
                gst::CoreError::Thread,
                ("Cannot start the inference thread: {}", err)
            )
        })?;
        gst::info!(
            CAT,
            imp = self,
            "Started ({} prompt-file entries)",
            schedule.len()
        );
        lock(&self.inbox).start(schedule, settings.prompt.is_some());
        *lock(&self.state) = Some(State {
            _runtime: runtime,
            worker: Arc::new(worker),
            video_info: None,
            frames: 0,
            upstream_live: None,
            max_inference: Duration::ZERO,
            reported_latency: gst::ClockTime::ZERO,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Dropping the worker joins the inference thread (after its current
        // frame). The ONNX Runtime environment stays loaded for the process.
        let state = lock(&self.state).take();
        drop(state);
        lock(&self.inbox).stop();
        lock(&self.output).forget();
        lock(&self.detections).reset();
        gst::debug!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Failed to parse input caps {incaps}"))?;
        gst::debug!(
            CAT,
            imp = self,
            "Configured for {incaps} -> {outcaps} ({}x{} {:?})",
            info.width(),
            info.height(),
            info.format()
        );
        let mut state = lock(&self.state);
        let Some(state) = state.as_mut() else {
            return Err(gst::loggable_error!(CAT, "Caps set before start()"));
        };
        state.video_info = Some(info);
        // live-ness may change with the new upstream
        state.upstream_live = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::CustomDownstream(_) | EventView::CustomDownstreamOob(_) => {
                if let Some(s) = event.structure() {
                    let serialized = event.is_serialized();
                    let what = format!("{} event", s.name());
                    match prompt::parse_structure(s) {
                        Ok(cmds) => {
                            gst::debug!(CAT, imp = self, "Downstream prompt event: {cmds:?}");
                            let channel = if serialized {
                                Channel::Serialized
                            } else {
                                Channel::Next
                            };
                            return self.enqueue(&what, channel, cmds).is_some();
                        }
                        Err(PromptError::NotOurs) => {}
                        Err(err) => {
                            self.warn_error(&what, &err);
                            return false;
                        }
                    }
                }
            }
            EventView::FlushStart(_) => {
                if let Some(state) = lock(&self.state).as_ref() {
                    state.worker.flush_start();
                }
            }
            EventView::FlushStop(_) => {
                let reset = lock(&self.settings).on_flush == OnFlush::Reset;
                if let Some(state) = lock(&self.state).as_mut() {
                    state.worker.flush_stop(reset);
                }
                lock(&self.output).forget();
                lock(&self.inbox).flush(reset);
                if reset {
                    lock(&self.detections).reset();
                }
                gst::debug!(CAT, imp = self, "Flushed (reset: {reset})");
            }
            EventView::Eos(_) => {
                // Frames already went out; let the last inference finish so
                // that stopping right after EOS does not wait on it.
                let worker = lock(&self.state).as_ref().map(|s| s.worker.clone());
                if let Some(worker) = worker {
                    worker.drain();
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::CustomUpstream(ev) => {
                if let Some(s) = ev.structure() {
                    match prompt::parse_structure(s) {
                        Ok(cmds) => {
                            gst::debug!(CAT, imp = self, "Upstream prompt event: {cmds:?}");
                            return self.queue(&format!("{} event", s.name()), cmds);
                        }
                        Err(PromptError::NotOurs) => {}
                        Err(err) => {
                            self.warn_error(&format!("{} event", s.name()), &err);
                            return false;
                        }
                    }
                }
            }
            EventView::Navigation(_)
                if lock(&self.settings).navigation && self.handle_navigation(&event) =>
            {
                return true;
            }
            _ => {}
        }
        self.parent_src_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            let ok = self.obj().sink_pad().peer_query(q.query_mut());
            if ok {
                let (live, min, max) = q.result();
                let ours = self.added_latency(live);
                gst::debug!(
                    CAT,
                    imp = self,
                    "Latency: upstream live {live} min {min} max {}, ours {ours}",
                    max.display()
                );
                q.set(live, min + ours, max.map(|m| m + ours));
            }
            return ok;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.process(buf)
    }
}

impl Sam2Track {
    // ---------------------------------------------------------- per frame

    fn process(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let need_live = lock(&self.state)
            .as_ref()
            .is_some_and(|s| s.upstream_live.is_none());
        let live_now = need_live.then(|| self.upstream_live());

        let (worker, info, number, taken, is_async) = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Received a buffer before the element was started")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let Some(info) = state.video_info.clone() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Received a buffer before caps")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            if let Some(live) = live_now {
                gst::debug!(CAT, imp = self, "Upstream is live: {live}");
                state.upstream_live = Some(live);
            }
            let number = state.frames;
            state.frames += 1;

            let segment = self.obj().segment().downcast::<gst::ClockTime>().ok();
            let stream_time = segment
                .as_ref()
                .and_then(|s| buf.pts().and_then(|pts| s.to_stream_time(pts)));

            let detected = self.detection_prompts(buf, &info, number, &settings, &state.worker);
            let mut taken = lock(&self.inbox).take(number, stream_time, settings.prompt.as_deref());
            taken.refused.extend(detected);
            let is_async =
                Self::effective_async(settings.mode, state.upstream_live.unwrap_or(false));
            (state.worker.clone(), info, number, taken, is_async)
        };
        // warnings with no lock held: a bus sync handler may prompt again
        for (what, why) in &taken.refused {
            self.warn_prompt(what, why);
        }
        let commands = taken.commands;

        if let Some(failure) = worker.failure() {
            return self.fatal(&failure);
        }

        // Run the frame here (sync), or offer it to the inference thread.
        let needs_engine = !commands.is_empty() || worker.has_objects() || worker.is_busy();
        let mut fresh: Option<Arc<Outcome>> = None;
        if needs_engine && is_async {
            let job = Job {
                number,
                buffer: buf.copy(),
                info: info.clone(),
                commands,
                options: settings.job_options(),
            };
            if let Err(commands) = worker.offer(job) {
                // the mailbox holds a prompted frame: prompts go with a later one
                lock(&self.inbox).give_back(commands);
            }
        } else if needs_engine {
            let job = FrameJob {
                number,
                buffer: buf,
                info: &info,
                commands: &commands,
                options: settings.job_options(),
            };
            match worker.run_sync(&job) {
                Ok(outcome) => {
                    self.note_inference(outcome.elapsed);
                    fresh = Some(outcome);
                }
                Err(RunError::Flushing) => return Err(gst::FlowError::Flushing),
                Err(RunError::Failed(failure)) => return self.fatal(&failure),
            }
        }
        if let Some(failure) = worker.failure() {
            return self.fatal(&failure);
        }
        let outcome = match fresh {
            Some(o) => Some(o),
            None if needs_engine => worker.latest(),
            None => None,
        };
        let origins = lock(&self.detections).origins();
        let mut output = lock(&self.output);
        output.origins = origins;
        output.put(&self.obj(), buf, &info, &settings, number, outcome);
        Ok(gst::FlowSuccess::Ok)
    }

    fn fatal(&self, failure: &Failure) -> Result<gst::FlowSuccess, gst::FlowError> {
        gst::element_imp_error!(
            self,
            gst::StreamError::Failed,
            ("SAM 2 inference failed: {}", failure),
            ["{failure:?}"]
        );
        Err(gst::FlowError::Error)
    }
}
