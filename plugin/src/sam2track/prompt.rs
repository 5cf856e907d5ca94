// SPDX-License-Identifier: MPL-2.0

//! Prompts: the typed commands the element applies to the tracker, and the
//! three ways to write them down:
//!
//! * the prompt string grammar (`prompt` property, `prompt` action signal,
//!   `sam2-prompt` event field, prompt files):
//!   `1:point=320,240;2:box=10,10,200,180;1:neg=40,60`;
//! * prompt files: one `WHEN PROMPTS` line per frame number or timestamp;
//! * event structures (`sam2-prompt`, `sam2-mask`, `sam2-remove`,
//!   `sam2-reset`): in [`super::events`], re-exported here.
//!
//! No tracker or GStreamer state lives here; the element resolves
//! coordinates against the frame the prompt lands on.

use std::fmt;
use std::path::Path;

use crate::engine::files;

pub use super::events::{
    EVENT_MASK, EVENT_PREFIX, EVENT_PROMPT, EVENT_REMOVE, EVENT_RESET, parse_structure,
    prompt_structure,
};

/// Object id meaning "a new object": the element picks the next free id.
pub const NEW_OBJECT: u32 = 0;

/// Largest prompt file read (about 250,000 one-click lines).
pub const MAX_PROMPT_FILE_BYTES: u64 = 8 << 20;
/// Largest width or height of a mask prompt, in pixels.
pub const MAX_MASK_SIDE: usize = 16384;

/// Why a prompt or event was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromptError {
    /// The structure is not a sam2track event: pass it on.
    #[error("not a sam2track event")]
    NotOurs,
    /// Ours, but a field is missing or wrong: warn and ignore it.
    #[error("field '{field}': {reason}")]
    Malformed { field: String, reason: String },
}

pub(super) fn malformed(field: impl Into<String>, reason: impl Into<String>) -> PromptError {
    PromptError::Malformed {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One coordinate: frame pixels, or a fraction of the frame's width/height
/// (`50%` in the grammar, `relative=true` in events).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coord {
    pub value: f32,
    pub relative: bool,
}

impl Coord {
    pub fn px(value: f32) -> Self {
        Coord {
            value,
            relative: false,
        }
    }

    pub fn rel(value: f32) -> Self {
        Coord {
            value,
            relative: true,
        }
    }

    /// Pixels along an axis of `extent` pixels.
    pub fn resolve(self, extent: usize) -> f32 {
        if self.relative {
            self.value * extent as f32
        } else {
            self.value
        }
    }
}

impl fmt::Display for Coord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.relative {
            write!(f, "{}%", self.value * 100.0)
        } else {
            write!(f, "{}", self.value)
        }
    }
}

/// A click: position and whether it is positive (part of the object).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Click {
    pub x: Coord,
    pub y: Coord,
    pub positive: bool,
}

/// A mask prompt: `width`×`height` GRAY8, non-zero = object. Resized to the
/// frame (nearest) when the sizes differ.
#[derive(Clone, PartialEq)]
pub struct MaskPrompt {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl fmt::Debug for MaskPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskPrompt({}x{})", self.width, self.height)
    }
}

impl MaskPrompt {
    /// The mask at `width`×`height` as 0/1 (nearest neighbour, as the
    /// engine resizes mask prompts).
    pub fn resized(&self, width: usize, height: usize) -> Vec<u8> {
        crate::engine::step::resize_nearest(&self.data, self.width, self.height, width, height)
    }
}

/// What the element does to the tracker on a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Clicks and/or a box for object `id` ([`NEW_OBJECT`]: a new one).
    /// `clear`: forget the object's earlier clicks on this frame.
    Prompt {
        id: u32,
        clicks: Vec<Click>,
        bbox: Option<[Coord; 4]>,
        clear: bool,
    },
    /// A mask for object `id`.
    Mask { id: u32, mask: MaskPrompt },
    /// Stop tracking object `id`.
    Remove { id: u32 },
    /// Stop tracking whichever object covers this point (right click).
    RemoveAt { x: Coord, y: Coord },
    /// Forget every object and the whole memory bank.
    Reset,
}

impl Command {
    /// The object id the command names, if any.
    pub fn id(&self) -> Option<u32> {
        match self {
            Command::Prompt { id, .. } | Command::Mask { id, .. } | Command::Remove { id } => {
                Some(*id)
            }
            Command::RemoveAt { .. } | Command::Reset => None,
        }
    }

    /// Gives a command for [`NEW_OBJECT`] the id `id`.
    pub fn set_new_id(&mut self, new: u32) {
        match self {
            Command::Prompt { id, .. } | Command::Mask { id, .. } if *id == NEW_OBJECT => *id = new,
            _ => {}
        }
    }
}

/// Short, human words for warnings: `object 3: box (10, 10)-(50, 40) and 2 points`.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Clicks listed in full up to this many.
        const LISTED: usize = 3;
        match self {
            Command::Prompt {
                id, clicks, bbox, ..
            } => {
                write!(f, "object {id}: ")?;
                if let Some([x0, y0, x1, y1]) = bbox {
                    write!(f, "box ({x0}, {y0})-({x1}, {y1})")?;
                    if !clicks.is_empty() {
                        f.write_str(" and ")?;
                    }
                }
                if clicks.len() > LISTED {
                    let negative = clicks.iter().filter(|c| !c.positive).count();
                    return write!(f, "{} points ({negative} negative)", clicks.len());
                }
                for (i, c) in clicks.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    let kind = if c.positive {
                        "point"
                    } else {
                        "negative point"
                    };
                    write!(f, "{sep}{kind} ({}, {})", c.x, c.y)?;
                }
                Ok(())
            }
            Command::Mask { id, mask } => {
                write!(f, "object {id}: {}x{} mask", mask.width, mask.height)
            }
            Command::Remove { id } => write!(f, "remove object {id}"),
            Command::RemoveAt { x, y } => write!(f, "remove the object at ({x}, {y})"),
            Command::Reset => f.write_str("reset"),
        }
    }
}

// ------------------------------------------------------------------ grammar

fn parse_number(field: &str, text: &str) -> Result<Coord, PromptError> {
    let text = text.trim();
    let (num, relative) = match text.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (text, false),
    };
    let v: f32 = num
        .parse()
        .map_err(|_| malformed(field, format!("'{text}' is not a number")))?;
    if !v.is_finite() {
        return Err(malformed(field, format!("'{text}' is not finite")));
    }
    Ok(if relative {
        Coord::rel(v / 100.0)
    } else {
        Coord::px(v)
    })
}

fn parse_numbers(field: &str, text: &str, count: usize) -> Result<Vec<Coord>, PromptError> {
    let values = text
        .split(',')
        .map(|t| parse_number(field, t))
        .collect::<Result<Vec<_>, _>>()?;
    if values.len() != count {
        return Err(malformed(
            field,
            format!("'{text}' has {} numbers, expected {count}", values.len()),
        ));
    }
    Ok(values)
}

/// Parses the prompt grammar into commands. Entries are separated by `;`
/// (empty ones are ignored); consecutive point/box entries of the same
/// object are merged into one prompt:
///
/// ```text
/// prompts := entry (';' entry)*
/// entry   := ID ':' ('point' | 'pos' | 'neg') '=' X ',' Y
///          | ID ':' 'box' '=' X0 ',' Y0 ',' X1 ',' Y1
///          | ID ':' 'remove'
///          | 'reset'
/// number  := decimal, in frame pixels, or with a '%' suffix: percent of
///            the frame's width (x) or height (y)
/// ```
pub fn parse_prompts(text: &str) -> Result<Vec<Command>, PromptError> {
    let mut commands: Vec<Command> = Vec::new();
    for (n, entry) in text.split(';').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let field = format!("prompt entry {} ('{entry}')", n + 1);
        if entry.eq_ignore_ascii_case("reset") {
            commands.push(Command::Reset);
            continue;
        }
        let (id, rest) = entry
            .split_once(':')
            .ok_or_else(|| malformed(&field, "expected ID:KIND[=VALUES] or 'reset'"))?;
        let id: u32 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id != NEW_OBJECT)
            .ok_or_else(|| {
                malformed(
                    &field,
                    format!("object id '{}' is not a number >= 1", id.trim()),
                )
            })?;
        let (kind, values) = match rest.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (rest.trim().to_ascii_lowercase(), None),
        };
        fn need_values<'a>(
            values: Option<&'a str>,
            field: &str,
            kind: &str,
        ) -> Result<&'a str, PromptError> {
            values.ok_or_else(|| malformed(field, format!("'{kind}' needs '=' and numbers")))
        }
        let cmd = match kind.as_str() {
            "point" | "pos" | "neg" => {
                let v = parse_numbers(&field, need_values(values, &field, &kind)?, 2)?;
                Command::Prompt {
                    id,
                    clicks: vec![Click {
                        x: v[0],
                        y: v[1],
                        positive: kind != "neg",
                    }],
                    bbox: None,
                    clear: false,
                }
            }
            "box" => {
                let v = parse_numbers(&field, need_values(values, &field, &kind)?, 4)?;
                Command::Prompt {
                    id,
                    clicks: Vec::new(),
                    bbox: Some([v[0], v[1], v[2], v[3]]),
                    clear: false,
                }
            }
            "remove" => {
                if values.is_some() {
                    return Err(malformed(&field, "'remove' takes no values"));
                }
                Command::Remove { id }
            }
            other => {
                return Err(malformed(
                    &field,
                    format!("unknown kind '{other}' (point, pos, neg, box, remove)"),
                ));
            }
        };
        merge_push(&mut commands, cmd).map_err(|reason| malformed(&field, reason))?;
    }
    Ok(commands)
}

/// Appends `cmd`, merging it into the previous command when both prompt
/// the same object (a box must come before the object's clicks, as in SAM 2).
fn merge_push(commands: &mut Vec<Command>, cmd: Command) -> Result<(), String> {
    if let (
        Some(Command::Prompt {
            id: prev_id,
            clicks: prev_clicks,
            bbox: prev_box,
            ..
        }),
        Command::Prompt {
            id, clicks, bbox, ..
        },
    ) = (commands.last_mut(), &cmd)
        && prev_id == id
    {
        if bbox.is_some() {
            if prev_box.is_some() {
                return Err(format!("object {id} has two boxes on one frame"));
            }
            if !prev_clicks.is_empty() {
                return Err(format!(
                    "the box of object {id} must come before its points"
                ));
            }
            *prev_box = *bbox;
        }
        prev_clicks.extend_from_slice(clicks);
        return Ok(());
    }
    commands.push(cmd);
    Ok(())
}

// ------------------------------------------------------------- prompt files

/// When a prompt-file line applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// The n-th frame (0-based) the element has received since it started.
    Frame(u64),
    /// The first frame whose stream time is at or after this.
    Time(gst::ClockTime),
}

/// One line of a prompt file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledPrompt {
    pub when: When,
    pub commands: Vec<Command>,
}

/// A frame number, `SECONDSs` or `[HH:]MM:SS(.fff)`; `Err`: why not.
fn parse_when(text: &str) -> Result<When, String> {
    let bad = || format!("'{text}' is not a frame number, 'SECONDSs' or '[HH:]MM:SS.fff'");
    if let Ok(n) = text.parse::<u64>() {
        return Ok(When::Frame(n));
    }
    let secs = if let Some(s) = text.strip_suffix('s') {
        s.parse::<f64>().map_err(|_| bad())?
    } else if text.contains(':') {
        // [HH:]MM:SS(.fff)
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() > 3 {
            return Err(bad());
        }
        let mut secs = 0f64;
        for (i, p) in parts.iter().enumerate() {
            let v: f64 = p.parse().map_err(|_| bad())?;
            let last = i + 1 == parts.len();
            if !v.is_finite() || v < 0.0 || (!last && v.fract() != 0.0) || (i > 0 && v >= 60.0) {
                return Err(bad());
            }
            secs = secs * 60.0 + v;
        }
        secs
    } else {
        return Err(bad());
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(bad());
    }
    // the largest stream time GStreamer has (GST_CLOCK_TIME_NONE - 1 ns, ~584 years)
    let max = gst::ClockTime::MAX.nseconds();
    let ns = (secs * 1e9).round();
    if ns >= max as f64 {
        return Err(format!(
            "'{text}' is later than the largest stream time ({}s)",
            max / 1_000_000_000
        ));
    }
    Ok(When::Time(gst::ClockTime::from_nseconds(ns as u64)))
}

/// Parses a prompt file: one `WHEN PROMPTS` entry per line, where WHEN is
/// a frame number (`0`, `120`) or a stream time (`2.5s`, `00:01:02.5`), and
/// PROMPTS uses the prompt grammar. `#` starts a comment; blank lines are
/// ignored. Entries are returned in file order.
pub fn parse_prompt_file(text: &str) -> Result<Vec<ScheduledPrompt>, PromptError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let field = format!("line {}", n + 1);
        let (when, prompts) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| malformed(&field, "expected 'FRAME|TIME PROMPTS'"))?;
        let when = parse_when(when.trim()).map_err(|reason| malformed(&field, reason))?;
        let commands = parse_prompts(prompts).map_err(|err| match err {
            PromptError::Malformed { field: f, reason } => {
                malformed(format!("{field}, {f}"), reason)
            }
            other => other,
        })?;
        out.push(ScheduledPrompt { when, commands });
    }
    Ok(out)
}

/// Reads and parses a prompt file: a regular file of at most
/// [`MAX_PROMPT_FILE_BYTES`].
pub fn read_prompt_file(path: &Path) -> Result<Vec<ScheduledPrompt>, PromptError> {
    let text = files::read_text(path, "a prompt file", MAX_PROMPT_FILE_BYTES)
        .map_err(|err| malformed("prompt-file", err.to_string()))?;
    parse_prompt_file(&text).map_err(|err| match err {
        PromptError::Malformed { field, reason } => {
            malformed(format!("prompt-file {}, {field}", path.display()), reason)
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let c = parse_prompts(" 1:point=320,240; 2:box=10,10,200,180 ;1:neg=40,60;;").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0],
            Command::Prompt {
                id: 1,
                clicks: vec![Click {
                    x: Coord::px(320.0),
                    y: Coord::px(240.0),
                    positive: true
                }],
                bbox: None,
                clear: false
            }
        );
        match &c[1] {
            Command::Prompt { id: 2, bbox, .. } => {
                assert_eq!(bbox.unwrap()[2], Coord::px(200.0))
            }
            other => panic!("{other:?}"),
        }
        match &c[2] {
            Command::Prompt { id: 1, clicks, .. } => assert!(!clicks[0].positive),
            other => panic!("{other:?}"),
        }
        // consecutive entries of one object merge; percentages are relative
        let c =
            parse_prompts("3:box=10%,20%,50%,60%;3:pos=25%,30%;3:neg=1,2;reset;4:remove").unwrap();
        assert_eq!(c.len(), 3);
        match &c[0] {
            Command::Prompt { clicks, bbox, .. } => {
                assert_eq!(clicks.len(), 2);
                let b = bbox.unwrap();
                assert!(b[0].relative && (b[0].value - 0.1).abs() < 1e-6);
                assert!((b[0].resolve(200) - 20.0).abs() < 1e-4);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c[1], Command::Reset);
        assert_eq!(c[2], Command::Remove { id: 4 });
    }

    #[test]
    fn grammar_errors_name_the_entry() {
        for (text, needle) in [
            ("1:point=1", "expected 2"),
            ("1:point=a,b", "not a number"),
            ("x:point=1,2", "object id"),
            ("0:point=1,2", "object id"),
            ("1:circle=1,2", "unknown kind"),
            ("1:point", "needs '='"),
            ("1:point=1,2;1:box=0,0,5,5", "before its points"),
            ("1point=1,2", "expected ID:KIND"),
        ] {
            match parse_prompts(text) {
                Err(PromptError::Malformed { field, reason }) => {
                    assert!(field.starts_with("prompt entry"), "{field}");
                    assert!(reason.contains(needle), "{text}: {reason}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn prompt_files() {
        let f = parse_prompt_file(
            "# annotation\n0 1:point=10,20\n\n2.5s 2:box=1,1,9,9 # car\n00:01:02.5 1:neg=3,4\n",
        )
        .unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].when, When::Frame(0));
        assert_eq!(f[1].when, When::Time(gst::ClockTime::from_mseconds(2500)));
        assert_eq!(f[2].when, When::Time(gst::ClockTime::from_mseconds(62_500)));
        match parse_prompt_file("0 1:point=1,2\nsoon 1:point=1,2\n") {
            Err(PromptError::Malformed { field, .. }) => assert_eq!(field, "line 2"),
            other => panic!("{other:?}"),
        }
        match parse_prompt_file("3 1:point=1\n") {
            Err(PromptError::Malformed { field, .. }) => assert!(field.starts_with("line 1, ")),
            other => panic!("{other:?}"),
        }
    }
}
