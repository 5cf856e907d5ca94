#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# scripts/test.sh: the one test command for sam2track.
#
#   1. cargo test --workspace (unit + integration tests, debug build); extra
#      arguments are passed on to cargo test, e.g. scripts/test.sh -- --nocapture
#   2. gst-inspect-1.0 must find the sam2track element in the debug build
#      (target/debug/libgstsam2.so);
#   3. the examples (Rust and Python) run on the micro model and check that
#      the metadata follows the prompts they send;
#   4. scripts/demo.sh writes its overlay mp4 and prints object metadata.
#
# Needs scripts/setup.sh to have been run once (GStreamer, Rust, ONNX Runtime).

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

log() { printf '==> %s\n' "$*"; }

log "cargo test --workspace $*"
cargo test --workspace "$@"

# The GPU execution-provider code compiled in, against the CPU-only ONNX Runtime:
# requesting CUDA must fail clearly, or fall back to the CPU when allowed.
log "cargo test --features cuda --test engine unavailable_gpu_provider $*"
cargo test -p gst-plugin-sam2 --features cuda --test engine unavailable_gpu_provider "$@"

# cargo test leaves the cdylib in target/debug/deps/; `cargo build` copies it
# to target/debug/ (nothing to recompile), where GStreamer can load it.
log "cargo build -p gst-plugin-sam2 --lib"
cargo build --quiet -p gst-plugin-sam2 --lib
plugin_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
log "gst-inspect-1.0 sam2track (GST_PLUGIN_PATH=$plugin_dir)"
if ! inspect_out="$(GST_PLUGIN_PATH="$plugin_dir" gst-inspect-1.0 sam2track 2>&1)"; then
    printf '%s\n' "$inspect_out" >&2
    printf 'test.sh: gst-inspect-1.0 could not find the sam2track element in %s\n' "$plugin_dir" >&2
    exit 1
fi
printf '%s\n' "$inspect_out" | grep -E '^  (Long-name|Klass|Description)|^  (Name|Version|License) ' || true
log "gst-inspect-1.0 sam2track: OK"
if ! GST_PLUGIN_PATH="$plugin_dir" gst-inspect-1.0 sam2overlay >/dev/null 2>&1; then
    printf 'test.sh: gst-inspect-1.0 could not find the sam2overlay element in %s\n' "$plugin_dir" >&2
    exit 1
fi
log "gst-inspect-1.0 sam2overlay: OK"

# The examples drive the element by events and read its metadata; each exits
# non-zero when the metadata does not follow its prompts.
log "example track_events (Rust)"
cargo run --quiet -p gst-plugin-sam2 --example track_events -- tests/fixtures/micro | tail -n 2
# Debian's python3 (python3-gi, python3-gst-1.0 come from apt, see setup.sh)
log "example track_events.py (Python, PyGObject)"
GST_PLUGIN_PATH="$plugin_dir" /usr/bin/python3 examples/track_events.py tests/fixtures/micro | tail -n 2

# The README's first command after set-up: an overlay mp4 and metadata printed.
log "scripts/demo.sh (committed frames, micro model)"
demo_dir="$(mktemp -d)"
trap 'rm -rf "$demo_dir"' EXIT
demo_out="$(DEMO_OUT="$demo_dir/demo.mp4" GST_PLUGIN_PATH="$plugin_dir" bash scripts/demo.sh)"
printf '%s\n' "$demo_out" | sed -n '2,4p'
printf '%s\n' "$demo_out" | grep -q '^  object 2: box ' \
    || { echo "test.sh: demo.sh printed no object metadata" >&2; exit 1; }
[ -s "$demo_dir/demo.mp4" ] || { echo "test.sh: demo.sh wrote no mp4" >&2; exit 1; }
log "scripts/demo.sh: OK ($(stat -c %s "$demo_dir/demo.mp4") bytes of mp4)"
