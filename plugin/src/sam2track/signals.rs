// SPDX-License-Identifier: MPL-2.0

//! The action signals of `sam2track`: prompts from applications (C,
//! Python, Rust) without building events. Each returns the object id (0:
//! refused) or whether it was taken; a refusal posts a warning.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::prompt::{self, Command, Coord, NEW_OBJECT};

/// Arguments of an action signal after the instance.
fn arg<'a, T: glib::value::FromValue<'a>>(args: &'a [glib::Value], i: usize) -> T {
    args[i]
        .get::<T>()
        .unwrap_or_else(|e| panic!("signal argument {i}: {e}"))
}

fn imp_of(args: &[glib::Value]) -> super::Sam2Track {
    arg::<super::Sam2Track>(args, 0)
}

/// The signals, as `gst-inspect-1.0` lists them.
pub fn specs() -> Vec<glib::subclass::Signal> {
    use glib::subclass::Signal;
    vec![
        // add-point(object_id, x, y, positive) -> object id (0: refused)
        Signal::builder("add-point")
            .param_types([
                u32::static_type(),
                f32::static_type(),
                f32::static_type(),
                bool::static_type(),
            ])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let obj = imp_of(args);
                let cmd = Command::Prompt {
                    id: arg(args, 1),
                    clicks: vec![prompt::Click {
                        x: Coord::px(arg(args, 2)),
                        y: Coord::px(arg(args, 3)),
                        positive: arg(args, 4),
                    }],
                    bbox: None,
                    clear: false,
                };
                Some(obj.imp().queue_one("add-point signal", cmd).to_value())
            })
            .build(),
        // add-points(object_id, <x0, y0, x1, y1, ...>, <label0, label1, ...>)
        Signal::builder("add-points")
            .param_types([
                u32::static_type(),
                gst::Array::static_type(),
                gst::Array::static_type(),
            ])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let obj = imp_of(args);
                let s = gst::Structure::builder(prompt::EVENT_PROMPT)
                    .field("object-id", arg::<u32>(args, 1))
                    .field("points", arg::<gst::Array>(args, 2))
                    .field("labels", arg::<gst::Array>(args, 3))
                    .build();
                Some(obj.imp().queue_structure("add-points", &s).to_value())
            })
            .build(),
        // add-box(object_id, x0, y0, x1, y1)
        Signal::builder("add-box")
            .param_types([
                u32::static_type(),
                f32::static_type(),
                f32::static_type(),
                f32::static_type(),
                f32::static_type(),
            ])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let obj = imp_of(args);
                let c = |i| Coord::px(arg::<f32>(args, i));
                let cmd = Command::Prompt {
                    id: arg(args, 1),
                    clicks: Vec::new(),
                    bbox: Some([c(2), c(3), c(4), c(5)]),
                    clear: false,
                };
                Some(obj.imp().queue_one("add-box signal", cmd).to_value())
            })
            .build(),
        // add-mask(object_id, GRAY8 buffer, width, height)
        Signal::builder("add-mask")
            .param_types([
                u32::static_type(),
                gst::Buffer::static_type(),
                u32::static_type(),
                u32::static_type(),
            ])
            .return_type::<u32>()
            .action()
            .class_handler(|args| {
                let obj = imp_of(args);
                let s = gst::Structure::builder(prompt::EVENT_MASK)
                    .field("object-id", arg::<u32>(args, 1))
                    .field("mask", arg::<gst::Buffer>(args, 2))
                    .field("width", arg::<u32>(args, 3))
                    .field("height", arg::<u32>(args, 4))
                    .build();
                Some(obj.imp().queue_structure("add-mask", &s).to_value())
            })
            .build(),
        // remove-object(object_id) -> accepted
        Signal::builder("remove-object")
            .param_types([u32::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| {
                let obj = imp_of(args);
                let id: u32 = arg(args, 1);
                let ok = if id == NEW_OBJECT {
                    obj.imp()
                        .warn_prompt("remove-object", "object id 0 is not an object");
                    false
                } else {
                    obj.imp()
                        .queue("remove-object signal", vec![Command::Remove { id }])
                };
                Some(ok.to_value())
            })
            .build(),
        // reset(): forget every object and the memory
        Signal::builder("reset")
            .action()
            .class_handler(|args| {
                imp_of(args)
                    .imp()
                    .queue("reset signal", vec![Command::Reset]);
                None
            })
            .build(),
        // prompt("1:point=10,20;...") -> accepted
        Signal::builder("prompt")
            .param_types([String::static_type()])
            .return_type::<bool>()
            .action()
            .class_handler(|args| {
                let obj = imp_of(args);
                let text: String = arg(args, 1);
                let ok = match prompt::parse_prompts(&text) {
                    Ok(cmds) => obj.imp().queue("prompt signal", cmds),
                    Err(err) => {
                        obj.imp().warn_error("prompt signal", &err);
                        false
                    }
                };
                Some(ok.to_value())
            })
            .build(),
    ]
}
