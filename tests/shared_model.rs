// SPDX-License-Identifier: MPL-2.0

//! Several `sam2track` elements in one process with the same model share
//! the loaded networks (`share-model`, default on) and keep their own
//! objects and memory.

mod common;

use common::stream::{self, frame_buffer};
use gstsam2::engine::shared;
use gstsam2::sam2track::meta;

const FRAMES: usize = 6;

/// Each frame's (object id, mask) of one element.
type Masks = Vec<Vec<(u32, Vec<u8>)>>;

fn masks_of(buffer: &gst::Buffer) -> Vec<(u32, Vec<u8>)> {
    let mut objects: Vec<_> = meta::objects(buffer)
        .into_iter()
        .map(|o| (o.id, o.mask_bits().expect("a mask")))
        .collect();
    objects.sort_by_key(|o| o.0);
    objects
}

/// Runs harnesses frame by frame, taking turns; returns their masks.
fn interleaved(harnesses: &mut [gst_check::Harness]) -> Vec<Masks> {
    let mut out = vec![Masks::new(); harnesses.len()];
    for t in 0..FRAMES {
        for (h, masks) in harnesses.iter_mut().zip(&mut out) {
            h.push(frame_buffer(t)).expect("push");
            masks.push(masks_of(&h.pull().expect("a buffer")));
        }
    }
    out
}

#[test]
fn elements_share_the_networks_and_keep_their_own_objects() {
    let prompts = ["1:point=80,45", "1:box=106,57,137,82;2:point=40,70"];
    // alone, each with its own networks
    let alone: Vec<Masks> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (h, _) = stream::harness_named(
                &format!("alone{i}"),
                "RGB",
                &format!("share-model=false prompt=\"{p}\""),
            );
            interleaved(&mut [h]).remove(0)
        })
        .collect();
    let dir = common::micro_dir();
    assert_eq!(
        shared::users_of(&dir),
        0,
        "nothing shared after the solo runs"
    );

    let mut both: Vec<gst_check::Harness> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            stream::harness_named(&format!("shared{i}"), "RGB", &format!("prompt=\"{p}\"")).0
        })
        .collect();
    // the first frame starts the elements (and loads the networks)
    let shared_masks = interleaved(&mut both);
    assert_eq!(
        shared::users_of(&dir),
        2,
        "both elements on one copy of the networks"
    );
    for (i, (a, s)) in alone.iter().zip(&shared_masks).enumerate() {
        assert_eq!(a.len(), FRAMES);
        assert!(
            a.iter().all(|f| !f.is_empty()),
            "element {i} tracks its objects"
        );
        assert_eq!(
            a, s,
            "element {i}: the same masks sharing the networks as alone"
        );
    }
    // each kept its own objects: the second has two, the first one
    assert_eq!(shared_masks[0][FRAMES - 1].len(), 1);
    assert_eq!(shared_masks[1][FRAMES - 1].len(), 2);
    drop(both);
    assert_eq!(shared::users_of(&dir), 0, "released with the last element");
}
