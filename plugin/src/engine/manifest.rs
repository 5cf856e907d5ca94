// SPDX-License-Identifier: MPL-2.0

//! The model manifest (`model.json`) written by `models/export.py`.
//!
//! Every size the engine uses comes from here (image size, feature grid, channel
//! widths, memory length, learned constants): nothing assumes the 1024/256/64 of
//! the released checkpoints. See `models/CONTRACT.md` for the meaning of each
//! field.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Value of the manifest's `format` field.
pub const MANIFEST_FORMAT: &str = "sam2track-model";
/// Manifest format version this engine reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Graph names, in the order a frame runs through them.
pub const GRAPH_NAMES: [&str; 4] = [
    IMAGE_ENCODER,
    MEMORY_ATTENTION,
    MASK_DECODER,
    MEMORY_ENCODER,
];
pub const IMAGE_ENCODER: &str = "image_encoder";
pub const MEMORY_ATTENTION: &str = "memory_attention";
pub const MASK_DECODER: &str = "mask_decoder";
pub const MEMORY_ENCODER: &str = "memory_encoder";
/// Optional: the image encoder of the frames that get prompts, with the image
/// encoder's inputs and outputs (a fast model's fp32 encoder next to its int8
/// one, `models/quantize.py --fp32-prompted-frames`; CONTRACT.md).
pub const PROMPT_IMAGE_ENCODER: &str = "prompt_image_encoder";
/// The graphs a model may have besides [`GRAPH_NAMES`].
pub const OPTIONAL_GRAPH_NAMES: [&str; 1] = [PROMPT_IMAGE_ENCODER];

/// Host-side learned constants (see CONTRACT.md, "Host constants").
pub const CONST_NO_MEM_EMBED: &str = "no_mem_embed";
pub const CONST_NO_OBJ_PTR: &str = "no_obj_ptr";
pub const CONST_MASK_DOWNSAMPLE_WEIGHT: &str = "mask_downsample.weight";
pub const CONST_MASK_DOWNSAMPLE_BIAS: &str = "mask_downsample.bias";

/// Why a manifest cannot be used. Every variant names the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("model.json is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("model.json has format {found:?}, expected {MANIFEST_FORMAT:?}")]
    Format { found: String },
    #[error(
        "model.json has format_version {found}, this plugin reads version {MANIFEST_VERSION} \
         (re-export the model with this version's models/export.py)"
    )]
    Version { found: u32 },
    #[error("model.json field {field}: {problem}")]
    Field { field: String, problem: String },
}

fn field_err(field: impl Into<String>, problem: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Where the weights came from.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    /// Config name given to the exporter (`sam2.1_hiera_t`, `micro`, ...).
    pub config: String,
    /// `sam2.0`, `sam2.1`, `micro-sam2.1`, `edgetam` or `micro-edgetam`.
    pub family: String,
    /// SAM 2.1 behaviour (signed pointer time encoding, no-object spatial embedding).
    pub sam2_1: bool,
    pub parameters: u64,
}

/// EdgeTAM's spatial perceiver (see CONTRACT.md, "EdgeTAM"): each stored
/// memory frame is `num_latents` global latents (no RoPE, zero position
/// encoding) followed by `num_latents_2d` latents on a `grid` × `grid` map.
/// The graphs hold everything about it; the engine only needs the token count
/// ([`Manifest::memory_tokens`]).
#[derive(Debug, Clone, Deserialize)]
pub struct SpatialPerceiver {
    pub num_latents: u32,
    pub num_latents_2d: u32,
    pub grid: u32,
    pub depth: u32,
}

/// Frame preprocessing: stretch to `image_size`², RGB, `(x * scale - mean) / std`.
#[derive(Debug, Clone, Deserialize)]
pub struct Preprocess {
    pub color: String,
    pub scale: f64,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Behaviour of the official model and predictor the graphs were exported from.
/// The engine implements these on the host (see CONTRACT.md).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub num_maskmem: u32,
    pub max_obj_ptrs_in_encoder: u32,
    pub max_cond_frames_in_attn: i32,
    pub memory_temporal_stride_for_eval: u32,
    pub directly_add_no_mem_embed: bool,
    pub use_obj_ptrs_in_encoder: bool,
    pub add_tpos_enc_to_obj_ptrs: bool,
    pub use_signed_tpos_enc_to_obj_ptrs: bool,
    pub only_obj_ptrs_in_the_past_for_eval: bool,
    pub pred_obj_scores: bool,
    pub fixed_no_obj_ptr: bool,
    pub soft_no_obj_ptr: bool,
    pub no_obj_embed_spatial: bool,
    pub multimask_output_in_sam: bool,
    pub multimask_output_for_tracking: bool,
    pub multimask_min_pt_num: u32,
    pub multimask_max_pt_num: u32,
    pub use_multimask_token_for_obj_ptr: bool,
    pub use_mask_input_as_output_without_sam: bool,
    pub binarize_mask_from_pts_for_mem_enc: bool,
    pub iou_prediction_use_sigmoid: bool,
    pub sigmoid_scale_for_mem_enc: f32,
    pub sigmoid_bias_for_mem_enc: f32,
    pub dynamic_multimask_via_stability: bool,
    pub dynamic_multimask_stability_delta: f32,
    pub dynamic_multimask_stability_thresh: f32,
    pub add_all_frames_to_correct_as_cond: bool,
    pub clear_non_cond_mem_around_input: bool,
    pub non_overlap_masks: bool,
    pub fill_hole_area: u32,
}

/// A learned tensor stored in the manifest (fp32 values, row-major).
#[derive(Debug, Clone, Deserialize)]
pub struct ConstTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One tensor of a graph as recorded by the exporter. Dimensions are numbers
/// (fixed) or names (symbolic: `B` objects, `N` points, `Nm` memory slots,
/// `P` pointer slots).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<DimEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DimEntry {
    Fixed(i64),
    Symbolic(String),
}

/// One graph of the model. Its optional `precision` (`int8-dynamic` from
/// models/quantize.py, `int8-scores` from `export.py --int8-attention-scores`,
/// `int8-scores+int8-values` with `--int8-attention-values` or
/// `--int8-encoder-attention`, `fp16` / `fp16-emulated` from models/fp16.py,
/// and their combinations) does not change how it is run:
/// those graphs keep the contract's inputs and outputs, which are checked. An
/// int8 graph's range is read to warn where the CPU's integer products would
/// saturate ([`GraphEntry::int8_max_abs`], `engine::cpu`).
#[derive(Debug, Clone, Deserialize)]
pub struct GraphEntry {
    /// File name, relative to the model directory.
    pub file: String,
    pub sha256: String,
    pub inputs: Vec<TensorEntry>,
    pub outputs: Vec<TensorEntry>,
    #[serde(default)]
    pub precision: Option<String>,
    /// `int8_max_abs` in model.json: see [`GraphEntry::int8_max_abs`].
    #[serde(default, rename = "int8_max_abs")]
    int8_max_abs_field: Option<u32>,
}

/// The int8 range of graphs written before model.json recorded it: the full
/// signed range ([-127, 127]) that models/quantize.py and the int8-scores export
/// used then.
pub const INT8_MAX_ABS_BEFORE_RECORDED: u32 = 127;

impl GraphEntry {
    /// Whether the graph has integer products (`precision` names int8).
    pub fn is_int8(&self) -> bool {
        self.precision
            .as_deref()
            .is_some_and(|p| p.contains("int8"))
    }

    /// The largest |value| of the int8 operand of the graph's uint8 × int8
    /// products (64 for the 7-bit range, 127 for the full one); `None` for a
    /// graph without integer products.
    pub fn int8_max_abs(&self) -> Option<u32> {
        self.is_int8().then(|| {
            self.int8_max_abs_field
                .unwrap_or(INT8_MAX_ABS_BEFORE_RECORDED)
        })
    }
}

/// The parsed and checked `model.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub model: ModelInfo,
    /// Side of the square model input (S).
    pub image_size: u32,
    pub backbone_stride: u32,
    /// Side of the stride-16 feature grid (H = W = S / 16).
    pub feat_size: u32,
    /// Channel width C of features, prompts and object pointers.
    pub hidden_dim: u32,
    /// Channel width of the memory (Cm).
    pub mem_dim: u32,
    /// Memory tokens per object pointer (C / Cm).
    pub ptr_tokens_per_obj_ptr: u32,
    /// Channels of the stride-4 and stride-8 features ([C/8, C/4]).
    pub high_res_channels: [u32; 2],
    /// Side of the low-res mask logits (S / 4).
    pub low_res_mask_size: u32,
    /// Mask tokens of the decoder (1 single-mask + 3 multimask).
    pub num_mask_tokens: u32,
    /// Tokens of one stored memory frame (`memory_tokens` in model.json):
    /// absent in exports older than EdgeTAM support, where it is always
    /// `feat_size²`. Read it with [`Manifest::memory_tokens`].
    #[serde(default, rename = "memory_tokens")]
    memory_tokens_field: Option<u32>,
    /// EdgeTAM's memory compression; `None` for SAM 2 / 2.1.
    #[serde(default)]
    pub spatial_perceiver: Option<SpatialPerceiver>,
    pub preprocess: Preprocess,
    pub settings: Settings,
    pub constants: BTreeMap<String, ConstTensor>,
    pub graphs: BTreeMap<String, GraphEntry>,
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn from_json(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = serde_json::from_str(text)?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Tokens of one stored memory frame (`Mt`): `feat_size²` for SAM 2 / 2.1,
    /// the perceiver's `num_latents + num_latents_2d` for EdgeTAM. The memory
    /// encoder outputs `[B, Mt, Cm]`; memory attention reads `[B, Nm, Mt, Cm]`.
    pub fn memory_tokens(&self) -> u32 {
        self.memory_tokens_field
            .unwrap_or(self.feat_size * self.feat_size)
    }

    /// The graphs of this model: [`GRAPH_NAMES`], then those of
    /// [`OPTIONAL_GRAPH_NAMES`] it has.
    pub fn graph_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        GRAPH_NAMES.into_iter().chain(
            OPTIONAL_GRAPH_NAMES
                .into_iter()
                .filter(|name| self.graphs.contains_key(*name)),
        )
    }

    /// A learned host constant by name (checked to exist by [`Manifest::check`]).
    pub fn constant(&self, name: &str) -> &ConstTensor {
        &self.constants[name]
    }

    /// Checks the format, the internal consistency of every size and the
    /// presence and shape of every host constant and graph entry.
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format {
                found: self.format.clone(),
            });
        }
        if self.format_version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                found: self.format_version,
            });
        }
        let s = self.image_size;
        let c = self.hidden_dim;
        let cm = self.mem_dim;
        if s == 0 || self.backbone_stride == 0 || !s.is_multiple_of(self.backbone_stride) {
            return Err(field_err(
                "image_size",
                format!(
                    "{s} is not a positive multiple of backbone_stride {}",
                    self.backbone_stride
                ),
            ));
        }
        let expect = |field: &str, got: u32, want: u32| {
            if got == want {
                Ok(())
            } else {
                Err(field_err(
                    field,
                    format!("is {got}, but the other sizes imply {want}"),
                ))
            }
        };
        expect("feat_size", self.feat_size, s / self.backbone_stride)?;
        expect("low_res_mask_size", self.low_res_mask_size, s / 4)?;
        if c == 0 || cm == 0 || !c.is_multiple_of(cm) {
            return Err(field_err(
                "mem_dim",
                format!("{cm} must divide hidden_dim {c}"),
            ));
        }
        expect(
            "ptr_tokens_per_obj_ptr",
            self.ptr_tokens_per_obj_ptr,
            c / cm,
        )?;
        expect("high_res_channels[0]", self.high_res_channels[0], c / 8)?;
        expect("high_res_channels[1]", self.high_res_channels[1], c / 4)?;
        expect("num_mask_tokens", self.num_mask_tokens, 4)?;
        self.check_memory_layout()?;
        let st = &self.settings;
        if !(1..=7).contains(&st.num_maskmem) {
            return Err(field_err(
                "settings.num_maskmem",
                format!("{} is outside 1..=7", st.num_maskmem),
            ));
        }
        if st.max_obj_ptrs_in_encoder < 2 {
            return Err(field_err(
                "settings.max_obj_ptrs_in_encoder",
                format!("{} must be at least 2", st.max_obj_ptrs_in_encoder),
            ));
        }
        if self.preprocess.color != "RGB" {
            return Err(field_err(
                "preprocess.color",
                format!("{:?} is not supported (RGB only)", self.preprocess.color),
            ));
        }
        if self.preprocess.std.iter().any(|v| *v <= 0.0) {
            return Err(field_err("preprocess.std", "must be positive"));
        }
        let c = c as usize;
        for (name, shape) in [
            (CONST_NO_MEM_EMBED, vec![c]),
            (CONST_NO_OBJ_PTR, vec![c]),
            (CONST_MASK_DOWNSAMPLE_WEIGHT, vec![4, 4]),
            (CONST_MASK_DOWNSAMPLE_BIAS, vec![1]),
        ] {
            let field = format!("constants.{name}");
            let t = self
                .constants
                .get(name)
                .ok_or_else(|| field_err(&field, "is missing"))?;
            if t.shape != shape {
                return Err(field_err(
                    &field,
                    format!("has shape {:?}, expected {shape:?}", t.shape),
                ));
            }
            let n: usize = shape.iter().product();
            if t.data.len() != n {
                return Err(field_err(
                    &field,
                    format!("has {} values for shape {shape:?}", t.data.len()),
                ));
            }
            if t.data.iter().any(|v| !v.is_finite()) {
                return Err(field_err(&field, "has a non-finite value"));
            }
        }
        for name in self.graph_names() {
            let g = self
                .graphs
                .get(name)
                .ok_or_else(|| field_err(format!("graphs.{name}"), "is missing"))?;
            if g.file.is_empty() || g.file.contains('/') || g.file.contains("..") {
                return Err(field_err(
                    format!("graphs.{name}.file"),
                    format!("{:?} must be a plain file name", g.file),
                ));
            }
        }
        Ok(())
    }

    /// `memory_tokens` and `spatial_perceiver` agree with each other and with
    /// the feature grid.
    fn check_memory_layout(&self) -> Result<(), ManifestError> {
        let mt = self.memory_tokens();
        let Some(p) = &self.spatial_perceiver else {
            let hw = self.feat_size * self.feat_size;
            if mt != hw {
                return Err(field_err(
                    "memory_tokens",
                    format!(
                        "is {mt}, but without a spatial_perceiver a memory frame is the \
                         {hw} tokens of the feature grid"
                    ),
                ));
            }
            return Ok(());
        };
        if p.grid.checked_mul(p.grid) != Some(p.num_latents_2d) {
            return Err(field_err(
                "spatial_perceiver.grid",
                format!(
                    "is {}, but num_latents_2d {} is not its square",
                    p.grid, p.num_latents_2d
                ),
            ));
        }
        if p.grid > 0 && !self.feat_size.is_multiple_of(p.grid) {
            return Err(field_err(
                "spatial_perceiver.grid",
                format!(
                    "{} does not divide the {} x {} feature grid",
                    p.grid, self.feat_size, self.feat_size
                ),
            ));
        }
        let want = p.num_latents.checked_add(p.num_latents_2d);
        if mt == 0 || want != Some(mt) {
            return Err(field_err(
                "memory_tokens",
                format!(
                    "is {mt}, but the spatial perceiver gives {} + {} tokens",
                    p.num_latents, p.num_latents_2d
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/micro/model.json"
        );
        std::fs::read_to_string(path).expect("tests/fixtures/micro/model.json")
    }

    fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Manifest, ManifestError> {
        let mut v: serde_json::Value = serde_json::from_str(&fixture()).unwrap();
        edit(&mut v);
        Manifest::from_json(&v.to_string())
    }

    fn field_of(err: ManifestError) -> String {
        match err {
            ManifestError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn micro_fixture_parses_with_its_own_sizes() {
        let m = Manifest::from_json(&fixture()).unwrap();
        assert_eq!(m.image_size, 128);
        assert_eq!(m.feat_size, 8);
        assert_eq!(m.hidden_dim, 32);
        assert_eq!(m.mem_dim, 8);
        assert_eq!(m.low_res_mask_size, 32);
        assert_eq!(m.settings.num_maskmem, 7);
        assert_eq!(m.constant(CONST_NO_OBJ_PTR).data.len(), 32);
        assert!(m.model.sam2_1);
        for name in GRAPH_NAMES {
            assert_eq!(m.graphs[name].file, format!("{name}.onnx"));
        }
    }

    fn edgetam_fixture() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/micro-edgetam/model.json"
        );
        std::fs::read_to_string(path).expect("tests/fixtures/micro-edgetam/model.json")
    }

    fn edited_edgetam(
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> Result<Manifest, ManifestError> {
        let mut v: serde_json::Value = serde_json::from_str(&edgetam_fixture()).unwrap();
        edit(&mut v);
        Manifest::from_json(&v.to_string())
    }

    #[test]
    fn memory_tokens_default_to_the_feature_grid() {
        // exports before EdgeTAM support have no memory_tokens field
        let m = edited(|v| {
            v.as_object_mut().unwrap().remove("memory_tokens");
        })
        .unwrap();
        assert_eq!(m.memory_tokens(), 64);
        assert!(m.spatial_perceiver.is_none());
        let m = edited(|v| v["memory_tokens"] = 64.into()).unwrap();
        assert_eq!(m.memory_tokens(), 64);
        let e = edited(|v| v["memory_tokens"] = 24.into()).unwrap_err();
        assert_eq!(field_of(e), "memory_tokens");
    }

    #[test]
    fn micro_edgetam_fixture_parses_with_its_memory_layout() {
        let m = Manifest::from_json(&edgetam_fixture()).unwrap();
        assert_eq!(m.model.family, "micro-edgetam");
        assert!(!m.model.sam2_1);
        assert_eq!((m.image_size, m.feat_size), (128, 8));
        assert_eq!((m.hidden_dim, m.mem_dim), (32, 8));
        // 8 global + 4 x 4 2D latents, not the 64 tokens of the 8 x 8 grid
        assert_eq!(m.memory_tokens(), 24);
        let p = m.spatial_perceiver.as_ref().unwrap();
        assert_eq!((p.num_latents, p.num_latents_2d, p.grid), (8, 16, 4));
        // EdgeTAM keeps SAM 2.0's pointer settings
        assert!(!m.settings.add_tpos_enc_to_obj_ptrs);
        assert!(!m.settings.no_obj_embed_spatial);
        assert!(m.settings.fixed_no_obj_ptr);
    }

    #[test]
    fn inconsistent_memory_layout_names_the_field() {
        let e = edited_edgetam(|v| v["memory_tokens"] = 64.into()).unwrap_err();
        assert_eq!(field_of(e), "memory_tokens");
        let e = edited_edgetam(|v| {
            v.as_object_mut().unwrap().remove("memory_tokens");
        })
        .unwrap_err();
        assert_eq!(field_of(e), "memory_tokens");
        let e = edited_edgetam(|v| v["spatial_perceiver"]["grid"] = 3.into()).unwrap_err();
        assert_eq!(field_of(e), "spatial_perceiver.grid");
        let e = edited_edgetam(|v| {
            v["spatial_perceiver"]["grid"] = 16.into();
            v["spatial_perceiver"]["num_latents_2d"] = 256.into();
            v["memory_tokens"] = 264.into();
        })
        .unwrap_err();
        assert!(e.to_string().contains("does not divide"), "{e}");
    }

    #[test]
    fn wrong_format_and_version_are_rejected() {
        let e = edited(|v| v["format"] = "something-else".into()).unwrap_err();
        assert!(matches!(e, ManifestError::Format { .. }), "{e}");
        let e = edited(|v| v["format_version"] = 99.into()).unwrap_err();
        assert!(e.to_string().contains("format_version 99"), "{e}");
    }

    #[test]
    fn inconsistent_sizes_name_the_field() {
        let e = edited(|v| v["feat_size"] = 64.into()).unwrap_err();
        assert_eq!(field_of(e), "feat_size");
        let e = edited(|v| v["mem_dim"] = 7.into()).unwrap_err();
        assert_eq!(field_of(e), "mem_dim");
        let e = edited(|v| v["high_res_channels"] = serde_json::json!([4, 4])).unwrap_err();
        assert_eq!(field_of(e), "high_res_channels[1]");
        let e = edited(|v| v["settings"]["num_maskmem"] = 9.into()).unwrap_err();
        assert_eq!(field_of(e), "settings.num_maskmem");
    }

    #[test]
    fn constants_are_checked() {
        let e = edited(|v| {
            v["constants"]
                .as_object_mut()
                .unwrap()
                .remove(CONST_NO_MEM_EMBED);
        })
        .unwrap_err();
        assert_eq!(field_of(e), "constants.no_mem_embed");
        let e = edited(|v| {
            v["constants"][CONST_NO_OBJ_PTR]["data"]
                .as_array_mut()
                .unwrap()
                .pop();
        })
        .unwrap_err();
        assert_eq!(field_of(e), "constants.no_obj_ptr");
    }

    #[test]
    fn missing_graph_entry_is_named() {
        let e = edited(|v| {
            v["graphs"].as_object_mut().unwrap().remove(MASK_DECODER);
        })
        .unwrap_err();
        assert_eq!(field_of(e), "graphs.mask_decoder");
        let e = edited(|v| v["graphs"][MEMORY_ENCODER]["file"] = "../x.onnx".into()).unwrap_err();
        assert_eq!(field_of(e), "graphs.memory_encoder.file");
    }

    #[test]
    fn graph_precision_is_information_only() {
        // models/quantize.py and models/fp16.py record how a graph was rewritten;
        // its inputs and outputs stay those of the contract, so any value loads
        for precision in ["fp32", "int8-dynamic", "fp16", "fp16-emulated"] {
            edited(|v| {
                for name in GRAPH_NAMES {
                    v["graphs"][name]["precision"] = precision.into();
                }
            })
            .unwrap_or_else(|e| panic!("{precision}: {e}"));
        }
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        let e = Manifest::from_json("{ not json").unwrap_err();
        assert!(matches!(e, ManifestError::Parse(_)), "{e}");
    }
}
