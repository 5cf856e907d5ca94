// SPDX-License-Identifier: MPL-2.0

//! Every prompt waiting for a frame, whichever way it came, and the object
//! ids: the `prompt` property, the prompt file's schedule, serialized
//! downstream events (for the next frame in stream order), and the rest
//! (signals, upstream and out-of-band events, clicks, prompts an async
//! frame could not take). [`Inbox::take`] hands a frame its prompts in that
//! order.

use super::ids::{NoIdLeft, ObjectIds};
use super::prompt::{self, Command, ScheduledPrompt, When};

/// Most prompts (commands) waiting for the next frame, per channel: prompts
/// sent while no frame flows must not grow memory without bound.
pub const MAX_WAITING_PROMPTS: usize = 100_000;

/// How a prompt came, which decides when it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The next frame the element runs, whatever its place in the stream
    /// (signals, upstream and out-of-band events, clicks).
    Next,
    /// The next frame after the event in stream order (serialized
    /// downstream events).
    Serialized,
}

/// Why prompts were not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{waiting} prompts already wait for the next frame, {count} more would pass the \
     {MAX_WAITING_PROMPTS} allowed"
)]
pub struct Full {
    pub waiting: usize,
    pub count: usize,
}

/// Prompts for one frame, and what to warn about.
#[derive(Debug, Default)]
pub struct Taken {
    pub commands: Vec<Command>,
    /// (what, why) of prompts that could not be applied.
    pub refused: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct Inbox {
    next: Vec<Command>,
    serialized: Vec<Command>,
    /// The `prompt` property was set and is not applied yet.
    prompt_pending: bool,
    /// Prompt-file entries and whether each was applied.
    schedule: Vec<(ScheduledPrompt, bool)>,
    /// After a resetting flush: re-arm time entries at the next frame.
    rearm: bool,
    ids: ObjectIds,
    /// Object the last click created (shift-clicks go to it).
    pub last_clicked: u32,
}

impl Inbox {
    /// A new stream: the prompt file's entries, and whether the `prompt`
    /// property holds prompts for the first frame.
    pub fn start(&mut self, schedule: Vec<ScheduledPrompt>, prompt_pending: bool) {
        *self = Inbox {
            schedule: schedule.into_iter().map(|p| (p, false)).collect(),
            prompt_pending,
            ..Inbox::default()
        };
    }

    /// The stream stopped: everything waiting is dropped.
    pub fn stop(&mut self) {
        *self = Inbox::default();
    }

    /// The `prompt` property was set (`pending`: to prompts).
    pub fn set_prompt_pending(&mut self, pending: bool) {
        self.prompt_pending = pending;
    }

    /// Takes `cmds` for a frame, giving new objects their ids; returns the
    /// id of the first command (0 when it has none) and a command refused
    /// for want of an id, if any.
    pub fn push(
        &mut self,
        channel: Channel,
        cmds: Vec<Command>,
    ) -> Result<(u32, Option<(Command, NoIdLeft)>), Full> {
        let waiting = match channel {
            Channel::Next => self.next.len(),
            Channel::Serialized => self.serialized.len(),
        };
        if waiting + cmds.len() > MAX_WAITING_PROMPTS {
            return Err(Full {
                waiting,
                count: cmds.len(),
            });
        }
        let (cmds, refused) = self.ids.assign(cmds);
        let id = cmds.first().and_then(Command::id).unwrap_or(0);
        match channel {
            Channel::Next => self.next.extend(cmds),
            Channel::Serialized => self.serialized.extend(cmds),
        }
        Ok((id, refused))
    }

    /// Prompts an async frame could not take: first in line for the next one.
    pub fn give_back(&mut self, mut cmds: Vec<Command>) {
        cmds.append(&mut self.next);
        self.next = cmds;
    }

    /// Ids that are no longer objects.
    pub fn release(&mut self, ids: &[u32]) {
        for id in ids {
            self.ids.release(*id);
        }
    }

    /// A flush: serialized prompts go; with `reset` (objects forgotten)
    /// everything waiting goes and prompt-file times are re-armed against
    /// the next frame's stream time. The ids the dropped prompts named are
    /// released (the tracked ones are, when the reset runs).
    pub fn flush(&mut self, reset: bool) {
        let mut dropped = std::mem::take(&mut self.serialized);
        if reset {
            dropped.append(&mut self.next);
            self.rearm = true;
        }
        for id in dropped.iter().filter_map(Command::id) {
            self.ids.release(id);
        }
    }

    /// The prompts of frame `number` at `stream_time`, in order: the
    /// `prompt` property's (`property`: its text) when newly set, the prompt
    /// file's entries that are due, serialized events', then the others.
    pub fn take(
        &mut self,
        number: u64,
        stream_time: Option<gst::ClockTime>,
        property: Option<&str>,
    ) -> Taken {
        let mut taken = Taken::default();
        if std::mem::take(&mut self.prompt_pending)
            && let Some(text) = property
        {
            match prompt::parse_prompts(text) {
                Ok(cmds) => self.assign_into(cmds, &mut taken),
                Err(err) => taken
                    .refused
                    .push(("prompt property".into(), err.to_string())),
            }
        }
        if std::mem::take(&mut self.rearm) {
            for (entry, applied) in &mut self.schedule {
                if let (When::Time(t), Some(st)) = (entry.when, stream_time) {
                    *applied = t < st;
                }
            }
        }
        let mut due = Vec::new();
        for (entry, applied) in &mut self.schedule {
            let now = match entry.when {
                When::Frame(n) => n <= number,
                When::Time(t) => stream_time.is_some_and(|st| st >= t),
            };
            if now && !*applied {
                *applied = true;
                due.extend(entry.commands.iter().cloned());
            }
        }
        self.assign_into(due, &mut taken);
        taken.commands.append(&mut self.serialized);
        taken.commands.append(&mut self.next);
        taken
    }

    fn assign_into(&mut self, cmds: Vec<Command>, taken: &mut Taken) {
        let (cmds, refused) = self.ids.assign(cmds);
        taken.commands.extend(cmds);
        if let Some((cmd, err)) = refused {
            taken.refused.push((cmd.to_string(), err.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A click for object `id` (0: a new object).
    fn point(id: u32) -> Command {
        Command::Prompt {
            id,
            clicks: vec![prompt::Click {
                x: prompt::Coord::px(1.0),
                y: prompt::Coord::px(1.0),
                positive: true,
            }],
            bbox: None,
            clear: false,
        }
    }

    fn ids(cmds: &[Command]) -> Vec<u32> {
        cmds.iter().filter_map(Command::id).collect()
    }

    #[test]
    fn a_frame_takes_its_prompts_in_order() {
        gst::init().unwrap();
        let mut inbox = Inbox::default();
        let schedule =
            prompt::parse_prompt_file("0 5:point=1,1\n1s 6:point=1,1\n2 7:point=1,1\n").unwrap();
        inbox.start(schedule, true);
        inbox.push(Channel::Next, vec![point(3)]).unwrap();
        inbox.push(Channel::Serialized, vec![point(2)]).unwrap();
        let t = inbox.take(0, Some(gst::ClockTime::ZERO), Some("1:point=1,1"));
        assert_eq!(ids(&t.commands), vec![1, 5, 2, 3]);
        assert!(t.refused.is_empty());
        // the property applies once; time entries when the stream gets there
        let t = inbox.take(
            1,
            Some(gst::ClockTime::from_seconds(1)),
            Some("1:point=1,1"),
        );
        assert_eq!(ids(&t.commands), vec![6]);
        assert_eq!(ids(&inbox.take(2, None, None).commands), vec![7]);
        assert!(inbox.take(3, None, None).commands.is_empty());
    }

    #[test]
    fn a_resetting_flush_rearms_the_schedule_and_drops_what_waits() {
        let mut inbox = Inbox::default();
        inbox.start(
            prompt::parse_prompt_file("1s 6:point=1,1\n").unwrap(),
            false,
        );
        assert_eq!(
            ids(&inbox
                .take(0, Some(gst::ClockTime::from_seconds(2)), None)
                .commands),
            vec![6]
        );
        inbox.push(Channel::Next, vec![point(0)]).unwrap();
        inbox.flush(true);
        // seeking back before 1 s: the entry applies again
        assert!(
            inbox
                .take(1, Some(gst::ClockTime::ZERO), None)
                .commands
                .is_empty()
        );
        let t = inbox.take(2, Some(gst::ClockTime::from_seconds(1)), None);
        assert_eq!(ids(&t.commands), vec![6]);
    }

    #[test]
    fn give_back_goes_first_and_the_cap_holds() {
        let mut inbox = Inbox::default();
        inbox.push(Channel::Next, vec![point(2)]).unwrap();
        inbox.give_back(vec![point(1)]);
        assert_eq!(ids(&inbox.take(0, None, None).commands), vec![1, 2]);
        let many = vec![point(1); MAX_WAITING_PROMPTS];
        inbox.push(Channel::Next, many).unwrap();
        assert_eq!(
            inbox.push(Channel::Next, vec![point(1)]),
            Err(Full {
                waiting: MAX_WAITING_PROMPTS,
                count: 1
            })
        );
        // the other channel has its own room
        assert!(inbox.push(Channel::Serialized, vec![point(1)]).is_ok());
    }

    #[test]
    fn new_objects_get_ids_and_a_bad_property_is_reported() {
        let mut inbox = Inbox::default();
        let (id, refused) = inbox.push(Channel::Next, vec![point(0)]).unwrap();
        assert_eq!((id, refused), (1, None));
        inbox.set_prompt_pending(true);
        let t = inbox.take(0, None, Some("1:pint=1,1"));
        assert_eq!(t.refused.len(), 1);
        assert!(
            t.refused[0].1.contains("unknown kind 'pint'"),
            "{:?}",
            t.refused
        );
    }
}
