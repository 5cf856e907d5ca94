// SPDX-License-Identifier: MPL-2.0

//! What `sam2track` loads when it starts (READY to PAUSED): ONNX Runtime,
//! the model directory and its graphs, the tracker and the prompt file,
//! each failure as an element error that names the path and the fix.

use std::sync::Arc;

use crate::engine::cpu;
use crate::engine::model;
use crate::engine::runtime;
use crate::engine::shared::SharedStages;
use crate::engine::tracker::Tracker;

use super::imp::CAT;
use super::prompt::{self, ScheduledPrompt};
use super::settings::{
    PROP_FALLBACK, PROP_MODEL_DIR, PROP_ORT_LIBRARY, PROP_PROMPT_FILE, PROP_PROVIDER,
    PROP_SHARE_MODEL, Settings,
};

/// What a started element runs with.
pub struct Loaded {
    /// ONNX Runtime, referenced while the tracker's sessions live.
    pub runtime: Arc<runtime::OrtRuntime>,
    pub tracker: Tracker,
    /// The prompt file's entries (none without one).
    pub schedule: Vec<ScheduledPrompt>,
}

/// Loads everything `settings` name, posting warnings on `element` (a GPU
/// provider replaced by the CPU; int8 graphs whose products saturate on this
/// CPU).
pub fn load(element: &super::Sam2Track, settings: &Settings) -> Result<Loaded, gst::ErrorMessage> {
    let runtime = runtime::acquire(settings.ort_library.as_deref()).map_err(|err| {
        gst::error_msg!(
            gst::LibraryError::Init,
            ("{}", ort_error_text(&err)),
            ["{err:?}"]
        )
    })?;
    gst::info!(
        CAT,
        obj = element,
        "Using ONNX Runtime {} from {} ({})",
        runtime.version(),
        runtime.library().display(),
        runtime.source()
    );

    let Some(model_dir) = settings.model_dir.clone() else {
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
    let model_error = |err: &dyn std::fmt::Display| {
        let kind = if model_dir.is_dir() {
            gst::ResourceError::Settings
        } else {
            gst::ResourceError::NotFound
        };
        gst::error_msg!(
            kind,
            (
                "Cannot use model directory {} ('{}' property): {}. Export one with \
                     models/export.py (see the README, \"Models\")",
                model_dir.display(),
                PROP_MODEL_DIR,
                err
            ),
            ["{err}"]
        )
    };
    let model = model::ModelDir::open(&model_dir).map_err(|e| model_error(&e))?;
    let loaded = SharedStages::load(
        &model,
        runtime.environment(),
        &settings.session_options(),
        settings.share_model,
    )
    .map_err(|err| match err {
        model::ModelError::Provider { .. } => gst::error_msg!(
            gst::LibraryError::Init,
            (
                "{}. Set '{}' to cpu, or '{}' to true to run on the CPU when the GPU \
                     cannot be used",
                err,
                PROP_PROVIDER,
                PROP_FALLBACK
            )
        ),
        err => model_error(&err),
    })?;
    if !loaded.fallbacks.is_empty() {
        gst::element_warning!(
            element,
            gst::LibraryError::Init,
            ("Running on the CPU: {}", loaded.fallbacks.join("; ")),
            ["'{}' is set", PROP_FALLBACK]
        );
    }
    let on_cpu = settings.session_options().provider == model::ExecutionProvider::Cpu
        || !loaded.fallbacks.is_empty();
    if on_cpu
        && let Some(text) =
            cpu::int8_saturation_warning(model.manifest(), cpu::Int8Products::detect())
    {
        gst::element_warning!(
            element,
            gst::ResourceError::Settings,
            ("{}", text),
            ["model directory {}", model_dir.display()]
        );
    }
    let stages = loaded.stages;
    if loaded.reused {
        gst::info!(
            CAT,
            obj = element,
            "Sharing the networks of {} with {} other sam2track element(s) ('{}')",
            model_dir.display(),
            stages.users() - 1,
            PROP_SHARE_MODEL
        );
    }
    report_placements(element, &stages);
    let tracker =
        Tracker::new(stages, model.manifest(), settings.tracker_config()).map_err(|err| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("Invalid tracker settings: {}", err)
            )
        })?;

    let schedule = match &settings.prompt_file {
        None => Vec::new(),
        Some(path) => prompt::read_prompt_file(path).map_err(|err| {
            let kind = if path.is_file() {
                gst::ResourceError::Settings
            } else {
                gst::ResourceError::NotFound
            };
            gst::error_msg!(
                kind,
                ("Cannot use the '{}' property: {}", PROP_PROMPT_FILE, err)
            )
        })?,
    };

    gst::info!(
        CAT,
        obj = element,
        "Using model directory {}",
        model_dir.display()
    );
    Ok(Loaded {
        runtime,
        tracker,
        schedule,
    })
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

/// Logs where ONNX Runtime placed each graph's nodes, and warns when nodes
/// doing real arithmetic fell back to the CPU while the rest runs on a GPU
/// (each costs copies both ways on every frame).
fn report_placements(element: &super::Sam2Track, stages: &SharedStages) {
    gst::info!(
        CAT,
        obj = element,
        "Tensors between graphs live on {}",
        stages.device()
    );
    for (graph, placement) in stages.placements() {
        gst::info!(
            CAT,
            obj = element,
            "{graph}: nodes placed on {}",
            placement.summary()
        );
        let heavy = placement.compute_on_cpu();
        if !heavy.is_empty() {
            let ops: Vec<String> = heavy.iter().map(|(op, n)| format!("{op} x{n}")).collect();
            gst::element_warning!(
                element,
                gst::LibraryError::Init,
                (
                    "Graph {} runs {} on the CPU: the GPU provider has no kernel for them",
                    graph,
                    ops.join(", ")
                ),
                ["placement: {}", placement.summary()]
            );
        }
    }
}
