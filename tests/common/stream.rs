// SPDX-License-Identifier: MPL-2.0

//! The element on the golden frames in a `gst_check::Harness`: frames,
//! harnesses with the micro model, bus warnings and object metadata.

use std::sync::{Mutex, Once};

use gst::prelude::*;
use gstsam2::sam2track::meta::{self, ObjectInfo};

use super::{fixtures, micro_dir, read_png, require_runtime};

pub const W: usize = 192;
pub const H: usize = 108;
pub const RGB_CAPS: &str = "video/x-raw,format=RGB,width=192,height=108,framerate=30/1";
/// Prompts of the golden scenario's frame 0.
pub const GOLDEN_PROMPT: &str = "1:point=80,45;2:box=106,57,137,82";

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstsam2::plugin_register_static().expect("the sam2 plugin registers");
    });
    require_runtime();
}

pub fn golden_dir() -> std::path::PathBuf {
    fixtures().join("golden")
}

/// RGB pixels of golden frame `t` (cached).
pub fn frame_rgb(t: usize) -> Vec<u8> {
    static CACHE: Mutex<Vec<Option<Vec<u8>>>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap();
    if cache.len() <= t {
        cache.resize(t + 1, None);
    }
    cache[t]
        .get_or_insert_with(|| {
            let (w, h, color, px) = read_png(&golden_dir().join(format!("frames/{t:05}.png")));
            assert_eq!((w, h, color), (W, H, png::ColorType::Rgb));
            px
        })
        .clone()
}

pub fn timed(mut buffer: gst::Buffer, t: usize) -> gst::Buffer {
    let b = buffer.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_nseconds(t as u64 * 1_000_000_000 / 30));
    b.set_duration(gst::ClockTime::from_nseconds(1_000_000_000 / 30));
    buffer
}

/// Golden frame `t` as an RGB buffer with timestamps.
pub fn frame_buffer(t: usize) -> gst::Buffer {
    timed(gst::Buffer::from_mut_slice(frame_rgb(t)), t)
}

/// A harness around `videoconvert ! FORMAT ! sam2track` (or sam2track alone
/// for RGB) fed RGB golden frames; sam2track in sync mode with the micro
/// model plus `props`.
pub fn harness(format: &str, props: &str) -> (gst_check::Harness, gst::Element) {
    harness_named("t", format, props)
}

/// [`harness`] with the sam2track element named `name`.
pub fn harness_named(name: &str, format: &str, props: &str) -> (gst_check::Harness, gst::Element) {
    init();
    let model = micro_dir();
    let track = format!(
        "sam2track name={name} mode=sync model-dir=\"{}\" {props}",
        model.display()
    );
    let desc = if format == "RGB" {
        track
    } else {
        format!("videoconvert ! video/x-raw,format={format} ! {track}")
    };
    let mut h = gst_check::Harness::new_parse(&desc);
    let element = h
        .element()
        .expect("harness element")
        .downcast::<gst::Bin>()
        .map(|bin| bin.by_name(name).expect("sam2track in the bin"))
        .unwrap_or_else(|e| e);
    h.set_src_caps_str(RGB_CAPS);
    (h, element)
}

/// A bus on `element` to read its warnings (harnessed elements have none).
pub fn bus_of(element: &gst::Element) -> gst::Bus {
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    bus
}

pub fn warnings(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .map(|m| match m.view() {
            gst::MessageView::Warning(w) => format!("{} ({:?})", w.error(), w.debug()),
            _ => unreachable!(),
        })
        .collect()
}

pub fn push_pull(h: &mut gst_check::Harness, t: usize) -> gst::Buffer {
    h.push(frame_buffer(t)).expect("push");
    h.pull().expect("a buffer comes out")
}

pub fn ids(buffer: &gst::Buffer) -> Vec<u32> {
    let mut ids: Vec<u32> = meta::objects(buffer).iter().map(|o| o.id).collect();
    ids.sort();
    ids
}

pub fn object(buffer: &gst::Buffer, id: u32) -> ObjectInfo {
    meta::objects(buffer)
        .into_iter()
        .find(|o| o.id == id)
        .unwrap_or_else(|| panic!("object {id} in {:?}", ids(buffer)))
}
