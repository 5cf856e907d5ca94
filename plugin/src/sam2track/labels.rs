// SPDX-License-Identifier: MPL-2.0

//! Object labels ("#id score") as a `GstVideoOverlayComposition`: one
//! rectangle per object, next to its box, in the object's colour.
//!
//! The text is rasterised here with a built-in 3×5 pixel font (digits,
//! `#`, `.`, space) scaled by an integer factor with the frame height
//! ([`scale_for`]; no font library). The composition is either attached to the buffer
//! (`GstVideoOverlayCompositionMeta`, for a downstream element that renders
//! it) or blended into the frame by GStreamer (`gst_video_overlay_composition_blend`).

use super::overlay::rgb_of;

/// Glyph size in font pixels.
const GLYPH_W: usize = 3;
const GLYPH_H: usize = 5;

/// Rows of a glyph, 3 bits each (bit 2: left column).
fn glyph(c: char) -> [u8; GLYPH_H] {
    match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b011, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '#' => [0b101, 0b111, 0b101, 0b111, 0b101],
        _ => [0; GLYPH_H],
    }
}

/// One object's label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    pub id: u32,
    /// Probability that the object is visible (the metadata's `score`).
    pub score: f32,
    /// x, y, width, height in frame pixels (no label when empty).
    pub bbox: [u32; 4],
    /// 0xRRGGBB of the label's box.
    pub color: u32,
}

/// Text of a label: `#<id> <score, 2 decimals>`.
pub fn text(id: u32, score: f32) -> String {
    format!("#{id} {:.2}", score.clamp(0.0, 1.0))
}

/// Font pixel size for a frame `height` pixels high: one per 180 lines,
/// rounded (1 up to 269 lines, 2 at 270–449, 6 at 1080p: 30-pixel digits).
pub fn scale_for(height: u32) -> usize {
    ((height as usize + 90) / 180).max(1)
}

/// Size in pixels of the label of `text` at `scale`: one font pixel of
/// margin around, one between glyphs.
pub fn size(text: &str, scale: usize) -> (usize, usize) {
    let n = text.chars().count();
    (scale * (2 + n * (GLYPH_W + 1) - 1), scale * (GLYPH_H + 2))
}

/// `text` rasterised at `scale`, opaque: `fg` glyphs on a `bg` box, as
/// rows of [R, G, B, A] pixels.
pub fn rasterize(
    text: &str,
    scale: usize,
    bg: [u8; 3],
    fg: [u8; 3],
) -> (Vec<[u8; 4]>, usize, usize) {
    let (w, h) = size(text, scale);
    let [br, bgg, bb] = bg;
    let mut px = vec![[br, bgg, bb, 255]; w * h];
    for (i, c) in text.chars().enumerate() {
        let x0 = scale * (1 + i * (GLYPH_W + 1));
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (1 << (GLYPH_W - 1 - col)) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    let y = scale * (1 + row) + dy;
                    let start = y * w + x0 + col * scale;
                    for p in &mut px[start..start + scale] {
                        *p = [fg[0], fg[1], fg[2], 255];
                    }
                }
            }
        }
    }
    (px, w, h)
}

/// Top-left corner of a `lw × lh` label for `bbox` in a `width × height`
/// frame: above the box's top-left corner, inside the box's top when there
/// is no room above; kept within the frame where it fits.
pub fn placement(bbox: [u32; 4], lw: usize, lh: usize, width: u32, height: u32) -> (i32, i32) {
    let [x, y, _, _] = bbox.map(|v| v as i64);
    let (lw, lh) = (lw as i64, lh as i64);
    let (fw, fh) = (i64::from(width), i64::from(height));
    let y = if y >= lh { y - lh } else { y };
    let x = x.min(fw - lw).max(0);
    let y = y.min(fh - lh).max(0);
    (x as i32, y as i32)
}

/// Black or white text, whichever reads better on `color`.
fn text_color(color: u32) -> [u8; 3] {
    let [r, g, b] = rgb_of(color).map(f32::from);
    if 0.299 * r + 0.587 * g + 0.114 * b > 150.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// The rectangles' pixel format: GStreamer's overlay ARGB, which is BGRA in
/// memory on little-endian machines.
const RECT_FORMAT: gst_video::VideoFormat = if cfg!(target_endian = "little") {
    gst_video::VideoFormat::Bgra
} else {
    gst_video::VideoFormat::Argb
};

/// One overlay rectangle for `label` in a `width × height` frame; `None`
/// when its box is empty.
pub fn rectangle(
    label: &Label,
    width: u32,
    height: u32,
) -> Option<gst_video::VideoOverlayRectangle> {
    let [_, _, bw, bh] = label.bbox;
    if bw == 0 || bh == 0 {
        return None;
    }
    let t = text(label.id, label.score);
    let scale = scale_for(height);
    let (px, w, h) = rasterize(&t, scale, rgb_of(label.color), text_color(label.color));
    let bytes: Vec<u8> = px
        .iter()
        .flat_map(|[r, g, b, a]| {
            if RECT_FORMAT == gst_video::VideoFormat::Bgra {
                [*b, *g, *r, *a]
            } else {
                [*a, *r, *g, *b]
            }
        })
        .collect();
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    gst_video::VideoMeta::add(
        buffer.get_mut().expect("new buffer"),
        gst_video::VideoFrameFlags::empty(),
        RECT_FORMAT,
        w as u32,
        h as u32,
    )
    .ok()?;
    let (x, y) = placement(label.bbox, w, h, width, height);
    Some(gst_video::VideoOverlayRectangle::new_raw(
        &buffer,
        x,
        y,
        w as u32,
        h as u32,
        gst_video::VideoOverlayFormatFlags::empty(),
    ))
}

/// The labels of `labels` in a `width × height` frame as one composition;
/// `None` when no object has a box.
pub fn composition(
    labels: &[Label],
    width: u32,
    height: u32,
) -> Option<gst_video::VideoOverlayComposition> {
    let rects: Vec<_> = labels
        .iter()
        .filter_map(|l| rectangle(l, width, height))
        .collect();
    if rects.is_empty() {
        return None;
    }
    gst_video::VideoOverlayComposition::new(rects.iter()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_size() {
        assert_eq!(text(12, 0.987), "#12 0.99");
        assert_eq!(text(1, 1.5), "#1 1.00");
        // 8 glyphs of 3 + 7 gaps + 2 margins = 33 font pixels wide, 7 high
        assert_eq!(size("#12 0.99", 1), (33, 7));
        assert_eq!(size("#12 0.99", 5), (165, 35));
        assert_eq!(
            [1, 108, 269, 270, 1080, 2160].map(scale_for),
            [1, 1, 1, 2, 6, 12]
        );
    }

    #[test]
    fn glyphs_are_drawn_at_scale() {
        let (px, w, h) = rasterize("1", 2, [10, 20, 30], [250, 251, 252]);
        assert_eq!((w, h), (10, 14));
        let on = |x: usize, y: usize| px[y * w + x] == [250, 251, 252, 255];
        // '1': top row has the middle column only (font pixel (1, 0) → x 4..6, y 2..4)
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = ((x / 2) as i32 - 1, (y / 2) as i32 - 1);
                let want = (0..3).contains(&fx)
                    && (0..5).contains(&fy)
                    && glyph('1')[fy as usize] & (1 << (2 - fx)) != 0;
                assert_eq!(on(x, y), want, "({x}, {y})");
                if !want {
                    assert_eq!(px[y * w + x], [10, 20, 30, 255]);
                }
            }
        }
        // every glyph used by labels has pixels, and they differ
        let glyphs: Vec<_> = "0123456789.#".chars().map(glyph).collect();
        for (i, g) in glyphs.iter().enumerate() {
            assert!(g.iter().any(|r| *r != 0));
            assert!(!glyphs[..i].contains(g), "glyph {i} repeats");
        }
    }

    #[test]
    fn labels_stay_next_to_their_box_and_in_the_frame() {
        // room above: the label sits on the box
        assert_eq!(placement([50, 40, 20, 20], 25, 7, 192, 108), (50, 33));
        // no room above: inside the box's top
        assert_eq!(placement([50, 3, 20, 20], 25, 7, 192, 108), (50, 3));
        // right edge: moved left to stay in the frame
        assert_eq!(placement([180, 40, 10, 10], 25, 7, 192, 108), (167, 33));
        // larger than the frame: at the left edge
        assert_eq!(placement([2, 0, 3, 3], 30, 7, 20, 5), (0, 0));
    }

    #[test]
    fn one_rectangle_per_boxed_object() {
        gst::init().unwrap();
        let label = |id, bbox| Label {
            id,
            score: 0.5,
            bbox,
            color: 0x1f77b4,
        };
        assert!(composition(&[label(1, [0, 0, 0, 0])], 192, 108).is_none());
        let c = composition(
            &[
                label(1, [10, 20, 30, 40]),
                label(2, [0, 0, 0, 0]),
                label(3, [100, 50, 5, 5]),
            ],
            192,
            108,
        )
        .unwrap();
        assert_eq!(c.n_rectangles(), 2);
        let (w, h) = size(&text(1, 0.5), 1);
        assert_eq!(
            c.rectangle(0).unwrap().render_rectangle(),
            (10, 20 - h as i32, w as u32, h as u32)
        );
    }
}
