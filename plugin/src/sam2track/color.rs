// SPDX-License-Identifier: MPL-2.0

//! Colour: YUV matrices (BT.601 / BT.709, limited or full range) from the
//! caps' colorimetry, and NV12/I420 frames converted to packed RGB for the
//! engine.

use super::overlay::{Layout, rgb_of};

/// Luma/chroma coefficients of a YUV matrix, and the range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yuv {
    pub kr: f32,
    pub kb: f32,
    pub full_range: bool,
}

impl Yuv {
    pub const BT601: Yuv = Yuv {
        kr: 0.299,
        kb: 0.114,
        full_range: false,
    };
    pub const BT709: Yuv = Yuv {
        kr: 0.2126,
        kb: 0.0722,
        full_range: false,
    };

    /// 0xRRGGBB → (Y, U, V) bytes.
    pub fn rgb_to_yuv(self, color: u32) -> [u8; 3] {
        let [r, g, b] = rgb_of(color).map(|v| f32::from(v) / 255.0);
        let y = self.kr * r + (1.0 - self.kr - self.kb) * g + self.kb * b;
        let pb = (b - y) / (2.0 * (1.0 - self.kb));
        let pr = (r - y) / (2.0 * (1.0 - self.kr));
        let (ys, yo, cs) = if self.full_range {
            (255.0, 0.0, 255.0)
        } else {
            (219.0, 16.0, 224.0)
        };
        [yo + ys * y, 128.0 + cs * pb, 128.0 + cs * pr].map(|v| v.round().clamp(0.0, 255.0) as u8)
    }

    /// (Y, U, V) bytes → (R, G, B) bytes.
    #[inline]
    pub fn to_rgb(self, y: u8, u: u8, v: u8) -> [u8; 3] {
        let (ys, yo, cs) = if self.full_range {
            (255.0, 0.0, 255.0)
        } else {
            (219.0, 16.0, 224.0)
        };
        let yy = (f32::from(y) - yo) / ys;
        let pb = (f32::from(u) - 128.0) / cs;
        let pr = (f32::from(v) - 128.0) / cs;
        let r = yy + 2.0 * (1.0 - self.kr) * pr;
        let b = yy + 2.0 * (1.0 - self.kb) * pb;
        let g = (yy - self.kr * r - self.kb * b) / (1.0 - self.kr - self.kb);
        [r, g, b].map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8)
    }
}

/// The YUV matrix of `info` (BT.709 when signalled, else BT.601) and its
/// range.
pub fn yuv_of(info: &gst_video::VideoInfo) -> Yuv {
    let c = info.colorimetry();
    let mut m = if c.matrix() == gst_video::VideoColorMatrix::Bt709 {
        Yuv::BT709
    } else {
        Yuv::BT601
    };
    m.full_range = c.range() == gst_video::VideoColorRange::Range0_255;
    m
}

/// Per-byte terms of [`Yuv::to_rgb`] (×255), so that a pixel is three sums:
/// R = y + rv, G = y + gu + gv, B = y + bu.
struct YuvTables {
    y: [f32; 256],
    rv: [f32; 256],
    gu: [f32; 256],
    gv: [f32; 256],
    bu: [f32; 256],
}

impl YuvTables {
    fn new(m: Yuv) -> YuvTables {
        let (ys, yo, cs) = if m.full_range {
            (255.0, 0.0, 255.0)
        } else {
            (219.0, 16.0, 224.0)
        };
        let kg = 1.0 - m.kr - m.kb;
        let table = |f: &dyn Fn(f32) -> f32| std::array::from_fn(|i| f(i as f32) * 255.0);
        let c = |v: f32| (v - 128.0) / cs;
        YuvTables {
            y: table(&|v| (v - yo) / ys),
            rv: table(&|v| 2.0 * (1.0 - m.kr) * c(v)),
            bu: table(&|v| 2.0 * (1.0 - m.kb) * c(v)),
            gu: table(&|v| -m.kb * 2.0 * (1.0 - m.kb) * c(v) / kg),
            gv: table(&|v| -m.kr * 2.0 * (1.0 - m.kr) * c(v) / kg),
        }
    }

    #[inline(always)]
    fn pixel(&self, y: u8, u: u8, v: u8, out: &mut [u8]) {
        let l = self.y[y as usize];
        let byte = |x: f32| (x + 0.5).clamp(0.0, 255.0) as u8;
        out[0] = byte(l + self.rv[v as usize]);
        out[1] = byte(l + self.gu[u as usize] + self.gv[v as usize]);
        out[2] = byte(l + self.bu[u as usize]);
    }
}

/// Converts an NV12 or I420 frame to packed RGB (chroma: nearest sample).
pub fn yuv_to_rgb(
    layout: Layout,
    yuv: Yuv,
    width: usize,
    height: usize,
    planes: &[&[u8]],
    strides: &[usize],
) -> Vec<u8> {
    let t = YuvTables::new(yuv);
    let mut out = vec![0u8; width * height * 3];
    for (y, out_row) in out.chunks_exact_mut(width * 3).enumerate() {
        let luma = &planes[0][y * strides[0]..][..width];
        let chroma = |p: usize| &planes[p][(y / 2) * strides[p]..];
        match layout {
            Layout::Nv12 => {
                let uv = chroma(1);
                for ((px, l), uv) in out_row
                    .chunks_mut(6)
                    .zip(luma.chunks(2))
                    .zip(uv.chunks_exact(2))
                {
                    for (px, l) in px.chunks_exact_mut(3).zip(l) {
                        t.pixel(*l, uv[0], uv[1], px);
                    }
                }
            }
            _ => {
                let (u, v) = (chroma(1), chroma(2));
                // two pixels per chroma sample
                for (((px, l), u), v) in out_row
                    .chunks_mut(6)
                    .zip(luma.chunks(2))
                    .zip(u.iter())
                    .zip(v.iter())
                {
                    for (px, l) in px.chunks_exact_mut(3).zip(l) {
                        t.pixel(*l, *u, *v, px);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_round_trip() {
        for m in [Yuv::BT601, Yuv::BT709] {
            for c in [0xff0000u32, 0x00ff00, 0x0000ff, 0x808080, 0x123456] {
                let [y, u, v] = m.rgb_to_yuv(c);
                let back = m.to_rgb(y, u, v);
                for (a, b) in back.iter().zip(rgb_of(c)) {
                    assert!(
                        (i32::from(*a) - i32::from(b)).abs() <= 3,
                        "{c:06x}: {back:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn yuv_frame_conversion_matches_per_pixel() {
        // 3x2 I420 and NV12 frames: every pixel as Yuv::to_rgb gives it (±1)
        let luma = [16u8, 80, 235, 0, 128, 255];
        let (u, v) = ([60u8, 200], [240u8, 30]);
        let uv = [60u8, 240, 200, 30];
        for m in [
            Yuv::BT601,
            Yuv::BT709,
            Yuv {
                full_range: true,
                ..Yuv::BT709
            },
        ] {
            for (layout, planes, strides) in [
                (Layout::I420, vec![&luma[..], &u[..], &v[..]], vec![3, 2, 2]),
                (Layout::Nv12, vec![&luma[..], &uv[..]], vec![3, 4]),
            ] {
                let rgb = yuv_to_rgb(layout, m, 3, 2, &planes, &strides);
                for p in 0..6 {
                    let x = p % 3;
                    let want = m.to_rgb(luma[p], u[x / 2], v[x / 2]);
                    for c in 0..3 {
                        let got = rgb[p * 3 + c];
                        assert!(
                            (i32::from(got) - i32::from(want[c])).abs() <= 1,
                            "{layout:?} {m:?} pixel {p}: {:?} vs {want:?}",
                            &rgb[p * 3..p * 3 + 3]
                        );
                    }
                }
            }
        }
    }
}
