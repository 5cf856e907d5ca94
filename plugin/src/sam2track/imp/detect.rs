// SPDX-License-Identifier: MPL-2.0

//! Prompts from upstream detections (`roi-prompts`) and the removal of lost
//! objects (`remove-after`), queued for the frame that carries them; the
//! association itself is in [`crate::sam2track::detections`].

use gst::subclass::prelude::*;

use super::{CAT, Sam2Track};
use crate::sam2track::detections::{self, Detection, Latest, Seen};
use crate::sam2track::inbox::Channel;
use crate::sam2track::prompt::{Command, Coord, NEW_OBJECT};
use crate::sam2track::settings::{PROP_MAX_OBJECTS, Settings};
use crate::sam2track::worker::Worker;
use crate::sync::lock;

/// A detection's box as a prompt box in frame pixels.
fn prompt_box(d: &Detection) -> Option<[Coord; 4]> {
    Some(d.bbox.map(Coord::px))
}

impl Sam2Track {
    /// Queues frame `number`'s box prompts from the detections on `buf` and
    /// the removals of lost objects; returns the (what, why) of detections
    /// that could not become objects, for warnings.
    pub(super) fn detection_prompts(
        &self,
        buf: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        number: u64,
        settings: &Settings,
        worker: &Worker,
    ) -> Vec<(String, String)> {
        let rules = settings.roi_rules();
        if !rules.reads_detections() && rules.remove_after == 0 {
            return Vec::new();
        }
        let found = if rules.reads_detections() {
            detections::read(buf, &rules, info.width(), info.height())
        } else {
            Vec::new()
        };
        let latest = worker.latest();
        let seen: Vec<Seen> = latest.as_ref().map_or_else(Vec::new, |o| {
            o.objects
                .iter()
                .map(|obj| Seen {
                    id: obj.id,
                    mask_box: obj.bbox.map(|b| b.map(|v| v as f32)),
                    present: obj.object_score > 0.0 && obj.bbox.is_some(),
                })
                .collect()
        });
        let mut assoc = lock(&self.detections);
        let plan = assoc.plan(
            number,
            &found,
            latest.as_ref().map(|o| Latest {
                frame: o.frame_number,
                objects: &seen,
            }),
            &rules,
        );
        if !found.is_empty() {
            gst::log!(
                CAT,
                imp = self,
                "Frame {number}: {} detections, matched {:?}, {} new, {} re-prompts",
                found.len(),
                plan.matched,
                plan.start.len(),
                plan.refresh.len()
            );
        }
        let mut refused = Vec::new();
        let mut inbox = lock(&self.inbox);
        let mut queue = |cmds: Vec<Command>, refused: &mut Vec<(String, String)>| match inbox
            .push(Channel::Next, cmds)
        {
            Ok((id, None)) => Some(id),
            Ok((_, Some((cmd, err)))) => {
                refused.push((cmd.to_string(), err.to_string()));
                None
            }
            Err(full) => {
                refused.push(("detection prompts".into(), full.to_string()));
                None
            }
        };
        for &id in &plan.remove {
            gst::info!(
                CAT,
                imp = self,
                "Object {id}: absent and unmatched on {} inferred frames, removed",
                rules.remove_after
            );
            queue(vec![Command::Remove { id }], &mut refused);
        }
        for (id, d) in &plan.refresh {
            gst::debug!(
                CAT,
                imp = self,
                "Object {id}: re-prompted with {} box {:?}",
                d.label,
                d.bbox
            );
            queue(
                vec![Command::Prompt {
                    id: *id,
                    clicks: Vec::new(),
                    bbox: prompt_box(d),
                    clear: true,
                }],
                &mut refused,
            );
        }
        let max = settings.max_objects as usize;
        let mut full = false;
        for d in &plan.start {
            if assoc.live() >= max {
                full = true;
                break;
            }
            let cmd = Command::Prompt {
                id: NEW_OBJECT,
                clicks: Vec::new(),
                bbox: prompt_box(d),
                clear: false,
            };
            if let Some(id) = queue(vec![cmd], &mut refused).filter(|id| *id != NEW_OBJECT) {
                gst::debug!(
                    CAT,
                    imp = self,
                    "Object {id} started by {} detection {} at {:?}",
                    d.label,
                    d.id,
                    d.bbox
                );
                assoc.started(id, d, number);
            }
        }
        // one warning each time the limit starts refusing detections
        if full && !assoc.full_warned {
            refused.push((
                "detections".into(),
                format!(
                    "'{PROP_MAX_OBJECTS}' ({max}) objects are tracked: new detections are \
                     not tracked until some are removed (see remove-after)"
                ),
            ));
        }
        assoc.full_warned = full;
        refused
    }
}
