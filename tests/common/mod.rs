// SPDX-License-Identifier: MPL-2.0

//! Helpers shared by the integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gstsam2::engine::model::{ExecutionProvider, SessionOptions};
use gstsam2::engine::runtime;

pub mod golden;
mod images;
pub mod stream;

// each test binary uses some of them
#[allow(unused_imports)]
pub use images::{Png, decode_png, mask_iou};

/// tests/fixtures in the source tree.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The committed micro model directory.
pub fn micro_dir() -> PathBuf {
    fixtures().join("micro")
}

/// The committed micro EdgeTAM model directory (models/export.py --config
/// micro-edgetam).
pub fn micro_edgetam_dir() -> PathBuf {
    fixtures().join("micro-edgetam")
}

/// The ONNX Runtime library installed by scripts/setup.sh; fails with what
/// to do when it is missing.
pub fn setup_library() -> PathBuf {
    let lib = runtime::default_setup_dir().join(runtime::SETUP_LIBRARY_NAME);
    assert!(
        lib.is_file(),
        "ONNX Runtime is not installed at {}: run `sudo scripts/setup.sh` first",
        lib.display()
    );
    lib
}

/// Loads ONNX Runtime the way the element does, with a readable failure.
pub fn require_runtime() -> Arc<runtime::OrtRuntime> {
    setup_library();
    runtime::acquire(None).unwrap_or_else(|err| panic!("ONNX Runtime does not load: {err}"))
}

/// Decodes an 8-bit PNG: (width, height, colour type, pixels); fails the
/// test when it cannot.
pub fn read_png(path: &Path) -> Png {
    decode_png(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Session options of the tests that honour SAM2TRACK_TEST_PROVIDER
/// (`cpu`, the default; `cuda` or `tensorrt`, device 0: a build with the
/// `cuda`/`tensorrt` feature and an onnxruntime-gpu library), e.g. the
/// golden parity on a GPU: `SAM2TRACK_TEST_PROVIDER=cuda cargo test
/// --features cuda --test engine_parity`.
pub fn session_options() -> SessionOptions {
    let provider = match std::env::var("SAM2TRACK_TEST_PROVIDER").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => ExecutionProvider::Cpu,
        Ok("cuda") => ExecutionProvider::Cuda { device_id: 0 },
        Ok("tensorrt") => ExecutionProvider::TensorRt { device_id: 0 },
        Ok(other) => panic!("SAM2TRACK_TEST_PROVIDER={other}: not cpu, cuda or tensorrt"),
    };
    SessionOptions {
        provider,
        ..SessionOptions::default()
    }
}

/// Hex sha256 of a file (as model.json records it); fails the test when the
/// file cannot be read.
pub fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A session's outputs by name: (shape, f32 values); fails the test on a
/// non-f32 output.
pub fn f32_outputs(
    outputs: &ort::session::SessionOutputs,
) -> std::collections::BTreeMap<String, (Vec<i64>, Vec<f32>)> {
    outputs
        .iter()
        .map(|(name, value)| {
            let (shape, data) = value.try_extract_tensor::<f32>().expect("f32 output");
            (name.to_string(), (shape.to_vec(), data.to_vec()))
        })
        .collect()
}
