#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# scripts/demo.sh: sam2track in one command, right after scripts/setup.sh.
#
#   scripts/demo.sh [VIDEO] [MODEL_DIR]
#
# Tracks two objects prompted by a point and a box (in percent of the frame,
# so any video fits), writes the overlay to demo-out.mp4 and prints the
# per-object metadata of the first frames.
#
#   VIDEO      any file GStreamer decodes; default: the 32 bedroom frames
#              committed in tests/fixtures/golden/frames (192x108)
#   MODEL_DIR  an exported SAM 2 model (models/export.py); default: the micro
#              test model of tests/fixtures/micro, which has RANDOM weights:
#              its masks show the pipeline working, not segmentation
#
# Environment:
#   DEMO_OUT     output file (default: demo-out.mp4 in the current folder)
#   DEMO_PROMPT  prompts (default: "1:point=42%,42%;2:box=55%,53%,71%,76%")
#   DEMO_FRAMES  frames of VIDEO to process (default: 90)
#   DEMO_SHOW    frames whose metadata is printed (default: 3)

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VIDEO="${1:-}"
MODEL_DIR="${2:-$REPO_ROOT/tests/fixtures/micro}"
OUT="${DEMO_OUT:-demo-out.mp4}"
PROMPT="${DEMO_PROMPT:-1:point=42%,42%;2:box=55%,53%,71%,76%}"
FRAMES="${DEMO_FRAMES:-90}"
SHOW="${DEMO_SHOW:-3}"

die() { printf 'demo.sh: error: %s\n' "$*" >&2; exit 1; }

command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 not found: run scripts/setup.sh first"
[ -f "$MODEL_DIR/model.json" ] || die "$MODEL_DIR has no model.json (export one with models/export.py)"
[ -z "$VIDEO" ] || [ -f "$VIDEO" ] || die "$VIDEO is not a file"

# The plugin: the debug build scripts/setup.sh made, unless GStreamer already
# finds an installed one (meson install).
if ! gst-inspect-1.0 sam2track >/dev/null 2>&1; then
    plugin_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
    if [ ! -f "$plugin_dir/libgstsam2.so" ]; then
        if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        fi
        (cd "$REPO_ROOT" && cargo build --quiet -p gst-plugin-sam2 --lib) \
            || die "cannot build the plugin: run scripts/setup.sh first"
    fi
    export GST_PLUGIN_PATH="$plugin_dir${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
fi

if [ -n "$VIDEO" ]; then
    source=(filesrc "location=$VIDEO" ! decodebin ! identity "eos-after=$FRAMES")
else
    source=(multifilesrc "location=$REPO_ROOT/tests/fixtures/golden/frames/%05d.png"
        index=0 stop-index=31 "caps=image/png,framerate=30/1" ! pngdec)
fi
encoder=avenc_mpeg4
for e in x264enc openh264enc; do
    if gst-inspect-1.0 "$e" >/dev/null 2>&1; then encoder="$e"; break; fi
done
encode=("$encoder")
if [ "$encoder" = avenc_mpeg4 ]; then
    encode+=(bitrate=4000000)
else
    encode+=(! h264parse)
fi

pipeline=("${source[@]}" ! videoconvert ! videoscale ! "video/x-raw,width=[16,1280],height=[16,720],pixel-aspect-ratio=1/1"
    ! sam2track "model-dir=$MODEL_DIR" "prompt=$PROMPT" output=both post-messages=true
    ! videoconvert ! "${encode[@]}" ! mp4mux ! filesink "location=$OUT")

printf '==> gst-launch-1.0 -e -m %s\n' "${pipeline[*]}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! gst-launch-1.0 -e -m "${pipeline[@]}" >"$log" 2>&1; then
    grep -E 'ERROR|WARNING' "$log" >&2 || tail -n 20 "$log" >&2
    die "the pipeline failed"
fi
grep -E 'WARNING' "$log" >&2 || true

# sam2-frame messages (post-messages=true) -> one line per object
python3 - "$log" "$SHOW" <<'PY'
import re, sys
path, show = sys.argv[1], int(sys.argv[2])
frames = 0
for line in open(path, errors="replace"):
    if "sam2-frame," not in line:
        continue
    number = re.search(r"frame-number=\(guint64\)(\d+)", line).group(1)
    print(f"frame {number}:")
    for obj in re.findall(r'"sam2-object(.*?)\\;"', line):
        fields = dict(re.findall(r"\\ ([a-z-]+)\\=\\\([a-z0-9]+\\\)([^\\]+)", obj))
        print(
            "  object {object-id}: box {width}x{height} at ({x}, {y}), "
            "score {score:.3}, occluded {occluded}".format(
                **{**fields, "score": float(fields["score"])}
            )
        )
    frames += 1
    if frames == show:
        break
if frames == 0:
    sys.exit("demo.sh: no sam2-frame message: nothing was tracked")
PY

printf '==> wrote %s (masks drawn over the video)\n' "$OUT"
if [ "$MODEL_DIR" = "$REPO_ROOT/tests/fixtures/micro" ]; then
    cat <<'EOF'
==> This was the micro TEST model (random weights): the masks are not real
    segmentation. For real masks, export Meta's SAM 2.1 checkpoint (README,
    "Models"):
      scripts/setup.sh --with-export-tools
      curl -LO https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt
      .venv-models/bin/python models/export.py --config sam2.1_hiera_t \
          --checkpoint sam2.1_hiera_tiny.pt --out models/sam2.1_hiera_t
      scripts/demo.sh VIDEO models/sam2.1_hiera_t
EOF
fi
