// SPDX-License-Identifier: MPL-2.0

//! This CPU's arithmetic: whether it runs the int8 speed modes' integer
//! products exactly, and subnormal floats flushed to zero around each run
//! ([`FlushSubnormals`]).
//!
//! The int8 graphs (models/quantize.py's int8 weights, `export.py
//! --int8-attention-scores`' int8 keys, `--int8-attention-values` and
//! `--int8-encoder-attention`'s int8 values) multiply uint8 activations by int8
//! values with ONNX Runtime's MLAS kernels. On x86 CPUs with VNNI (AVX-512
//! VNNI, AVX-VNNI) those use `vpdpbusd`, which accumulates in int32: exact.
//! Without VNNI (AVX2 only or AVX-512 without VNNI: AMD Zen 1–3, Intel before
//! Cascade Lake / Alder Lake) they use `vpmaddubsw`, which adds each pair of
//! products in int16 and saturates at 32,767: with int8 values within ±64
//! (255 × 64 × 2 = 32,640) that never happens, with the full range (±127) it
//! does, often (on an AMD EPYC Zen 2, 99% of the outputs of a 256³ product of
//! uniform operands came out wrong, by up to 13%; the micro int8 model's
//! high-resolution features by 34%, mask IoU 0.88 against 0.99). The tools
//! write the 7-bit range by default and record it per graph in model.json
//! (`int8_max_abs`); this module tells the element when a model made with the
//! full range runs where it saturates, so that it can warn.

use crate::engine::manifest::Manifest;

/// The largest |int8 value| whose uint8 × int8 products never saturate in a
/// pairwise int16 sum (255 × 64 × 2 ≤ 32,767).
pub const SATURATION_FREE_INT8_MAX_ABS: u32 = 64;

/// How ONNX Runtime's CPU kernels multiply uint8 by int8 on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Products {
    /// int32 accumulation (VNNI on x86; other architectures' dot products).
    Exact,
    /// Pairs of products summed in int16 with saturation (x86 without VNNI).
    PairwiseSaturating,
}

impl Int8Products {
    /// This CPU's, from its feature flags.
    pub fn detect() -> Self {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            if std::arch::is_x86_feature_detected!("avx512vnni")
                || std::arch::is_x86_feature_detected!("avxvnni")
            {
                Int8Products::Exact
            } else {
                Int8Products::PairwiseSaturating
            }
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        {
            Int8Products::Exact
        }
    }
}

/// The graphs of `manifest` whose int8 products would saturate on a CPU that
/// multiplies as `products` says: (graph name, its int8 range), in graph order.
pub fn saturating_graphs(manifest: &Manifest, products: Int8Products) -> Vec<(String, u32)> {
    if products == Int8Products::Exact {
        return Vec::new();
    }
    manifest
        .graphs
        .iter()
        .filter_map(|(name, graph)| {
            graph
                .int8_max_abs()
                .filter(|&max| max > SATURATION_FREE_INT8_MAX_ABS)
                .map(|max| (name.clone(), max))
        })
        .collect()
}

/// The warning for a model whose int8 graphs saturate on a CPU that multiplies
/// as `products` says, with how to fix it; `None` when nothing saturates.
pub fn int8_saturation_warning(manifest: &Manifest, products: Int8Products) -> Option<String> {
    let graphs = saturating_graphs(manifest, products);
    if graphs.is_empty() {
        return None;
    }
    let list: Vec<String> = graphs
        .iter()
        .map(|(name, max)| format!("{name} (int8 range ±{max})"))
        .collect();
    Some(format!(
        "This CPU has no VNNI (AVX-512 VNNI or AVX-VNNI): ONNX Runtime's uint8 x int8 \
         products saturate with the full int8 range of {}, which can make masks badly \
         wrong. Make the model again with the 7-bit range (±{SATURATION_FREE_INT8_MAX_ABS}), \
         exact on every CPU: models/quantize.py and export.py --int8-attention-scores \
         use it by default (--int8-bits 7)",
        list.join(", ")
    ))
}

/// While alive, the calling thread treats subnormal floats as zero (x86's
/// MXCSR flush-to-zero and denormals-are-zero bits); the thread's previous
/// setting comes back on drop.
///
/// ONNX Runtime's sessions set these bits on their pools' worker threads
/// (`session.set_denormal_as_zero`, engine::session), but the thread that
/// calls `run` works in the parallel sections too. A trained SAM 2's
/// attention is sharp: its softmax writes many probabilities below 1.2e-38,
/// and every multiply-add that reads one takes a microcode assist on Intel
/// cores. On an Intel Xeon (Emerald Rapids class, 2 vCPUs; README run S14)
/// the trained benchmark model's memory attention took 9.6-9.9 s per frame
/// at 1 object with subnormals and 3.4 s flushed (one run each, back to
/// back); the AMD EPYCs of runs S10-S13 showed no such slowdown.
/// What flushing changes: values below 1.2e-38 become 0, which no output of
/// the SAM 2 graphs can see (the official predictor's masks are matched as
/// before: tests/engine_parity.rs).
#[must_use = "the setting lasts while the guard lives"]
pub struct FlushSubnormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
const MXCSR_FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

impl FlushSubnormals {
    /// Sets flush-to-zero and denormals-are-zero on this thread (a no-op
    /// off x86-64).
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_mxcsr();
            write_mxcsr(saved | MXCSR_FTZ_DAZ);
            FlushSubnormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            FlushSubnormals {}
        }
    }
}

impl Default for FlushSubnormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushSubnormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut csr = 0u32;
    // SAFETY: stmxcsr stores the 32-bit MXCSR register at a valid, aligned
    // address of a local; it has no other effect.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    csr
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(csr: u32) {
    // SAFETY: ldmxcsr loads MXCSR from a valid, aligned local; the values
    // written are the thread's own previous value or it with FTZ and DAZ
    // set, which leave every reserved bit as it was (no #GP).
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(edit: impl FnOnce(&mut serde_json::Value)) -> Manifest {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/micro/model.json"
        );
        let text = std::fs::read_to_string(path).expect("tests/fixtures/micro/model.json");
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut v);
        Manifest::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn fp32_models_never_saturate() {
        let m = manifest(|_| {});
        assert!(saturating_graphs(&m, Int8Products::PairwiseSaturating).is_empty());
        assert_eq!(
            int8_saturation_warning(&m, Int8Products::PairwiseSaturating),
            None
        );
    }

    #[test]
    fn full_range_int8_graphs_saturate_only_without_vnni() {
        // an int8 graph from before model.json recorded the range: the full one
        let m = manifest(|v| {
            v["graphs"]["image_encoder"]["precision"] = "int8-dynamic".into();
            v["graphs"]["memory_attention"]["precision"] = "int8-scores".into();
            v["graphs"]["memory_attention"]["int8_max_abs"] = 127.into();
        });
        assert_eq!(
            saturating_graphs(&m, Int8Products::PairwiseSaturating),
            vec![
                ("image_encoder".to_string(), 127),
                ("memory_attention".to_string(), 127)
            ]
        );
        let text = int8_saturation_warning(&m, Int8Products::PairwiseSaturating).unwrap();
        assert!(text.contains("image_encoder (int8 range ±127)"), "{text}");
        assert!(text.contains("--int8-bits 7"), "{text}");
        assert!(saturating_graphs(&m, Int8Products::Exact).is_empty());
    }

    #[test]
    fn seven_bit_int8_graphs_never_saturate() {
        let m = manifest(|v| {
            for g in ["image_encoder", "memory_attention"] {
                v["graphs"][g]["precision"] = "int8-dynamic+int8-scores".into();
                v["graphs"][g]["int8_max_abs"] = 64.into();
            }
        });
        assert!(saturating_graphs(&m, Int8Products::PairwiseSaturating).is_empty());
    }

    #[test]
    fn the_int8_fixtures_are_exact_on_every_cpu() {
        // what the int8 parity tests run must not depend on the CI machine's VNNI
        for dir in [
            "micro-int8",
            "micro-int8-hr",
            "micro-int8-scores",
            "micro-int8-values",
            "micro-int8-encoder-attention",
        ] {
            let path = format!(
                "{}/../tests/fixtures/{dir}/model.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(&path).expect(&path);
            let m = Manifest::from_json(&text).unwrap();
            assert!(
                m.graphs.values().any(|g| g.is_int8()),
                "{dir}: no int8 graph"
            );
            assert_eq!(
                saturating_graphs(&m, Int8Products::PairwiseSaturating),
                vec![],
                "{dir}"
            );
        }
    }

    #[test]
    fn subnormals_are_flushed_while_the_guard_lives() {
        use std::hint::black_box;
        // 2^-126 (the smallest normal float) / 4: a subnormal result
        let tiny = || black_box(f32::MIN_POSITIVE) * black_box(0.25f32);
        let before = tiny();
        let during = {
            let _flush = FlushSubnormals::new();
            (
                tiny(),
                black_box(f32::MIN_POSITIVE / 4.0) + black_box(0.0f32),
            )
        };
        let after = tiny();
        assert!(before > 0.0 && before.is_subnormal(), "{before:e}");
        if cfg!(target_arch = "x86_64") {
            // FTZ flushes the product, DAZ reads the subnormal operand as 0
            assert_eq!(during, (0.0, 0.0));
        } else {
            assert_eq!(during.0, before);
        }
        assert_eq!(after, before, "the thread's setting is restored on drop");
    }
}
