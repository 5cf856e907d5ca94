// SPDX-License-Identifier: MPL-2.0

//! One frame through the engine: the GStreamer frame made an engine frame
//! (packed RGB-family read in place, NV12/I420 converted), the element's
//! commands made engine prompts (relative coordinates resolved), one
//! [`Tracker::step`], and its result as the [`Outcome`] the output side
//! draws and attaches.

use std::time::{Duration, Instant};

use gst_video::prelude::*;

use crate::engine::stages::StageTimes;
use crate::engine::step::{FrameInput, ObjectResult, Prompt};
use crate::engine::tracker::{Frame, PixelFormat, Tracker, TrackerError};

use super::color::RgbConverter;
use super::prompt::{Command, Coord};

/// Per-job options read from the element's settings for each frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobOptions {
    pub mask_threshold: f32,
    pub non_overlap: bool,
    /// Testing aid: sleep this long after each inference.
    pub delay: Duration,
}

/// Result of one frame.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub frame_number: u64,
    pub width: usize,
    pub height: usize,
    pub threshold: f32,
    pub non_overlap: bool,
    /// Every object's result (masks at `width`×`height`).
    pub objects: Vec<ObjectResult>,
    /// Time spent on the frame by the inference thread (0 when the frame
    /// needed no inference), the testing `delay` included.
    pub elapsed: Duration,
    /// Of which in the engine proper: pre-processing, prompts, the graphs,
    /// frame-size masks (not the conversion of YUV frames to RGB).
    pub engine: Duration,
    /// Of which in each graph.
    pub times: StageTimes,
    /// Flush epoch the frame belongs to.
    pub epoch: u64,
}

/// Things a frame tells the element about after it ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Prompts the tracker refused on frame `frame`: (what, why) each, in
    /// order (the element posts one warning for them all).
    Refused {
        frame: u64,
        prompts: Vec<(String, String)>,
    },
    /// Ids that are no longer objects: removed by a click, or refused as
    /// new objects.
    Released(Vec<u32>),
}

/// What one frame has to tell, gathered while it runs.
#[derive(Debug, Default)]
pub struct Notes {
    refused: Vec<(String, String)>,
    released: Vec<u32>,
}

impl Notes {
    fn refuse(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.refused.push((what.into(), why.into()));
    }

    /// `ids` are no longer objects.
    pub fn release(&mut self, ids: impl IntoIterator<Item = u32>) {
        self.released.extend(ids);
    }

    /// Sends what frame `frame` has to tell.
    pub fn send(self, frame: u64, notify: &dyn Fn(Note)) {
        if !self.refused.is_empty() {
            notify(Note::Refused {
                frame,
                prompts: self.refused,
            });
        }
        if !self.released.is_empty() {
            notify(Note::Released(self.released));
        }
    }
}

/// Packed layout of the element's RGB formats.
pub fn packed_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as F;
    Some(match format {
        F::Rgb => PixelFormat::Rgb,
        F::Bgr => PixelFormat::Bgr,
        F::Rgba => PixelFormat::Rgba,
        F::Bgra => PixelFormat::Bgra,
        F::Rgbx => PixelFormat::Rgbx,
        F::Bgrx => PixelFormat::Bgrx,
        _ => return None,
    })
}

/// The engine prompt of `cmd` on a `width`×`height` frame (relative
/// coordinates resolved).
fn to_prompt(cmd: &Command, width: usize, height: usize) -> Prompt {
    let px = |c: &Coord, extent| c.resolve(extent);
    match cmd {
        Command::Prompt {
            id,
            clicks,
            bbox,
            clear,
        } => Prompt::Points {
            id: *id,
            clicks: clicks
                .iter()
                .map(|c| ([px(&c.x, width), px(&c.y, height)], c.positive))
                .collect(),
            bbox: bbox.map(|[x0, y0, x1, y1]| {
                [
                    px(&x0, width),
                    px(&y0, height),
                    px(&x1, width),
                    px(&y1, height),
                ]
            }),
            clear: *clear,
        },
        Command::Mask { id, mask } => Prompt::Mask {
            id: *id,
            width: mask.width,
            height: mask.height,
            data: mask.data.clone(),
        },
        Command::Remove { id } => Prompt::Remove { id: *id },
        Command::RemoveAt { x, y } => Prompt::RemoveAt {
            x: px(x, width),
            y: px(y, height),
        },
        Command::Reset => Prompt::Reset,
    }
}

/// A frame for [`run_frame`]: the element's frame number, its pixels and
/// the prompts that go with it.
pub struct FrameJob<'a> {
    pub number: u64,
    pub buffer: &'a gst::BufferRef,
    pub info: &'a gst_video::VideoInfo,
    /// Prompts to apply on this frame, in order; new objects have their ids.
    pub commands: &'a [Command],
    pub options: JobOptions,
}

/// Why the element cannot run frames any more.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("frame {frame}: {source}")]
    Inference {
        frame: u64,
        #[source]
        source: TrackerError,
    },
    #[error("cannot read frame {frame}: {reason}")]
    Frame { frame: u64, reason: String },
    #[error("inference panicked: {0}")]
    Panic(String),
}

/// Runs one frame through the tracker. `Err`: the stream cannot go on.
pub fn run_frame(
    tracker: &mut Tracker,
    converter: &mut RgbConverter,
    job: &FrameJob<'_>,
    notes: &mut Notes,
) -> Result<Outcome, Failure> {
    let &FrameJob {
        number,
        buffer,
        info,
        commands,
        options,
    } = job;
    let (width, height) = (info.width() as usize, info.height() as usize);
    let unreadable = |reason: String| Failure::Frame {
        frame: number,
        reason,
    };
    tracker.set_mask_output(options.mask_threshold, options.non_overlap);
    let prompts: Vec<Prompt> = commands
        .iter()
        .map(|c| to_prompt(c, width, height))
        .collect();
    let start = Instant::now();
    // YUV frames are converted only when the engine will read them
    let needs_pixels = !tracker.object_ids().is_empty()
        || prompts
            .iter()
            .any(|p| matches!(p, Prompt::Points { .. } | Prompt::Mask { .. }));
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .map_err(|err| unreadable(err.to_string()))?;
    let rgb;
    let rgb_map;
    let (data, stride, format) = match packed_format(info.format()) {
        Some(format) => (
            frame.plane_data(0).map_err(|e| unreadable(e.to_string()))?,
            frame.plane_stride()[0] as usize,
            format,
        ),
        None if !needs_pixels => (&[][..], 0, PixelFormat::Rgb),
        None => {
            let (buffer, rgb_info) = converter
                .convert(&frame)
                .map_err(|e| unreadable(e.to_string()))?;
            rgb = buffer;
            rgb_map = rgb.map_readable().map_err(|e| unreadable(e.to_string()))?;
            (
                &rgb_map[..],
                rgb_info.stride()[0] as usize,
                PixelFormat::Rgb,
            )
        }
    };
    let input = FrameInput::Packed(Frame {
        data,
        width,
        height,
        stride,
        format,
    });
    let engine_start = Instant::now();
    let result = tracker
        .step(input, &prompts)
        .map_err(|source| Failure::Inference {
            frame: number,
            source,
        })?;
    let engine = engine_start.elapsed();
    for (i, err) in &result.refused {
        notes.refuse(commands[*i].to_string(), err.to_string());
    }
    notes.release(result.released);
    let inferred = result.index.is_some();
    if inferred && !options.delay.is_zero() {
        std::thread::sleep(options.delay);
    }
    Ok(Outcome {
        frame_number: number,
        width,
        height,
        threshold: options.mask_threshold,
        non_overlap: options.non_overlap,
        objects: result.objects,
        // the testing delay stands for a slower engine: it counts
        elapsed: if inferred {
            start.elapsed()
        } else {
            Duration::ZERO
        },
        engine: if inferred { engine } else { Duration::ZERO },
        times: result.times,
        epoch: 0,
    })
}
