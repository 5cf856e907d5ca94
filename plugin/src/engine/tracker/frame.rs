// SPDX-License-Identifier: MPL-2.0

//! Frames into the tracker: packed RGB-family pixels stretched to the
//! model's S×S input and normalised as the official loader does, then
//! encoded; a new frame starts the memory of the last one's prompts.

use super::{Current, Tracker, TrackerError};

/// Byte layouts of packed RGB frames the tracker reads directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
}

impl PixelFormat {
    /// Bytes per pixel and the byte offsets of R, G, B.
    fn layout(self) -> (usize, [usize; 3]) {
        match self {
            PixelFormat::Rgb => (3, [0, 1, 2]),
            PixelFormat::Bgr => (3, [2, 1, 0]),
            PixelFormat::Rgba | PixelFormat::Rgbx => (4, [0, 1, 2]),
            PixelFormat::Bgra | PixelFormat::Bgrx => (4, [2, 1, 0]),
        }
    }
}

/// A packed frame in memory.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    /// Bytes per row.
    pub stride: usize,
    pub format: PixelFormat,
}

impl Tracker {
    /// Starts the next frame from a packed RGB(A)/BGR(x) frame of any size:
    /// stretched to S×S as the official loader does (see [`resize_like_pil`]),
    /// then normalised.
    pub fn begin_frame(&mut self, frame: &Frame<'_>) -> Result<u64, TrackerError> {
        let (bpp, offs) = frame.format.layout();
        if frame.width == 0 || frame.height == 0 {
            return Err(TrackerError::EmptyFrame {
                width: frame.width,
                height: frame.height,
            });
        }
        let need = frame.stride * (frame.height - 1) + frame.width * bpp;
        if frame.stride < frame.width * bpp || frame.data.len() < need {
            return Err(TrackerError::FrameData {
                width: frame.width,
                height: frame.height,
                stride: frame.stride,
                format: frame.format,
                got: frame.data.len(),
                need,
            });
        }
        let s = self.dims.s;
        // packed RGB, then Pillow's BICUBIC (the official loader's
        // `img_pil.resize((S, S))`; fast_image_resize's CatmullRom convolution)
        let mut packed = Vec::with_capacity(3 * frame.width * frame.height);
        for y in 0..frame.height {
            let row = &frame.data[y * frame.stride..][..frame.width * bpp];
            for px in row.chunks_exact(bpp) {
                packed.extend(offs.map(|o| px[o]));
            }
        }
        let rgb = if (frame.width, frame.height) == (s, s) {
            packed
        } else {
            resize_like_pil(&packed, frame.width, frame.height, s)
        };
        self.begin_prepared_frame(&rgb, frame.width, frame.height)
    }

    /// Starts the next frame from an image already stretched to S×S (packed
    /// RGB, u8), as the official loader prepares it; `width`×`height` is the
    /// original frame size that prompts and output masks refer to.
    pub fn begin_prepared_frame(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<u64, TrackerError> {
        let s = self.dims.s;
        if width == 0 || height == 0 {
            return Err(TrackerError::EmptyFrame { width, height });
        }
        if rgb.len() != 3 * s * s {
            return Err(TrackerError::FrameData {
                width: s,
                height: s,
                stride: 3 * s,
                format: PixelFormat::Rgb,
                got: rgb.len(),
                need: 3 * s * s,
            });
        }
        let pp = &self.preprocess;
        let mut image = vec![0f32; 3 * s * s];
        for (p, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // numpy: u8 / 255.0 in float64, stored as float32, then (x - mean) / std
                let x = (f64::from(px[c]) * pp.scale) as f32;
                image[c * s * s + p] = (x - pp.mean[c]) / pp.std[c];
            }
        }
        // a frame with prompts (`step` sets and clears the flag): the model's
        // image encoder for them, if it has one
        let for_prompts = self.encode_for_prompts && self.prompt_encoder;
        let image_for_prompts = (self.prompt_encoder && !for_prompts).then(|| image.clone());
        let features = if for_prompts {
            self.stages.encode_image_for_prompts(image)?
        } else {
            self.stages.encode_image(image)?
        };
        // Memories of the previous frame's prompts use that frame's features.
        self.flush_pending()?;
        let index = self.next_index;
        self.next_index += 1;
        self.current = Some(Current {
            index,
            width,
            height,
            features,
            image: image_for_prompts,
        });
        for o in &mut self.objects {
            o.current = None;
            o.tracked = false;
            o.points.clear();
        }
        Ok(index)
    }
}

/// `w`×`h` packed RGB stretched to `s`×`s` like Pillow's default
/// `Image.resize` (BICUBIC: a Catmull-Rom convolution, antialiased when
/// shrinking), which the official loader uses.
///
/// fast_image_resize rather than our own filter, measured on the 32 golden
/// frames (192×108 → 128) against the official inputs of
/// tests/fixtures/golden/inputs: mean |diff| 0.16 per byte, 84% bytes equal,
/// max 5 (Pillow rounds in fixed point), where the antialiased *bilinear*
/// filter used before gave 1.37, 38%, max 29; and at 1920×1080 → 1024 it
/// took 6.7–8.3 ms against 46–51 ms (AMD EPYC, release build).
pub fn resize_like_pil(rgb: &[u8], w: usize, h: usize, s: usize) -> Vec<u8> {
    use fast_image_resize as fr;
    let src = fr::images::ImageRef::new(w as u32, h as u32, rgb, fr::PixelType::U8x3)
        .expect("a packed RGB buffer of w×h");
    let mut dst = fr::images::Image::new(s as u32, s as u32, fr::PixelType::U8x3);
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom));
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("same pixel types");
    dst.into_vec()
}
