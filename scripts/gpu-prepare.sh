#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# scripts/gpu-prepare.sh: everything scripts/gpu-check.sh needs on a lent GPU machine
# (no network there), made here on the CPU machine, cut into parts that fit the device
# tool's 64 MiB per call, and the exact sequence of `run` calls that carries and runs them.
#
#   scripts/gpu-prepare.sh            build, download, pack, split; print the calls
#   scripts/gpu-prepare.sh --calls    print the calls for the parts already made
#
# The payload (.gpu-carry/stage/payload, git-ignored):
#   ort/     ONNX Runtime 1.31.1, CUDA 13 build (the onnxruntime-gpu wheel that
#            `scripts/setup.sh --ort-version gpu-1.31.1` installs, sha256-pinned there):
#            libonnxruntime.so.1.31.1 and its CUDA, TensorRT and shared provider libraries
#   bin/     gpu_check (examples/gpu_check.rs, release, --features tensorrt): the engine
#            on a chosen provider, linking no GStreamer library
#   gst/     libgstsam2.so (same features), for the element where GStreamer is
#   py/      sam2 1.1.0 and its pure-Python needs the machine lacks (hydra-core,
#            omegaconf, antlr4-python3-runtime, iopath) as wheels, built here from the
#            sha256-checked PyPI files (SAM2_BUILD_CUDA=0: no CUDA extension)
#   frames/  the first GPU_PREPARE_FRAMES (48) frames of bedroom.mp4 as JPEG (quality 95)
#            and prompts.json (scripts/bench.sh's clicks)
# packed as payload.tar.xz and split into parts of GPU_PREPARE_PART_MIB MiB (default: what
# 60 MiB leaves beside the checkout, at most 50):
# .gpu-carry/01/, .gpu-carry/02/, ..., one folder per call, each with its part and
# payload.sums (every part's sha256 and the whole's).
#
# Environment: CARGO_TARGET_DIR, GPU_PREPARE_PART_MIB (see above), GPU_PREPARE_FRAMES (48),
# GPU_PREPARE_XZ (xz preset, 6: -9 saves 0.5%), GPU_PREPARE_VIDEO (../shared/data/videos/bedroom.mp4).

set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

CARRY=.gpu-carry
STAGE="$CARRY/stage/payload"
PART_MIB="${GPU_PREPARE_PART_MIB:-50}"
NFRAMES="${GPU_PREPARE_FRAMES:-48}"
XZ_LEVEL="${GPU_PREPARE_XZ:-6}"
VIDEO="${GPU_PREPARE_VIDEO:-$REPO_ROOT/../shared/data/videos/bedroom.mp4}"
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
ORT_GPU=".ort/gpu-1.31.1/lib"
ORT_FILES=(libonnxruntime.so.1.31.1 libonnxruntime_providers_shared.so
    libonnxruntime_providers_cuda.so libonnxruntime_providers_tensorrt.so)
# PyPI files: name, sha256 (the sdists are built into wheels here)
PY_FILES=(
    "hydra-core==1.3.8 hydra_core-1.3.8-py3-none-any.whl d5f184c291691cba835c7f04bc4e36270ad88b1d7e394a3712f5af084c30b394"
    "omegaconf==2.3.1 omegaconf-2.3.1-py3-none-any.whl 3d701d14e9a8828f1edd28bb70b725908b34277cdd72cf7d6a83f94dadc6b6a0"
    "antlr4-python3-runtime==4.9.3 antlr4-python3-runtime-4.9.3.tar.gz f224469b4168294902bb1efa80a8bf7855f24c99aef99cbefc1bcd3cce77881b"
    "iopath==0.1.10 iopath-0.1.10.tar.gz 3311c16a4d9137223e20f141655759933e1eda24f8bff166af834af3c645ef01"
    "sam2==1.1.0 sam2-1.1.0.tar.gz 7e0ea252d43c10d853e3acfce0b5770ac683c30481bd6de311300e9d44f45b74"
)
# scripts/bench.sh's clicks (bedroom.mp4 pixels): girl, boy, pink pillow, white pillow,
# bed, dresser, candle, mirror
PROMPTS='{"points": [[400, 225], [225, 260], [600, 350], [490, 360], [400, 470], [890, 400], [690, 90], [940, 250]]}'

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'gpu-prepare.sh: %s\n' "$*" >&2; exit 1; }

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# Bytes that travel with every call besides the carried part: tracked files and
# untracked files git does not ignore.
checkout_bytes() {
    { git ls-files -z; git ls-files -z --others --exclude-standard; } \
        | du -cb --files0-from=- 2>/dev/null | tail -n1 | cut -f1
}

print_calls() {
    local dirs=() d
    for d in "$CARRY"/[0-9][0-9]; do [ -d "$d" ] && dirs+=("$d"); done
    [ "${#dirs[@]}" -gt 0 ] || die "no parts in $CARRY: run scripts/gpu-prepare.sh first"
    local co n="${#dirs[@]}" i=0
    co="$(checkout_bytes)"
    echo
    echo "The device calls (the \`run\` tool), from this checkout ($REPO_ROOT), back to back:"
    echo "the machine goes back 30 s after a call, and with it the parts already carried."
    echo "Checkout sent with each call: $(mib "$co") MiB (limit 64 MiB with the carried part)."
    echo
    for d in "${dirs[@]}"; do
        i=$((i + 1))
        local size
        size="$(du -cb "$d"/* | tail -n1 | cut -f1)"
        local total=$((size + co))
        local warn=""
        [ "$total" -lt $((62 * 1048576)) ] || warn="  <-- OVER the limit: lower GPU_PREPARE_PART_MIB"
        if [ "$i" -lt "$n" ]; then
            echo "call $i of $n ($(mib "$size") MiB carried, $(mib "$total") MiB in all)$warn:"
            echo "  run(carry=[\"$d\"], timeout_s=120, command=\"bash scripts/gpu-check.sh --stash\")"
        else
            echo "call $i of $n ($(mib "$size") MiB carried, $(mib "$total") MiB in all)$warn: joins, unpacks, runs every check (<= ~8 min)"
            echo "  run(carry=[\"$d\"], timeout_s=600, command=\"bash scripts/gpu-check.sh\")"
        fi
    done
    echo
    echo "Each --stash call says which parts the machine has and which are missing (then"
    echo "carry those again). The table comes back as \$OUT/gpu-check.md (plus gpu-check.log"
    echo "and gpu-check-results.tar.gz). A rerun on the still-warm machine needs no carry:"
    echo "  run(timeout_s=600, command=\"bash scripts/gpu-check.sh\")"
    echo "then give_back. Rehearse here first: scripts/gpu-check.sh --dry-run"
}

if [ "${1:-}" = --calls ]; then
    print_calls
    exit 0
fi
[ "$#" -eq 0 ] || die "unknown option $1 (options: --calls)"

command -v xz >/dev/null || die "xz is needed"
[ -f "$VIDEO" ] || die "no video at $VIDEO (set GPU_PREPARE_VIDEO)"
command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 is needed to decode the frames (scripts/setup.sh)"

# ------------------------------------------------------------------ ONNX Runtime GPU build
missing_ort=0
for f in "${ORT_FILES[@]}"; do [ -f "$ORT_GPU/$f" ] || missing_ort=1; done
if [ "$missing_ort" = 1 ]; then
    log "installing the onnxruntime-gpu wheel's libraries (scripts/setup.sh --ort-version gpu-1.31.1)"
    bash scripts/setup.sh --ort-version gpu-1.31.1
fi
(cd "$ORT_GPU" && sha256sum --quiet -c SHA256SUMS) || die "$ORT_GPU does not verify: run scripts/setup.sh --ort-version gpu-1.31.1"

# ------------------------------------------------------------------ Rust
log "building gpu_check and the plugin (release, --features tensorrt)"
cargo build --quiet --release -p gst-plugin-sam2 --features tensorrt --lib --example gpu_check
BIN="$TARGET/release/examples/gpu_check"
PLUGIN="$TARGET/release/libgstsam2.so"
if [ ! -x "$BIN" ] || [ ! -f "$PLUGIN" ]; then die "the build made no $BIN / $PLUGIN"; fi
if ldd "$BIN" | grep -q 'libgst\|libglib'; then
    die "$BIN links GStreamer/GLib, which the GPU machine lacks: $(ldd "$BIN" | grep 'libgst\|libglib' | tr -s ' \t' ' ')"
fi

rm -rf "$CARRY/stage" && mkdir -p "$STAGE"/{ort,bin,gst,py,frames}
for f in "${ORT_FILES[@]}"; do cp "$ORT_GPU/$f" "$STAGE/ort/"; done
strip --strip-debug -o "$STAGE/bin/gpu_check" "$BIN"
strip --strip-debug -o "$STAGE/gst/libgstsam2.so" "$PLUGIN"
glibc="$(objdump -T "$BIN" "$STAGE"/ort/*.so* | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1)"

# ------------------------------------------------------------------ Python packages
log "Python packages: download (sha256-checked), build the sdists into wheels"
DL="$CARRY/downloads"
BV="$CARRY/build-venv"
mkdir -p "$DL"
if [ ! -x "$BV/bin/python" ]; then
    python3 -m venv "$BV"
    "$BV/bin/python" -m pip install --quiet --disable-pip-version-check setuptools wheel
fi
for entry in "${PY_FILES[@]}"; do
    read -r spec file sha <<<"$entry"
    if [ ! -f "$DL/$file" ] || [ "$(sha256sum "$DL/$file" | cut -d' ' -f1)" != "$sha" ]; then
        rm -f "$DL/$file"
        case "$file" in
            *.whl) kind=(--only-binary=:all:) ;;
            *) kind=(--no-binary=:all: --no-build-isolation) ;;
        esac
        SAM2_BUILD_CUDA=0 "$BV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
            "${kind[@]}" -d "$DL" "$spec"
    fi
    [ -f "$DL/$file" ] || die "pip did not download $file"
    got="$(sha256sum "$DL/$file" | cut -d' ' -f1)"
    [ "$got" = "$sha" ] || die "sha256 of $file is $got, expected $sha"
    case "$file" in
        *.whl) cp "$DL/$file" "$STAGE/py/" ;;
        *) SAM2_BUILD_CUDA=0 "$BV/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
            --no-build-isolation --no-index -w "$STAGE/py" "$DL/$file" >/dev/null ;;
    esac
done
for w in "$STAGE"/py/*.whl; do
    case "$w" in *-py3-none-any.whl | *-py2.py3-none-any.whl) ;; *) die "$w is not a pure-Python wheel" ;; esac
done

# ------------------------------------------------------------------ frames
log "frames: the first $NFRAMES of $(basename "$VIDEO") as JPEG"
gst-launch-1.0 -q filesrc location="$VIDEO" ! qtdemux ! h264parse ! avdec_h264 \
    ! identity eos-after="$NFRAMES" ! videoconvert ! jpegenc quality=95 \
    ! multifilesink location="$STAGE/frames/%05d.jpg"
echo "$PROMPTS" >"$STAGE/frames/prompts.json"
got_frames="$(find "$STAGE/frames" -name '*.jpg' | wc -l)"
[ "$got_frames" -ge "$NFRAMES" ] || die "decoded $got_frames frames, $NFRAMES wanted"

{
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- plugin examples tests || echo '+changes'),"
    echo "$(rustc --version | cut -d' ' -f1-2), features tensorrt, needs $glibc,"
    echo "made $(date -u +%Y-%m-%dT%H:%MZ)"
} >"$STAGE/BUILD.txt"
(cd "$STAGE" && find . -type f ! -name SHA256SUMS -printf '%P\n' | sort | xargs sha256sum >../SHA256SUMS.tmp \
    && mv ../SHA256SUMS.tmp SHA256SUMS)

# ------------------------------------------------------------------ pack and split
# The same content (SHA256SUMS minus BUILD.txt's date) is not compressed again.
content="$(grep -v ' BUILD.txt$' "$STAGE/SHA256SUMS" | sha256sum | cut -c1-32)"
if [ "$(cat "$CARRY/payload.content" 2>/dev/null)" != "$content" ] || [ ! -f "$CARRY/payload.tar.xz" ]; then
    log "packing (xz -$XZ_LEVEL; a few minutes)"
    tar -C "$CARRY/stage" -cf - payload | xz "-$XZ_LEVEL" -T2 -c >"$CARRY/payload.tar.xz.tmp"
    mv "$CARRY/payload.tar.xz.tmp" "$CARRY/payload.tar.xz"
    echo "$content" >"$CARRY/payload.content"
else
    log "payload unchanged since the last packing: kept"
fi
rm -rf "$CARRY"/[0-9][0-9] "$CARRY/split"
mkdir -p "$CARRY/split"
if [ -z "${GPU_PREPARE_PART_MIB:-}" ]; then
    # each call sends the checkout too: parts fill what is left of 60 MiB (at most 50)
    co_mib=$(( ($(checkout_bytes) + 1048575) / 1048576 ))
    PART_MIB=$(( 60 - co_mib < 50 ? 60 - co_mib : 50 ))
    log "parts of $PART_MIB MiB (the checkout sends $co_mib MiB with each call)"
fi
split -b "${PART_MIB}M" -d -a 2 --numeric-suffixes=1 "$CARRY/payload.tar.xz" "$CARRY/split/payload.part"
{
    echo "payload $(sha256sum "$CARRY/payload.tar.xz" | cut -d' ' -f1) $(stat -c %s "$CARRY/payload.tar.xz")"
    for p in "$CARRY"/split/payload.part*; do
        echo "$(basename "$p") $(sha256sum "$p" | cut -d' ' -f1) $(stat -c %s "$p")"
    done
} >"$CARRY/split/payload.sums"
for p in "$CARRY"/split/payload.part*; do
    k="${p##*.part}"
    mkdir -p "$CARRY/$k"
    mv "$p" "$CARRY/$k/"
    cp "$CARRY/split/payload.sums" "$CARRY/$k/"
done
rm -rf "$CARRY/split"

echo
echo "payload: $(du -sh "$STAGE" | cut -f1) unpacked ($(cd "$STAGE" && du -sh ort bin gst py frames | tr '\t\n' ': ')),"
echo "  $(mib "$(stat -c %s "$CARRY/payload.tar.xz")") MiB packed; $(tr '\n' ' ' <"$STAGE/BUILD.txt")"
print_calls
