// SPDX-License-Identifier: MPL-2.0

//! Object ids: which are in use, and which one a new object gets.
//!
//! Ids the element picks count up from 1, past the highest id in use, so
//! downstream never sees an id come back while it can be avoided. Once that
//! would pass `u32::MAX` (a user prompted object 4294967295, or billions of
//! objects came and went), the lowest id not in use is taken. An id is in
//! use from the first prompt that names it until the object is removed, the
//! tracker refuses to create it, or a reset runs (counting goes on upward
//! after a reset or a flush: ids do not come back); 0 is never an object.

use std::collections::BTreeSet;

use super::prompt::{Command, NEW_OBJECT};

/// Why a new object got no id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no object id is left: all {0} ids are in use (remove objects or reset)")]
pub struct NoIdLeft(pub u64);

#[derive(Debug)]
pub struct ObjectIds {
    live: BTreeSet<u32>,
    /// Next id to try first; None: counting up passed `max`.
    next: Option<u32>,
    /// Largest id (u32::MAX; smaller in tests).
    max: u32,
}

impl Default for ObjectIds {
    fn default() -> Self {
        Self::with_max(u32::MAX)
    }
}

impl ObjectIds {
    fn with_max(max: u32) -> Self {
        ObjectIds {
            live: BTreeSet::new(),
            next: Some(1),
            max,
        }
    }

    /// Marks `id` (named by the user) as in use.
    pub fn claim(&mut self, id: u32) {
        if id == NEW_OBJECT {
            return;
        }
        self.live.insert(id);
        if let Some(next) = self.next
            && id >= next
        {
            self.next = id.checked_add(1).filter(|n| *n <= self.max);
        }
    }

    /// An id for a new object, now in use.
    pub fn allocate(&mut self) -> Result<u32, NoIdLeft> {
        let id = match self.next {
            Some(next) => next,
            None => self.lowest_free().ok_or(NoIdLeft(u64::from(self.max)))?,
        };
        self.claim(id);
        Ok(id)
    }

    fn lowest_free(&self) -> Option<u32> {
        // the live set is small (objects tracked or queued): walk it in order
        let mut candidate = 1u32;
        for &id in &self.live {
            if id > candidate {
                break;
            }
            if id == candidate {
                candidate = candidate.checked_add(1)?;
            }
        }
        (candidate <= self.max).then_some(candidate)
    }

    /// `id` is no longer an object.
    pub fn release(&mut self, id: u32) {
        self.live.remove(&id);
    }

    /// Gives the new-object commands of `cmds` their ids and notes the ids
    /// named by the others (a removal releases its id; a reset releases
    /// nothing here: the frame that runs it tells which ids it dropped, as
    /// prompts queued before it on another channel may still run first). A
    /// command for which no id is left is taken out and returned with the
    /// error.
    pub fn assign(&mut self, cmds: Vec<Command>) -> (Vec<Command>, Option<(Command, NoIdLeft)>) {
        let mut refused = None;
        let mut out = Vec::with_capacity(cmds.len());
        for mut cmd in cmds {
            match &cmd {
                Command::Reset => {}
                Command::Remove { id } => self.release(*id),
                _ => match cmd.id() {
                    Some(NEW_OBJECT) => match self.allocate() {
                        Ok(id) => cmd.set_new_id(id),
                        Err(err) => {
                            refused.get_or_insert((cmd, err));
                            continue;
                        }
                    },
                    Some(id) => self.claim(id),
                    None => {}
                },
            }
            out.push(cmd);
        }
        (out, refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_up_past_the_highest_in_use() {
        let mut ids = ObjectIds::default();
        assert_eq!(ids.allocate(), Ok(1));
        ids.claim(7);
        assert_eq!(ids.allocate(), Ok(8));
        ids.release(8);
        // a released id does not come back while counting up can go on
        assert_eq!(ids.allocate(), Ok(9));
    }

    #[test]
    fn no_collision_and_no_zero_after_the_largest_id() {
        let mut ids = ObjectIds::default();
        ids.claim(1);
        ids.claim(u32::MAX);
        // the defect: MAX, then 0, then 1 (merged into live objects)
        let got: Vec<u32> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(got, vec![2, 3, 4]);
        assert!(!got.contains(&u32::MAX) && !got.contains(&0));
    }

    #[test]
    fn refuses_when_every_id_is_in_use() {
        let mut ids = ObjectIds::with_max(3);
        assert_eq!(ids.allocate(), Ok(1));
        assert_eq!(ids.allocate(), Ok(2));
        assert_eq!(ids.allocate(), Ok(3));
        assert_eq!(ids.allocate(), Err(NoIdLeft(3)));
        ids.release(2);
        assert_eq!(ids.allocate(), Ok(2));
        assert!(ids.allocate().is_err());
    }

    #[test]
    fn assign_refuses_only_what_has_no_id() {
        let mut ids = ObjectIds::with_max(2);
        let prompt = |id| Command::Prompt {
            id,
            clicks: Vec::new(),
            bbox: None,
            clear: false,
        };
        let (cmds, refused) = ids.assign(vec![prompt(0), prompt(0), prompt(0), prompt(2)]);
        let got: Vec<_> = cmds.iter().map(|c| c.id().unwrap()).collect();
        assert_eq!(got, vec![1, 2, 2]);
        assert_eq!(refused.map(|r| r.1), Some(NoIdLeft(2)));
        let (cmds, refused) = ids.assign(vec![Command::Remove { id: 1 }, prompt(0)]);
        assert!(refused.is_none());
        assert_eq!(cmds[1].id(), Some(1));
        // a reset frees ids when it runs (the frame tells), not when queued
        let (_, refused) = ids.assign(vec![Command::Reset, prompt(0)]);
        assert!(refused.is_some());
        ids.release(1);
        ids.release(2);
        let (cmds, refused) = ids.assign(vec![prompt(0)]);
        assert!(refused.is_none());
        assert_eq!(cmds[0].id(), Some(1));
    }
}
