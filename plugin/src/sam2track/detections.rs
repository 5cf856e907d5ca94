// SPDX-License-Identifier: MPL-2.0

//! Prompts from an upstream detector: `GstVideoRegionOfInterestMeta` on
//! incoming buffers become box prompts (`roi-prompts` property), and the
//! life of the tracks they start.
//!
//! Each frame, the detections of the wanted types are associated one to one
//! with the tracked objects, greedily by decreasing IoU above `roi-match-iou`,
//! where an object's IoU with a detection is the larger of two: against the
//! box of the detection last matched to it (as detector-side trackers
//! associate detections frame to frame: it holds while the mask is not
//! computed yet, in async mode, or poor), and against the box of its latest
//! mask (objects started by clicks or other prompts have only this one).
//! Then:
//! * `new`: an unmatched detection starts a new object with its box;
//! * `refresh`: as `new`, and a matched detection re-prompts its object with
//!   its box every `roi-refresh-interval` frames, or at once when the
//!   object's mask box drifted from it (IoU below `roi-drift-iou`): SAM 2
//!   takes it as a correction (a conditioning frame, as many kept as
//!   `max-cond-frames` says).
//!
//! Track lifecycle (`remove-after`, any prompt source): an object judged
//! absent (SAM 2's occlusion score, or an empty mask) on that many
//! consecutive inferred frames, none of which had a detection matched to
//! it, is removed. Ids are never reused (see `ids`).
//!
//! This file holds no GStreamer element state: [`Associator`] is driven by
//! the element with the detections of a frame and the latest outcome.

use std::collections::{BTreeMap, BTreeSet};

use gst::glib;

use super::meta::ROI_TYPE;

/// What upstream detections do (`roi-prompts` property).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstSam2TrackRoiPrompts")]
pub enum RoiPrompts {
    #[default]
    #[enum_value(name = "Ignore region-of-interest metas", nick = "none")]
    None = 0,
    #[enum_value(
        name = "A detection that matches no tracked object starts a new one",
        nick = "new"
    )]
    New = 1,
    #[enum_value(
        name = "As new, and matched detections re-prompt their object (every \
                roi-refresh-interval frames, or when the mask drifts from the box)",
        nick = "refresh"
    )]
    Refresh = 2,
}

/// One detection: a region-of-interest meta of a wanted type.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// x0, y0, x1, y1 in frame pixels.
    pub bbox: [f32; 4],
    /// The meta's `roi_type` (the detector's label: "face", "person", ...).
    pub label: String,
    /// The meta's id, as the detector set it (detectors that number none
    /// leave GStreamer's default).
    pub id: i32,
}

/// The association settings (from the properties).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub mode: RoiPrompts,
    /// Wanted `roi_type`s; empty: every type but sam2track's own.
    pub types: Vec<String>,
    pub match_iou: f32,
    /// Frames between re-prompts of a matched object (`refresh`); 0: only on drift.
    pub refresh_interval: u32,
    pub drift_iou: f32,
    /// Consecutive absent and unmatched inferred frames before removal; 0: never.
    pub remove_after: u32,
}

impl Rules {
    /// Whether detections are read at all.
    pub fn reads_detections(&self) -> bool {
        self.mode != RoiPrompts::None
    }

    /// Whether a region-of-interest meta of type `roi_type` is a detection.
    pub fn wants(&self, roi_type: &str) -> bool {
        if self.types.is_empty() {
            roi_type != ROI_TYPE
        } else {
            self.types.iter().any(|t| t == roi_type)
        }
    }
}

/// Parses `roi-types`: comma-separated types, spaces around them ignored.
pub fn parse_types(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// The detections on `buffer` that `rules` want, in frame pixels (boxes
/// clamped to the `width`×`height` frame, empty ones dropped).
pub fn read(buffer: &gst::BufferRef, rules: &Rules, width: u32, height: u32) -> Vec<Detection> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter_map(|roi| {
            let label = roi.roi_type().to_string();
            if !rules.wants(&label) {
                return None;
            }
            let (x, y, w, h) = roi.rect();
            let x1 = x.saturating_add(w).min(width);
            let y1 = y.saturating_add(h).min(height);
            let (x0, y0) = (x.min(width), y.min(height));
            (x1 > x0 && y1 > y0).then(|| Detection {
                bbox: [x0 as f32, y0 as f32, x1 as f32, y1 as f32],
                label,
                id: roi.id(),
            })
        })
        .collect()
}

/// IoU of two x0, y0, x1, y1 boxes (0 when either is empty).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// One tracked object as the latest outcome shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub id: u32,
    /// x0, y0, x1, y1 of the mask; None: empty mask.
    pub mask_box: Option<[f32; 4]>,
    /// SAM 2 judges it present (object score > 0) and its mask is not empty.
    pub present: bool,
}

/// The latest inference outcome, as the association needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest<'a> {
    /// The frame the outcome was computed on.
    pub frame: u64,
    pub objects: &'a [Seen],
}

/// The detection that started an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub label: String,
    /// The region-of-interest meta's id (-1: none).
    pub detection_id: i32,
}

#[derive(Debug, Clone)]
struct Track {
    /// The box of the detection last matched (None: never matched one).
    detection_box: Option<[f32; 4]>,
    /// The detection that started the object (None: started otherwise).
    origin: Option<Origin>,
    /// Frame of the last box prompt from a detection.
    last_prompt: Option<u64>,
    /// Consecutive absent-and-unmatched inferred frames.
    lost: u32,
    /// Whether a detection matched the object since the last counted outcome.
    matched_since: bool,
    mask_box: Option<[f32; 4]>,
    /// Frame of the outcome `mask_box` comes from.
    mask_frame: Option<u64>,
    removing: bool,
}

impl Track {
    fn new() -> Self {
        Track {
            detection_box: None,
            origin: None,
            last_prompt: None,
            lost: 0,
            matched_since: false,
            mask_box: None,
            mask_frame: None,
            removing: false,
        }
    }
}

/// What to do on a frame.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// Detections that start new objects.
    pub start: Vec<Detection>,
    /// Objects to re-prompt with a detection's box.
    pub refresh: Vec<(u32, Detection)>,
    /// Objects lost for `remove-after` frames.
    pub remove: Vec<u32>,
    /// (detection index, object id) of every match (for logs and tests).
    pub matched: Vec<(usize, u32)>,
}

/// Associates detections with tracks, frame after frame.
#[derive(Debug, Default)]
pub struct Associator {
    tracks: BTreeMap<u32, Track>,
    /// Frame of the last outcome taken into account.
    last_outcome: Option<u64>,
    /// Ids released since the last outcome taken: an outcome computed before
    /// their release may still show them, once.
    released: BTreeSet<u32>,
    /// Whether the element warned that `max-objects` refuses detections (it
    /// warns again once the limit was left and reached again).
    pub full_warned: bool,
}

impl Associator {
    /// Forgets every track (stop, or a resetting flush).
    pub fn reset(&mut self) {
        *self = Associator::default();
    }

    /// The detections that started the tracked objects, by object id.
    pub fn origins(&self) -> BTreeMap<u32, Origin> {
        self.tracks
            .iter()
            .filter_map(|(id, t)| Some((*id, t.origin.clone()?)))
            .collect()
    }

    /// The detection that started object `id`, if one did.
    #[cfg(test)]
    fn origin(&self, id: u32) -> Option<&Origin> {
        self.tracks.get(&id).and_then(|t| t.origin.as_ref())
    }

    /// Object `id` was started on frame `frame` by `detection`.
    pub fn started(&mut self, id: u32, detection: &Detection, frame: u64) {
        let mut t = Track::new();
        t.detection_box = Some(detection.bbox);
        t.origin = Some(Origin {
            label: detection.label.clone(),
            detection_id: detection.id,
        });
        t.last_prompt = Some(frame);
        self.tracks.insert(id, t);
    }

    /// Objects that are no longer tracked (removed, refused, reset): the
    /// tracker tells, after the frame that dropped them.
    pub fn forget(&mut self, ids: &[u32]) {
        for id in ids {
            self.tracks.remove(id);
            // kept until the next outcome is taken: not while no outcome is
            // (the association is off), where nothing would ever clear them
            if self.last_outcome.is_some() {
                self.released.insert(*id);
            }
        }
    }

    /// Objects tracked or starting, removals queued excepted.
    pub fn live(&self) -> usize {
        self.tracks.values().filter(|t| !t.removing).count()
    }

    /// Plans frame `number`: `detections` on it (empty with `roi-prompts=none`)
    /// and the `latest` outcome (None: no objects yet).
    pub fn plan(
        &mut self,
        number: u64,
        detections: &[Detection],
        latest: Option<Latest<'_>>,
        rules: &Rules,
    ) -> Plan {
        let mut plan = Plan::default();
        let fresh = latest
            .as_ref()
            .is_some_and(|l| self.last_outcome.is_none_or(|f| l.frame > f));
        if let Some(l) = latest.as_ref().filter(|_| fresh) {
            self.take_outcome(l, rules, &mut plan);
        }

        // detections against tracks: every (detection, track) pair above the threshold
        let mut pairs: Vec<(f32, usize, u32)> = Vec::new();
        for (d, det) in detections.iter().enumerate() {
            for (&id, t) in &self.tracks {
                if t.removing {
                    continue;
                }
                let by_detection = t.detection_box.map_or(0.0, |b| iou(&det.bbox, &b));
                let by_mask = t.mask_box.map_or(0.0, |b| iou(&det.bbox, &b));
                let score = by_detection.max(by_mask);
                if score >= rules.match_iou && score > 0.0 {
                    pairs.push((score, d, id));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut det_used = vec![false; detections.len()];
        for (_, d, id) in pairs {
            if det_used[d] || plan.matched.iter().any(|&(_, m)| m == id) {
                continue;
            }
            det_used[d] = true;
            plan.matched.push((d, id));
        }
        for &(d, id) in &plan.matched {
            let det = &detections[d];
            let t = self.tracks.get_mut(&id).expect("matched a track");
            t.detection_box = Some(det.bbox);
            t.matched_since = true;
            t.lost = 0;
            if rules.mode == RoiPrompts::Refresh {
                let due = rules.refresh_interval > 0
                    && t.last_prompt
                        .is_none_or(|p| number >= p + u64::from(rules.refresh_interval));
                // drift: only judged on a mask computed after the last box prompt
                let judged = t
                    .mask_frame
                    .is_some_and(|m| t.last_prompt.is_none_or(|p| m > p));
                let drifted =
                    judged && t.mask_box.map_or(0.0, |b| iou(&det.bbox, &b)) < rules.drift_iou;
                if due || drifted {
                    t.last_prompt = Some(number);
                    plan.refresh.push((id, det.clone()));
                }
            }
        }
        if rules.reads_detections() {
            // unmatched detections start objects, but one object per place: a
            // detection overlapping one already starting (a detector's duplicate,
            // or two labels for one thing) is left out
            for (d, used) in detections.iter().zip(&det_used) {
                if !used
                    && !plan
                        .start
                        .iter()
                        .any(|s| iou(&s.bbox, &d.bbox) >= rules.match_iou)
                {
                    plan.start.push(d.clone());
                }
            }
        }
        plan
    }

    /// A newer outcome: object boxes, objects gone, and the lost counts.
    fn take_outcome(&mut self, latest: &Latest<'_>, rules: &Rules, plan: &mut Plan) {
        self.last_outcome = Some(latest.frame);
        let released = std::mem::take(&mut self.released);
        for seen in latest.objects {
            if released.contains(&seen.id) {
                continue;
            }
            let t = self.tracks.entry(seen.id).or_insert_with(Track::new);
            t.mask_box = seen.mask_box;
            t.mask_frame = Some(latest.frame);
            if seen.present || std::mem::take(&mut t.matched_since) {
                t.lost = 0;
            } else {
                t.lost += 1;
            }
            if rules.remove_after > 0 && t.lost >= rules.remove_after && !t.removing {
                t.removing = true;
                plan.remove.push(seen.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(mode: RoiPrompts) -> Rules {
        Rules {
            mode,
            types: Vec::new(),
            match_iou: 0.3,
            refresh_interval: 10,
            drift_iou: 0.5,
            remove_after: 3,
        }
    }

    /// The latest outcome: frame `frame` showing `objects`.
    fn at(frame: u64, objects: &[Seen]) -> Option<Latest<'_>> {
        Some(Latest { frame, objects })
    }

    fn det(x: f32, label: &str, id: i32) -> Detection {
        Detection {
            bbox: [x, 10.0, x + 20.0, 30.0],
            label: label.into(),
            id,
        }
    }

    fn seen(id: u32, x: Option<f32>, present: bool) -> Seen {
        Seen {
            id,
            mask_box: x.map(|x| [x, 10.0, x + 20.0, 30.0]),
            present,
        }
    }

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 0.0, 30.0, 10.0]), 0.0);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 10.0], &[0.0, 0.0, 0.0, 10.0]), 0.0);
    }

    #[test]
    fn types_filter() {
        let mut r = rules(RoiPrompts::New);
        assert!(r.wants("face") && !r.wants(ROI_TYPE));
        r.types = parse_types(" person, car ,,");
        assert_eq!(r.types, vec!["person", "car"]);
        assert!(r.wants("car") && !r.wants("face"));
    }

    #[test]
    fn new_objects_only_for_unmatched_detections() {
        let r = rules(RoiPrompts::New);
        let mut a = Associator::default();
        let p = a.plan(0, &[det(0.0, "car", 7)], None, &r);
        assert_eq!(p.start.len(), 1);
        a.started(1, &p.start[0], 0);
        assert_eq!(a.origin(1).unwrap().label, "car");
        // no outcome yet (async): matched by the detection box, moved by 4 px
        let p = a.plan(1, &[det(4.0, "car", 7), det(100.0, "person", 8)], None, &r);
        assert_eq!(p.matched, vec![(0, 1)]);
        assert_eq!(p.start, vec![det(100.0, "person", 8)]);
        assert!(p.refresh.is_empty(), "new mode never re-prompts");
    }

    #[test]
    fn matched_by_mask_box_when_the_detection_box_is_far() {
        let r = rules(RoiPrompts::New);
        let mut a = Associator::default();
        // an object started by a click: only its mask box is known
        let objs = [seen(5, Some(50.0), true)];
        let p = a.plan(3, &[det(52.0, "car", 1)], at(2, &objs), &r);
        assert_eq!(p.matched, vec![(0, 5)]);
        assert!(p.start.is_empty());
    }

    #[test]
    fn one_detection_per_object() {
        let r = rules(RoiPrompts::New);
        let mut a = Associator::default();
        let objs = [seen(1, Some(0.0), true)];
        let p = a.plan(1, &[det(2.0, "a", 1), det(0.0, "a", 2)], at(0, &objs), &r);
        assert_eq!(p.matched, vec![(1, 1)], "the best match wins");
        assert_eq!(p.start, vec![det(2.0, "a", 1)]);
    }

    #[test]
    fn duplicate_detections_start_one_object() {
        let r = rules(RoiPrompts::New);
        let mut a = Associator::default();
        let p = a.plan(
            0,
            &[
                det(0.0, "car", 1),
                det(2.0, "vehicle", 2),
                det(60.0, "car", 3),
            ],
            None,
            &r,
        );
        assert_eq!(p.start, vec![det(0.0, "car", 1), det(60.0, "car", 3)]);
    }

    #[test]
    fn refresh_on_interval_and_drift() {
        let r = rules(RoiPrompts::Refresh);
        let mut a = Associator::default();
        a.started(1, &det(0.0, "car", 1), 0);
        let ok = [seen(1, Some(0.0), true)];
        for n in 1..10 {
            let p = a.plan(n, &[det(0.0, "car", 1)], at(n - 1, &ok), &r);
            assert!(p.refresh.is_empty(), "frame {n}: neither due nor drifted");
        }
        let p = a.plan(10, &[det(0.0, "car", 1)], at(9, &ok), &r);
        assert_eq!(p.refresh.len(), 1, "due after 10 frames");
        // the mask drifts away from the box: re-prompt at once, once the mask
        // computed after the last prompt shows it
        let off = [seen(1, Some(15.0), true)];
        let p = a.plan(11, &[det(0.0, "car", 1)], at(10, &off), &r);
        assert!(
            p.refresh.is_empty(),
            "the outcome of frame 10 predates the prompt's effect"
        );
        let p = a.plan(12, &[det(0.0, "car", 1)], at(11, &off), &r);
        assert_eq!(p.refresh.len(), 1, "drifted: IoU 0.14 < 0.5");
    }

    #[test]
    fn lost_objects_are_removed_after_k_frames() {
        let r = rules(RoiPrompts::New);
        let mut a = Associator::default();
        a.started(1, &det(0.0, "car", 1), 0);
        let gone = [seen(1, None, false)];
        // absent but matched: kept
        let p = a.plan(1, &[det(0.0, "car", 1)], at(0, &gone), &r);
        assert!(p.remove.is_empty());
        let p = a.plan(2, &[], at(1, &gone), &r);
        assert!(p.remove.is_empty(), "frame 1 had a match: not counted");
        let p = a.plan(3, &[], at(2, &gone), &r);
        assert!(p.remove.is_empty());
        // the same outcome again (async, inference slower than frames): not counted
        let p = a.plan(4, &[], at(2, &gone), &r);
        assert!(p.remove.is_empty());
        let p = a.plan(5, &[], at(4, &gone), &r);
        assert!(p.remove.is_empty());
        let p = a.plan(6, &[], at(5, &gone), &r);
        assert_eq!(p.remove, vec![1], "3 absent, unmatched outcomes");
        // a removing object takes no more detections: a new one starts
        let p = a.plan(7, &[det(0.0, "car", 1)], at(6, &gone), &r);
        assert!(p.matched.is_empty() && p.start.len() == 1 && p.remove.is_empty());
    }

    #[test]
    fn present_objects_are_never_removed() {
        let r = rules(RoiPrompts::None);
        let mut a = Associator::default();
        let here = [seen(4, Some(0.0), true)];
        for n in 0..20 {
            let p = a.plan(n + 1, &[], at(n, &here), &r);
            assert!(p.remove.is_empty() && p.start.is_empty());
        }
    }

    #[test]
    fn released_objects_are_forgotten() {
        let r = rules(RoiPrompts::New);
        let mut a = Associator::default();
        a.started(1, &det(0.0, "car", 1), 5);
        assert_eq!(a.live(), 1);
        // an outcome without it (async: computed before the prompt ran) keeps it
        a.plan(6, &[], at(4, &[]), &r);
        assert!(a.origin(1).is_some());
        // the tracker released it (removed by the user, refused, reset)
        a.forget(&[1]);
        assert!(a.origin(1).is_none() && a.live() == 0);
        // an outcome computed before the release still shows it: not taken back
        let before = [seen(1, Some(0.0), true)];
        let p = a.plan(7, &[det(0.0, "car", 1)], at(6, &before), &r);
        assert!(p.matched.is_empty() && p.start.len() == 1);
        assert_eq!(a.live(), 0);
    }
}
