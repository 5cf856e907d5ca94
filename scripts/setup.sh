#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# scripts/setup.sh: the one set-up command for sam2track.
#
# Meant for a fresh Debian bookworm (run as root, or with sudo available):
#   1. installs the GStreamer, build and Python packages with apt-get;
#   2. installs a Rust toolchain >= 1.92 with rustup, unless cargo is
#      already new enough;
#   3. downloads the ONNX Runtime wheel with pip, verifies its sha256 and
#      extracts the shared library into .ort/lib/ (git-ignored);
#   4. builds the workspace (cargo build --workspace --all-targets).
#
# Every step is skipped when already done, so running it again is cheap.
#
# Options:
#   --with-export-tools  also create .venv-models and install the model export
#                        tools' requirements (models/requirements.txt) into it
#   --with-edgetam-tools the export tools plus EdgeTAM's code
#                        (models/requirements-edgetam.txt) in .venv-edgetam, a
#                        package folder to put first on PYTHONPATH for
#                        `models/export.py --config edgetam`
#   --with-detector      also install gstreamer1.0-opencv and opencv-data: the
#                        facedetect element, a detector that attaches
#                        region-of-interest metas (roi-prompts, its test)
#   --ort-version V      install ONNX Runtime V instead of 1.31.1, into
#                        .ort/V/lib (pinned: 1.31.1, 1.19.2 = the oldest
#                        supported release with a PyPI wheel, gpu-1.31.1 =
#                        the CUDA 13 build); use it with
#                        ORT_DYLIB_PATH=.ort/V/lib/libonnxruntime.so.X.Y.Z
#   -h, --help           show this help
#
# Environment:
#   SAM2TRACK_ORT_DIR    install ONNX Runtime there instead of .ort/lib (relative
#                        paths are relative to the repository root); the build
#                        bakes the same variable in as the element's default.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

MIN_RUST="1.92"
# The ONNX Runtime the plugin is built and tested with (the element's default).
DEFAULT_ORT_VERSION="1.31.1"
# Pinned CPU wheels from PyPI: version -> "wheel file name sha256".
declare -A ORT_WHEELS=(
    [1.31.1]="onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
    # oldest release whose wheel ships libonnxruntime.so (1.17/1.18 wheels do not)
    [1.19.2]="onnxruntime-1.19.2-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl a36511dc07c5c964b916697e42e366fa43c48cdb3d3503578d78cef30417cb84"
    # the CUDA 13 build (package onnxruntime-gpu; 256 MB): CUDA and TensorRT providers
    [gpu-1.31.1]="onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"
)
ORT_VERSION="$DEFAULT_ORT_VERSION"

APT_PACKAGES=(
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-libav
    build-essential pkg-config python3 python3-pip python3-venv
    meson ninja-build curl ca-certificates
    # the Python example and its test (PyGObject; GstValueArray needs python3-gst-1.0)
    python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
)

WITH_EXPORT_TOOLS=0
WITH_EDGETAM_TOOLS=0
ORT_VERSION_GIVEN=0

log() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '4,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        --with-export-tools) WITH_EXPORT_TOOLS=1 ;;
        --with-edgetam-tools) WITH_EXPORT_TOOLS=1; WITH_EDGETAM_TOOLS=1 ;;
        --with-detector) APT_PACKAGES+=(gstreamer1.0-opencv opencv-data) ;;
        --ort-version)
            [ "$#" -ge 2 ] || die "--ort-version needs a version"
            ORT_VERSION="$2"; ORT_VERSION_GIVEN=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

[ -n "${ORT_WHEELS[$ORT_VERSION]:-}" ] \
    || die "no pinned wheel for ONNX Runtime $ORT_VERSION (pinned: ${!ORT_WHEELS[*]})"
read -r ORT_WHEEL ORT_WHEEL_SHA256 <<<"${ORT_WHEELS[$ORT_VERSION]}"
# gpu-X.Y.Z: the onnxruntime-gpu package of release X.Y.Z
ORT_PACKAGE="onnxruntime"
ORT_RELEASE="$ORT_VERSION"
if [ "${ORT_VERSION#gpu-}" != "$ORT_VERSION" ]; then
    ORT_PACKAGE="onnxruntime-gpu"
    ORT_RELEASE="${ORT_VERSION#gpu-}"
fi
ORT_MEMBERS=(
    "onnxruntime/capi/libonnxruntime.so.${ORT_RELEASE}"
    "onnxruntime/capi/libonnxruntime_providers_shared.so"
)
if [ "$ORT_PACKAGE" = onnxruntime-gpu ]; then
    ORT_MEMBERS+=(
        "onnxruntime/capi/libonnxruntime_providers_cuda.so"
        "onnxruntime/capi/libonnxruntime_providers_tensorrt.so"
    )
fi
ORT_LIB="libonnxruntime.so.${ORT_RELEASE}"

if [ "$ORT_VERSION" != "$DEFAULT_ORT_VERSION" ]; then
    # another release, next to the default one (which the build bakes in)
    ORT_DIR="$REPO_ROOT/.ort/$ORT_VERSION/lib"
else
    case "${SAM2TRACK_ORT_DIR:-}" in
        "") ORT_DIR="$REPO_ROOT/.ort/lib" ;;
        /*) ORT_DIR="$SAM2TRACK_ORT_DIR" ;;
        *) ORT_DIR="$REPO_ROOT/$SAM2TRACK_ORT_DIR" ;;
    esac
fi

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "'$*' needs root: run this script as root (sudo scripts/setup.sh)"
    fi
}

# ---------------------------------------------------------------- 1. apt
install_apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "System packages: all installed"
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${missing[*]}"
    log "System packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- 2. Rust
# Prints "major.minor" of the cargo on PATH, or nothing.
cargo_version() {
    cargo --version 2>/dev/null | sed -n 's/^cargo \([0-9]*\)\.\([0-9]*\).*/\1.\2/p'
}

# version_ge A B: true when version A >= version B.
version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    local have
    have="$(cargo_version)"
    if [ -n "$have" ] && version_ge "$have" "$MIN_RUST"; then
        log "Rust: cargo $have (>= $MIN_RUST), leaving it alone"
        return
    fi
    log "Rust: cargo ${have:-missing} is older than $MIN_RUST, installing rustup's $MIN_RUST toolchain"
    if ! command -v rustup >/dev/null 2>&1; then
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
            | sh -s -- -y --quiet --profile minimal --default-toolchain none --no-modify-path
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    rustup toolchain install "$MIN_RUST" --profile minimal -c rustfmt,clippy
    rustup default "$MIN_RUST"
    have="$(cargo_version)"
    { [ -n "$have" ] && version_ge "$have" "$MIN_RUST"; } \
        || die "cargo is still ${have:-missing} after installing Rust $MIN_RUST"
    log "Rust: cargo $have installed (add \$HOME/.cargo/bin to your PATH)"
}

# ---------------------------------------------------------------- 3. ONNX Runtime
ort_installed() {
    [ -f "$ORT_DIR/$ORT_LIB" ] \
        && [ -f "$ORT_DIR/WHEEL_SHA256" ] \
        && [ "$(cat "$ORT_DIR/WHEEL_SHA256")" = "$ORT_WHEEL_SHA256" ] \
        && (cd "$ORT_DIR" && sha256sum --quiet --status -c SHA256SUMS)
}

# pip_download DIR: downloads the pinned wheel into DIR.
pip_download() {
    local dest="$1"
    local args=(download "$ORT_PACKAGE==$ORT_RELEASE" --no-deps --only-binary=:all:
        --python-version 3.11 --implementation cp --abi cp311
        --platform manylinux_2_28_x86_64 -d "$dest"
        --quiet --disable-pip-version-check)
    if python3 -m pip "${args[@]}" 2>"$TMP_DIR/pip.err"; then
        return 0
    fi
    # The system pip may be missing or "externally managed" (PEP 668): use a
    # throwaway virtual environment just for pip.
    log "ONNX Runtime: system pip failed ($(tail -n 1 "$TMP_DIR/pip.err")), retrying in a throwaway venv"
    python3 -m venv "$TMP_DIR/venv" || die "python3 -m venv failed (is python3-venv installed?)"
    "$TMP_DIR/venv/bin/python" -m pip "${args[@]}" \
        || die "pip could not download $ORT_PACKAGE==$ORT_RELEASE"
}

install_ort() {
    if ort_installed; then
        log "ONNX Runtime: $ORT_VERSION already in $ORT_DIR"
        return
    fi
    log "ONNX Runtime: downloading $ORT_PACKAGE==$ORT_RELEASE with pip"
    local wheel_dir="$TMP_DIR/wheel"
    mkdir -p "$wheel_dir"
    pip_download "$wheel_dir"
    local wheel="$wheel_dir/$ORT_WHEEL"
    [ -f "$wheel" ] || die "pip did not produce $ORT_WHEEL (got: $(ls "$wheel_dir"))"

    local actual
    actual="$(sha256sum "$wheel" | cut -d ' ' -f 1)"
    if [ "$actual" != "$ORT_WHEEL_SHA256" ]; then
        printf '\nsetup.sh: SHA256 MISMATCH for %s\n  expected %s\n  got      %s\n' \
            "$ORT_WHEEL" "$ORT_WHEEL_SHA256" "$actual" >&2
        die "refusing to install an unverified ONNX Runtime"
    fi
    log "ONNX Runtime: wheel sha256 verified"

    local stage="$TMP_DIR/stage"
    mkdir -p "$stage"
    python3 - "$wheel" "$stage" "${ORT_MEMBERS[@]}" <<'PY'
import os, shutil, sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    for member in members:
        target = os.path.join(dest, os.path.basename(member))
        with archive.open(member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        os.chmod(target, 0o755)
PY
    local names=() member
    for member in "${ORT_MEMBERS[@]}"; do names+=("$(basename "$member")"); done
    (cd "$stage" && sha256sum -- "${names[@]}" >SHA256SUMS)
    printf '%s\n' "$ORT_WHEEL_SHA256" >"$stage/WHEEL_SHA256"

    mkdir -p "$(dirname "$ORT_DIR")"
    rm -rf "$ORT_DIR"
    mv "$stage" "$ORT_DIR"
    ort_installed || die "ONNX Runtime installation in $ORT_DIR does not verify"
    log "ONNX Runtime: installed $ORT_LIB into $ORT_DIR"
}

# ---------------------------------------------------------------- export tools
install_export_tools() {
    local req="$REPO_ROOT/models/requirements.txt"
    [ -f "$req" ] || die "--with-export-tools: $req not found"
    local venv="$REPO_ROOT/.venv-models"
    if [ ! -x "$venv/bin/python" ]; then
        log "Export tools: creating $venv"
        python3 -m venv "$venv"
    fi
    log "Export tools: installing $req"
    local pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
    # sam2 is built from source and needs torch at build time: install torch first and
    # build sam2 against it (no isolated build env, which would fetch torch a second time).
    "${pip[@]}" setuptools wheel $(grep -E '^(torch|torchvision)==' "$req")
    SAM2_BUILD_CUDA=0 "${pip[@]}" --no-build-isolation -r "$req"
    log "Export tools: ready (activate with: . .venv-models/bin/activate)"
}

# EdgeTAM's `sam2` package cannot share .venv-models with Meta's: install it (and timm)
# without dependencies into a package folder that goes first on PYTHONPATH.
install_edgetam_tools() {
    local req="$REPO_ROOT/models/requirements-edgetam.txt"
    [ -f "$req" ] || die "--with-edgetam-tools: $req not found"
    local target="$REPO_ROOT/.venv-edgetam"
    log "EdgeTAM export tools: installing $req into $target"
    "$REPO_ROOT/.venv-models/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps --upgrade --target "$target" -r "$req"
    log "EdgeTAM export tools: ready (PYTHONPATH=.venv-edgetam .venv-models/bin/python models/export.py --config edgetam ...)"
}

# ---------------------------------------------------------------- main
install_apt_packages
ensure_rust
install_ort
if [ "$ORT_VERSION_GIVEN" -eq 1 ] && [ "$ORT_VERSION" != "$DEFAULT_ORT_VERSION" ]; then
    log "ONNX Runtime $ORT_VERSION: use it with ORT_DYLIB_PATH=$ORT_DIR/$ORT_LIB"
    exit 0
fi
if [ "$WITH_EXPORT_TOOLS" -eq 1 ]; then
    install_export_tools
fi
if [ "$WITH_EDGETAM_TOOLS" -eq 1 ]; then
    install_edgetam_tools
fi

log "Building the workspace"
cd "$REPO_ROOT"
cargo build --workspace --all-targets
log "Set-up complete. Run the tests with: scripts/test.sh"
