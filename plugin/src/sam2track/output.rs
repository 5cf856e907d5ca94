// SPDX-License-Identifier: MPL-2.0

//! What `sam2track` puts out on each frame: the metadata, the overlay and
//! the `sam2-frame` message, from the latest inference outcome. The masks
//! of an outcome are made at the frame size once and reused while frames
//! carry that outcome (stale frames in async mode).

use std::collections::BTreeMap;
use std::sync::Arc;

use gst::prelude::*;

use crate::engine::{ops, tracker};

use super::MaskResolution;
use super::detections::Origin;
use super::draw;
use super::imp::CAT;
use super::infer::Outcome;
use super::meta::{self, FrameInfo, ObjectInfo};
use super::settings::Settings;
use super::style_props;

/// Name of the per-frame element messages (`post-messages`).
pub const MESSAGE_FRAME: &str = "sam2-frame";

/// What was drawn/attached for an outcome at one frame size, reused while
/// the outcome is the latest (stale frames).
struct Rendered {
    outcome: Arc<Outcome>,
    width: usize,
    height: usize,
    resolution: MaskResolution,
    /// Masks remade at this frame size (0/1), one per object, when it is not
    /// the outcome's (caps changed since); None: the outcome's own masks.
    resized: Option<Vec<Vec<u8>>>,
    /// Box x, y, w, h per object.
    boxes: Vec<[u32; 4]>,
    /// Mask buffers for the metadata.
    meta_masks: Vec<Option<(gst::Buffer, u32, u32)>>,
}

impl Rendered {
    /// Object `i`'s 0/1 mask at this frame size.
    fn mask(&self, i: usize) -> &[u8] {
        match &self.resized {
            Some(masks) => &masks[i],
            None => &self.outcome.objects[i].mask,
        }
    }
}

/// The output side of the element, used by the streaming thread only.
#[derive(Default)]
pub struct Output {
    /// The detections that started the objects (`roi-prompts`), by id: their
    /// label and ROI id go into the metadata. Set before each [`Output::put`].
    pub origins: BTreeMap<u32, Origin>,
    rendered: Option<Rendered>,
    warned_transparent: bool,
}

impl Output {
    /// Frames after a flush carry no earlier outcome.
    pub fn forget(&mut self) {
        self.rendered = None;
    }

    /// Attaches metadata / draws the overlay / posts the message for frame
    /// `number` from `outcome` (None: no objects).
    pub fn put(
        &mut self,
        element: &super::Sam2Track,
        buf: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        settings: &Settings,
        number: u64,
        outcome: Option<Arc<Outcome>>,
    ) {
        let origins = &self.origins;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let rendered = outcome.map(|outcome| {
            let reuse = self.rendered.as_ref().is_some_and(|r| {
                Arc::ptr_eq(&r.outcome, &outcome)
                    && (r.width, r.height, r.resolution) == (w, h, settings.mask_resolution)
            });
            if !reuse {
                let t = &outcome.times;
                gst::debug!(
                    CAT,
                    obj = element,
                    "Frame {}: {} objects in {:.1} ms (image encoder {:.1}, memory attention \
                     {:.1}, mask decoder {:.1}, memory encoder {:.1}, host {:.1})",
                    outcome.frame_number,
                    outcome.objects.len(),
                    outcome.elapsed.as_secs_f64() * 1e3,
                    t.image_encoder.as_secs_f64() * 1e3,
                    t.memory_attention.as_secs_f64() * 1e3,
                    t.mask_decoder.as_secs_f64() * 1e3,
                    t.memory_encoder.as_secs_f64() * 1e3,
                    outcome.elapsed.saturating_sub(t.total()).as_secs_f64() * 1e3,
                );
                self.rendered = Some(render(outcome, w, h, settings.mask_resolution));
            }
            self.rendered.as_ref().expect("just set")
        });
        // the engine's time on the frame the masks come from
        let inference_time = rendered.map_or(gst::ClockTime::ZERO, |r| {
            gst::ClockTime::from_nseconds(r.outcome.engine.as_nanos() as u64)
        });
        let (computed, objects) = match rendered {
            None => (number, Vec::new()),
            Some(r) => {
                let o = &r.outcome;
                let stale = o.frame_number != number;
                let objects = o
                    .objects
                    .iter()
                    .enumerate()
                    .map(|(i, obj)| ObjectInfo {
                        id: obj.id,
                        bbox: r.boxes[i],
                        score: ops::sigmoid(obj.object_score),
                        iou: obj.iou,
                        occluded: obj.object_score <= 0.0,
                        stale,
                        frame_number: o.frame_number,
                        mask: r.meta_masks[i].as_ref().map(|m| m.0.clone()),
                        mask_width: r.meta_masks[i].as_ref().map_or(0, |m| m.1),
                        mask_height: r.meta_masks[i].as_ref().map_or(0, |m| m.2),
                        prompted: obj.is_cond,
                        label: origins.get(&obj.id).map(|o| o.label.clone()),
                        detection_id: origins.get(&obj.id).map(|o| o.detection_id),
                    })
                    .collect();
                (o.frame_number, objects)
            }
        };
        let frame = FrameInfo {
            frame_number: number,
            computed_frame_number: computed,
            stale: computed != number,
            objects,
        };
        if settings.output.overlay()
            && let Some(r) = rendered
            && !r.outcome.objects.is_empty()
        {
            let objects: Vec<(u32, &[u8])> = r
                .outcome
                .objects
                .iter()
                .enumerate()
                .map(|(i, o)| (o.id, r.mask(i)))
                .collect();
            match draw::draw_objects(buf, info, &objects, &settings.style()) {
                Ok(drawn) => {
                    if drawn.transparent_ignored {
                        style_props::warn_transparent(
                            element.upcast_ref(),
                            &mut self.warned_transparent,
                            info.format(),
                        );
                    }
                }
                Err(err) => gst::warning!(CAT, obj = element, "Frame not drawn: {err}"),
            }
        }
        if settings.output.meta() {
            meta::attach(buf, &frame);
        }
        if settings.post_messages {
            let s = gst::Structure::builder(MESSAGE_FRAME)
                .field("frame-number", frame.frame_number)
                .field("computed-frame-number", frame.computed_frame_number)
                .field("stale", frame.stale)
                .field("timestamp", buf.pts())
                .field("inference-time", inference_time)
                .field(
                    "objects",
                    gst::Array::new(frame.objects.iter().map(|o| {
                        let mut o = o.clone();
                        o.mask = None;
                        o.to_structure().to_send_value()
                    })),
                )
                .build();
            let _ = element.post_message(gst::message::Element::builder(s).src(element).build());
        }
    }
}

/// Masks/boxes/metadata masks of `outcome` for a `w`×`h` frame: the
/// outcome's own masks and boxes (made by the engine) at its size, remade
/// from the logits at another one.
fn render(outcome: Arc<Outcome>, w: usize, h: usize, resolution: MaskResolution) -> Rendered {
    let resized = ((outcome.width, outcome.height) != (w, h)).then(|| {
        let logits: Vec<&ops::Plane> = outcome.objects.iter().map(|o| &o.logits).collect();
        tracker::masks_from_logits(&logits, w, h, outcome.threshold, outcome.non_overlap)
    });
    let xywh = |b: Option<[u32; 4]>| match b {
        Some([x0, y0, x1, y1]) => [x0, y0, x1 - x0, y1 - y0],
        None => [0; 4],
    };
    let boxes = match &resized {
        Some(masks) => masks
            .iter()
            .map(|m| xywh(tracker::bounding_box(m, w)))
            .collect(),
        None => outcome.objects.iter().map(|o| xywh(o.bbox)).collect(),
    };
    let mut rendered = Rendered {
        outcome,
        width: w,
        height: h,
        resolution,
        resized,
        boxes,
        meta_masks: Vec::new(),
    };
    rendered.meta_masks = meta_masks(&rendered);
    rendered
}

/// The metadata's mask buffers of `r`, at its `resolution`.
fn meta_masks(r: &Rendered) -> Vec<Option<(gst::Buffer, u32, u32)>> {
    let (w, h, outcome) = (r.width, r.height, &r.outcome);
    outcome
        .objects
        .iter()
        .enumerate()
        .map(|(i, o)| match r.resolution {
            MaskResolution::None => None,
            MaskResolution::Frame => Some((
                gst::Buffer::from_mut_slice(r.mask(i).iter().map(|v| v * 255).collect::<Vec<u8>>()),
                w as u32,
                h as u32,
            )),
            MaskResolution::Low => Some((
                gst::Buffer::from_mut_slice(
                    o.logits
                        .data
                        .iter()
                        .map(|v| if *v > outcome.threshold { 255u8 } else { 0 })
                        .collect::<Vec<u8>>(),
                ),
                o.logits.width as u32,
                o.logits.height as u32,
            )),
        })
        .collect()
}
