// SPDX-License-Identifier: MPL-2.0

//! The event structures of prompts (`sam2-prompt`, `sam2-mask`,
//! `sam2-remove`, `sam2-reset`), as custom events, `add-points`/`add-mask`
//! signals and `gst-launch` text build them, parsed with an error that tells
//! "not ours" from "malformed" (naming the field).

use gst::glib;

use super::prompt::{
    Click, Command, Coord, MAX_MASK_SIDE, MaskPrompt, NEW_OBJECT, PromptError, malformed,
    parse_prompts,
};

/// Structure name of point/box prompt events.
pub const EVENT_PROMPT: &str = "sam2-prompt";
/// Structure name of mask prompt events.
pub const EVENT_MASK: &str = "sam2-mask";
/// Structure name of object removal events.
pub const EVENT_REMOVE: &str = "sam2-remove";
/// Structure name of reset events (forget all objects and memory).
pub const EVENT_RESET: &str = "sam2-reset";
/// Every structure name starting with this is ours; an unknown one is malformed.
pub const EVENT_PREFIX: &str = "sam2-";

fn get_id(s: &gst::StructureRef, required: bool) -> Result<u32, PromptError> {
    const F: &str = "object-id";
    if !s.has_field(F) {
        return if required {
            Err(malformed(F, "missing"))
        } else {
            Ok(NEW_OBJECT)
        };
    }
    if let Ok(v) = s.get::<u32>(F) {
        return Ok(v);
    }
    match s.get::<i32>(F) {
        Ok(v) if v >= 0 => Ok(v as u32),
        Ok(v) => Err(malformed(F, format!("{v} is negative"))),
        Err(_) => Err(malformed(
            F,
            format!("must be an unsigned integer, not {}", field_type(s, F)),
        )),
    }
}

fn field_type(s: &gst::StructureRef, field: &str) -> String {
    s.value(field)
        .map(|v| v.type_().name().to_string())
        .unwrap_or_else(|_| "missing".into())
}

fn number_of(value: &glib::Value) -> Option<f64> {
    if let Ok(v) = value.get::<f64>() {
        return Some(v);
    }
    if let Ok(v) = value.get::<f32>() {
        return Some(f64::from(v));
    }
    if let Ok(v) = value.get::<i32>() {
        return Some(f64::from(v));
    }
    if let Ok(v) = value.get::<u32>() {
        return Some(f64::from(v));
    }
    if let Ok(v) = value.get::<i64>() {
        return Some(v as f64);
    }
    if let Ok(v) = value.get::<u64>() {
        return Some(v as f64);
    }
    None
}

/// A list of numbers: a `GstValueArray` (`<1, 2>`) or `GstValueList`
/// (`{1, 2}`) of ints or floats.
fn get_numbers(s: &gst::StructureRef, field: &str) -> Result<Option<Vec<f64>>, PromptError> {
    let Ok(value) = s.value(field) else {
        return Ok(None);
    };
    let items: Vec<glib::SendValue> = if let Ok(a) = value.get::<gst::Array>() {
        a.iter().cloned().collect()
    } else if let Ok(l) = value.get::<gst::List>() {
        l.iter().cloned().collect()
    } else {
        return Err(malformed(
            field,
            format!(
                "must be an array of numbers like <10, 20>, not {}",
                value.type_().name()
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = number_of(v)
                .ok_or_else(|| malformed(field, format!("item {i} is not a number")))?;
            // coordinates are f32: a finite f64 beyond its range is not one
            if !(v as f32).is_finite() {
                return Err(malformed(field, format!("item {i} ({v}) is out of range")));
            }
            Ok(v)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn get_bool(s: &gst::StructureRef, field: &str) -> Result<bool, PromptError> {
    if !s.has_field(field) {
        return Ok(false);
    }
    s.get::<bool>(field).map_err(|_| {
        malformed(
            field,
            format!("must be a boolean, not {}", field_type(s, field)),
        )
    })
}

/// A mask side: an integer from 1 to [`MAX_MASK_SIDE`].
fn get_side(s: &gst::StructureRef, field: &str) -> Result<usize, PromptError> {
    let value = if let Ok(v) = s.get::<u32>(field) {
        i64::from(v)
    } else if let Ok(v) = s.get::<i32>(field) {
        i64::from(v)
    } else if !s.has_field(field) {
        return Err(malformed(field, "missing"));
    } else {
        return Err(malformed(
            field,
            format!("must be an integer, not {}", field_type(s, field)),
        ));
    };
    if !(1..=MAX_MASK_SIDE as i64).contains(&value) {
        return Err(malformed(
            field,
            format!("{value} is not between 1 and {MAX_MASK_SIDE}"),
        ));
    }
    Ok(value as usize)
}

/// Parses a sam2track event structure into commands.
pub fn parse_structure(s: &gst::StructureRef) -> Result<Vec<Command>, PromptError> {
    match s.name().as_str() {
        EVENT_PROMPT => parse_prompt_structure(s),
        EVENT_MASK => parse_mask_structure(s).map(|c| vec![c]),
        EVENT_REMOVE => Ok(vec![Command::Remove {
            id: match get_id(s, true)? {
                NEW_OBJECT => return Err(malformed("object-id", "must be >= 1")),
                id => id,
            },
        }]),
        EVENT_RESET => Ok(vec![Command::Reset]),
        name if name.starts_with(EVENT_PREFIX) => Err(malformed(
            "name",
            format!(
                "unknown event '{name}' (expected {EVENT_PROMPT}, {EVENT_MASK}, \
                 {EVENT_REMOVE} or {EVENT_RESET})"
            ),
        )),
        _ => Err(PromptError::NotOurs),
    }
}

fn parse_prompt_structure(s: &gst::StructureRef) -> Result<Vec<Command>, PromptError> {
    if s.has_field("prompt") {
        let text = s
            .get::<String>("prompt")
            .map_err(|_| malformed("prompt", "must be a string"))?;
        for other in ["points", "labels", "box"] {
            if s.has_field(other) {
                return Err(malformed(other, "cannot be combined with 'prompt'"));
            }
        }
        let commands = parse_prompts(&text)?;
        if commands.is_empty() {
            return Err(malformed("prompt", "holds no prompt"));
        }
        return Ok(commands);
    }
    let id = get_id(s, false)?;
    let relative = get_bool(s, "relative")?;
    let clear = get_bool(s, "clear")?;
    let coord = |v: f64| {
        if relative {
            Coord::rel(v as f32)
        } else {
            Coord::px(v as f32)
        }
    };
    let points = get_numbers(s, "points")?.unwrap_or_default();
    if points.len() % 2 != 0 {
        return Err(malformed(
            "points",
            format!("{} numbers: expected x,y pairs", points.len()),
        ));
    }
    let n = points.len() / 2;
    let labels = match get_numbers(s, "labels")? {
        None => vec![1.0; n],
        Some(l) if l.len() == n => l,
        Some(l) => {
            return Err(malformed(
                "labels",
                format!("{} labels for {n} points", l.len()),
            ));
        }
    };
    let clicks = points
        .chunks_exact(2)
        .zip(&labels)
        .map(|(p, l)| match *l as i64 {
            0 | 1 if l.fract() == 0.0 => Ok(Click {
                x: coord(p[0]),
                y: coord(p[1]),
                positive: *l == 1.0,
            }),
            _ => Err(malformed(
                "labels",
                format!("{l} is not 1 (positive) or 0 (negative)"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bbox = match get_numbers(s, "box")? {
        None => None,
        Some(b) if b.len() == 4 => Some([coord(b[0]), coord(b[1]), coord(b[2]), coord(b[3])]),
        Some(b) => {
            return Err(malformed(
                "box",
                format!("{} numbers, expected x0,y0,x1,y1", b.len()),
            ));
        }
    };
    if clicks.is_empty() && bbox.is_none() {
        return Err(malformed(
            "points",
            "a sam2-prompt needs 'points', 'box' or 'prompt'",
        ));
    }
    Ok(vec![Command::Prompt {
        id,
        clicks,
        bbox,
        clear,
    }])
}

fn parse_mask_structure(s: &gst::StructureRef) -> Result<Command, PromptError> {
    let id = get_id(s, false)?;
    let width = get_side(s, "width")?;
    let height = get_side(s, "height")?;
    let buffer = s.get::<gst::Buffer>("mask").map_err(|_| {
        malformed(
            "mask",
            format!(
                "must be a GstBuffer of width*height GRAY8 bytes, not {}",
                field_type(s, "mask")
            ),
        )
    })?;
    let map = buffer
        .map_readable()
        .map_err(|_| malformed("mask", "buffer cannot be read"))?;
    let need = width * height;
    if map.len() < need {
        return Err(malformed(
            "mask",
            format!("{} bytes, {width}x{height} needs {need}", map.len()),
        ));
    }
    Ok(Command::Mask {
        id,
        mask: MaskPrompt {
            width,
            height,
            data: map[..need].to_vec(),
        },
    })
}

/// Builds a `sam2-prompt` structure: clicks (`points` x,y pairs with
/// `labels` 1/0) and/or a box for `object_id` (0: a new object). For apps
/// written in Rust; C and Python apps build the same structure themselves.
pub fn prompt_structure(
    object_id: u32,
    points: &[(f32, f32, bool)],
    bbox: Option<[f32; 4]>,
) -> gst::Structure {
    let mut b = gst::Structure::builder(EVENT_PROMPT).field("object-id", object_id);
    if !points.is_empty() {
        b = b
            .field(
                "points",
                gst::Array::new(points.iter().flat_map(|(x, y, _)| [*x, *y])),
            )
            .field(
                "labels",
                gst::Array::new(points.iter().map(|(_, _, p)| i32::from(*p))),
            );
    }
    if let Some(bb) = bbox {
        b = b.field("box", gst::Array::new(bb));
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        let _ = gst::init();
    }

    #[test]
    fn structures() {
        init();
        let s = prompt_structure(
            5,
            &[(1.0, 2.0, true), (3.0, 4.0, false)],
            Some([0.0, 0.0, 9.0, 9.0]),
        );
        let c = parse_structure(&s).unwrap();
        match &c[0] {
            Command::Prompt {
                id: 5,
                clicks,
                bbox: Some(_),
                clear: false,
            } => {
                assert_eq!(clicks.len(), 2);
                assert!(clicks[0].positive && !clicks[1].positive);
            }
            other => panic!("{other:?}"),
        }
        // the gst-launch / Python spelling
        let s: gst::Structure = "sam2-prompt, points=(int)<10, 20>, relative=false"
            .parse()
            .unwrap();
        assert_eq!(parse_structure(&s).unwrap()[0].id(), Some(NEW_OBJECT));
        let s: gst::Structure = "sam2-prompt, prompt=\"1:point=5,5\"".parse().unwrap();
        assert_eq!(parse_structure(&s).unwrap().len(), 1);

        let not_ours: gst::Structure = "GstNavigation, event=mouse-move".parse().unwrap();
        assert_eq!(parse_structure(&not_ours), Err(PromptError::NotOurs));

        for (text, field) in [
            ("sam2-prompt, points=(int)<10>", "points"),
            ("sam2-prompt, points=(string)ten", "points"),
            ("sam2-prompt, points=<1,2>, labels=<1,0>", "labels"),
            ("sam2-prompt, points=<1,2>, labels=<7>", "labels"),
            (
                "sam2-prompt, object-id=(string)one, points=<1,2>",
                "object-id",
            ),
            ("sam2-prompt, object-id=-3, points=<1,2>", "object-id"),
            ("sam2-prompt, box=<1,2,3>", "box"),
            ("sam2-prompt", "points"),
            (
                "sam2-prompt, prompt=\"1:blob=1\"",
                "prompt entry 1 ('1:blob=1')",
            ),
            ("sam2-remove", "object-id"),
            ("sam2-mask, width=4, height=4", "mask"),
            ("sam2-mask, height=4", "width"),
            ("sam2-frobnicate", "name"),
        ] {
            let s: gst::Structure = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            match parse_structure(&s) {
                Err(PromptError::Malformed { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }

        let mask = gst::Buffer::from_slice(vec![0u8, 255, 255, 0]);
        let s = gst::Structure::builder(EVENT_MASK)
            .field("object-id", 2u32)
            .field("mask", mask)
            .field("width", 2u32)
            .field("height", 2u32)
            .build();
        match &parse_structure(&s).unwrap()[0] {
            Command::Mask { id: 2, mask } => {
                assert_eq!(mask.resized(4, 2), vec![0, 0, 1, 1, 1, 1, 0, 0])
            }
            other => panic!("{other:?}"),
        }
    }
}
