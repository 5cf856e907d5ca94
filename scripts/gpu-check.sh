#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# scripts/gpu-check.sh: every GPU figure the project lacks, in one command on a lent GPU
# machine (issue 14): machine facts, golden parity on CUDA (fp32, fp16), SAM 2.1-tiny at
# 1024 with 1 and 4 objects on CUDA fp32 / CUDA fp16 / TensorRT fp16 (when TensorRT is
# there), the official SAM2VideoPredictor (eager, bf16 autocast) on the same GPU, frames
# and run, the peak GPU memory of both, and the element in a pipeline (when GStreamer is
# there). Writes a markdown table to $OUT/gpu-check.md and stdout.
#
#   scripts/gpu-check.sh --stash     copy the payload parts carried in this call
#                                    (.gpu-carry/*/) to $GPU_CHECK_ROOT/parts, say
#                                    which parts are there and which are missing; exit
#   scripts/gpu-check.sh             stash, then (all parts there) join, verify and
#                                    unpack the payload, and run every check
#   scripts/gpu-check.sh --dry-run   the same on this CPU machine: the CPU provider
#                                    instead of CUDA, a 256 input, 5 frames, the
#                                    official predictor on the CPU; no GPU figure
#
# The payload (ONNX Runtime's CUDA build, the gpu_check engine binary, the sam2 Python
# packages, the frames) is made by scripts/gpu-prepare.sh, which also prints the exact
# sequence of device `run` calls. The model is exported on the machine (seeded random
# weights: speed does not depend on them; no network needed).
#
# Environment: GPU_CHECK_ROOT (work folder outside the repository; default
# /root/gpu-check, dry run /tmp/gpu-check-dry), GPU_CHECK_BUDGET_S (480: parts that
# would start later are skipped and said so), GPU_CHECK_PYTHON (default
# /opt/torch/.venv/bin/python3 when there, else python3; dry run .venv-models),
# GPU_CHECK_SIZE (1024; dry 256), GPU_CHECK_OBJECTS (1,4), GPU_CHECK_FRAMES (48; dry 5),
# GPU_CHECK_WARMUP (8; dry 2), GPU_CHECK_EXPORT_CHECK (1: export.py's checks, 0: skip).

set -uo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT" || exit 2

MODE=run
DRY=0
for arg in "$@"; do
    case "$arg" in
        --stash) MODE=stash ;;
        --dry-run) DRY=1 ;;
        -h | --help) sed -n '4,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu-check.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done
[ "${GPU_CHECK_DRY_RUN:-0}" = 1 ] && DRY=1

if [ "$DRY" = 1 ]; then
    ROOT="${GPU_CHECK_ROOT:-/tmp/gpu-check-dry}"
    SIZE="${GPU_CHECK_SIZE:-256}"
    NFRAMES="${GPU_CHECK_FRAMES:-5}"
    WARMUP="${GPU_CHECK_WARMUP:-2}"
    PROV=cpu
    DEFAULT_PY="$REPO_ROOT/.venv-models/bin/python"
else
    ROOT="${GPU_CHECK_ROOT:-/root/gpu-check}"
    SIZE="${GPU_CHECK_SIZE:-1024}"
    NFRAMES="${GPU_CHECK_FRAMES:-48}"
    WARMUP="${GPU_CHECK_WARMUP:-8}"
    PROV=cuda
    DEFAULT_PY=/opt/torch/.venv/bin/python3
fi
[ -x "$DEFAULT_PY" ] || DEFAULT_PY="$(command -v python3 || echo python3)"
PY="${GPU_CHECK_PYTHON:-$DEFAULT_PY}"
OBJECTS="${GPU_CHECK_OBJECTS:-1,4}"
BUDGET="${GPU_CHECK_BUDGET_S:-480}"
BIAS=10
CONFIG=sam2.1_hiera_t
PARTS="$ROOT/parts"
PAYLOAD="$ROOT/payload"
RES="$ROOT/results"
OUT="${OUT:-$ROOT/out}"
DEADLINE=$((SECONDS + BUDGET))

log() { printf '==> [%3ds] %s\n' "$SECONDS" "$*"; }
note() { # one line for the report's notes
    printf '%s\n' "$*" >>"$RES/notes.txt"
    printf '    NOTE: %s\n' "$*"
}
fact() { printf '%s\t%s\n' "$1" "$2" >>"$RES/facts.tsv"; printf '    %-22s %s\n' "$1" "$2"; }

# ------------------------------------------------------------------ parts
# .gpu-carry/<k>/ holds payload.part<k> and payload.sums (the list of every part and
# the sha256 of the whole): copy what this call carried to $PARTS, which outlives the
# call on the machine (the repository copy's ignored folders may not).
stash() {
    mkdir -p "$PARTS"
    local f n=0
    for f in .gpu-carry/*/payload.part* .gpu-carry/*/payload.sums; do
        [ -f "$f" ] || continue
        if ! cmp -s "$f" "$PARTS/$(basename "$f")"; then
            cp -f "$f" "$PARTS/" && n=$((n + 1))
        fi
    done
    echo "stashed $n file(s) into $PARTS"
}

# Prints the state of the parts; returns 0 when every part is there and verifies.
parts_state() {
    local sums="$PARTS/payload.sums"
    if [ ! -f "$sums" ]; then
        echo "MISSING: $sums (no part carried yet: run the calls scripts/gpu-prepare.sh printed)"
        return 1
    fi
    local ok=0 bad=0 name sha
    local missing=()
    while read -r name sha _; do
        case "$name" in payload.part*) ;; *) continue ;; esac
        if [ ! -f "$PARTS/$name" ]; then
            missing+=("$name")
        elif [ "$(sha256sum "$PARTS/$name" | cut -d' ' -f1)" = "$sha" ]; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
            missing+=("$name (sha256 differs: carry it again)")
        fi
    done <"$sums"
    echo "payload parts: $ok of $(grep -c '^payload.part' "$sums") present and verified"
    if [ "${#missing[@]}" -gt 0 ]; then
        printf 'MISSING: %s\n' "${missing[@]}"
        return 1
    fi
    return 0
}

machine_line() {
    local gpu
    gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)"
    echo "machine: ${gpu:-no nvidia-smi / no GPU}; $(ldd --version 2>/dev/null | head -n1); $(nproc) cores;" \
        "python $("$PY" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo missing)"
}

if [ "$MODE" = stash ]; then
    stash
    parts_state
    machine_line
    exit 0
fi

# ------------------------------------------------------------------ run
rm -rf "$RES" && mkdir -p "$RES" "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
log "gpu-check $([ "$DRY" = 1 ] && echo '(DRY RUN on the CPU: no GPU figure)') root $ROOT, out $OUT, budget ${BUDGET}s"
stash

# --- everything needed, checked up front
missing=()
need_file() { [ -e "$1" ] || missing+=("$1${2:+ ($2)}"); }
for f in models/export.py models/sam2_graphs.py models/files.py models/bench_official.py \
    scripts/gpu_mem.py scripts/gpu_report.py tests/fixtures/golden/golden.json \
    tests/fixtures/golden/golden.bin tests/fixtures/micro/model.json; do
    need_file "$f" "in the checkout"
done
command -v "$PY" >/dev/null 2>&1 || missing+=("$PY (python)")
if ! "$PY" -c 'import torch, onnx, numpy, PIL' 2>/dev/null; then
    missing+=("torch, onnx, numpy, pillow importable by $PY")
fi
command -v timeout >/dev/null 2>&1 || missing+=("timeout (coreutils)")
if [ "$DRY" = 0 ]; then
    "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
        || missing+=("a CUDA device visible to torch")
fi
expected_sha=""
[ -f "$PARTS/payload.sums" ] && expected_sha="$(awk '$1 == "payload" {print $2}' "$PARTS/payload.sums")"
if [ -n "$expected_sha" ] && [ "$(cat "$PAYLOAD/.payload-sha256" 2>/dev/null)" = "$expected_sha" ]; then
    echo "payload already unpacked in $PAYLOAD (sha256 ${expected_sha:0:16}...)"
else
    if state="$(parts_state)"; then
        echo "$state"
    else
        missing+=("payload parts in $PARTS: ${state//$'\n'/; }")
    fi
    command -v xz >/dev/null 2>&1 || "$PY" -c 'import lzma' 2>/dev/null || missing+=("xz or Python's lzma")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    printf 'MISSING: %s\n' "${missing[@]}"
    echo "gpu-check.sh: nothing run; carry what is missing (scripts/gpu-prepare.sh prints the calls)"
    exit 3
fi

# --- the payload
if [ "$(cat "$PAYLOAD/.payload-sha256" 2>/dev/null)" != "$expected_sha" ]; then
    log "joining and unpacking the payload"
    joined="$ROOT/payload.tar.xz"
    cat "$PARTS"/payload.part* >"$joined"
    got="$(sha256sum "$joined" | cut -d' ' -f1)"
    if [ "$got" != "$expected_sha" ]; then
        echo "MISSING: a payload whose sha256 is $expected_sha (joined parts give $got)"
        exit 3
    fi
    rm -rf "$PAYLOAD.tmp" && mkdir -p "$PAYLOAD.tmp"
    if command -v xz >/dev/null 2>&1; then
        xz -d -T0 -c "$joined" | tar -x -C "$PAYLOAD.tmp" || { echo "unpacking failed"; exit 3; }
    else
        "$PY" -c 'import sys, tarfile; t = tarfile.open(sys.argv[1], "r:xz"); t.extractall(sys.argv[2], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))' \
            "$joined" "$PAYLOAD.tmp" || { echo "unpacking failed"; exit 3; }
    fi
    rm -f "$joined"
    (cd "$PAYLOAD.tmp/payload" && sha256sum --quiet -c SHA256SUMS) || { echo "payload files do not verify"; exit 3; }
    rm -rf "$PAYLOAD" && mv "$PAYLOAD.tmp/payload" "$PAYLOAD" && rmdir "$PAYLOAD.tmp"
    echo "$expected_sha" >"$PAYLOAD/.payload-sha256"
fi
BIN="$PAYLOAD/bin/gpu_check"
for f in "$BIN" "$PAYLOAD/ort/libonnxruntime.so.1.31.1" "$PAYLOAD/frames/prompts.json"; do
    need_file "$f" "in the payload"
done
if [ "${#missing[@]}" -gt 0 ]; then
    printf 'MISSING: %s\n' "${missing[@]}"
    exit 3
fi

# --- libraries: ONNX Runtime's GPU build, the CUDA/cuDNN libraries of the python's
# nvidia-* packages (site-packages/nvidia/*/lib, nvidia/cu13/lib). Only the engine and
# the element get them (ORT_ENV): Python's own onnxruntime and torch keep theirs.
NV_LIBS="$("$PY" - <<'PYEOF' 2>/dev/null
import glob, os, site
dirs = []
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for pattern in ("nvidia/*/lib", "nvidia/*/*/lib", "tensorrt_libs"):
        for d in sorted(glob.glob(os.path.join(sp, pattern))):
            if glob.glob(os.path.join(d, "*.so*")) and d not in dirs:
                dirs.append(d)
print(":".join(dirs))
PYEOF
)"
ORT_LD="$PAYLOAD/ort${NV_LIBS:+:$NV_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ORT_ENV=(env LD_LIBRARY_PATH="$ORT_LD" ORT_DYLIB_PATH="$PAYLOAD/ort/libonnxruntime.so.1.31.1")

find_lib() { # NAME: the path of a loadable library NAME (loader cache or those folders)
    local d
    ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n {print $NF; exit}' | grep . && return 0
    IFS=: read -ra dirs <<<"$ORT_LD"
    for d in "${dirs[@]}"; do [ -e "$d/$1" ] && { echo "$d/$1"; return 0; }; done
    return 1
}

# --- facts
log "machine"
fact title "GPU check $(date -u +%Y-%m-%d) $([ "$DRY" = 1 ] && echo '(DRY RUN on the CPU: no GPU figure)')"
fact "GPU" "$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n1 | grep . || echo 'none (nvidia-smi not found or no GPU)')"
fact "driver" "$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1 | grep . || echo none)"
fact "torch / CUDA / cuDNN" "$("$PY" -c 'import torch; print(torch.__version__, "/", torch.version.cuda, "/", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)' 2>&1 | tail -n1)"
ORT_INFO="$("${ORT_ENV[@]}" "$BIN" info 2>&1 | sed -n 's/^RESULT //p')"
fact "ONNX Runtime" "$(echo "$ORT_INFO" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["ort_version"], "(" + d["ort_library"].rsplit("/", 2)[-2] + "/" + d["ort_library"].rsplit("/", 1)[-1] + ", onnxruntime-gpu wheel)")' 2>/dev/null || echo "does not load: $("${ORT_ENV[@]}" "$BIN" info 2>&1 | tail -n1)")"
fact "CPU model" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
# shellcheck disable=SC1091
fact "OS / glibc" "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") / $(ldd --version 2>/dev/null | head -n1 | awk '{print $NF}')"
TRT_LIB="$(find_lib libnvinfer.so.10 || true)"
fact "TensorRT" "${TRT_LIB:-not on this machine (no libnvinfer.so.10)}"
GST="$(command -v gst-launch-1.0 || true)"
if [ -n "$GST" ]; then
    fact "GStreamer" "$(gst-launch-1.0 --version 2>/dev/null | head -n1)"
else
    fact "GStreamer" "not on this machine"
fi
fact "build" "$(tr '\n' ' ' <"$PAYLOAD/BUILD.txt" 2>/dev/null)"
fact "run" "input ${SIZE}x${SIZE}, frames $NFRAMES (steady state from frame $WARMUP), objects $OBJECTS, provider $PROV"

# ------------------------------------------------------------------ parts runner
# part NAME MAX_SECONDS OUTFILE CMD...: runs CMD (stdout to OUTFILE, stderr to
# OUTFILE.err) within MAX_SECONDS and what is left of the budget; says how it went.
part() {
    local name="$1" max="$2" out="$3"
    shift 3
    local left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 20 ]; then
        note "$name: skipped (the ${BUDGET} s budget is spent)"
        return 1
    fi
    local t=$((max < left ? max : left)) start=$SECONDS rc=0
    timeout --kill-after=10 "$t" "$@" >"$out" 2>"$out.err" || rc=$?
    local took=$((SECONDS - start))
    if [ "$rc" = 0 ]; then
        printf '    %-44s ok (%d s)\n' "$name" "$took"
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        note "$name: timed out after ${t} s"
    else
        note "$name: failed (exit $rc): $(grep -v '^ *$' "$out.err" | tail -n 1 | cut -c1-300)"
    fi
    return "$rc"
}

# --- Python packages (sam2 and its pure-Python needs, carried as wheels)
log "Python packages"
SITE="$ROOT/site"
if [ ! -f "$SITE/.installed" ] || ! cmp -s "$SITE/.installed" "$PAYLOAD/.payload-sha256"; then
    rm -rf "$SITE"
    if part "pip install (carried wheels)" 120 "$RES/pip.txt" \
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$PAYLOAD"/py/*.whl; then
        cp "$PAYLOAD/.payload-sha256" "$SITE/.installed"
    fi
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1
if ! "$PY" -c 'import sam2, hydra, omegaconf, iopath' 2>"$RES/import.err"; then
    note "sam2 does not import: $(tail -n1 "$RES/import.err") (export, official predictor skipped)"
fi

# --- frames: the carried JPEGs (bedroom.mp4, made by gpu-prepare.sh) as PNG
FRAMES="$ROOT/frames-$NFRAMES"
if [ ! -f "$FRAMES/prompts.json" ]; then
    rm -rf "$FRAMES" && mkdir -p "$FRAMES"
    "$PY" - "$PAYLOAD/frames" "$FRAMES" "$NFRAMES" <<'PYEOF' || note "frames: conversion failed"
import os, shutil, sys
from PIL import Image
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = sorted(f for f in os.listdir(src) if f.endswith(".jpg"))[:n]
for i, name in enumerate(names):
    Image.open(os.path.join(src, name)).convert("RGB").save(os.path.join(dst, f"{i:05d}.png"), compress_level=1)
shutil.copy(os.path.join(src, "prompts.json"), dst)
print(f"    frames: {len(names)} PNG in {dst}")
PYEOF
fi
have_frames="$(find "$FRAMES" -name '*.png' | wc -l)"
[ "$have_frames" -ge "$NFRAMES" ] || note "frames: $have_frames of $NFRAMES (the payload has fewer)"

# --- the model: SAM 2.1 hiera-tiny, seeded random weights, object-score bias as bench.sh
log "export $CONFIG at $SIZE (seed 0, object-score bias $BIAS)"
MODEL="$ROOT/models/$CONFIG-$SIZE-bias$BIAS"
STAMP="$(cat models/export.py models/sam2_graphs.py models/files.py | sha256sum | cut -c1-16)-$SIZE"
if [ ! -f "$MODEL/model.json" ] || [ "$(cat "$MODEL/.stamp" 2>/dev/null)" != "$STAMP" ]; then
    rm -rf "$MODEL" "$MODEL.tmp"
    CHECK_ARGS=()
    [ "${GPU_CHECK_EXPORT_CHECK:-1}" = 1 ] || CHECK_ARGS=(--skip-check)
    part "export $CONFIG $SIZE" 300 "$RES/export.txt" \
        "$PY" models/export.py --config "$CONFIG" --random-weights --seed 0 --object-score-bias "$BIAS" \
        --image-size "$SIZE" --out "$MODEL.tmp" "${CHECK_ARGS[@]}"
    if [ -f "$MODEL.tmp/model.json" ]; then
        mv "$MODEL.tmp" "$MODEL" && echo "$STAMP" >"$MODEL/.stamp"
        grep -q '^FAILED' "$RES/export.txt" && note "export: graphs written but export.py's checks failed: $(grep '^FAILED' "$RES/export.txt")"
    fi
fi
[ -f "$MODEL/model.json" ] || note "no exported model: the speed rows are missing"
MICRO="$REPO_ROOT/tests/fixtures/micro"

# --- fp16 models (models/fp16.py, when this checkout has it)
MICRO16="$ROOT/models/micro-fp16"
MODEL16="$MODEL-fp16"
if [ -f models/fp16.py ]; then
    log "fp16 models (models/fp16.py)"
    for pair in "$MICRO:$MICRO16" "$MODEL:$MODEL16"; do
        src="${pair%%:*}" dst="${pair#*:}"
        [ -f "$src/model.json" ] || continue
        if [ ! -f "$dst/model.json" ] || [ "$dst/model.json" -ot "$src/model.json" ] || [ "$dst/model.json" -ot models/fp16.py ]; then
            rm -rf "$dst"
            part "fp16 $(basename "$dst")" 180 "$RES/fp16-$(basename "$dst").txt" \
                "$PY" models/fp16.py --model "$src" --out "$dst" || rm -rf "$dst"
        fi
    done
else
    note "fp16: missing: models/fp16.py is not in this checkout (no fp16 parity or speed rows)"
fi

# --- golden parity
log "golden parity on $PROV"
parity() { # label model tf32
    [ -f "$2/model.json" ] || return 0
    part "parity $1 tf32 $3" 120 "$RES/parity-$PROV-${1// /-}-tf32$3.txt" \
        "${ORT_ENV[@]}" "$BIN" parity --model "$2" --golden "$REPO_ROOT/tests/fixtures/golden" --provider "$PROV" --tf32 "$3" --label "$1"
}
parity "micro fp32" "$MICRO" on
[ "$PROV" = cpu ] || parity "micro fp32" "$MICRO" off
parity "micro fp16" "$MICRO16" on

# --- speed: sam2track
bench_ours() { # label model provider-args...
    local label="$1" model="$2" n
    shift 2
    [ -f "$model/model.json" ] || return 0
    for n in ${OBJECTS//,/ }; do
        part "sam2track $label, $n object(s)" 240 "$RES/ours-${label// /-}-$n.txt" \
            "$PY" scripts/gpu_mem.py -- "${ORT_ENV[@]}" "$BIN" bench --model "$model" --frames "$FRAMES" --objects "$n" \
            --num-frames "$NFRAMES" --warmup "$WARMUP" --label "$label" "$@"
    done
}
log "sam2track speed, fp32"
bench_ours "$PROV fp32" "$MODEL" --provider "$PROV"

# --- speed: the official predictor, same frames, same model config and weights
if "$PY" -c 'import sam2' 2>/dev/null; then
    if [ "$DRY" = 1 ]; then
        ODEV=cpu OCAST=none
        note "official predictor: on the CPU, fp32 (dry run; on the GPU it runs on CUDA with bf16 autocast)"
    else
        ODEV=cuda OCAST=bf16
    fi
    log "official SAM2VideoPredictor ($ODEV, autocast $OCAST)"
    for n in ${OBJECTS//,/ }; do
        part "official $ODEV $OCAST, $n object(s)" 300 "$RES/official-$n.txt" \
            "$PY" scripts/gpu_mem.py -- "$PY" models/bench_official.py --frames "$FRAMES" --objects "$n" \
            --config "$CONFIG" --image-size "$SIZE" --num-frames "$NFRAMES" --warmup "$WARMUP" \
            --object-score-bias "$BIAS" --device "$ODEV" --autocast "$OCAST"
    done
fi

log "sam2track speed, fp16 and TensorRT"
bench_ours "$PROV fp16" "$MODEL16" --provider "$PROV"
if [ "$DRY" = 1 ]; then
    note "TensorRT fp16: skipped (dry run; TensorRT ${TRT_LIB:+found at $TRT_LIB}${TRT_LIB:-not on this machine})"
elif [ -n "$TRT_LIB" ]; then
    bench_ours "tensorrt fp16" "$MODEL" --provider tensorrt --trt-fp16 --trt-cache "$ROOT/trt-cache"
else
    note "TensorRT fp16: skipped: TensorRT's libraries are not on this machine (no libnvinfer.so.10)"
fi

# --- the element in a pipeline (only where GStreamer is)
if [ -z "$GST" ]; then
    note "element in a pipeline: skipped: GStreamer is not on this machine"
elif [ ! -f "$PAYLOAD/gst/libgstsam2.so" ]; then
    note "element in a pipeline: skipped: the payload has no gst/libgstsam2.so"
elif [ ! -f "$MODEL/model.json" ]; then
    note "element in a pipeline: skipped: no model"
else
    log "the element: videotestsrc 1080p RGB -> sam2track ($PROV) -> fakesink"
    if [ "$DRY" = 1 ]; then E1=3 E2=5; else E1=10 E2=50; fi
    desc() {
        echo "videotestsrc num-buffers=$1 pattern=ball ! video/x-raw,format=RGB,width=1920,height=1080,framerate=30/1" \
            "! sam2track model-dir=$MODEL provider=$PROV fallback-to-cpu=false mode=sync prompt=1:point=960,540" \
            "! fakesink sync=false"
    }
    element_run() { # buffers -> seconds
        local start=$EPOCHREALTIME
        # shellcheck disable=SC2046  # the pipeline description is split into words on purpose
        GST_PLUGIN_PATH="$PAYLOAD/gst" GST_REGISTRY="$ROOT/gst-registry.bin" \
            "${ORT_ENV[@]}" timeout 200 gst-launch-1.0 -q $(desc "$1") >"$RES/element-$1.txt" 2>&1 || return 1
        "$PY" -c "print($EPOCHREALTIME - $start)"
    }
    if [ $((DEADLINE - SECONDS)) -lt 60 ]; then
        note "element in a pipeline: skipped (the ${BUDGET} s budget is spent)"
    elif s1="$(element_run "$E1")" && s2="$(element_run "$E2")"; then
        "$PY" - "$E1" "$E2" "$s1" "$s2" "$(desc N)" >"$RES/element.json" <<'PYEOF'
import json, sys
a, b, s1, s2, pipe = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(json.dumps({"pipeline": pipe, "frames": [a, b], "seconds": [s1, s2], "ms_per_frame": (s2 - s1) / (b - a) * 1e3}))
PYEOF
        printf '    %-44s ok\n' "element"
    else
        note "element in a pipeline: failed: $(tail -n 2 "$RES"/element-*.txt 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
    fi
fi

# ------------------------------------------------------------------ report
log "report"
"$PY" scripts/gpu_report.py "$RES" >"$OUT/gpu-check.md" || python3 scripts/gpu_report.py "$RES" >"$OUT/gpu-check.md"
tar -czf "$OUT/gpu-check-results.tar.gz" -C "$ROOT" results 2>/dev/null
echo
cat "$OUT/gpu-check.md"
echo "gpu-check.sh: done in ${SECONDS} s; table in $OUT/gpu-check.md, every output in $OUT/gpu-check-results.tar.gz"
# let tee finish writing gpu-check.log
exec >&- 2>&-
wait
