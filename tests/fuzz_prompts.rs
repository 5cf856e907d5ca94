// SPDX-License-Identifier: MPL-2.0

//! Seeded fuzzing of everything that parses user prompts: the prompt
//! grammar (`prompt` property/signal, `sam2-prompt` field), prompt files and
//! the event structures (`sam2-prompt`, `sam2-mask`, `sam2-remove`,
//! `sam2-reset`, built field by field with random types and values, and
//! parsed from random text the way `gst-launch` and Python build them).
//!
//! The default suite runs a fixed seed and 100,000 cases per parser; the
//! long fuzz (README, "Robustness") runs as many as asked:
//!
//! ```text
//! SAM2TRACK_FUZZ_CASES=10000000 SAM2TRACK_FUZZ_SEED=$RANDOM \
//!     cargo test --release -p gst-plugin-sam2 --test fuzz_prompts -- --nocapture
//! ```
//!
//! Every case must parse or be refused with an error, never panic; what is
//! accepted must hold the parsers' promises (ids, mask sizes, times).

use std::panic::{AssertUnwindSafe, catch_unwind};

use gstsam2::sam2track::prompt::{
    self, Command, MAX_MASK_SIDE, NEW_OBJECT, PromptError, ScheduledPrompt, When,
};

const DEFAULT_CASES: u64 = 100_000;
const DEFAULT_SEED: u64 = 0x5a32_7472_6163_6b21;

fn cases() -> u64 {
    std::env::var("SAM2TRACK_FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("SAM2TRACK_FUZZ_CASES is a number"))
        .unwrap_or(DEFAULT_CASES)
}

fn seed() -> u64 {
    std::env::var("SAM2TRACK_FUZZ_SEED")
        .ok()
        .map(|v| v.parse().expect("SAM2TRACK_FUZZ_SEED is a number"))
        .unwrap_or(DEFAULT_SEED)
}

/// xorshift64*: small, seeded, good enough to pick tokens.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Numbers as users and attackers write them.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "10",
    "80",
    "45",
    "-1",
    "-0",
    "0.5",
    "1e3",
    "1e40",
    "-1e40",
    "2e10",
    "1e300",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "99999999999",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "+5",
    "5.",
    ".5",
    "3%",
    "50%",
    "100%",
    "-20%",
    "1e9%",
    "",
    " ",
    "0x10",
    "1_0",
    "٣",
    "1,",
    ",",
    "%",
];
const KINDS: &[&str] = &[
    "point", "pos", "neg", "box", "remove", "reset", "POINT", "Box", "pint", "", "mask",
];
const NOISE: &[&str] = &[
    ";", ":", "=", ",", " ", ";;", "\t", "\n", "#", "é", "\u{0}", "💥", "::", "==", "%", "s",
];

fn number(r: &mut Rng) -> String {
    if r.chance(5) {
        return format!("{}", r.next() as i64);
    }
    if r.chance(5) {
        return format!("{}", f64::from_bits(r.next()));
    }
    r.pick(NUMBERS).to_owned()
}

fn entry(r: &mut Rng) -> String {
    if r.chance(5) {
        return "reset".into();
    }
    let id = if r.chance(70) {
        format!("{}", r.below(6))
    } else {
        number(r)
    };
    let kind = r.pick(KINDS);
    let values = (0..r.below(6)).map(|_| number(r)).collect::<Vec<_>>();
    let mut e = format!("{id}:{kind}");
    if !values.is_empty() || r.chance(30) {
        e.push('=');
        e.push_str(&values.join(","));
    }
    if r.chance(10) {
        let at = r.below(e.len() + 1);
        if e.is_char_boundary(at) {
            e.insert_str(at, r.pick(NOISE));
        }
    }
    e
}

fn grammar_text(r: &mut Rng) -> String {
    (0..r.below(8))
        .map(|_| entry(r))
        .collect::<Vec<_>>()
        .join(r.pick(&[";", ";", "; ", ";;", ","]))
}

fn when(r: &mut Rng) -> String {
    match r.below(6) {
        0 => number(r),
        1 => format!("{}s", number(r)),
        2 => format!("{}:{}", number(r), number(r)),
        3 => format!("{}:{}:{}", number(r), number(r), number(r)),
        4 => format!("{}:{}:{}:{}", number(r), number(r), number(r), number(r)),
        _ => r.pick(NOISE).to_owned(),
    }
}

fn prompt_file(r: &mut Rng) -> String {
    (0..r.below(6))
        .map(|_| {
            let mut line = format!("{} {}", when(r), grammar_text(r));
            if r.chance(10) {
                line.push_str(" # comment");
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A random value of a random type for an event field.
fn value(r: &mut Rng) -> gst::glib::SendValue {
    let kind = r.below(12);
    value_of(r, kind)
}

/// A random value of type number `kind`; arrays and lists hold one type,
/// as GStreamer requires.
fn value_of(r: &mut Rng, kind: usize) -> gst::glib::SendValue {
    use gst::prelude::*;
    match kind {
        0 => (r.next() as u32).to_send_value(),
        1 => (r.below(5) as u32).to_send_value(),
        2 => (r.next() as i32).to_send_value(),
        3 => (r.below(5) as i32 - 2).to_send_value(),
        4 => f64::from_bits(r.next()).to_send_value(),
        5 => (r.below(300) as f64 - 50.0).to_send_value(),
        // GLib strings end at NUL: no GValue string can hold one
        6 => grammar_text(r).replace('\0', "").to_send_value(),
        7 => r.chance(50).to_send_value(),
        8 => (r.next() as i64).to_send_value(),
        9 | 10 => {
            let item = r.below(9);
            let items: Vec<_> = (0..r.below(10)).map(|_| value_of(r, item)).collect();
            if kind == 9 {
                gst::Array::new(items).to_send_value()
            } else {
                gst::List::new(items).to_send_value()
            }
        }
        _ => {
            let n = if r.chance(50) {
                r.below(64)
            } else {
                r.below(5000)
            };
            gst::Buffer::from_mut_slice(vec![r.below(256) as u8; n]).to_send_value()
        }
    }
}

const FIELDS: &[&str] = &[
    "object-id",
    "points",
    "labels",
    "box",
    "relative",
    "clear",
    "prompt",
    "mask",
    "width",
    "height",
    "x",
];
const NAMES: &[&str] = &[
    prompt::EVENT_PROMPT,
    prompt::EVENT_MASK,
    prompt::EVENT_REMOVE,
    prompt::EVENT_RESET,
    "sam2-",
    "sam2-other",
    "GstNavigation",
];

fn structure(r: &mut Rng) -> gst::Structure {
    let mut s = gst::Structure::new_empty(r.pick(NAMES));
    for _ in 0..r.below(6) {
        s.set_value(r.pick(FIELDS), value(r));
    }
    s
}

/// Checks what an accepted list of commands promises.
fn check_commands(commands: &[Command], from_grammar: bool) {
    for c in commands {
        // Display never panics and stays short
        let text = c.to_string();
        assert!(text.len() < 400, "{text}");
        match c {
            Command::Prompt {
                id, clicks, bbox, ..
            } => {
                if from_grammar {
                    assert_ne!(*id, NEW_OBJECT, "the grammar has no object 0");
                }
                assert!(!clicks.is_empty() || bbox.is_some());
                for v in clicks
                    .iter()
                    .flat_map(|c| [c.x, c.y])
                    .chain(bbox.iter().flatten().copied())
                {
                    assert!(v.value.is_finite(), "{v:?}");
                }
            }
            Command::Mask { mask, .. } => {
                assert!((1..=MAX_MASK_SIDE).contains(&mask.width));
                assert!((1..=MAX_MASK_SIDE).contains(&mask.height));
                assert_eq!(mask.data.len(), mask.width * mask.height);
                assert_eq!(mask.resized(7, 3).len(), 21);
            }
            Command::Remove { id } => assert_ne!(*id, NEW_OBJECT),
            Command::RemoveAt { .. } | Command::Reset => {}
        }
    }
}

fn check_schedule(entries: &[ScheduledPrompt]) {
    for e in entries {
        if let When::Time(t) = e.when {
            assert!(t < gst::ClockTime::MAX);
        }
        check_commands(&e.commands, true);
    }
}

/// Runs `cases` inputs from `make` through `run`; a panic fails the test
/// naming the case and the input.
fn fuzz<T: std::fmt::Debug>(what: &str, mut make: impl FnMut(&mut Rng) -> T, run: impl Fn(&T)) {
    let (cases, seed) = (cases(), seed());
    let mut r = Rng::new(seed ^ what.len() as u64);
    for case in 0..cases {
        let input = make(&mut r);
        if catch_unwind(AssertUnwindSafe(|| run(&input))).is_err() {
            panic!("{what}: case {case} (seed {seed}) panicked on {input:?}");
        }
    }
    println!("{what}: {cases} cases (seed {seed}), no panic");
}

fn malformed(result: &Result<Vec<Command>, PromptError>) -> bool {
    matches!(result, Err(PromptError::Malformed { .. }))
}

#[test]
fn prompt_grammar_never_panics() {
    fuzz(
        "grammar",
        grammar_text,
        |text| match prompt::parse_prompts(text) {
            Ok(commands) => check_commands(&commands, true),
            Err(err) => assert!(matches!(err, PromptError::Malformed { .. })),
        },
    );
}

#[test]
fn prompt_files_never_panic() {
    fuzz("prompt file", prompt_file, |text| {
        if let Ok(entries) = prompt::parse_prompt_file(text) {
            check_schedule(&entries);
        }
    });
}

#[test]
fn event_structures_never_panic() {
    gst::init().unwrap();
    fuzz("event structure", structure, |s| {
        let result = prompt::parse_structure(s);
        match &result {
            Ok(commands) => check_commands(commands, false),
            Err(PromptError::NotOurs) => assert!(!s.name().starts_with(prompt::EVENT_PREFIX)),
            Err(_) => assert!(malformed(&result)),
        }
    });
}

#[test]
fn event_text_never_panics() {
    gst::init().unwrap();
    // the gst-launch / Python spelling: `sam2-prompt, points=<1, 2>, ...`
    fuzz(
        "event text",
        |r| {
            let mut text = r.pick(NAMES).to_owned();
            for _ in 0..r.below(5) {
                let typ = r.pick(&["", "(int)", "(uint)", "(float)", "(string)", "(boolean)"]);
                let v = match r.below(3) {
                    0 => number(r),
                    1 => format!("<{}, {}>", number(r), number(r)),
                    _ => format!("\"x{}\"", grammar_text(r).replace('"', "")),
                };
                text.push_str(&format!(", {}={typ}{v}", r.pick(FIELDS)));
            }
            text.replace('\0', "")
        },
        |text| {
            if let Ok(s) = text.parse::<gst::Structure>() {
                let _ = prompt::parse_structure(&s);
            }
        },
    );
}

/// The inputs the hardening issue found, by name: each must be an error.
#[test]
fn known_bad_inputs_are_refused() {
    gst::init().unwrap();
    for line in [
        "2e10s 1:point=1,2",
        "1e300s 1:point=1,2",
        "99999999999:00 1:point=1,2",
    ] {
        match prompt::parse_prompt_file(line) {
            Err(PromptError::Malformed { field, reason }) => {
                assert_eq!(field, "line 1", "{line}");
                assert!(
                    reason.contains("later than the largest stream time"),
                    "{reason}"
                );
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    for (w, h) in [(0u32, 4u32), (4, 0), (0, 0), (MAX_MASK_SIDE as u32 + 1, 1)] {
        let s = gst::Structure::builder(prompt::EVENT_MASK)
            .field("mask", gst::Buffer::from_mut_slice(vec![255u8; 16]))
            .field("width", w)
            .field("height", h)
            .build();
        match prompt::parse_structure(&s) {
            Err(PromptError::Malformed { field, reason }) => {
                assert!(field == "width" || field == "height", "{field}");
                assert!(reason.contains("not between 1 and"), "{reason}");
            }
            other => panic!("{w}x{h}: {other:?}"),
        }
    }
}
