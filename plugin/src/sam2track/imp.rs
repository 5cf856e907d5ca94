// SPDX-License-Identifier: MPL-2.0

//! GStreamer glue of the `sam2track` element.
//!
//! This file only translates between GStreamer and [`crate::engine`]:
//! properties, caps, state changes and error messages. The element is an
//! in-place [`gst_base::BaseTransform`] that, for now, passes buffers through
//! untouched once ONNX Runtime and the model directory have been validated in
//! `start()`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::engine::{model, runtime};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "sam2track",
        gst::DebugColorFlags::empty(),
        Some("SAM 2 video segmentation and tracking"),
    )
});

const PROP_MODEL_DIR: &str = "model-dir";
const PROP_ORT_LIBRARY: &str = "ort-library";

/// User configuration, set through properties.
#[derive(Debug, Clone, Default)]
struct Settings {
    /// Exported model directory (`model.json` + ONNX graphs).
    model_dir: Option<PathBuf>,
    /// Explicit path of the ONNX Runtime shared library.
    ort_library: Option<PathBuf>,
}

/// Runtime state: created in `start()`, dropped in `stop()`.
#[derive(Debug)]
struct State {
    /// Process-wide ONNX Runtime, shared with every other `sam2track`.
    runtime: Arc<runtime::OrtRuntime>,
    /// Validated model directory.
    model_dir: PathBuf,
    /// Negotiated input format, known after `set_caps()`.
    video_info: Option<gst_video::VideoInfo>,
}

#[derive(Default)]
pub struct Sam2Track {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

/// Locks `mutex`, ignoring poisoning: the guarded data stays consistent
/// because no code path leaves it half-updated.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Converts an optional string property value into an optional path; an
/// empty string means "unset".
fn path_from_value(value: &glib::Value) -> Option<PathBuf> {
    value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

fn path_to_value(path: Option<&Path>) -> glib::Value {
    path.map(|p| p.to_string_lossy().into_owned()).to_value()
}

/// Full text of the element error posted when ONNX Runtime cannot be used:
/// what went wrong (every path tried) plus how to fix it.
fn ort_error_text(err: &runtime::RuntimeError) -> String {
    let fix = match err {
        runtime::RuntimeError::AlreadyLoaded { loaded, .. } => format!(
            "Leave the '{PROP_ORT_LIBRARY}' property unset or set it to {} in every \
             sam2track element of this process",
            loaded.display()
        ),
        _ => format!(
            "To fix it, run scripts/setup.sh (it installs ONNX Runtime {} into {}), or set \
             the '{PROP_ORT_LIBRARY}' property or the {} environment variable to the full \
             path of libonnxruntime.so (ONNX Runtime >= {})",
            runtime::ORT_VERSION,
            runtime::default_setup_dir().display(),
            runtime::DYLIB_PATH_ENV,
            runtime::MIN_ORT_VERSION,
        ),
    };
    format!("{err}. {fix}.")
}

#[glib::object_subclass]
impl ObjectSubclass for Sam2Track {
    const NAME: &'static str = "GstSam2Track";
    type Type = super::Sam2Track;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for Sam2Track {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder(PROP_MODEL_DIR)
                    .nick("Model directory")
                    .blurb(
                        "Path to an exported SAM 2 model directory, containing model.json and \
                         the ONNX graphs it references (required)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder(PROP_ORT_LIBRARY)
                    .nick("ONNX Runtime library")
                    .blurb(
                        "Path to the ONNX Runtime shared library (libonnxruntime.so). When \
                         unset: ORT_DYLIB_PATH, then the folder filled by scripts/setup.sh, \
                         then the system library search path",
                    )
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        match pspec.name() {
            PROP_MODEL_DIR => {
                let new = path_from_value(value);
                gst::info!(
                    CAT,
                    imp = self,
                    "Changing model-dir from {:?} to {:?}",
                    settings.model_dir,
                    new
                );
                settings.model_dir = new;
            }
            PROP_ORT_LIBRARY => {
                let new = path_from_value(value);
                gst::info!(
                    CAT,
                    imp = self,
                    "Changing ort-library from {:?} to {:?}",
                    settings.ort_library,
                    new
                );
                settings.ort_library = new;
            }
            other => {
                gst::warning!(CAT, imp = self, "Ignoring unknown property {other}");
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            PROP_MODEL_DIR => path_to_value(settings.model_dir.as_deref()),
            PROP_ORT_LIBRARY => path_to_value(settings.ort_library.as_deref()),
            other => {
                // GObject only calls us for the properties we installed.
                gst::warning!(CAT, imp = self, "Unknown property {other}");
                pspec.default_value().clone()
            }
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Until the engine annotates frames, buffers go through untouched.
        self.obj().set_passthrough(true);
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
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list([
                    gst_video::VideoFormat::Rgb,
                    gst_video::VideoFormat::Bgr,
                    gst_video::VideoFormat::Rgba,
                    gst_video::VideoFormat::Bgra,
                    gst_video::VideoFormat::Rgbx,
                    gst_video::VideoFormat::Bgrx,
                    gst_video::VideoFormat::Nv12,
                    gst_video::VideoFormat::I420,
                ])
                .build();
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("valid src pad template");
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("valid sink pad template");
            vec![src, sink]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Sam2Track {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();

        let runtime = runtime::acquire(settings.ort_library.as_deref()).map_err(|err| {
            gst::error_msg!(
                gst::LibraryError::Init,
                ("{}", ort_error_text(&err)),
                ["{err:?}"]
            )
        })?;
        gst::info!(
            CAT,
            imp = self,
            "Using ONNX Runtime from {} ({})",
            runtime.library().display(),
            runtime.source()
        );

        let Some(model_dir) = settings.model_dir else {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "The '{}' property is not set: set it to an exported SAM 2 model directory \
                     (containing {})",
                    PROP_MODEL_DIR,
                    model::MANIFEST_FILE
                )
            ));
        };
        model::ModelDir::open(&model_dir)
            .and_then(|m| m.check_graphs(runtime.environment()))
            .map_err(|err| {
                let kind = if model_dir.is_dir() {
                    gst::ResourceError::Settings
                } else {
                    gst::ResourceError::NotFound
                };
                gst::error_msg!(
                    kind,
                    (
                        "Cannot use model directory {} ('{}' property): {}",
                        model_dir.display(),
                        PROP_MODEL_DIR,
                        err
                    ),
                    ["{err:?}"]
                )
            })?;
        gst::info!(
            CAT,
            imp = self,
            "Using model directory {}",
            model_dir.display()
        );

        *lock(&self.state) = Some(State {
            runtime,
            model_dir,
            video_info: None,
        });
        gst::debug!(CAT, imp = self, "Started");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // The ONNX Runtime environment itself stays loaded for the process.
        *lock(&self.state) = None;
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
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.process(buf)
    }

    fn transform_ip_passthrough(
        &self,
        buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.process(buf.as_ref())
    }
}

impl Sam2Track {
    /// Per-frame work. Placeholder: the SAM 2 engine is not wired in yet, so
    /// this only checks that the element was started and logs the frame.
    fn process(&self, buf: &gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let state = lock(&self.state);
        let Some(state) = state.as_ref() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Received a buffer before the element was started")
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let (width, height) = state
            .video_info
            .as_ref()
            .map_or((0, 0), |info| (info.width(), info.height()));
        gst::trace!(
            CAT,
            imp = self,
            "Passing through {width}x{height} frame ({} bytes, pts {}) with model {} on \
             ONNX Runtime {}",
            buf.size(),
            buf.pts().display(),
            state.model_dir.display(),
            state.runtime.library().display()
        );
        Ok(gst::FlowSuccess::Ok)
    }
}
