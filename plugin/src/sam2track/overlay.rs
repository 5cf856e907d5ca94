// SPDX-License-Identifier: MPL-2.0

//! Drawing masks into frames, in place, in the element's raw formats:
//! per-object colour fill (alpha blended), contours, and the background
//! modes (blur, solid colour, transparent alpha).
//!
//! Hand-written rather than a `GstVideoOverlayComposition` blended by
//! GStreamer, on measurement: a 1920×1080 frame with one object (~20% of the
//! frame, 2-pixel contours) took 4.9–5.3 ms here against 18.8–19.1 ms for the
//! same fill and contours as a full-frame ARGB rectangle in I420, and 3.7 ms
//! against 8–10 ms in RGBA (AMD EPYC, release build). The labels, small, are
//! a composition (`labels.rs`).

use super::color::Yuv;

/// What happens to pixels outside every object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Left as they are.
    None,
    /// Box-blurred (`blur-radius`).
    Blur,
    /// Replaced by `background-color`.
    Solid,
    /// Alpha set to 0 (formats with alpha only: RGBA, BGRA).
    Transparent,
}

/// How masks are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// Opacity of the colour fill inside objects (0: no fill).
    pub alpha: f32,
    /// Width in pixels of the contour drawn inside each object's edge (0: none).
    pub contour_width: u32,
    /// Object colours, 0xRRGGBB, used by object id (`id - 1` modulo length).
    pub colors: Vec<u32>,
    pub background: Background,
    /// 0xRRGGBB of the solid background.
    pub background_color: u32,
    pub blur_radius: u32,
}

impl Default for Style {
    /// The elements' defaults (their drawing properties).
    fn default() -> Self {
        Style {
            alpha: 0.5,
            contour_width: 2,
            colors: DEFAULT_COLORS.to_vec(),
            background: Background::None,
            background_color: 0x00b140,
            blur_radius: 15,
        }
    }
}

/// Memory layout of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One plane, `bpp` bytes per pixel, byte offsets of R, G, B (and A).
    Packed {
        bpp: usize,
        rgb: [usize; 3],
        alpha: Option<usize>,
    },
    /// Y plane + interleaved UV at half resolution.
    Nv12,
    /// Y, U, V planes, U and V at half resolution.
    I420,
}

/// 0xRRGGBB → [R, G, B].
pub fn rgb_of(color: u32) -> [u8; 3] {
    [(color >> 16) as u8, (color >> 8) as u8, color as u8]
}

/// The default object colours (0xRRGGBB), distinct on most content.
pub const DEFAULT_COLORS: [u32; 10] = [
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22,
    0x17becf,
];

/// Colour of object `id` under `style`.
pub fn color_of(style: &Style, id: u32) -> u32 {
    if style.colors.is_empty() {
        DEFAULT_COLORS[(id.max(1) as usize - 1) % DEFAULT_COLORS.len()]
    } else {
        style.colors[(id.max(1) as usize - 1) % style.colors.len()]
    }
}

/// Per-pixel label map: 0 = background, k = the k-th mask (later masks win
/// where masks overlap).
pub fn label_map(masks: &[&[u8]], width: usize, height: usize) -> Vec<u8> {
    let mut labels = vec![0u8; width * height];
    for (k, mask) in masks.iter().enumerate().take(255) {
        for (l, m) in labels.iter_mut().zip(mask.iter()) {
            if *m != 0 {
                *l = k as u8 + 1;
            }
        }
    }
    labels
}

/// Marks object pixels within `width` pixels (horizontally or vertically)
/// of a pixel with another label.
pub fn edges(labels: &[u8], w: usize, h: usize, width: u32) -> Vec<bool> {
    let r = width as usize;
    let mut out = vec![false; w * h];
    if r == 0 || w == 0 {
        return out;
    }
    // whole-row comparisons with the rows and columns d = 1..=r away (they
    // vectorise; a pixel-by-pixel neighbourhood walk does not)
    let differ = |out: &mut [bool], a: &[u8], b: &[u8]| {
        for ((e, x), y) in out.iter_mut().zip(a).zip(b) {
            *e |= x != y;
        }
    };
    for (y, (row, o)) in labels
        .chunks_exact(w)
        .zip(out.chunks_exact_mut(w))
        .take(h)
        .enumerate()
    {
        for d in 1..=r.min(w - 1) {
            differ(&mut o[d..], &row[d..], &row[..w - d]);
            differ(&mut o[..w - d], &row[..w - d], &row[d..]);
        }
        for d in 1..=r {
            if y >= d {
                differ(o, row, &labels[(y - d) * w..][..w]);
            }
            if y + d < h {
                differ(o, row, &labels[(y + d) * w..][..w]);
            }
        }
        for (e, l) in o.iter_mut().zip(row) {
            *e &= *l != 0;
        }
    }
    out
}

/// Box blur of one channel: `src` sampled at `offset + x * step` of each
/// `stride`-long row; returns a compact `w`×`h` plane.
fn blur_channel(
    src: &[u8],
    stride: usize,
    step: usize,
    offset: usize,
    w: usize,
    h: usize,
    r: usize,
) -> Vec<u8> {
    let mut tmp = vec![0u8; w * h];
    for y in 0..h {
        let row = &src[y * stride..];
        let mut acc: u32 = 0;
        let px = |x: usize| u32::from(row[offset + x * step]);
        // window [x - r, x + r] clamped to the row
        for x in 0..=r.min(w - 1) {
            acc += px(x);
        }
        for x in 0..w {
            let lo = x.saturating_sub(r);
            let hi = (x + r).min(w - 1);
            tmp[y * w + x] = (acc / (hi - lo + 1) as u32) as u8;
            if x + r + 1 < w {
                acc += px(x + r + 1);
            }
            if x >= r {
                acc -= px(x - r);
            }
        }
    }
    let mut out = vec![0u8; w * h];
    for x in 0..w {
        let mut acc: u32 = 0;
        for y in 0..=r.min(h - 1) {
            acc += u32::from(tmp[y * w + x]);
        }
        for y in 0..h {
            let lo = y.saturating_sub(r);
            let hi = (y + r).min(h - 1);
            out[y * w + x] = (acc / (hi - lo + 1) as u32) as u8;
            if y + r + 1 < h {
                acc += u32::from(tmp[(y + r + 1) * w + x]);
            }
            if y >= r {
                acc -= u32::from(tmp[(y - r) * w + x]);
            }
        }
    }
    out
}

/// [`blend`] of every byte with each colour component, looked up per pixel:
/// `[object][component][byte]`.
fn blend_tables(cols: &[[u8; 3]], a: f32) -> Vec<[[u8; 256]; 3]> {
    cols.iter()
        .map(|col| col.map(|c| std::array::from_fn(|v| blend(v as u8, c, a))))
        .collect()
}

#[inline]
fn blend(v: u8, c: u8, a: f32) -> u8 {
    (f32::from(v) * (1.0 - a) + f32::from(c) * a).round() as u8
}

/// What to do with one pixel (or chroma sample).
#[derive(Clone, Copy)]
enum Paint {
    Keep,
    Background,
    Fill(usize),
    Edge(usize),
}

fn paint_of(labels: &[u8], edges: &[bool], p: usize) -> Paint {
    match labels[p] {
        0 => Paint::Background,
        l if edges[p] => Paint::Edge(l as usize - 1),
        l => Paint::Fill(l as usize - 1),
    }
}

/// Columns and rows holding a non-zero label; None when there is none.
fn label_bounds(
    labels: &[u8],
    width: usize,
    height: usize,
) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    if width == 0 {
        return None;
    }
    let (mut x0, mut x1, mut y0, mut y1) = (width, 0, height, 0);
    for (y, row) in labels.chunks_exact(width).take(height).enumerate() {
        let Some(first) = row.iter().position(|l| *l != 0) else {
            continue;
        };
        let last = row.iter().rposition(|l| *l != 0).expect("one is non-zero");
        (x0, x1) = (x0.min(first), x1.max(last + 1));
        (y0, y1) = (y0.min(y), y + 1);
    }
    (x0 < x1).then_some((x0..x1, y0..y1))
}

/// A frame's pixels, drawn in place.
pub struct Canvas<'a, 'b> {
    pub layout: Layout,
    /// The matrix of YUV layouts.
    pub yuv: Yuv,
    pub width: usize,
    pub height: usize,
    /// 1 plane for packed layouts, 2 for NV12, 3 for I420.
    pub planes: &'a mut [&'b mut [u8]],
    pub strides: &'a [usize],
}

/// What to paint: the [`label_map`], the [`edges`], and `colors[k]`, the
/// 0xRRGGBB of label k+1.
#[derive(Clone, Copy)]
pub struct Marks<'a> {
    pub labels: &'a [u8],
    pub edges: &'a [bool],
    pub colors: &'a [u32],
}

/// Draws `marks` into `canvas` in `style`.
pub fn draw(canvas: Canvas<'_, '_>, marks: Marks<'_>, style: &Style) {
    // With the background left as it is only object pixels change: visit the
    // box around them (the whole frame for the other background modes).
    let region = if style.background == Background::None {
        match label_bounds(marks.labels, canvas.width, canvas.height) {
            Some(bounds) => bounds,
            None => return,
        }
    } else {
        (0..canvas.width, 0..canvas.height)
    };
    draw_region(canvas, marks, style, region);
}

/// [`draw`] visiting the pixels of `region` (columns, rows) only.
fn draw_region(
    canvas: Canvas<'_, '_>,
    marks: Marks<'_>,
    style: &Style,
    (xs, ys): (std::ops::Range<usize>, std::ops::Range<usize>),
) {
    let Canvas {
        layout,
        yuv,
        width,
        height,
        planes,
        strides,
    } = canvas;
    let Marks {
        labels,
        edges,
        colors,
    } = marks;
    let a = style.alpha.clamp(0.0, 1.0);
    // chroma samples covering those pixels
    let (cxs, cys) = (
        xs.start / 2..xs.end.div_ceil(2),
        ys.start / 2..ys.end.div_ceil(2),
    );
    let r = style.blur_radius.max(1) as usize;
    match layout {
        Layout::Packed { bpp, rgb, alpha } => {
            let stride = strides[0];
            let plane = &mut *planes[0];
            let blurred: Option<Vec<Vec<u8>>> = (style.background == Background::Blur).then(|| {
                rgb.iter()
                    .map(|off| blur_channel(plane, stride, bpp, *off, width, height, r))
                    .collect()
            });
            let bg = rgb_of(style.background_color);
            let cols: Vec<[u8; 3]> = colors.iter().map(|c| rgb_of(*c)).collect();
            let fill = blend_tables(&cols, a);
            for y in ys {
                let row = &mut plane[y * stride..];
                for x in xs.clone() {
                    let p = y * width + x;
                    let px = &mut row[x * bpp..x * bpp + bpp];
                    let paint = paint_of(labels, edges, p);
                    match paint {
                        Paint::Keep => {}
                        Paint::Background => match style.background {
                            Background::None => {}
                            Background::Blur => {
                                let b = blurred.as_ref().expect("computed");
                                for c in 0..3 {
                                    px[rgb[c]] = b[c][p];
                                }
                            }
                            Background::Solid => {
                                for c in 0..3 {
                                    px[rgb[c]] = bg[c];
                                }
                            }
                            Background::Transparent => {
                                if let Some(ao) = alpha {
                                    px[ao] = 0;
                                }
                            }
                        },
                        Paint::Fill(k) => {
                            if a > 0.0 {
                                for c in 0..3 {
                                    px[rgb[c]] = fill[k][c][px[rgb[c]] as usize];
                                }
                            }
                        }
                        Paint::Edge(k) => {
                            for c in 0..3 {
                                px[rgb[c]] = cols[k][c];
                            }
                        }
                    }
                    if style.background == Background::Transparent
                        && let (Some(ao), Paint::Fill(_) | Paint::Edge(_)) = (alpha, paint)
                    {
                        px[ao] = 255;
                    }
                }
            }
        }
        Layout::Nv12 | Layout::I420 => {
            let cols: Vec<[u8; 3]> = colors.iter().map(|c| yuv.rgb_to_yuv(*c)).collect();
            let fill = blend_tables(&cols, a);
            let bg = yuv.rgb_to_yuv(style.background_color);
            let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
            // chroma samples take the paint of their 2x2 block: an edge wins,
            // else the top-left pixel's
            let chroma_paint = |cx: usize, cy: usize| {
                let mut first = None;
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (x, y) = (2 * cx + dx, 2 * cy + dy);
                    if x < width && y < height {
                        let p = paint_of(labels, edges, y * width + x);
                        if let Paint::Edge(_) = p {
                            return p;
                        }
                        first.get_or_insert(p);
                    }
                }
                first.unwrap_or(Paint::Keep)
            };
            let apply = |v: &mut u8, paint: Paint, comp: usize, blurred: Option<u8>| match paint {
                Paint::Keep => {}
                Paint::Background => match style.background {
                    Background::Blur => *v = blurred.unwrap_or(*v),
                    Background::Solid => *v = bg[comp],
                    Background::None | Background::Transparent => {}
                },
                Paint::Fill(k) => {
                    if a > 0.0 {
                        *v = fill[k][comp][*v as usize]
                    }
                }
                Paint::Edge(k) => *v = cols[k][comp],
            };
            let blur = style.background == Background::Blur;
            // luma
            {
                let stride = strides[0];
                let yb = blur.then(|| blur_channel(planes[0], stride, 1, 0, width, height, r));
                for y in ys {
                    for x in xs.clone() {
                        let p = y * width + x;
                        let v = &mut planes[0][y * stride + x];
                        apply(v, paint_of(labels, edges, p), 0, yb.as_ref().map(|b| b[p]));
                    }
                }
            }
            let rc = (r / 2).max(1);
            match layout {
                Layout::Nv12 => {
                    let stride = strides[1];
                    let (ub, vb) = if blur {
                        (
                            Some(blur_channel(planes[1], stride, 2, 0, cw, ch, rc)),
                            Some(blur_channel(planes[1], stride, 2, 1, cw, ch, rc)),
                        )
                    } else {
                        (None, None)
                    };
                    for cy in cys {
                        for cx in cxs.clone() {
                            let paint = chroma_paint(cx, cy);
                            let q = cy * cw + cx;
                            let o = cy * stride + 2 * cx;
                            apply(&mut planes[1][o], paint, 1, ub.as_ref().map(|b| b[q]));
                            apply(&mut planes[1][o + 1], paint, 2, vb.as_ref().map(|b| b[q]));
                        }
                    }
                }
                _ => {
                    for (pi, comp) in [(1usize, 1usize), (2, 2)] {
                        let stride = strides[pi];
                        let cb = blur.then(|| blur_channel(planes[pi], stride, 1, 0, cw, ch, rc));
                        for cy in cys.clone() {
                            for cx in cxs.clone() {
                                let paint = chroma_paint(cx, cy);
                                let q = cy * cw + cx;
                                apply(
                                    &mut planes[pi][cy * stride + cx],
                                    paint,
                                    comp,
                                    cb.as_ref().map(|b| b[q]),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition of [`edges`], pixel by pixel.
    fn edges_reference(labels: &[u8], w: usize, h: usize, width: u32) -> Vec<bool> {
        let r = width as usize;
        let mut out = vec![false; w * h];
        if r == 0 {
            return out;
        }
        for y in 0..h {
            for x in 0..w {
                let l = labels[y * w + x];
                if l == 0 {
                    continue;
                }
                let mut edge = false;
                for d in 1..=r {
                    if (x >= d && labels[y * w + x - d] != l)
                        || (x + d < w && labels[y * w + x + d] != l)
                        || (y >= d && labels[(y - d) * w + x] != l)
                        || (y + d < h && labels[(y + d) * w + x] != l)
                    {
                        edge = true;
                        break;
                    }
                }
                out[y * w + x] = edge;
            }
        }
        out
    }

    #[test]
    fn edges_match_their_definition() {
        // three overlapping blobs and a frame-border object on 23x17
        let (w, h) = (23usize, 17usize);
        let blob = |cx: f32, cy: f32, r: f32| -> Vec<u8> {
            (0..w * h)
                .map(|p| {
                    let (x, y) = ((p % w) as f32 - cx, (p / w) as f32 - cy);
                    u8::from(x * x + y * y < r * r)
                })
                .collect()
        };
        let masks = [
            blob(6.0, 6.0, 5.0),
            blob(11.0, 8.0, 4.0),
            blob(22.0, 16.0, 6.0),
        ];
        let refs: Vec<&[u8]> = masks.iter().map(|m| m.as_slice()).collect();
        let labels = label_map(&refs, w, h);
        for width in 0..5 {
            assert_eq!(
                edges(&labels, w, h, width),
                edges_reference(&labels, w, h, width),
                "contour width {width}"
            );
        }
        // degenerate sizes
        assert_eq!(edges(&[1, 2, 2], 3, 1, 3), vec![true, true, true]);
        assert_eq!(edges(&[1], 1, 1, 2), vec![false]);
    }

    #[test]
    fn drawing_only_around_the_objects_changes_nothing() {
        // 9x7 frame, object pixels in columns 3..6 and rows 2..5 (odd offsets,
        // so the box cuts chroma blocks): the bounded drawing of `draw` must
        // give the same bytes as visiting every pixel
        let (w, h) = (9usize, 7usize);
        let mut mask = vec![0u8; w * h];
        for y in 2..5 {
            for x in 3..6 {
                mask[y * w + x] = 1;
            }
        }
        mask[3 * w + 3] = 0; // a hole
        let labels = label_map(&[&mask], w, h);
        let edges = edges(&labels, w, h, 1);
        assert_eq!(label_bounds(&labels, w, h), Some((3..6, 2..5)));
        assert_eq!(label_bounds(&vec![0; w * h], w, h), None);
        let style = Style {
            alpha: 0.6,
            contour_width: 1,
            colors: vec![0x20c040],
            background: Background::None,
            background_color: 0,
            blur_radius: 1,
        };
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let bytes = |n: usize, seed: usize| -> Vec<u8> {
            (0..n).map(|i| ((i * 37 + seed * 11) % 251) as u8).collect()
        };
        let packed = Layout::Packed {
            bpp: 4,
            rgb: [2, 1, 0],
            alpha: Some(3),
        };
        for (layout, sizes, strides) in [
            (packed, vec![w * 4 * h], vec![w * 4]),
            (Layout::Nv12, vec![w * h, cw * 2 * ch], vec![w, cw * 2]),
            (Layout::I420, vec![w * h, cw * ch, cw * ch], vec![w, cw, cw]),
        ] {
            let original: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| bytes(*n, i))
                .collect();
            let (mut bounded, mut whole) = (original.clone(), original.clone());
            let mut b: Vec<&mut [u8]> = bounded.iter_mut().map(|p| p.as_mut_slice()).collect();
            draw(
                Canvas {
                    layout,
                    yuv: Yuv::BT709,
                    width: w,
                    height: h,
                    planes: &mut b,
                    strides: &strides,
                },
                Marks {
                    labels: &labels,
                    edges: &edges,
                    colors: &[0x20c040],
                },
                &style,
            );
            let mut f: Vec<&mut [u8]> = whole.iter_mut().map(|p| p.as_mut_slice()).collect();
            draw_region(
                Canvas {
                    layout,
                    yuv: Yuv::BT709,
                    width: w,
                    height: h,
                    planes: &mut f,
                    strides: &strides,
                },
                Marks {
                    labels: &labels,
                    edges: &edges,
                    colors: &[0x20c040],
                },
                &style,
                (0..w, 0..h),
            );
            assert_eq!(bounded, whole, "{layout:?}");
            assert_ne!(bounded, original, "{layout:?}: nothing drawn");
        }
    }

    #[test]
    fn labels_edges_and_blur() {
        #[rustfmt::skip]
        let m1 = [
            0, 0, 0, 0, 0,
            0, 1, 1, 1, 0,
            0, 1, 1, 1, 0,
            0, 1, 1, 1, 0,
            0, 0, 0, 0, 0,
        ];
        let l = label_map(&[&m1], 5, 5);
        let e = edges(&l, 5, 5, 1);
        // the centre is the only object pixel away from the background
        let inner: Vec<usize> = (0..25).filter(|p| l[*p] == 1 && !e[*p]).collect();
        assert_eq!(inner, vec![12]);
        let flat = vec![7u8; 12];
        assert_eq!(blur_channel(&flat, 4, 1, 0, 4, 3, 2), vec![7u8; 12]);
        let spike = [0u8, 0, 90, 0, 0];
        assert_eq!(
            blur_channel(&spike, 5, 1, 0, 5, 1, 1),
            vec![0, 30, 30, 30, 0]
        );
    }

    #[test]
    fn packed_fill_and_background() {
        let style = Style {
            contour_width: 0,
            colors: vec![0xff0000],
            background: Background::Transparent,
            background_color: 0,
            blur_radius: 1,
            ..Style::default()
        };
        // 2x1 RGBA: pixel 0 background, pixel 1 object
        let mut px = vec![100u8, 100, 100, 255, 100, 100, 100, 255];
        let labels = [0u8, 1];
        let layout = Layout::Packed {
            bpp: 4,
            rgb: [0, 1, 2],
            alpha: Some(3),
        };
        draw(
            Canvas {
                layout,
                yuv: Yuv::BT601,
                width: 2,
                height: 1,
                planes: &mut [&mut px[..]],
                strides: &[8],
            },
            Marks {
                labels: &labels,
                edges: &[false, false],
                colors: &[0xff0000],
            },
            &style,
        );
        assert_eq!(px, vec![100, 100, 100, 0, 178, 50, 50, 255]);
    }
}
