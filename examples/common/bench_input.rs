// SPDX-License-Identifier: MPL-2.0

//! The benchmark input shared by `examples/bench.rs` and
//! `examples/gpu_check.rs`: PNG frames and `prompts.json` (one click per
//! object, frame pixels) of a frames folder, and the one positive click per
//! object given on frame 0.

use std::path::{Path, PathBuf};

use gstsam2::engine::step::Prompt;
use gstsam2::engine::tracker::{Frame, PixelFormat};

use super::images;

pub type Error = Box<dyn std::error::Error>;

/// A packed RGB frame.
pub struct Image {
    pub rgb: Vec<u8>,
    pub width: usize,
    pub height: usize,
}

impl Image {
    pub fn frame(&self) -> Frame<'_> {
        Frame {
            data: &self.rgb,
            width: self.width,
            height: self.height,
            stride: self.width * 3,
            format: PixelFormat::Rgb,
        }
    }
}

pub fn read_png(path: &Path) -> Result<Image, Error> {
    let (width, height, color, rgb) = images::decode_png(path)?;
    if color != png::ColorType::Rgb {
        return Err(format!("{}: not 8-bit RGB", path.display()).into());
    }
    Ok(Image { rgb, width, height })
}

/// The PNG frames of `dir` in name order, the first `limit` (0: all).
pub fn read_frames(dir: &Path, limit: usize) -> Result<Vec<Image>, Error> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    names.sort();
    if limit > 0 {
        names.truncate(limit);
    }
    names.iter().map(|p| read_png(p)).collect()
}

/// `dir/prompts.json`: `{"points": [[x, y], ...]}`, one per object.
pub fn read_points(dir: &Path) -> Result<Vec<[f32; 2]>, Error> {
    let text = std::fs::read_to_string(dir.join("prompts.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let points = v["points"]
        .as_array()
        .ok_or("prompts.json: no \"points\" array")?;
    points
        .iter()
        .map(|p| {
            let x = p[0].as_f64().ok_or("prompts.json: bad point")?;
            let y = p[1].as_f64().ok_or("prompts.json: bad point")?;
            Ok([x as f32, y as f32])
        })
        .collect()
}

/// The prompts of frame `i`: objects 1..=`count` get one positive click each
/// on frame 0, nothing after.
pub fn clicks(i: usize, points: &[[f32; 2]], count: usize) -> Vec<Prompt> {
    if i != 0 {
        return Vec::new();
    }
    (1..)
        .zip(points.iter().take(count))
        .map(|(id, p)| Prompt::Points {
            id,
            clicks: vec![(*p, true)],
            bbox: None,
            clear: true,
        })
        .collect()
}
