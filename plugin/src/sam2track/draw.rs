// SPDX-License-Identifier: MPL-2.0

//! Drawing objects into a GStreamer frame: what `sam2track output=overlay`
//! and `sam2overlay` share, so that both draw the same pixels.
//!
//! [`draw_objects`] takes per-object masks at the frame size, builds the
//! label map and contours ([`overlay::label_map`], [`overlay::edges`]),
//! picks the colours ([`overlay::color_of`]) and the memory layout of the
//! caps ([`layout_of`], [`yuv_of`]), maps the frame and calls
//! [`overlay::draw`]. [`frame_mask`] gives an object's mask from the
//! metadata at the frame size (resizing low-resolution masks).

use std::ops::Deref;

use gst::glib;
use gst_video::prelude::*;

use super::BackgroundMode;
use super::color::yuv_of;
use super::meta::ObjectInfo;
use super::overlay::{self, Background, Canvas, Layout, Marks, Style};

/// The memory layout of `info`'s format; `None` for a format the drawing
/// does not handle (the elements' caps are RGB, BGR, RGBA, BGRA, RGBx,
/// BGRx, NV12 and I420).
pub fn layout_of(info: &gst_video::VideoInfo) -> Option<Layout> {
    use gst_video::VideoFormat as F;
    match info.format() {
        F::Rgb | F::Bgr | F::Rgba | F::Bgra | F::Rgbx | F::Bgrx => {
            let finfo = info.format_info();
            let off = finfo.poffset();
            Some(Layout::Packed {
                bpp: finfo.pixel_stride()[0] as usize,
                rgb: [off[0] as usize, off[1] as usize, off[2] as usize],
                alpha: finfo.has_alpha().then(|| off[3] as usize),
            })
        }
        F::Nv12 => Some(Layout::Nv12),
        F::I420 => Some(Layout::I420),
        _ => None,
    }
}

/// The drawing's [`Background`] for the `background` property's value.
pub fn background_of(mode: BackgroundMode) -> Background {
    match mode {
        BackgroundMode::None => Background::None,
        BackgroundMode::Blur => Background::Blur,
        BackgroundMode::Solid => Background::Solid,
        BackgroundMode::Transparent => Background::Transparent,
    }
}

/// Why a frame was not drawn.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    #[error("cannot draw into {0:?} frames")]
    Format(gst_video::VideoFormat),
    #[error("the mask of object {id} has {len} bytes, a {width}x{height} frame needs {}", width * height)]
    MaskSize {
        id: u32,
        len: usize,
        width: usize,
        height: usize,
    },
    #[error("cannot map the frame to draw: {0}")]
    Map(glib::BoolError),
}

/// What [`draw_objects`] did besides drawing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drawn {
    /// `background=transparent` on a format without alpha: the background
    /// was left as it is (the caller warns once).
    pub transparent_ignored: bool,
}

/// Draws `objects` (object id, mask: `width × height` bytes of the frame
/// `info` describes, non-zero inside the object) into `buf` in place, in
/// `style`: fill, contours, background. Later objects win where masks
/// overlap; colours go by object id ([`overlay::color_of`]).
///
/// With no object nothing is drawn, the background modes included.
pub fn draw_objects(
    buf: &mut gst::BufferRef,
    info: &gst_video::VideoInfo,
    objects: &[(u32, &[u8])],
    style: &Style,
) -> Result<Drawn, DrawError> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let layout = layout_of(info).ok_or(DrawError::Format(info.format()))?;
    let mut drawn = Drawn::default();
    if objects.is_empty() {
        return Ok(drawn);
    }
    let masks = objects
        .iter()
        .map(|(id, m)| {
            m.get(..w * h).ok_or(DrawError::MaskSize {
                id: *id,
                len: m.len(),
                width: w,
                height: h,
            })
        })
        .collect::<Result<Vec<&[u8]>, _>>()?;
    let labels = overlay::label_map(&masks, w, h);
    let edges = overlay::edges(&labels, w, h, style.contour_width);
    let colors: Vec<u32> = objects
        .iter()
        .map(|(id, _)| overlay::color_of(style, *id))
        .collect();
    let has_alpha = matches!(layout, Layout::Packed { alpha: Some(_), .. });
    let downgraded;
    let style = if style.background == Background::Transparent && !has_alpha {
        drawn.transparent_ignored = true;
        // (the colours are picked above: the drawing itself takes them apart)
        downgraded = Style {
            background: Background::None,
            colors: Vec::new(),
            ..*style
        };
        &downgraded
    } else {
        style
    };
    let mut vf =
        gst_video::VideoFrameRef::from_buffer_ref_writable(buf, info).map_err(DrawError::Map)?;
    let strides: Vec<usize> = vf.plane_stride().iter().map(|s| *s as usize).collect();
    let n = vf.n_planes() as usize;
    let mut planes = vf.planes_data_mut();
    overlay::draw(
        Canvas {
            layout,
            yuv: yuv_of(info),
            width: w,
            height: h,
            planes: &mut planes[..n],
            strides: &strides,
        },
        Marks {
            labels: &labels,
            edges: &edges,
            colors: &colors,
        },
        style,
    );
    Ok(drawn)
}

/// Why an object of the metadata has no mask to draw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("object {0} has no mask in the metadata (sam2track mask-resolution=none)")]
    Missing(u32),
    #[error("the mask of object {id} has {len} bytes, {width}x{height} expected")]
    Size {
        id: u32,
        len: usize,
        width: u32,
        height: u32,
    },
    #[error("the mask of object {0} cannot be read")]
    Unreadable(u32),
}

/// An object's mask at the frame size (non-zero inside): the metadata's own
/// buffer when it is at the frame size, else a resized copy.
pub enum FrameMask<'a> {
    Mapped(gst::buffer::BufferMap<'a, gst::buffer::Readable>),
    Resized(Vec<u8>),
}

impl Deref for FrameMask<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FrameMask::Mapped(map) => map.as_slice(),
            FrameMask::Resized(v) => v,
        }
    }
}

/// `object`'s mask at `width × height`. A mask of another size (SAM 2's low
/// resolution L×L with `mask-resolution=low`) covers the whole frame: it is
/// resized nearest-neighbour (pixel centres), so its edges are blockier
/// than `sam2track`'s own drawing, which upsamples the logits.
pub fn frame_mask(
    object: &ObjectInfo,
    width: usize,
    height: usize,
) -> Result<FrameMask<'_>, MaskError> {
    let id = object.id;
    let mask = object.mask.as_ref().ok_or(MaskError::Missing(id))?;
    let map = mask.map_readable().map_err(|_| MaskError::Unreadable(id))?;
    let (mw, mh) = (object.mask_width as usize, object.mask_height as usize);
    if mw == 0 || mh == 0 || map.len() < mw * mh {
        return Err(MaskError::Size {
            id,
            len: map.len(),
            width: object.mask_width,
            height: object.mask_height,
        });
    }
    if (mw, mh) == (width, height) {
        return Ok(FrameMask::Mapped(map));
    }
    Ok(FrameMask::Resized(resize_nearest(
        &map, mw, mh, width, height,
    )))
}

/// Nearest-neighbour resize of a `fw × fh` plane to `tw × th`, sampling at
/// pixel centres (as the metadata's scale transform does).
pub fn resize_nearest(src: &[u8], fw: usize, fh: usize, tw: usize, th: usize) -> Vec<u8> {
    let nearest = |t: usize, from: usize, to: usize| ((2 * t + 1) * from / (2 * to)).min(from - 1);
    let columns: Vec<usize> = (0..tw).map(|x| nearest(x, fw, tw)).collect();
    let mut out = Vec::with_capacity(tw * th);
    for y in 0..th {
        let row = &src[nearest(y, fh, th) * fw..][..fw];
        out.extend(columns.iter().map(|&x| row[x]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sam2track::color::Yuv;

    fn object(mask: Option<Vec<u8>>, w: u32, h: u32) -> ObjectInfo {
        ObjectInfo {
            id: 3,
            bbox: [0; 4],
            score: 1.0,
            iou: 1.0,
            occluded: false,
            stale: false,
            frame_number: 0,
            mask: mask.map(gst::Buffer::from_mut_slice),
            mask_width: w,
            mask_height: h,
            prompted: false,
            label: None,
            detection_id: None,
        }
    }

    #[test]
    fn nearest_resize_samples_pixel_centres() {
        // 2x2 → 4x3: the middle row's centre (1.5 of 3) falls on the
        // source rows' border (1.0 of 2) and takes the lower one
        let src = [1u8, 2, 3, 4];
        assert_eq!(
            resize_nearest(&src, 2, 2, 4, 3),
            vec![1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]
        );
        // down: 4x1 → 2x1 takes pixels 1 and 3 (centres 1.0, 3.0)
        assert_eq!(resize_nearest(&[5, 6, 7, 8], 4, 1, 2, 1), vec![6, 8]);
    }

    #[test]
    fn masks_from_the_metadata() {
        gst::init().unwrap();
        let frame = object(Some(vec![0, 255, 255, 0, 0, 255]), 3, 2);
        assert_eq!(
            &*frame_mask(&frame, 3, 2).unwrap(),
            &[0, 255, 255, 0, 0, 255]
        );
        assert!(matches!(
            frame_mask(&frame, 3, 2).unwrap(),
            FrameMask::Mapped(_)
        ));
        let low = object(Some(vec![255, 0, 0, 255]), 2, 2);
        assert_eq!(
            &*frame_mask(&low, 4, 2).unwrap(),
            &[255, 255, 0, 0, 0, 0, 255, 255]
        );
        assert_eq!(
            frame_mask(&object(None, 0, 0), 4, 2).err(),
            Some(MaskError::Missing(3))
        );
        assert!(matches!(
            frame_mask(&object(Some(vec![1, 2]), 2, 2), 4, 2),
            Err(MaskError::Size { len: 2, .. })
        ));
    }

    #[test]
    fn draws_into_buffers_as_the_engine_does() {
        gst::init().unwrap();
        let (w, h) = (4usize, 2usize);
        let style = Style {
            contour_width: 0,
            colors: vec![0xff0000],
            background: Background::Transparent,
            ..Style::default()
        };
        let mask = [0u8, 1, 1, 0, 0, 0, 0, 0];
        for (format, want_transparent_ignored) in [
            (gst_video::VideoFormat::Rgba, false),
            (gst_video::VideoFormat::Rgb, true),
        ] {
            let info = gst_video::VideoInfo::builder(format, w as u32, h as u32)
                .build()
                .unwrap();
            let mut buf = gst::Buffer::with_size(info.size()).unwrap();
            buf.get_mut().unwrap().map_writable().unwrap().fill(100);
            let drawn = draw_objects(buf.get_mut().unwrap(), &info, &[(1, &mask)], &style).unwrap();
            assert_eq!(drawn.transparent_ignored, want_transparent_ignored);
            // the same drawing by hand
            let layout = layout_of(&info).unwrap();
            let stride = info.stride()[0] as usize;
            let mut want = vec![100u8; info.size()];
            let labels = overlay::label_map(&[&mask], w, h);
            let edges = overlay::edges(&labels, w, h, 0);
            let mut style = style.clone();
            if want_transparent_ignored {
                style.background = Background::None;
            }
            overlay::draw(
                Canvas {
                    layout,
                    yuv: Yuv::BT601,
                    width: w,
                    height: h,
                    planes: &mut [&mut want[..]],
                    strides: &[stride],
                },
                Marks {
                    labels: &labels,
                    edges: &edges,
                    colors: &[0xff0000],
                },
                &style,
            );
            assert_eq!(
                buf.map_readable().unwrap().as_slice(),
                &want[..],
                "{format:?}"
            );
            // no object: nothing drawn, the background included
            let mut plain = gst::Buffer::from_mut_slice(vec![100u8; info.size()]);
            draw_objects(plain.get_mut().unwrap(), &info, &[], &style).unwrap();
            assert!(plain.map_readable().unwrap().iter().all(|v| *v == 100));
        }
        // masks must cover the frame; other formats are refused
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 4, 2)
            .build()
            .unwrap();
        let mut buf = gst::Buffer::with_size(info.size()).unwrap();
        assert!(matches!(
            draw_objects(buf.get_mut().unwrap(), &info, &[(2, &[1, 1])], &style),
            Err(DrawError::MaskSize { id: 2, len: 2, .. })
        ));
        let gray = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 4, 2)
            .build()
            .unwrap();
        assert!(matches!(
            draw_objects(buf.get_mut().unwrap(), &gray, &[(2, &mask)], &style),
            Err(DrawError::Format(gst_video::VideoFormat::Gray8))
        ));
    }
}
