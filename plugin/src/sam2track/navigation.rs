// SPDX-License-Identifier: MPL-2.0

//! Mouse clicks from the video sink (GstNavigation events) as prompts:
//! left click: a positive point (a new object, or the selected one);
//! shift + left click: a negative point on the selected or last clicked
//! object; right click: remove the object under the pointer.

use super::prompt::{Click as Point, Command, Coord, NEW_OBJECT};

/// What a navigation event means to the element.
#[derive(Debug, Clone, PartialEq)]
pub enum Click {
    /// Not a button press inside the frame: pass it upstream.
    NotOurs,
    /// A shift-click with no object to exclude the point from.
    NoTarget,
    /// A prompt; `new_click`: a plain left click (its object becomes the
    /// target of later shift-clicks).
    Prompt { command: Command, new_click: bool },
}

/// The prompt of `event` on a `frame` (width, height) when clicks refine
/// `selected` (0: none) and the last plain click went to `last` (0: none).
pub fn click(event: &gst::Event, frame: (usize, usize), selected: u32, last: u32) -> Click {
    let Ok(nav) = gst_video::NavigationEvent::parse(event) else {
        return Click::NotOurs;
    };
    let gst_video::NavigationEvent::MouseButtonPress { button, x, y, .. } = nav else {
        return Click::NotOurs;
    };
    let (w, h) = (frame.0 as f64, frame.1 as f64);
    if !(0.0..w).contains(&x) || !(0.0..h).contains(&y) {
        return Click::NotOurs;
    }
    let (x, y) = (Coord::px(x as f32), Coord::px(y as f32));
    let point = |id, positive| Command::Prompt {
        id,
        clicks: vec![Point { x, y, positive }],
        bbox: None,
        clear: false,
    };
    let shift = shift_held(&nav);
    match button {
        1 if shift => {
            let target = if selected != NEW_OBJECT {
                selected
            } else {
                last
            };
            if target == NEW_OBJECT {
                return Click::NoTarget;
            }
            Click::Prompt {
                command: point(target, false),
                new_click: false,
            }
        }
        1 => Click::Prompt {
            command: point(selected, true),
            new_click: true,
        },
        3 => Click::Prompt {
            command: Command::RemoveAt { x, y },
            new_click: false,
        },
        _ => Click::NotOurs,
    }
}

/// Whether shift was held during a navigation event. Navigation events carry
/// modifier keys from GStreamer 1.22 on; built for 1.20 (without the `v1_22`
/// feature) shift-clicks read as plain clicks.
#[cfg(feature = "v1_22")]
fn shift_held(nav: &gst_video::NavigationEvent) -> bool {
    match nav {
        gst_video::NavigationEvent::MouseButtonPress { modifier_state, .. } => {
            modifier_state.contains(gst_video::NavigationModifierType::SHIFT_MASK)
        }
        _ => false,
    }
}

#[cfg(not(feature = "v1_22"))]
fn shift_held(_nav: &gst_video::NavigationEvent) -> bool {
    false
}
