// SPDX-License-Identifier: MPL-2.0

//! The graph I/O contract of `models/CONTRACT.md`, derived from a manifest's
//! sizes, and its checks against the manifest's own records and against the
//! inputs/outputs ONNX Runtime reports for a loaded graph.
//!
//! Symbolic dimensions: [`DIM_OBJECTS`] (objects in the batch), [`DIM_POINTS`]
//! (prompt points), [`DIM_MEMORIES`] (spatial memory slots), [`DIM_POINTERS`]
//! (object-pointer slots).

use std::fmt;

use super::manifest::{self, DimEntry, Manifest, TensorEntry};

pub const DIM_OBJECTS: &str = "B";
pub const DIM_POINTS: &str = "N";
pub const DIM_MEMORIES: &str = "Nm";
pub const DIM_POINTERS: &str = "P";

/// Element types used by the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I32,
    I64,
}

impl DType {
    /// Name used in model.json and CONTRACT.md.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
            DType::I64 => "int64",
        }
    }

    fn from_ort(ty: ort::value::TensorElementType) -> Option<Self> {
        use ort::value::TensorElementType as T;
        match ty {
            T::Float32 => Some(DType::F32),
            T::Int32 => Some(DType::I32),
            T::Int64 => Some(DType::I64),
            _ => None,
        }
    }
}

/// One dimension of a contract tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Symbolic(&'static str),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: &'static str,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

fn shape_str(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", dims.join(", "))
}

#[derive(Debug, Clone)]
pub struct GraphSpec {
    pub name: &'static str,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// A graph's contract does not hold. Names the graph, the tensor and the mismatch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("graph {graph}: {direction} '{tensor}': {problem}")]
pub struct ContractError {
    pub graph: String,
    pub direction: &'static str,
    pub tensor: String,
    pub problem: String,
}

fn t(name: &'static str, dtype: DType, shape: &[Dim]) -> TensorSpec {
    TensorSpec {
        name,
        dtype,
        shape: shape.to_vec(),
    }
}

/// The inputs and outputs of the graphs of `m` ([`Manifest::graph_names`]) for
/// its sizes.
pub fn graph_specs(m: &Manifest) -> Vec<GraphSpec> {
    use DType::*;
    use Dim::{Fixed as F, Symbolic as Sym};
    let s = i64::from(m.image_size);
    let c = i64::from(m.hidden_dim);
    let cm = i64::from(m.mem_dim);
    let h = i64::from(m.feat_size);
    let l = i64::from(m.low_res_mask_size);
    // tokens per stored memory frame: h * h, or EdgeTAM's perceiver latents
    let mt = i64::from(m.memory_tokens());
    let tk = i64::from(m.num_mask_tokens);
    let [c0, c1] = m.high_res_channels.map(i64::from);
    let b = Sym(DIM_OBJECTS);
    let hr0 = [F(1), F(c0), F(4 * h), F(4 * h)];
    let hr1 = [F(1), F(c1), F(2 * h), F(2 * h)];
    let feat = [F(1), F(c), F(h), F(h)];
    let image_encoder = |name| GraphSpec {
        name,
        inputs: vec![t("image", F32, &[F(1), F(3), F(s), F(s)])],
        outputs: vec![
            t("high_res_feat_0", F32, &hr0),
            t("high_res_feat_1", F32, &hr1),
            t("vision_feat", F32, &feat),
            t("vision_pos", F32, &feat),
        ],
    };
    let mut specs = vec![
        image_encoder(manifest::IMAGE_ENCODER),
        GraphSpec {
            name: manifest::MEMORY_ATTENTION,
            inputs: vec![
                t("vision_feat", F32, &feat),
                t("vision_pos", F32, &feat),
                t("memory", F32, &[b, Sym(DIM_MEMORIES), F(mt), F(cm)]),
                t("memory_tpos_index", I64, &[b, Sym(DIM_MEMORIES)]),
                t("memory_valid", F32, &[b, Sym(DIM_MEMORIES)]),
                t("obj_ptrs", F32, &[b, Sym(DIM_POINTERS), F(c)]),
                t("obj_ptr_tpos", F32, &[b, Sym(DIM_POINTERS)]),
                t("obj_ptr_valid", F32, &[b, Sym(DIM_POINTERS)]),
            ],
            outputs: vec![t("pix_feat_with_mem", F32, &[b, F(c), F(h), F(h)])],
        },
        GraphSpec {
            name: manifest::MASK_DECODER,
            inputs: vec![
                t("image_embed", F32, &[b, F(c), F(h), F(h)]),
                t("high_res_feat_0", F32, &hr0),
                t("high_res_feat_1", F32, &hr1),
                t("point_coords", F32, &[b, Sym(DIM_POINTS), F(2)]),
                t("point_labels", I32, &[b, Sym(DIM_POINTS)]),
                t("mask_input", F32, &[b, F(1), F(l), F(l)]),
                t("has_mask_input", F32, &[b]),
            ],
            outputs: vec![
                t("masks", F32, &[b, F(tk), F(l), F(l)]),
                t("iou_pred", F32, &[b, F(tk)]),
                t("obj_ptr", F32, &[b, F(tk), F(c)]),
                t("object_score_logits", F32, &[b, F(1)]),
            ],
        },
        GraphSpec {
            name: manifest::MEMORY_ENCODER,
            inputs: vec![
                t("vision_feat", F32, &feat),
                t("masks", F32, &[b, F(1), F(l), F(l)]),
                t("is_mask_from_pts", F32, &[b]),
                t("object_score_logits", F32, &[b, F(1)]),
            ],
            outputs: vec![t("maskmem_features", F32, &[b, F(mt), F(cm)])],
        },
    ];
    if m.graphs.contains_key(manifest::PROMPT_IMAGE_ENCODER) {
        specs.push(image_encoder(manifest::PROMPT_IMAGE_ENCODER));
    }
    specs
}

/// The spec of one graph by name.
pub fn graph_spec(m: &Manifest, name: &str) -> Option<GraphSpec> {
    graph_specs(m).into_iter().find(|g| g.name == name)
}

fn err(graph: &str, direction: &'static str, tensor: &str, problem: String) -> ContractError {
    ContractError {
        graph: graph.to_owned(),
        direction,
        tensor: tensor.to_owned(),
        problem,
    }
}

/// What the exporter recorded in model.json must be this contract: catches a
/// model exported by another version of the tools before any graph is loaded.
pub fn check_manifest_entries(m: &Manifest) -> Result<(), ContractError> {
    for spec in graph_specs(m) {
        let entry = &m.graphs[spec.name];
        for (direction, want, got) in [
            ("input", &spec.inputs, &entry.inputs),
            ("output", &spec.outputs, &entry.outputs),
        ] {
            check_entries(spec.name, direction, want, got)?;
        }
    }
    Ok(())
}

fn check_entries(
    graph: &str,
    direction: &'static str,
    want: &[TensorSpec],
    got: &[TensorEntry],
) -> Result<(), ContractError> {
    for w in want {
        let Some(g) = got.iter().find(|g| g.name == w.name) else {
            return Err(err(
                graph,
                direction,
                w.name,
                "missing from model.json".into(),
            ));
        };
        let shape_ok = g.shape.len() == w.shape.len()
            && g.shape.iter().zip(&w.shape).all(|(g, w)| match (g, w) {
                (DimEntry::Fixed(a), Dim::Fixed(b)) => a == b,
                (DimEntry::Symbolic(a), Dim::Symbolic(b)) => a == b,
                _ => false,
            });
        if g.dtype != w.dtype.name() || !shape_ok {
            return Err(err(
                graph,
                direction,
                w.name,
                format!(
                    "model.json records {} {:?}, the contract is {} {}",
                    g.dtype,
                    g.shape,
                    w.dtype.name(),
                    shape_str(&w.shape)
                ),
            ));
        }
    }
    if let Some(extra) = got.iter().find(|g| !want.iter().any(|w| w.name == g.name)) {
        return Err(err(
            graph,
            direction,
            &extra.name,
            "is not part of the contract".into(),
        ));
    }
    Ok(())
}

/// A tensor as a loaded graph declares it: `dtype` is `None` for element types
/// the contract never uses; dimensions are `-1` where dynamic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    pub dtype: Option<DType>,
    pub dims: Option<Vec<i64>>,
}

impl Declared {
    /// From what ONNX Runtime reports for a session input or output.
    pub fn from_outlet(outlet: &ort::value::Outlet) -> Self {
        match outlet.dtype() {
            ort::value::ValueType::Tensor { ty, shape, .. } => Declared {
                name: outlet.name().to_owned(),
                dtype: DType::from_ort(*ty),
                dims: Some(shape.to_vec()),
            },
            _ => Declared {
                name: outlet.name().to_owned(),
                dtype: None,
                dims: None,
            },
        }
    }
}

/// Checks a loaded graph's declared inputs and outputs against `spec`: every
/// contract tensor present with its dtype and rank; fixed dimensions equal
/// (a dynamic dimension is accepted for an output, whose size ONNX Runtime may
/// not infer); symbolic dimensions dynamic (a graph that fixed one, e.g. to the
/// example batch it was traced with, cannot run other object counts); no
/// extra inputs (ONNX Runtime would require them).
pub fn check_declared(
    spec: &GraphSpec,
    inputs: &[Declared],
    outputs: &[Declared],
) -> Result<(), ContractError> {
    for (direction, want, got) in [
        ("input", &spec.inputs, inputs),
        ("output", &spec.outputs, outputs),
    ] {
        for w in want {
            let Some(g) = got.iter().find(|g| g.name == w.name) else {
                let names: Vec<&str> = got.iter().map(|g| g.name.as_str()).collect();
                return Err(err(
                    spec.name,
                    direction,
                    w.name,
                    format!("missing (the graph has {})", names.join(", ")),
                ));
            };
            if g.dtype != Some(w.dtype) {
                let found = g.dtype.map_or("a non-contract type", DType::name);
                return Err(err(
                    spec.name,
                    direction,
                    w.name,
                    format!("element type is {found}, expected {}", w.dtype.name()),
                ));
            }
            let dims = g.dims.as_deref().unwrap_or(&[]);
            if dims.len() != w.shape.len() {
                return Err(err(
                    spec.name,
                    direction,
                    w.name,
                    format!(
                        "rank is {} ({dims:?}), expected {} {}",
                        dims.len(),
                        w.shape.len(),
                        shape_str(&w.shape)
                    ),
                ));
            }
            for (i, (d, want_dim)) in dims.iter().zip(&w.shape).enumerate() {
                let ok = match want_dim {
                    Dim::Fixed(n) => *d == *n || (*d < 0 && direction == "output"),
                    Dim::Symbolic(_) => *d < 0,
                };
                if !ok {
                    let found = if *d < 0 {
                        "dynamic".to_owned()
                    } else {
                        d.to_string()
                    };
                    return Err(err(
                        spec.name,
                        direction,
                        w.name,
                        format!(
                            "dimension {i} is {found}, expected {want_dim} (contract shape {})",
                            shape_str(&w.shape)
                        ),
                    ));
                }
            }
        }
        if direction == "input"
            && let Some(extra) = got.iter().find(|g| !want.iter().any(|w| w.name == g.name))
        {
            return Err(err(
                spec.name,
                direction,
                &extra.name,
                "is not part of the contract".into(),
            ));
        }
    }
    Ok(())
}

/// Checks a loaded ONNX Runtime session against `spec`.
pub fn check_session(
    spec: &GraphSpec,
    session: &ort::session::Session,
) -> Result<(), ContractError> {
    let inputs: Vec<Declared> = session.inputs().iter().map(Declared::from_outlet).collect();
    let outputs: Vec<Declared> = session
        .outputs()
        .iter()
        .map(Declared::from_outlet)
        .collect();
    check_declared(spec, &inputs, &outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro() -> Manifest {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/micro/model.json"
        );
        Manifest::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn declared_from_spec(specs: &[TensorSpec]) -> Vec<Declared> {
        specs
            .iter()
            .map(|s| Declared {
                name: s.name.to_owned(),
                dtype: Some(s.dtype),
                dims: Some(
                    s.shape
                        .iter()
                        .map(|d| match d {
                            Dim::Fixed(n) => *n,
                            Dim::Symbolic(_) => -1,
                        })
                        .collect(),
                ),
            })
            .collect()
    }

    #[test]
    fn sizes_come_from_the_manifest() {
        let m = micro();
        let dec = graph_spec(&m, manifest::MASK_DECODER).unwrap();
        let masks = dec.outputs.iter().find(|t| t.name == "masks").unwrap();
        assert_eq!(
            masks.shape,
            vec![
                Dim::Symbolic(DIM_OBJECTS),
                Dim::Fixed(4),
                Dim::Fixed(32),
                Dim::Fixed(32)
            ]
        );
        let enc = graph_spec(&m, manifest::IMAGE_ENCODER).unwrap();
        assert_eq!(
            enc.inputs[0].shape,
            vec![
                Dim::Fixed(1),
                Dim::Fixed(3),
                Dim::Fixed(128),
                Dim::Fixed(128)
            ]
        );
    }

    #[test]
    fn exporter_records_match_the_rust_contract() {
        check_manifest_entries(&micro()).unwrap();
    }

    fn micro_edgetam() -> Manifest {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/micro-edgetam/model.json"
        );
        Manifest::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn edgetam_memory_is_the_perceivers_tokens() {
        let m = micro_edgetam();
        check_manifest_entries(&m).unwrap();
        let (b, nm) = (Dim::Symbolic(DIM_OBJECTS), Dim::Symbolic(DIM_MEMORIES));
        let enc = graph_spec(&m, manifest::MEMORY_ENCODER).unwrap();
        assert_eq!(enc.outputs[0].shape, vec![b, Dim::Fixed(24), Dim::Fixed(8)]);
        let att = graph_spec(&m, manifest::MEMORY_ATTENTION).unwrap();
        let memory = att.inputs.iter().find(|t| t.name == "memory").unwrap();
        assert_eq!(memory.shape, vec![b, nm, Dim::Fixed(24), Dim::Fixed(8)]);
        // a SAM 2 graph (a memory frame = the 64 grid tokens) does not pass
        let mut wrong = m.clone();
        wrong
            .graphs
            .get_mut(manifest::MEMORY_ENCODER)
            .unwrap()
            .outputs[0]
            .shape[1] = DimEntry::Fixed(64);
        let e = check_manifest_entries(&wrong).unwrap_err();
        assert_eq!(
            (e.graph.as_str(), e.tensor.as_str()),
            ("memory_encoder", "maskmem_features")
        );
    }

    #[test]
    fn manifest_record_mismatch_is_named() {
        let mut m = micro();
        m.graphs.get_mut(manifest::MEMORY_ATTENTION).unwrap().inputs[2].shape[1] =
            DimEntry::Fixed(3);
        let e = check_manifest_entries(&m).unwrap_err();
        assert_eq!(e.graph, "memory_attention");
        assert_eq!(e.tensor, "memory");
    }

    #[test]
    fn declared_io_checks() {
        let m = micro();
        let spec = graph_spec(&m, manifest::MEMORY_ENCODER).unwrap();
        let inputs = declared_from_spec(&spec.inputs);
        let outputs = declared_from_spec(&spec.outputs);
        check_declared(&spec, &inputs, &outputs).unwrap();

        // wrong input name
        let mut bad = inputs.clone();
        bad[1].name = "mask".into();
        let e = check_declared(&spec, &bad, &outputs).unwrap_err();
        assert_eq!((e.direction, e.tensor.as_str()), ("input", "masks"));
        assert!(e.problem.contains("missing"), "{e}");

        // wrong dtype
        let mut bad = inputs.clone();
        bad[2].dtype = Some(DType::I64);
        let e = check_declared(&spec, &bad, &outputs).unwrap_err();
        assert_eq!(e.tensor, "is_mask_from_pts");
        assert!(e.problem.contains("int64"), "{e}");

        // a symbolic dimension fixed at export time
        let mut bad = inputs.clone();
        bad[1].dims.as_mut().unwrap()[0] = 2;
        let e = check_declared(&spec, &bad, &outputs).unwrap_err();
        assert!(e.problem.contains("dimension 0 is 2, expected B"), "{e}");

        // a fixed dimension of another size
        let mut bad = inputs.clone();
        bad[0].dims.as_mut().unwrap()[1] = 256;
        let e = check_declared(&spec, &bad, &outputs).unwrap_err();
        assert!(e.problem.contains("dimension 1 is 256, expected 32"), "{e}");

        // an extra input
        let mut bad = inputs.clone();
        bad.push(Declared {
            name: "extra".into(),
            dtype: Some(DType::F32),
            dims: Some(vec![1]),
        });
        let e = check_declared(&spec, &bad, &outputs).unwrap_err();
        assert_eq!(e.tensor, "extra");

        // a dynamic output dimension is accepted, a missing output is not
        let mut dyn_out = outputs.clone();
        dyn_out[0].dims.as_mut().unwrap()[1] = -1;
        check_declared(&spec, &inputs, &dyn_out).unwrap();
        let e = check_declared(&spec, &inputs, &[]).unwrap_err();
        assert_eq!(
            (e.direction, e.tensor.as_str()),
            ("output", "maskmem_features")
        );
    }
}
