#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# Called by meson.build: builds the plugin with cargo in release mode into a
# private target directory and copies the cdylib to meson's output path.
#
# Usage: meson-cargo-build.sh CARGO MANIFEST TARGET_DIR OUTPUT [CARGO_ARGS...]
# (CARGO_ARGS: e.g. --no-default-features for GStreamer 1.20)

set -euo pipefail

if [ "$#" -lt 4 ]; then
    echo "usage: $0 CARGO MANIFEST TARGET_DIR OUTPUT [CARGO_ARGS...]" >&2
    exit 2
fi
cargo="$1" manifest="$2" target_dir="$3" output="$4"
shift 4

"$cargo" build --release --manifest-path "$manifest" -p gst-plugin-sam2 --lib \
    --target-dir "$target_dir" "$@"
cp -f "$target_dir/release/libgstsam2.so" "$output"
