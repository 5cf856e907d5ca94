// SPDX-License-Identifier: MPL-2.0

//! The drawing properties `sam2track` and `sam2overlay` share (same names,
//! ranges, defaults and blurbs), the caps both take, and the one warning
//! about a transparent background on a format without alpha.

use gst::glib;
use gst::prelude::*;

use super::BackgroundMode;
use super::draw;
use super::overlay::{self, Style};

pub const PROP_OVERLAY_ALPHA: &str = "overlay-alpha";
pub const PROP_CONTOUR_WIDTH: &str = "contour-width";
pub const PROP_COLORS: &str = "colors";
pub const PROP_BACKGROUND: &str = "background";
pub const PROP_BACKGROUND_COLOR: &str = "background-color";
pub const PROP_BLUR_RADIUS: &str = "blur-radius";

/// How objects are drawn, as the properties set it.
#[derive(Debug, Clone)]
pub struct StyleSettings {
    pub overlay_alpha: f64,
    pub contour_width: u32,
    pub colors: Vec<u32>,
    pub background: BackgroundMode,
    pub background_color: u32,
    pub blur_radius: u32,
}

impl Default for StyleSettings {
    fn default() -> Self {
        let d = Style::default();
        StyleSettings {
            overlay_alpha: f64::from(d.alpha),
            contour_width: d.contour_width,
            colors: d.colors,
            background: BackgroundMode::None,
            background_color: d.background_color,
            blur_radius: d.blur_radius,
        }
    }
}

/// The specs of the drawing properties, all mutable while PLAYING.
pub fn specs() -> Vec<glib::ParamSpec> {
    let d = StyleSettings::default();
    vec![
        glib::ParamSpecDouble::builder(PROP_OVERLAY_ALPHA)
            .nick("Overlay alpha")
            .blurb("Opacity of the object colour over the object (0: contours only)")
            .minimum(0.0)
            .maximum(1.0)
            .default_value(d.overlay_alpha)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder(PROP_CONTOUR_WIDTH)
            .nick("Contour width")
            .blurb("Width in pixels of the object outlines (0: none)")
            .maximum(64)
            .default_value(d.contour_width)
            .mutable_playing()
            .build(),
        gst::ParamSpecArray::builder(PROP_COLORS)
            .nick("Colours")
            .blurb(
                "Object colours as 0xRRGGBB, used by object id in turn, e.g. \
                 \"<0xff0000, 0x00ff00>\"",
            )
            .element_spec(
                &glib::ParamSpecUInt::builder("color")
                    .nick("Colour")
                    .blurb("0xRRGGBB")
                    .maximum(0xff_ffff)
                    .build(),
            )
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default(PROP_BACKGROUND, d.background)
            .nick("Background")
            .blurb("What the overlay does outside every object (AR / broadcast keying)")
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder(PROP_BACKGROUND_COLOR)
            .nick("Background colour")
            .blurb("0xRRGGBB of background=solid")
            .maximum(0xff_ffff)
            .default_value(d.background_color)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder(PROP_BLUR_RADIUS)
            .nick("Blur radius")
            .blurb("Box blur radius in pixels of background=blur")
            .minimum(1)
            .maximum(255)
            .default_value(d.blur_radius)
            .mutable_playing()
            .build(),
    ]
}

impl StyleSettings {
    /// Sets drawing property `name`; false when it is not one of them.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            PROP_OVERLAY_ALPHA => self.overlay_alpha = value.get().expect("type checked upstream"),
            PROP_CONTOUR_WIDTH => self.contour_width = value.get().expect("type checked upstream"),
            PROP_COLORS => {
                let array = value.get::<gst::Array>().expect("type checked upstream");
                self.colors = array
                    .iter()
                    .filter_map(|v| {
                        v.get::<u32>()
                            .ok()
                            .or_else(|| v.get::<i32>().ok().map(|i| i as u32))
                    })
                    .map(|c| c & 0xff_ffff)
                    .collect();
                if self.colors.is_empty() {
                    self.colors = overlay::DEFAULT_COLORS.to_vec();
                }
            }
            PROP_BACKGROUND => self.background = value.get().expect("type checked upstream"),
            PROP_BACKGROUND_COLOR => {
                self.background_color = value.get().expect("type checked upstream")
            }
            PROP_BLUR_RADIUS => self.blur_radius = value.get().expect("type checked upstream"),
            _ => return false,
        }
        true
    }

    /// The value of drawing property `name`, None when it is not one.
    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            PROP_OVERLAY_ALPHA => self.overlay_alpha.to_value(),
            PROP_CONTOUR_WIDTH => self.contour_width.to_value(),
            PROP_COLORS => gst::Array::new(self.colors.iter().copied()).to_value(),
            PROP_BACKGROUND => self.background.to_value(),
            PROP_BACKGROUND_COLOR => self.background_color.to_value(),
            PROP_BLUR_RADIUS => self.blur_radius.to_value(),
            _ => return None,
        })
    }

    /// The [`Style`] the drawing takes.
    pub fn style(&self) -> Style {
        Style {
            alpha: self.overlay_alpha as f32,
            contour_width: self.contour_width,
            colors: self.colors.clone(),
            background: draw::background_of(self.background),
            background_color: self.background_color,
            blur_radius: self.blur_radius,
        }
    }
}

/// The raw video both elements take (and give), any size and rate.
pub fn video_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list([
            gst_video::VideoFormat::Rgb,
            gst_video::VideoFormat::Bgr,
            gst_video::VideoFormat::Rgba,
            gst_video::VideoFormat::Bgra,
            gst_video::VideoFormat::Rgbx,
            gst_video::VideoFormat::Bgrx,
            gst_video::VideoFormat::Nv12,
            gst_video::VideoFormat::I420,
        ])
        .build()
}

/// The always pads of an in-place video filter: `src` with `src_caps`,
/// `sink` with `sink_caps`.
pub fn pad_templates(src_caps: &gst::Caps, sink_caps: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("src", gst::PadDirection::Src, src_caps),
        ("sink", gst::PadDirection::Sink, sink_caps),
    ]
    .into_iter()
    .map(|(name, direction, caps)| {
        gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps)
            .expect("valid pad template")
    })
    .collect()
}

/// Posts, once (`warned`), the warning that `background=transparent` needs
/// alpha the stream's `format` lacks.
pub fn warn_transparent(element: &gst::Element, warned: &mut bool, format: gst_video::VideoFormat) {
    if std::mem::replace(warned, true) {
        return;
    }
    gst::element_warning!(
        element,
        gst::CoreError::Negotiation,
        (
            "background=transparent needs RGBA or BGRA, the stream is {:?}: the background is \
             left as it is",
            format
        )
    );
}
