// SPDX-License-Identifier: MPL-2.0

//! How prompts come in: signals, events and clicks queued for a frame
//! (refused with a warning once the element failed or too many wait), and
//! what the inference thread tells after a frame.

use gst::subclass::prelude::*;

use super::{CAT, Sam2Track};
use crate::sam2track::inbox::Channel;
use crate::sam2track::infer::Note;
use crate::sam2track::navigation::{self, Click};
use crate::sam2track::prompt::{self, Command, PromptError};
use crate::sync::lock;

impl Sam2Track {
    /// Posts a warning about a refused prompt on the bus.
    pub(in crate::sam2track) fn warn_prompt(&self, what: &str, why: &str) {
        self.warn_prompts(&format!("Ignored prompt ({what}): {why}"));
    }

    /// Posts a warning about refused prompts on the bus.
    pub(super) fn warn_prompts(&self, text: &str) {
        gst::element_imp_warning!(
            self,
            gst::StreamError::Format,
            ("{}", text),
            ["the stream goes on without it"]
        );
    }

    /// Acts on what the inference thread tells after a frame.
    pub(super) fn take_note(&self, note: Note) {
        match note {
            Note::Refused { frame, prompts } => match prompts.as_slice() {
                [(what, why)] => self.warn_prompt(what, why),
                _ => {
                    const LISTED: usize = 3;
                    let mut text = prompts
                        .iter()
                        .take(LISTED)
                        .map(|(what, why)| format!("{what}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    if prompts.len() > LISTED {
                        text.push_str(&format!("; and {} more", prompts.len() - LISTED));
                    }
                    self.warn_prompts(&format!(
                        "Ignored {} prompts on frame {frame}: {text}",
                        prompts.len()
                    ));
                }
            },
            Note::Released(ids) => {
                lock(&self.inbox).release(&ids);
                lock(&self.detections).forget(&ids);
            }
        }
    }

    pub(in crate::sam2track) fn warn_error(&self, what: &str, err: &PromptError) {
        self.warn_prompt(what, &err.to_string());
    }

    /// Why prompts are refused now: the inference failed (the element stays
    /// failed until it is stopped and started again).
    pub(super) fn refusing(&self, what: &str) -> bool {
        let fatal = lock(&self.state).as_ref().and_then(|s| s.worker.failure());
        match fatal {
            Some(err) => {
                self.warn_prompt(
                    what,
                    &format!(
                        "the element failed ({err}) and takes no prompts until it is restarted"
                    ),
                );
                true
            }
            None => false,
        }
    }

    /// Queues commands for a frame; returns the object id of the first (0
    /// when it has none), or None, with a warning, when refused (the element
    /// failed, or too many prompts wait).
    pub(super) fn enqueue(&self, what: &str, channel: Channel, cmds: Vec<Command>) -> Option<u32> {
        if self.refusing(what) {
            return None;
        }
        let pushed = lock(&self.inbox).push(channel, cmds);
        match pushed {
            Ok((id, no_id)) => {
                if let Some((cmd, err)) = no_id {
                    self.warn_prompt(&cmd.to_string(), &err.to_string());
                }
                Some(id)
            }
            Err(full) => {
                self.warn_prompt(what, &full.to_string());
                None
            }
        }
    }

    /// Queues commands for the next frame the engine runs.
    pub(in crate::sam2track) fn queue(&self, what: &str, cmds: Vec<Command>) -> bool {
        self.enqueue(what, Channel::Next, cmds).is_some()
    }

    /// Queues one command; returns its object id (0 when refused).
    pub(in crate::sam2track) fn queue_one(&self, what: &str, cmd: Command) -> u32 {
        self.enqueue(what, Channel::Next, vec![cmd]).unwrap_or(0)
    }

    /// Queues the commands of a sam2 structure built by a signal; returns the
    /// object id (0 and a bus warning when malformed).
    pub(in crate::sam2track) fn queue_structure(&self, what: &str, s: &gst::Structure) -> u32 {
        let what = format!("{what} signal");
        match prompt::parse_structure(s) {
            Ok(cmds) => self.enqueue(&what, Channel::Next, cmds).unwrap_or(0),
            Err(err) => {
                self.warn_error(&what, &err);
                0
            }
        }
    }

    /// A click from the video sink (see [`navigation::click`]); returns
    /// whether the event was used.
    pub(super) fn handle_navigation(&self, event: &gst::Event) -> bool {
        let Some(frame) = lock(&self.state)
            .as_ref()
            .and_then(|s| s.video_info.as_ref())
            .map(|i| (i.width() as usize, i.height() as usize))
        else {
            return false;
        };
        let selected = lock(&self.settings).selected_object;
        let last = lock(&self.inbox).last_clicked;
        match navigation::click(event, frame, selected, last) {
            Click::NotOurs => false,
            Click::NoTarget => {
                self.warn_prompt("shift-click", "no object to exclude the point from yet");
                true
            }
            Click::Prompt { command, new_click } => {
                gst::debug!(CAT, imp = self, "Click: {command}");
                let id = self.queue_one("click", command);
                if new_click {
                    lock(&self.inbox).last_clicked = id;
                }
                true
            }
        }
    }
}
