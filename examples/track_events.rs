// SPDX-License-Identifier: MPL-2.0

//! Sends prompts to `sam2track` by event and prints the per-object metadata.
//!
//! ```text
//! cargo run --example track_events -- MODEL_DIR [VIDEO_FILE]
//! ```
//!
//! Without a video file it plays the committed test frames
//! (tests/fixtures/golden/frames). After frame 2 it adds object 1 with an
//! upstream `sam2-prompt` event sent from the appsink end (as a downstream
//! element would), after frame 5 a box for a new object with a serialized
//! downstream event into the element's sink pad, after frame 12 removes
//! object 1 by event; it prints what the metadata says about every frame,
//! and exits with an error if the metadata does not follow the prompts.

use std::path::Path;

use gst::prelude::*;
use gstsam2::sam2track::{meta, prompt};

/// Pushes a serialized event from `pad` (the source pad feeding sam2track) just
/// before its next buffer, in the streaming thread.
///
/// `sam2track.sink.send_event(event)` from the application thread would wait
/// until the streaming thread is between two buffers, and with a bounded appsink
/// that thread waits for the application to pull: a deadlock. A buffer probe puts
/// the event in stream order without waiting.
fn push_before_next_buffer(pad: &gst::Pad, event: gst::Event) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        pad.push_event(event.clone());
        gst::PadProbeReturn::Remove
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .ok_or("usage: track_events MODEL_DIR [VIDEO_FILE]")?;
    let video = args.next();

    gst::init()?;
    // The example links the plugin statically; an installed plugin works the same.
    gstsam2::plugin_register_static()?;

    let source = match &video {
        Some(file) => format!("filesrc location=\"{file}\" ! decodebin ! videoconvert"),
        None => {
            let frames =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/golden/frames");
            format!(
                "multifilesrc location=\"{}/%05d.png\" caps=image/png,framerate=30/1 ! pngdec ! videoconvert",
                frames.display()
            )
        }
    };
    // max-buffers=1: the element stays within a frame or two of the loop below, so
    // an event sent after frame n lands a frame or two later (with an unbounded
    // appsink the element could run through the whole clip first).
    let pipeline = gst::parse::launch(&format!(
        "{source} ! video/x-raw,format=RGB ! sam2track name=track mode=sync output=meta model-dir=\"{model}\" \
         ! appsink name=sink sync=false max-buffers=1"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let track = pipeline.by_name("track").ok_or("no sam2track")?;
    let sink = pipeline
        .by_name("sink")
        .ok_or("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "not an appsink")?;

    pipeline.set_state(gst::State::Playing)?;
    let mut frame = 0u64;
    let mut failures = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().ok_or("sample without buffer")?;
        let caps = sample.caps().ok_or("sample without caps")?;
        let info = gst_video::VideoInfo::from_caps(caps)?;
        let (w, h) = (info.width() as f32, info.height() as f32);

        let objects = meta::objects(buffer);
        let f = meta::frame(buffer).ok_or("no Sam2FrameMeta on the buffer")?;
        print!(
            "frame {:3} (masks of frame {:3}{}):",
            f.frame_number,
            f.computed_frame_number,
            if f.stale { ", stale" } else { "" }
        );
        for o in &objects {
            let area = o
                .mask_bits()
                .map_or(0, |m| m.iter().filter(|v| **v != 0).count());
            print!(
                "  #{} box {}x{}+{}+{} score {:.2}{} area {}",
                o.id,
                o.bbox[2],
                o.bbox[3],
                o.bbox[0],
                o.bbox[1],
                o.score,
                if o.occluded { " occluded" } else { "" },
                area
            );
        }
        println!();
        let ids: Vec<u32> = objects.iter().map(|o| o.id).collect();
        // The events are sent while the pipeline runs, so they land a frame
        // or a few later: check the order of effects, not exact frames.
        for (id, added, removed) in [(1, 2, Some(12)), (2, 5, None)] {
            let present = ids.contains(&id);
            let settled = |at: u64| frame > at + 5;
            if frame <= added && present {
                failures.push(format!("frame {frame}: object {id} before its prompt"));
            }
            if settled(added) && removed.is_none_or(|r| frame <= r) && !present {
                failures.push(format!("frame {frame}: object {id} missing"));
            }
            if removed.is_some_and(settled) && present {
                failures.push(format!("frame {frame}: object {id} still there"));
            }
        }
        match frame {
            // upstream event: applies to the next frame the element processes
            2 => {
                let s = prompt::prompt_structure(1, &[(0.42 * w, 0.42 * h, true)], None);
                sink.send_event(gst::event::CustomUpstream::new(s));
            }
            // serialized downstream event: in stream order, before the next buffer
            // into the element (new object: id 0 picks the next free id, 2)
            5 => {
                let s = prompt::prompt_structure(
                    0,
                    &[],
                    Some([0.55 * w, 0.53 * h, 0.71 * w, 0.76 * h]),
                );
                let upstream = track
                    .static_pad("sink")
                    .and_then(|p| p.peer())
                    .ok_or("sam2track's sink pad is not linked")?;
                push_before_next_buffer(&upstream, gst::event::CustomDownstream::new(s));
            }
            12 => {
                let s = gst::Structure::builder(prompt::EVENT_REMOVE)
                    .field("object-id", 1u32)
                    .build();
                sink.send_event(gst::event::CustomUpstream::new(s));
            }
            _ => {}
        }
        frame += 1;
        if video.is_some() && frame == 30 {
            break;
        }
    }
    pipeline.set_state(gst::State::Null)?;
    if frame < 20 || !failures.is_empty() {
        return Err(format!("metadata did not follow the prompts: {failures:?}").into());
    }
    println!("{frame} frames, metadata followed the prompts");
    Ok(())
}
