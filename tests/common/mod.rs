// SPDX-License-Identifier: MPL-2.0

//! Helpers shared by the integration tests (each test binary uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gstsam2::engine::runtime;

pub mod stream;

/// tests/fixtures in the source tree.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The committed micro model directory.
pub fn micro_dir() -> PathBuf {
    fixtures().join("micro")
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

/// Decodes an 8-bit PNG: (width, height, colour type, pixels).
pub fn read_png(path: &Path) -> (usize, usize, png::ColorType, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    buf.truncate(info.buffer_size());
    (
        info.width as usize,
        info.height as usize,
        info.color_type,
        buf,
    )
}

/// Intersection over union of two 0/non-0 masks (1 when both are empty).
pub fn mask_iou(a: &[u8], b: &[u8]) -> f64 {
    let inter = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 && **y != 0)
        .count();
    let union = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 || **y != 0)
        .count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}
