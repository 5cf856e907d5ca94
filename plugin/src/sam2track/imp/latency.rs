// SPDX-License-Identifier: MPL-2.0

//! The latency `sam2track` adds: none in async mode (frames are not held),
//! the longest inference seen in sync mode, re-announced when it grows.

use std::time::Duration;

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

use super::Sam2Track;
use crate::sam2track::Mode;
use crate::sync::lock;

impl Sam2Track {
    /// Latency this element adds: none in async mode (frames are not held);
    /// the longest inference seen in sync mode.
    pub(super) fn added_latency(&self, upstream_live: bool) -> gst::ClockTime {
        let mode = lock(&self.settings).mode;
        let mut state = lock(&self.state);
        let Some(state) = state.as_mut() else {
            return gst::ClockTime::ZERO;
        };
        if Self::effective_async(mode, upstream_live) {
            return gst::ClockTime::ZERO;
        }
        let l = gst::ClockTime::from_nseconds(state.max_inference.as_nanos() as u64);
        state.reported_latency = l;
        l
    }

    pub(super) fn effective_async(mode: Mode, live: bool) -> bool {
        match mode {
            Mode::Auto => live,
            Mode::Sync => false,
            Mode::Async => true,
        }
    }

    pub(super) fn upstream_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        self.obj().sink_pad().peer_query(&mut q) && q.result().0
    }

    /// Keeps the longest inference time; posts a LATENCY message when it
    /// grew by more than 20% over the reported latency (sync mode only).
    pub(super) fn note_inference(&self, elapsed: Duration) {
        let grew = {
            let mut state = lock(&self.state);
            let Some(state) = state.as_mut() else { return };
            state.max_inference = state.max_inference.max(elapsed);
            let reported = state.reported_latency.nseconds() as u128;
            state.max_inference.as_nanos() > reported + reported / 5
                && state.upstream_live == Some(true)
        };
        if grew {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }
}
