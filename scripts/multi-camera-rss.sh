#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# scripts/multi-camera-rss.sh: peak RSS of one gst-launch-1.0 process running 1 and 4
# sam2track elements (one per camera branch), sharing the model (share-model=true, the
# default) or each loading its own (share-model=false), issue 17.
#
#   scripts/multi-camera-rss.sh [MODEL_DIR]     # default: the benchmark's SAM 2.1-tiny 1024
#   MC_FRAMES=4 MC_COUNTS="1 4" scripts/multi-camera-rss.sh
#
# Each branch: videotestsrc 640x480 -> sam2track (sync, one object clicked) -> fakesink.
# Needs the release plugin (cargo build --release) and the set-up ONNX Runtime.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="${1:-$REPO_ROOT/target/bench/sam2.1_hiera_t-1024-bias10}"
FRAMES="${MC_FRAMES:-4}"
COUNTS="${MC_COUNTS:-1 4}"
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$REPO_ROOT/target/release}"
[ -f "$MODEL/model.json" ] || { echo "no model at $MODEL (scripts/bench.sh exports it)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt install time)" >&2; exit 1; }
gst-inspect-1.0 sam2track >/dev/null || { echo "sam2track not found in $GST_PLUGIN_PATH (cargo build --release)" >&2; exit 1; }
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) CPUs)"
echo "CPU: $CPU; model: $MODEL; $FRAMES frames per camera"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for share in true false; do
    for n in $COUNTS; do
        args=()
        for i in $(seq 1 "$n"); do
            args+=(videotestsrc num-buffers="$FRAMES" pattern=ball ! video/x-raw,width=640,height=480,framerate=30/1
                ! sam2track name="cam$i" model-dir="$MODEL" mode=sync output=meta share-model="$share"
                prompt="1:point=320,240" ! fakesink sync=false)
        done
        start=$(date +%s.%N)
        /usr/bin/time -f "%M" -o "$out" gst-launch-1.0 -q "${args[@]}" >/dev/null
        secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
        printf 'RESULT share-model=%s elements=%s peak_rss_mib=%d seconds=%.1f\n' \
            "$share" "$n" "$(( $(tail -n1 "$out") / 1024 ))" "$secs"
    done
done
