#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# scripts/live-rate.sh MODEL_DIR [SECONDS] [WIDTHxHEIGHT]: how many frames per second get
# fresh masks from sam2track on a live camera-like source here:
#   videotestsrc is-live=true (30 fps, 640x480 by default) ! sam2track mode=async ! fakesink
# The element passes every frame at the source's rate and infers on the newest one when it
# is free; each sam2-frame message names the frame its masks were computed on
# (computed-frame-number). Prints the number of distinct computed frames from second 5 (model
# loading and the first prompt left out) to the end, per second. Uses the release build
# (cargo build --release) and the set-up ONNX Runtime unless GST_PLUGIN_PATH / ORT_DYLIB_PATH
# say otherwise.

set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="${1:?usage: scripts/live-rate.sh MODEL_DIR [SECONDS] [WIDTHxHEIGHT]}"
SECONDS_RUN="${2:-25}"
SIZE="${3:-640x480}"
W="${SIZE%x*}"; H="${SIZE#*x}"
[ "$SECONDS_RUN" -gt 5 ] || { echo "live-rate.sh: run longer than 5 s" >&2; exit 2; }
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$REPO_ROOT/target/release}"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    lib="$(find "$REPO_ROOT/.ort/lib/" -maxdepth 1 -name 'libonnxruntime.so.*' 2>/dev/null | sort | head -n1 || true)"
    [ -n "$lib" ] && export ORT_DYLIB_PATH="$lib"
fi
gst-launch-1.0 -m videotestsrc is-live=true num-buffers=$((SECONDS_RUN * 30)) pattern=ball \
    ! "video/x-raw,format=RGB,width=$W,height=$H,framerate=30/1" \
    ! sam2track model-dir="$MODEL" mode=async post-messages=true prompt="1:point=$((W / 2)),$((H / 2))" \
    ! fakesink sync=true 2>&1 | python3 -c '
import re, sys
seen, frames, last = {}, 0, 0.0
for line in sys.stdin:
    if "sam2-frame" not in line:
        continue
    frames += 1
    t = int(re.search(r"timestamp=\(guint64\)(\d+)", line).group(1)) / 1e9
    c = re.search(r"computed-frame-number=\(guint64\)(\d+)", line)
    last = max(last, t)
    if c and t >= 5:
        seen.setdefault(int(c.group(1)), t)
if frames == 0:
    sys.exit("live-rate.sh: no sam2-frame message (did the pipeline start? run it with GST_DEBUG=sam2track:4)")
span = last - 5
print(f"{frames} frames; {len(seen)} distinct computed frames from 5 s to {last:.1f} s: "
      f"{len(seen) / span:.2f} fresh mask frames per second")
'
