// SPDX-License-Identifier: MPL-2.0

//! PNG frames and mask comparison, shared by the tests (through
//! `common`) and the benchmark (`examples/bench.rs` includes this file).

use std::path::Path;

/// An 8-bit PNG: width, height, colour type, pixels.
pub type Png = (usize, usize, png::ColorType, Vec<u8>);

/// Decodes an 8-bit PNG.
pub fn decode_png(path: &Path) -> Result<Png, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| fail(&e))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| fail(&e))?;
    if info.bit_depth != png::BitDepth::Eight {
        return Err(fail(&"not an 8-bit PNG"));
    }
    buf.truncate(info.buffer_size());
    Ok((
        info.width as usize,
        info.height as usize,
        info.color_type,
        buf,
    ))
}

/// Intersection over union of two 0/non-0 masks (1 when both are empty).
pub fn mask_iou(a: &[u8], b: &[u8]) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x != 0, *y != 0);
        inter += u64::from(x && y);
        union += u64::from(x || y);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}
