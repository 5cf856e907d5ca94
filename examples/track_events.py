#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Send prompts to sam2track by event and print the per-object metadata (PyGObject).

    GST_PLUGIN_PATH=target/debug python3 examples/track_events.py MODEL_DIR [VIDEO_FILE]

Needs python3-gi, python3-gst-1.0 (GstValueArray support) and
gir1.2-gst-plugins-base-1.0 (scripts/setup.sh installs them). Without a video
file it plays the committed test frames (tests/fixtures/golden/frames).

After frame 2 it adds object 1 with an upstream ``sam2-prompt`` event sent from
the appsink end, after frame 5 a box for a new object with a serialized
downstream event into sam2track's sink pad, after frame 12 removes object 1,
and prints the ``Sam2FrameMeta`` of every frame. Exits with status 1 when the
metadata does not follow the prompts.
"""

import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstApp, GstVideo  # noqa: E402,F401


def frame_objects(buf):
    """Objects of the Sam2FrameMeta on `buf` as dicts (frame meta, objects)."""
    meta = buf.get_custom_meta("Sam2FrameMeta")
    if meta is None:
        return None, []
    s = meta.get_structure()
    objects = []
    for o in s.get_value("objects"):
        obj = {f: o.get_value(f) for f in ("object-id", "x", "y", "width", "height",
                                           "score", "occluded", "stale", "frame-number")}
        mask = o.get_value("mask") if o.has_field("mask") else None
        if mask is not None:
            ok, info = mask.map(Gst.MapFlags.READ)
            obj["area"] = sum(1 for v in info.data if v) if ok else None
            mask.unmap(info)
        objects.append(obj)
    frame = {f: s.get_value(f) for f in ("frame-number", "computed-frame-number", "stale")}
    return frame, objects


def push_before_next_buffer(pad, event):
    """Push a serialized event from `pad` (the source pad feeding sam2track) just before
    its next buffer, in the streaming thread.

    sam2track.sink.send_event(event) from this thread would wait until the streaming
    thread is between two buffers, and with a bounded appsink that thread waits for
    this thread to pull: a deadlock. A buffer probe puts the event in stream order
    without waiting."""

    def probe(pad, _info):
        pad.push_event(event)
        return Gst.PadProbeReturn.REMOVE

    pad.add_probe(Gst.PadProbeType.BUFFER, probe)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model = sys.argv[1]
    video = sys.argv[2] if len(sys.argv) > 2 else None
    Gst.init(None)
    if video:
        source = f'filesrc location="{video}" ! decodebin ! videoconvert'
    else:
        frames = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                              "fixtures", "golden", "frames")
        source = (f'multifilesrc location="{frames}/%05d.png" caps=image/png,framerate=30/1 '
                  "! pngdec ! videoconvert")
    pipeline = Gst.parse_launch(
        f"{source} ! video/x-raw,format=RGB ! sam2track name=track mode=sync output=meta "
        # max-buffers=1: the element stays within a frame or two of this loop, so an
        # event sent after frame n lands a frame or two later (with an unbounded
        # appsink the element could run through the whole clip first)
        f'model-dir="{model}" ! appsink name=sink sync=false max-buffers=1')
    track = pipeline.get_by_name("track")
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)

    failures = []
    n = 0
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        buf = sample.get_buffer()
        caps = sample.get_caps().get_structure(0)
        w, h = caps.get_value("width"), caps.get_value("height")
        frame, objects = frame_objects(buf)
        if frame is None:
            failures.append(f"frame {n}: no Sam2FrameMeta")
            break
        print(f"frame {frame['frame-number']:3} (masks of frame {frame['computed-frame-number']:3}"
              f"{', stale' if frame['stale'] else ''}):"
              + "".join(f"  #{o['object-id']} box {o['width']}x{o['height']}+{o['x']}+{o['y']}"
                        f" score {o['score']:.2f}{' occluded' if o['occluded'] else ''}"
                        f" area {o.get('area')}" for o in objects))
        ids = [o["object-id"] for o in objects]
        for oid, added, removed in ((1, 2, 12), (2, 5, None)):
            present = oid in ids
            if n <= added and present:
                failures.append(f"frame {n}: object {oid} before its prompt")
            if n > added + 5 and (removed is None or n <= removed) and not present:
                failures.append(f"frame {n}: object {oid} missing")
            if removed is not None and n > removed + 5 and present:
                failures.append(f"frame {n}: object {oid} still there")

        if n == 2:
            # upstream custom event, as a downstream element (or the app) sends it
            s = Gst.Structure.new_from_string(
                f"sam2-prompt, object-id=(uint)1, points=<(float){0.42 * w}, (float){0.42 * h}>, "
                "labels=<1>")
            sink.send_event(Gst.Event.new_custom(Gst.EventType.CUSTOM_UPSTREAM, s))
        elif n == 5:
            # serialized downstream event: in stream order before the next buffer;
            # no object-id: a new object (the next free id, 2)
            s = Gst.Structure.new_from_string(
                f"sam2-prompt, box=<(float){0.55 * w}, (float){0.53 * h}, "
                f"(float){0.71 * w}, (float){0.76 * h}>")
            event = Gst.Event.new_custom(Gst.EventType.CUSTOM_DOWNSTREAM, s)
            push_before_next_buffer(track.get_static_pad("sink").get_peer(), event)
        elif n == 12:
            s = Gst.Structure.new_from_string("sam2-remove, object-id=(uint)1")
            sink.send_event(Gst.Event.new_custom(Gst.EventType.CUSTOM_UPSTREAM, s))
        n += 1
        if video and n == 30:
            break
    pipeline.set_state(Gst.State.NULL)
    if n < 20 or failures:
        print("metadata did not follow the prompts:", failures, file=sys.stderr)
        sys.exit(1)
    print(f"{n} frames, metadata followed the prompts")


if __name__ == "__main__":
    main()
