// SPDX-License-Identifier: MPL-2.0

//! Building ONNX Runtime sessions: the options every graph gets, the
//! execution providers, the CPU fallback, and where ONNX Runtime placed each
//! graph's nodes (read from its own log while the session is built, so that a
//! node the GPU provider cannot run, and which therefore runs on the CPU with
//! copies around it, is named in ours).

use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::logging::LogLevel;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

#[allow(unused_imports)]
use super::model::ConvSearch;
use super::model::{ExecutionProvider, GpuOptions, ModelError, SessionOptions};
use crate::sync::lock;

/// Where a graph comes from.
pub enum Source<'a> {
    File(&'a Path),
    /// An in-memory ONNX model (the engine's helper graphs) with a name for errors.
    Memory(&'a [u8]),
}

/// Where ONNX Runtime placed a graph's nodes, per execution provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// (provider, node count, op types of its nodes with their counts), in
    /// ONNX Runtime's order. Empty when ONNX Runtime said nothing about it.
    pub providers: Vec<ProviderNodes>,
}

/// The nodes one execution provider got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderNodes {
    /// ONNX Runtime's name, e.g. `CUDAExecutionProvider`.
    pub provider: String,
    pub nodes: usize,
    /// Op types with their counts (listed by ONNX Runtime only when the nodes
    /// are split between providers).
    pub ops: Vec<(String, usize)>,
}

/// Op types that do real arithmetic on activations: on the CPU while the rest
/// of a graph runs on a GPU, each costs copies both ways and CPU time. The
/// shape arithmetic ONNX Runtime deliberately keeps on the CPU (Shape,
/// Gather/Concat/Unsqueeze of shapes...) is not in this list.
const COMPUTE_OPS: &[&str] = &[
    "MatMul",
    "Gemm",
    "Conv",
    "ConvTranspose",
    "Softmax",
    "LayerNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
    "Attention",
    "MultiHeadAttention",
    "Resize",
    "Gelu",
    "BiasGelu",
    "FastGelu",
    "Erf",
    "FusedMatMul",
    "FusedConv",
    "Einsum",
    "ReduceMean",
    "Sigmoid",
    "Relu",
    "Tanh",
    "Pow",
    "Sqrt",
    "Div",
    "Mul",
    "Add",
    "Sub",
    "Sin",
    "Cos",
    "Exp",
    "MaxPool",
    "AveragePool",
    "GroupNorm",
    "InstanceNormalization",
    "BatchNormalization",
    "Transpose",
    "Where",
    "Clip",
];

impl Placement {
    /// Reads the `Node placements` lines ONNX Runtime logs (verbose level)
    /// while it builds a session.
    pub fn from_log(lines: &[String]) -> Self {
        let mut providers: Vec<ProviderNodes> = Vec::new();
        for line in lines {
            let text = line.trim();
            // " All nodes placed on [CPUExecutionProvider]. Number of nodes: 12"
            // " Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 100"
            if let Some(rest) = text
                .strip_prefix("All nodes placed on [")
                .or_else(|| text.strip_prefix("Node(s) placed on ["))
            {
                let Some((provider, tail)) = rest.split_once(']') else {
                    continue;
                };
                let nodes = tail
                    .rsplit(':')
                    .next()
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                providers.push(ProviderNodes {
                    provider: provider.to_string(),
                    nodes,
                    ops: Vec::new(),
                });
            } else if let Some(current) = providers.last_mut() {
                // "  MatMul (/layers.0/MatMul)": one node of the provider above
                let Some((op, _name)) = text.split_once(" (") else {
                    continue;
                };
                if op.is_empty() || op.contains(' ') {
                    continue;
                }
                match current.ops.iter_mut().find(|(o, _)| o == op) {
                    Some((_, n)) => *n += 1,
                    None => current.ops.push((op.to_string(), 1)),
                }
            }
        }
        Placement { providers }
    }

    /// Nodes on ONNX Runtime's CPU provider while others run elsewhere.
    pub fn cpu_share(&self) -> Option<&ProviderNodes> {
        if self.providers.len() < 2 {
            return None;
        }
        self.providers
            .iter()
            .find(|p| p.provider == "CPUExecutionProvider")
    }

    /// Op types doing real arithmetic that fell back to the CPU (see
    /// [`COMPUTE_OPS`]), with their counts.
    pub fn compute_on_cpu(&self) -> Vec<(String, usize)> {
        self.cpu_share()
            .map(|p| {
                p.ops
                    .iter()
                    .filter(|(op, _)| COMPUTE_OPS.contains(&op.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One line for the log: `CUDAExecutionProvider 412 nodes, CPUExecutionProvider
    /// 9 nodes (Shape 4, Gather 3, ...)`.
    pub fn summary(&self) -> String {
        if self.providers.is_empty() {
            return "not reported by ONNX Runtime".into();
        }
        self.providers
            .iter()
            .map(|p| {
                let mut s = format!("{} {} nodes", p.provider, p.nodes);
                if !p.ops.is_empty() {
                    let ops: Vec<String> =
                        p.ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
                    s += &format!(" ({})", ops.join(", "));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Builds the session of `graph` with `options`: the requested provider, else
/// (with [`SessionOptions::fallback_to_cpu`]) the CPU, noting the fallback in
/// `fallbacks`. Returns where ONNX Runtime placed the nodes.
pub fn load_session(
    environment: &ort::environment::Environment,
    graph: &'static str,
    source: Source<'_>,
    options: &SessionOptions,
    fallbacks: &Mutex<Vec<String>>,
) -> Result<(Session, Placement), ModelError> {
    let path = match source {
        Source::File(path) => path.to_path_buf(),
        Source::Memory(_) => Path::new("(built in)").to_path_buf(),
    };
    let load_err = |message: String| ModelError::GraphLoad {
        graph,
        path: path.clone(),
        message,
    };
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let base = |cpu: bool| {
        let sink = Arc::clone(&log);
        // Every graph optimisation ONNX Runtime has (fusions, layout
        // transforms for the CPU's vector units), whatever its default.
        let mut builder = Session::builder(environment)
            .map_err(|e| load_err(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| load_err(e.to_string()))?
            // The environment's shared CPU arena (engine::runtime), when
            // registered; ONNX Runtime uses the session's own otherwise.
            .with_env_allocators()
            .map_err(|e| load_err(e.to_string()))?
            .with_memory_pattern(false)
            .map_err(|e| load_err(e.to_string()))?
            // Worker threads block when a parallel section ends instead of
            // spinning for the next one. Every graph has its own thread pool and
            // the graphs run one after the other: a pool that spins after its
            // graph finished takes cores from the next graph's pool (and from the
            // pipeline's other elements). On the 2-core VM, per frame (interleaved
            // runs, AMD EPYC): EdgeTAM 512 306-321 -> 203-217 ms, EdgeTAM 1024
            // 950-966 -> 836-906 ms, SAM 2.1-tiny 1024 4,302-4,435 -> 4,180-4,434.
            .with_intra_op_spinning(false)
            .map_err(|e| load_err(e.to_string()))?
            .with_inter_op_spinning(false)
            .map_err(|e| load_err(e.to_string()))?
            // Subnormal floats as zero on the pool's threads (the calling
            // thread: engine::cpu::FlushSubnormals around every run).
            .with_flush_to_zero()
            .map_err(|e| load_err(e.to_string()))?
            // The node placements are logged at the verbose level while the
            // session is built; only those lines are kept.
            .with_log_level(LogLevel::Verbose)
            .map_err(|e| load_err(e.to_string()))?
            .with_logger(Arc::new(
                move |_level: LogLevel, _category: &str, _id: &str, _at: &str, message: &str| {
                    if is_placement_line(message) {
                        lock(&sink).push(message.to_string());
                    }
                },
            ))
            .map_err(|e| load_err(e.to_string()))?;
        if let Some(n) = options.intra_threads {
            builder = builder
                .with_intra_threads(n)
                .map_err(|e| load_err(e.to_string()))?;
        }
        if let (true, Some(disabled)) = (cpu, cpu_disabled_optimizers(graph)) {
            builder = builder
                .with_disabled_optimizers(disabled)
                .map_err(|e| load_err(e.to_string()))?;
        }
        Ok::<_, ModelError>(builder)
    };
    let commit = |mut b: SessionBuilder| match source {
        Source::File(path) => b.commit_from_file(path),
        Source::Memory(bytes) => b.commit_from_memory(bytes),
    };
    let gpu = register_provider(base(false)?, options.provider, &options.gpu)
        .and_then(|b| b.map(|b| commit(b).map_err(|e| e.to_string())).transpose());
    let session = match gpu {
        Ok(Some(session)) => session,
        Ok(None) => commit(base(true)?).map_err(|e| load_err(e.to_string()))?,
        Err(reason) if options.fallback_to_cpu => {
            lock(fallbacks).push(format!(
                "{graph}: {} unavailable ({reason}), running on the CPU",
                options.provider.name()
            ));
            lock(&log).clear();
            commit(base(true)?).map_err(|e| load_err(e.to_string()))?
        }
        Err(reason) => {
            return Err(ModelError::Provider {
                provider: options.provider.name(),
                graph,
                reason,
            });
        }
    };
    let placement = Placement::from_log(&lock(&log));
    Ok((session, placement))
}

/// Whether an ONNX Runtime log message is part of its node placement report.
fn is_placement_line(message: &str) -> bool {
    let t = message.trim_start();
    t.starts_with("All nodes placed on [")
        || t.starts_with("Node(s) placed on [")
        || (message.starts_with("  ") && t.contains(" (") && t.ends_with(')'))
}

/// ONNX Runtime graph optimisers to leave out for `graph` on the CPU
/// (`optimization.disable_specified_optimizers`).
///
/// The image encoder: `MatMulAddFusion` turns every MatMul + bias Add into a Gemm,
/// which on the CPU first broadcasts the bias into the whole output and then
/// accumulates into it. On the encoder's large activations (65,536 x 96 tokens at
/// 1024 input) that extra pass over memory made the 2-core CPU encoder ~5% slower
/// (interleaved runs of the same graph, medians 987 vs 942 ms at 1024) than the
/// MatMul with its bias added by the next fused kernel (BiasGelu) or a plain Add.
/// The other graphs gain nothing from it (the mask decoder loses on its small
/// matmuls) and keep every optimiser, as do GPU sessions.
pub fn cpu_disabled_optimizers(graph: &str) -> Option<&'static str> {
    match graph {
        "image_encoder" => Some("MatMulAddFusion"),
        _ => None,
    }
}

/// Adds the requested GPU provider to `builder` (strict: registration errors
/// are returned). `Ok(None)`: the CPU was requested.
fn register_provider(
    builder: ort::session::builder::SessionBuilder,
    provider: ExecutionProvider,
    #[allow(unused_variables)] gpu: &GpuOptions,
) -> Result<Option<ort::session::builder::SessionBuilder>, String> {
    match provider {
        ExecutionProvider::Cpu => {
            drop(builder);
            Ok(None)
        }
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda { device_id } => check_provider_libraries("cuda").and_then(|()| {
            builder
                .with_execution_providers([cuda_provider(device_id, gpu)])
                .map(Some)
                .map_err(|e| e.to_string())
        }),
        #[cfg(feature = "tensorrt")]
        ExecutionProvider::TensorRt { device_id } => check_provider_libraries("tensorrt")
            .and_then(|()| check_provider_libraries("cuda"))
            .and_then(|()| {
                let mut trt = ort::ep::TensorRT::default()
                    .with_device_id(device_id)
                    .with_fp16(gpu.trt_fp16);
                if let Some(dir) = &gpu.trt_engine_cache {
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display());
                }
                builder
                    .with_execution_providers([
                        trt.build().error_on_failure(),
                        cuda_provider(device_id, gpu),
                    ])
                    .map(Some)
                    .map_err(|e| e.to_string())
            }),
        #[allow(unreachable_patterns)]
        other => {
            drop(builder);
            Err(format!(
                "this build has no {} support (rebuild with `cargo build --features {}`)",
                other.name(),
                other.name()
            ))
        }
    }
}

/// The CUDA provider with `gpu`'s options.
#[cfg(feature = "cuda")]
fn cuda_provider(device_id: i32, gpu: &GpuOptions) -> ort::ep::ExecutionProviderDispatch {
    use ort::ep::cuda::ConvAlgorithmSearch;
    let mut cuda = ort::ep::CUDA::default()
        .with_device_id(device_id)
        .with_tf32(gpu.tf32)
        .with_conv_algorithm_search(match gpu.conv_search {
            ConvSearch::Exhaustive => ConvAlgorithmSearch::Exhaustive,
            ConvSearch::Heuristic => ConvAlgorithmSearch::Heuristic,
            ConvSearch::Default => ConvAlgorithmSearch::Default,
        });
    if let Some(limit) = gpu.memory_limit {
        cuda = cuda.with_memory_limit(limit);
    }
    cuda.build().error_on_failure()
}

/// The GPU provider's libraries next to the loaded ONNX Runtime, all there
/// (see [`super::gpu::check_provider`]).
#[cfg(feature = "cuda")]
fn check_provider_libraries(provider: &str) -> Result<(), String> {
    match super::runtime::loaded_library() {
        Some(library) => super::gpu::check_provider(&library, provider),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn placement_of_one_provider() {
        let p = Placement::from_log(&lines(
            " All nodes placed on [CPUExecutionProvider]. Number of nodes: 394",
        ));
        assert_eq!(p.providers.len(), 1);
        assert_eq!(p.providers[0].provider, "CPUExecutionProvider");
        assert_eq!(p.providers[0].nodes, 394);
        assert!(p.cpu_share().is_none());
        assert!(p.compute_on_cpu().is_empty());
        assert_eq!(p.summary(), "CPUExecutionProvider 394 nodes");
    }

    /// The split ONNX Runtime reports when a GPU provider lacks kernels
    /// (session_state.cc, VerifyEachNodeIsAssignedToAnEp, verbose level).
    #[test]
    fn placement_split_names_the_compute_on_the_cpu() {
        let p = Placement::from_log(&lines(
            " Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 3\n\
             \x20  MatMul (/layers.0/MatMul)\n\
             \x20  Softmax (/layers.0/Softmax)\n\
             \x20  MemcpyToHost (Memcpy_token_1)\n\
             \x20Node(s) placed on [CPUExecutionProvider]. Number of nodes: 4\n\
             \x20  Shape (/Shape)\n\
             \x20  Gather (/Gather_3)\n\
             \x20  ScatterND (/ScatterND)\n\
             \x20  MatMul (/layers.1/MatMul)",
        ));
        assert_eq!(p.providers.len(), 2);
        assert_eq!(p.providers[0].nodes, 3);
        let cpu = p.cpu_share().expect("split");
        assert_eq!(cpu.nodes, 4);
        assert_eq!(cpu.ops.len(), 4);
        // shape arithmetic is expected on the CPU; the MatMul is not
        assert_eq!(p.compute_on_cpu(), vec![("MatMul".to_string(), 1)]);
        assert!(
            p.summary()
                .contains("CPUExecutionProvider 4 nodes (Shape 1, Gather 1")
        );
    }

    #[test]
    fn only_placement_lines_are_kept() {
        assert!(is_placement_line(
            " All nodes placed on [CPUExecutionProvider]. Number of nodes: 1"
        ));
        assert!(is_placement_line("  MatMul (/a/MatMul)"));
        assert!(!is_placement_line(
            "Removing initializer 'x'. It is no longer used"
        ));
        assert!(!is_placement_line("Begin execution (id 3)"));
    }
}
