// SPDX-License-Identifier: MPL-2.0

//! Exported model directories.
//!
//! A model directory is produced by `models/export.py` and holds a `model.json`
//! manifest next to the four ONNX graphs it references (see
//! `models/CONTRACT.md`). [`ModelDir::open`] reads and checks the manifest
//! without ONNX Runtime; [`ModelDir::check_graphs`] loads every graph and checks
//! its inputs and outputs against the contract.

use std::io;
use std::path::{Path, PathBuf};

use super::contract::{self, ContractError};
use super::files::{self, FileError};
use super::manifest::{Manifest, ManifestError};
pub use super::session::{Placement, cpu_disabled_optimizers};
use super::session::{Source, load_session};
use crate::sync::lock;

/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "model.json";
/// Largest manifest read (an export writes a few kB).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Largest graph file loaded: protobuf's own limit for one ONNX file (2 GiB).
pub const MAX_GRAPH_BYTES: u64 = 2 << 30;

/// Why a model directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {} does not exist", .0.display())]
    DirMissing(PathBuf),
    #[error("model directory {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "model directory {} has no {MANIFEST_FILE} (export a model with models/export.py)",
        .0.display()
    )]
    ManifestMissing(PathBuf),
    #[error("{}: {source}", .path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("manifest {source}")]
    ManifestFile {
        #[source]
        source: FileError,
    },
    #[error(
        "graph {graph} is missing: {} does not exist (the model directory is incomplete; \
         re-export it with models/export.py)",
        .path.display()
    )]
    GraphMissing { graph: &'static str, path: PathBuf },
    #[error("graph {graph} cannot be used: {source}")]
    GraphFile {
        graph: &'static str,
        #[source]
        source: FileError,
    },
    #[error("ONNX Runtime cannot load graph {graph} from {}: {message}", .path.display())]
    GraphLoad {
        graph: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error(
        "execution provider {provider} cannot run graph {graph}: {reason} (allow the CPU \
         fallback or choose the cpu provider)"
    )]
    Provider {
        provider: &'static str,
        graph: &'static str,
        reason: String,
    },
    #[error("{}: {source}", .path.display())]
    Contract {
        path: PathBuf,
        #[source]
        source: ContractError,
    },
}

/// Where the graphs run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider (always available).
    #[default]
    Cpu,
    /// NVIDIA CUDA (needs the `cuda` cargo feature and an onnxruntime-gpu library).
    Cuda { device_id: i32 },
    /// NVIDIA TensorRT, CUDA for what it cannot run (needs the `tensorrt` feature).
    TensorRt { device_id: i32 },
}

impl ExecutionProvider {
    pub fn name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda { .. } => "cuda",
            ExecutionProvider::TensorRt { .. } => "tensorrt",
        }
    }
}

/// ONNX Runtime session settings applied to every graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Threads ONNX Runtime uses inside one graph (None: its default, one per core).
    pub intra_threads: Option<usize>,
    /// Requested execution provider.
    pub provider: ExecutionProvider,
    /// When the requested GPU provider cannot be used (not compiled in, CPU-only
    /// ONNX Runtime library, no device): run on the CPU instead of failing.
    /// The fallback is reported by [`ModelDir::load_checked_with`]'s caller.
    pub fallback_to_cpu: bool,
    /// Options of the GPU providers (unused on the CPU).
    pub gpu: GpuOptions,
}

/// How the CUDA provider picks cuDNN convolution algorithms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConvSearch {
    /// Benchmark every algorithm at the first run (ONNX Runtime's default).
    #[default]
    Exhaustive,
    /// cuDNN's heuristics: a faster first frame, maybe slower ones after.
    Heuristic,
    /// cuDNN's default algorithm.
    Default,
}

/// Options of the GPU providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOptions {
    /// Most device memory the CUDA provider's arena takes, in bytes (None:
    /// no limit).
    pub memory_limit: Option<usize>,
    pub conv_search: ConvSearch,
    /// TF32 tensor-core maths for fp32 products (Ampere and later).
    pub tf32: bool,
    /// TensorRT: folder keeping built engines across starts (None: every
    /// start builds them again, which takes minutes).
    pub trt_engine_cache: Option<PathBuf>,
    /// TensorRT: build fp16 engines.
    pub trt_fp16: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            memory_limit: None,
            conv_search: ConvSearch::Exhaustive,
            tf32: true,
            trt_engine_cache: None,
            trt_fp16: false,
        }
    }
}

/// A model directory whose manifest has been read and checked.
#[derive(Debug)]
pub struct ModelDir {
    dir: PathBuf,
    manifest: Manifest,
    /// GPU-to-CPU fallbacks taken while loading graphs, as messages.
    fallbacks: std::sync::Mutex<Vec<String>>,
}

impl ModelDir {
    /// Reads `dir/model.json`, checks it (sizes, constants, graph entries, and
    /// that the recorded graph I/O is this plugin's contract) and that every
    /// graph file exists.
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let metadata = match std::fs::metadata(dir) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ModelError::DirMissing(dir.to_path_buf()));
            }
            Err(source) => {
                return Err(ModelError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        if !metadata.is_dir() {
            return Err(ModelError::NotADirectory(dir.to_path_buf()));
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = match files::read_text(&manifest_path, "a manifest", MAX_MANIFEST_BYTES) {
            Ok(text) => text,
            Err(err) if err.is_missing() => {
                return Err(ModelError::ManifestMissing(dir.to_path_buf()));
            }
            Err(source) => return Err(ModelError::ManifestFile { source }),
        };
        let manifest = Manifest::from_json(&text).map_err(|source| ModelError::Manifest {
            path: manifest_path.clone(),
            source,
        })?;
        contract::check_manifest_entries(&manifest).map_err(|source| ModelError::Contract {
            path: manifest_path,
            source,
        })?;
        let model = ModelDir {
            dir: dir.to_path_buf(),
            manifest,
            fallbacks: Default::default(),
        };
        for graph in model.manifest.graph_names() {
            let path = model.graph_path(graph);
            match files::check_regular(&path, "an ONNX graph", MAX_GRAPH_BYTES) {
                Ok(_) => {}
                Err(err) if err.is_missing() => {
                    return Err(ModelError::GraphMissing { graph, path });
                }
                Err(source) => return Err(ModelError::GraphFile { graph, source }),
            }
        }
        Ok(model)
    }

    /// Fallbacks to the CPU taken so far (see [`SessionOptions::fallback_to_cpu`]).
    pub fn fallbacks(&self) -> Vec<String> {
        lock(&self.fallbacks).clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Path of a graph file (`graph` is one of [`Manifest::graph_names`]).
    pub fn graph_path(&self, graph: &str) -> PathBuf {
        self.dir.join(&self.manifest.graphs[graph].file)
    }

    /// Loads one graph on the CPU with default options and checks its declared
    /// inputs and outputs against the contract.
    pub fn load_checked(
        &self,
        environment: &ort::environment::Environment,
        graph: &'static str,
    ) -> Result<ort::session::Session, ModelError> {
        self.load_checked_with(environment, graph, &SessionOptions::default())
    }

    /// [`ModelDir::load_checked`] with session options.
    pub fn load_checked_with(
        &self,
        environment: &ort::environment::Environment,
        graph: &'static str,
        options: &SessionOptions,
    ) -> Result<ort::session::Session, ModelError> {
        self.load_placed(environment, graph, options)
            .map(|(session, _)| session)
    }

    /// [`ModelDir::load_checked_with`], also returning where ONNX Runtime
    /// placed the graph's nodes.
    pub fn load_placed(
        &self,
        environment: &ort::environment::Environment,
        graph: &'static str,
        options: &SessionOptions,
    ) -> Result<(ort::session::Session, Placement), ModelError> {
        let path = self.graph_path(graph);
        let (session, placement) = load_session(
            environment,
            graph,
            Source::File(&path),
            options,
            &self.fallbacks,
        )?;
        let spec =
            contract::graph_spec(&self.manifest, graph).expect("every graph name has a contract");
        contract::check_session(&spec, &session).map_err(|source| ModelError::Contract {
            path: path.clone(),
            source,
        })?;
        Ok((session, placement))
    }

    /// Loads every graph and checks it against the contract.
    pub fn check_graphs(
        &self,
        environment: &ort::environment::Environment,
    ) -> Result<(), ModelError> {
        for graph in self.manifest.graph_names() {
            self.load_checked(environment, graph)?;
        }
        Ok(())
    }
}

/// Checks that `dir` is a usable model directory without loading the graphs.
pub fn check_model_dir(dir: &Path) -> Result<(), ModelError> {
    ModelDir::open(dir).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICRO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/micro");

    /// A copy of the micro model that a test may break.
    fn micro_copy() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(MICRO).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
        }
        tmp
    }

    #[test]
    fn micro_fixture_opens() {
        let m = ModelDir::open(Path::new(MICRO)).unwrap();
        assert_eq!(m.manifest().image_size, 128);
        assert!(m.graph_path("mask_decoder").ends_with("mask_decoder.onnx"));
    }

    #[test]
    fn missing_dir_is_reported_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nope");
        let err = check_model_dir(&dir).unwrap_err();
        assert!(matches!(err, ModelError::DirMissing(ref p) if p == &dir));
        assert!(err.to_string().contains(&dir.display().to_string()));
    }

    #[test]
    fn file_instead_of_dir_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("model.json");
        std::fs::write(&file, "{}").unwrap();
        assert!(matches!(
            check_model_dir(&file),
            Err(ModelError::NotADirectory(_))
        ));
    }

    #[test]
    fn dir_without_manifest_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(matches!(err, ModelError::ManifestMissing(_)));
        assert!(err.to_string().contains(MANIFEST_FILE));
    }

    #[test]
    fn invalid_manifest_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(MANIFEST_FILE), "{}").unwrap();
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(matches!(err, ModelError::Manifest { .. }), "{err}");
        assert!(err.to_string().contains(MANIFEST_FILE), "{err}");
    }

    #[test]
    fn missing_graph_is_named() {
        let tmp = micro_copy();
        std::fs::remove_file(tmp.path().join("memory_attention.onnx")).unwrap();
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::GraphMissing {
                    graph: "memory_attention",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("memory_attention.onnx"), "{err}");
    }

    #[test]
    fn special_manifests_and_graphs_say_what_they_are() {
        // a FIFO manifest would block open(); /dev/zero would never end
        let tmp = micro_copy();
        let manifest = tmp.path().join(MANIFEST_FILE);
        std::fs::remove_file(&manifest).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
        std::fs::remove_file(&manifest).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&manifest)
                .status()
                .unwrap()
                .success()
        );
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        std::fs::remove_file(&manifest).unwrap();
        std::fs::write(&manifest, vec![b' '; MAX_MANIFEST_BYTES as usize + 1]).unwrap();
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("1048576 allowed"), "{err}");

        let tmp = micro_copy();
        let graph = tmp.path().join("image_encoder.onnx");
        std::fs::remove_file(&graph).unwrap();
        std::fs::create_dir(&graph).unwrap();
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::GraphFile {
                    graph: "image_encoder",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("is a directory"), "{err}");
        std::fs::remove_dir(&graph).unwrap();
        std::os::unix::fs::symlink(&graph, &graph).unwrap();
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("symbolic links"), "{err}");
    }

    /// The optional encoder for prompted frames: its file must exist and its
    /// model.json entry must be the image encoder's contract.
    #[test]
    fn prompt_image_encoder_is_checked_as_an_image_encoder() {
        use crate::engine::manifest::PROMPT_IMAGE_ENCODER;
        let tmp = micro_copy();
        let path = tmp.path().join(MANIFEST_FILE);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut entry = v["graphs"]["image_encoder"].clone();
        entry["file"] = "prompt_image_encoder.onnx".into();
        v["graphs"][PROMPT_IMAGE_ENCODER] = entry;
        let write = |v: &serde_json::Value| std::fs::write(&path, v.to_string()).unwrap();
        write(&v);
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::GraphMissing {
                    graph: PROMPT_IMAGE_ENCODER,
                    ..
                }
            ),
            "{err}"
        );
        std::fs::copy(
            tmp.path().join("image_encoder.onnx"),
            tmp.path().join("prompt_image_encoder.onnx"),
        )
        .unwrap();
        let m = ModelDir::open(tmp.path()).unwrap();
        let names: Vec<&str> = m.manifest().graph_names().collect();
        assert_eq!(names.last(), Some(&PROMPT_IMAGE_ENCODER));
        v["graphs"][PROMPT_IMAGE_ENCODER]["outputs"][2]["shape"][1] = 7.into();
        write(&v);
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(matches!(err, ModelError::Contract { .. }), "{err}");
        assert!(
            err.to_string().contains(PROMPT_IMAGE_ENCODER)
                && err.to_string().contains("vision_feat"),
            "{err}"
        );
        v["graphs"][PROMPT_IMAGE_ENCODER]["file"] = "../image_encoder.onnx".into();
        write(&v);
        let err = check_model_dir(tmp.path()).unwrap_err();
        assert!(
            err.to_string().contains("graphs.prompt_image_encoder.file"),
            "{err}"
        );
    }
}
