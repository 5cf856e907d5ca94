// SPDX-License-Identifier: MPL-2.0

//! One model's loaded graphs shared by the trackers of a process.
//!
//! Several cameras in one process (an automotive rig, a multi-stream
//! analytics box) mean several trackers of the same model. Each keeps its
//! own objects and memory bank (`Tracker`), but they can share the
//! ONNX Runtime sessions: one copy of the weights, one set of thread pools
//! (the CPU arena is the environment's already). [`SharedStages::load`]
//! hands out the same [`Stages`] for the same model directory (same files),
//! provider and session options while one tracker still holds them; each
//! graph run takes the lock, so the
//! trackers' frames take turns graph by graph (a graph already uses every
//! core it is given), and each tracker counts its own graph times.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::SystemTime;

use ort::value::{DynValue, Value, ValueTypeMarker};

use super::model::{ModelDir, ModelError, Placement, SessionOptions};
use super::stages::{
    DecoderOutput, Dims, ImageFeatures, MemoryBatch, PromptBatch, StageError, StageTimes, Stages,
    StoredMemory,
};
use crate::sync::lock;
use ort::value::Tensor;

/// Loaded stages by [`key`], with the CPU fallbacks their loading reported.
type Registry = HashMap<String, (Weak<Mutex<Stages>>, Vec<String>)>;

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// What must be equal for two trackers to share stages: the model directory,
/// its files as they are now (size and modification time, so a model
/// exported again into the same folder is loaded again), and the options.
fn key(model: &ModelDir, options: &SessionOptions) -> String {
    let dir = model
        .dir()
        .canonicalize()
        .unwrap_or_else(|_| model.dir().to_path_buf());
    let stamp = |p: &Path| {
        std::fs::metadata(p).ok().map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
            (m.len(), t)
        })
    };
    let mut files = vec![stamp(&dir.join(super::model::MANIFEST_FILE))];
    files.extend(
        model
            .manifest()
            .graph_names()
            .map(|g| stamp(&model.graph_path(g))),
    );
    format!("{}|{files:?}|{options:?}", dir.display())
}

/// Trackers of the process sharing loaded stages of the model directory
/// `dir` (with any options): 0 when none are loaded for sharing.
pub fn users_of(dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let prefix = format!("{}|", dir.display());
    lock(&REGISTRY)
        .iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .map(|(_, (weak, _))| weak.strong_count())
        .sum()
}

/// The stages one tracker runs on: its own, or shared (see the module docs).
pub struct SharedStages {
    stages: Arc<Mutex<Stages>>,
    dims: Dims,
    device: String,
    placements: Vec<(&'static str, Placement)>,
    /// This tracker's graph times since the last [`SharedStages::take_times`].
    times: StageTimes,
}

impl From<Stages> for SharedStages {
    /// Stages for one tracker alone.
    fn from(stages: Stages) -> Self {
        Self::wrap(Arc::new(Mutex::new(stages)))
    }
}

/// What [`SharedStages::load`] gives.
pub struct Loaded {
    pub stages: SharedStages,
    /// Whether another tracker had loaded them (nothing was loaded now).
    pub reused: bool,
    /// Why the requested GPU provider was replaced by the CPU (when they
    /// were loaded).
    pub fallbacks: Vec<String>,
}

impl SharedStages {
    fn wrap(stages: Arc<Mutex<Stages>>) -> Self {
        let (dims, device, placements) = {
            let s = lock(&stages);
            (s.dims, s.device().to_owned(), s.placements().to_vec())
        };
        SharedStages {
            stages,
            dims,
            device,
            placements,
            times: StageTimes::default(),
        }
    }

    /// The stages of `model` with `options`: those another tracker of the
    /// process loaded with the same model files and options when `share`
    /// and some are still in use, else loaded now (and offered to others
    /// when `share`).
    pub fn load(
        model: &ModelDir,
        environment: &ort::environment::Environment,
        options: &SessionOptions,
        share: bool,
    ) -> Result<Loaded, ModelError> {
        if !share {
            let stages = Stages::load(model, environment, options)?;
            return Ok(Loaded {
                stages: stages.into(),
                reused: false,
                fallbacks: model.fallbacks(),
            });
        }
        let key = key(model, options);
        // held while loading: a second element starting meanwhile waits and reuses
        let mut registry = lock(&REGISTRY);
        registry.retain(|_, (weak, _)| weak.strong_count() > 0);
        if let Some((stages, fallbacks)) = registry
            .get(&key)
            .and_then(|(weak, f)| Some((weak.upgrade()?, f.clone())))
        {
            return Ok(Loaded {
                stages: Self::wrap(stages),
                reused: true,
                fallbacks,
            });
        }
        let stages = Arc::new(Mutex::new(Stages::load(model, environment, options)?));
        let fallbacks = model.fallbacks();
        registry.insert(key, (Arc::downgrade(&stages), fallbacks.clone()));
        Ok(Loaded {
            stages: Self::wrap(stages),
            reused: false,
            fallbacks,
        })
    }

    /// Trackers using these stages (1: this one alone).
    pub fn users(&self) -> usize {
        Arc::strong_count(&self.stages)
    }

    /// Runs `f` on the stages, adding its graph times to this tracker's.
    fn with<R>(&mut self, f: impl FnOnce(&mut Stages) -> R) -> R {
        let mut s = lock(&self.stages);
        // times of a run that failed half-way in another tracker are not ours
        s.take_times();
        let r = f(&mut s);
        self.times += s.take_times();
        r
    }

    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Where the tensors between graphs live: "cpu" or "cuda:N".
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Where ONNX Runtime placed each graph's nodes (model graphs, then helpers).
    pub fn placements(&self) -> &[(&'static str, Placement)] {
        &self.placements
    }

    /// This tracker's graph times since the last call.
    pub fn take_times(&mut self) -> StageTimes {
        std::mem::take(&mut self.times)
    }

    /// See [`Stages::recycle`].
    pub fn recycle(&mut self, tensor: Tensor<f32>) {
        lock(&self.stages).recycle(tensor);
    }

    /// See [`Stages::encode_image`].
    pub fn encode_image(&mut self, image: Vec<f32>) -> Result<ImageFeatures, StageError> {
        self.with(|s| s.encode_image(image))
    }

    /// See [`Stages::encode_image_for_prompts`].
    pub fn encode_image_for_prompts(
        &mut self,
        image: Vec<f32>,
    ) -> Result<ImageFeatures, StageError> {
        self.with(|s| s.encode_image_for_prompts(image))
    }

    /// See [`Stages::has_prompt_image_encoder`].
    pub fn has_prompt_image_encoder(&self) -> bool {
        lock(&self.stages).has_prompt_image_encoder()
    }

    /// See [`Stages::no_memory_features`].
    pub fn no_memory_features(
        &mut self,
        features: &ImageFeatures,
        no_mem_embed: &[f32],
    ) -> Result<DynValue, StageError> {
        self.with(|s| s.no_memory_features(features, no_mem_embed))
    }

    /// See [`Stages::attend`].
    pub fn attend(
        &mut self,
        features: &ImageFeatures,
        objects: &[MemoryBatch],
    ) -> Result<Tensor<f32>, StageError> {
        self.with(|s| s.attend(features, objects))
    }

    /// See [`Stages::decode`].
    pub fn decode<T: ValueTypeMarker + ?Sized>(
        &mut self,
        features: &ImageFeatures,
        image_embed: &Value<T>,
        p: PromptBatch,
    ) -> Result<DecoderOutput, StageError> {
        self.with(|s| s.decode(features, image_embed, p))
    }

    /// See [`Stages::mask_plane`].
    pub fn mask_plane(
        &mut self,
        dec: &DecoderOutput,
        b: usize,
        t: usize,
    ) -> Result<Vec<f32>, StageError> {
        self.with(|s| s.mask_plane(dec, b, t))
    }

    /// See [`Stages::encode_memory`].
    pub fn encode_memory(
        &mut self,
        features: &ImageFeatures,
        masks: Vec<f32>,
        is_mask_from_pts: Vec<f32>,
        object_score: Vec<f32>,
    ) -> Result<Vec<StoredMemory>, StageError> {
        self.with(|s| s.encode_memory(features, masks, is_mask_from_pts, object_score))
    }
}
