#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
#
# scripts/bench.sh: sam2track's engine against the official PyTorch SAM2VideoPredictor,
# same machine, same run, same model, same frames (issue 5).
#
#   scripts/bench.sh                       # 1, 2, 4, 8 objects, 12 frames at 1024
#   BENCH_OBJECTS=1,4 BENCH_FRAMES=10 scripts/bench.sh
#   BENCH_ELEMENT=1 scripts/bench.sh       # + the element in a 1080p pipeline vs the engine
#   BENCH_MODES=1 scripts/bench.sh         # + the speed modes (512 or 768 input ("768-..."
#                                          #   the fast mode's recipe at 768), 2-3 memory frames,
#                                          #   int8 graphs from models/quantize.py (encoder
#                                          #   + memory attention: "int8hr" its default, the
#                                          #   encoder's high-res path fp32; "int8" with
#                                          #   --int8-high-res; "int8attn" the latter only),
#                                          #   int8 attention scores from export.py ("i8s";
#                                          #   "i8v": the self-attention's values too;
#                                          #   "i8ve": and the image encoder's global
#                                          #   attention, --int8-encoder-attention);
#                                          #   all int8 in the 7-bit range, exact on every
#                                          #   CPU; "-8bit": the full range, which saturates
#                                          #   on CPUs without VNNI; "-fp32prompt": the fp32
#                                          #   encoder kept for frames with prompts)
#                                          #   with their mask IoU against exact mode
#   BENCH_MODE_OBJECTS=1,4 ...             # object counts of the speed modes (default: all)
#   BENCH_MODE_NAMES="i8s int8hr-i8s-mem2" # which speed modes (default: every one; names in
#                                          #   mode_spec below)
#   BENCH_PAIRED_OBJECTS=1,4 ...           # object counts of the paired pass: the heavy stages
#                                          # against the matmul timed between frames ("": none)
#   BENCH_OFFICIAL=0 ...                   # skip the official predictor
#   BENCH_ROUNDS=2 ...                     # + interleaved speed rounds (official, exact, the
#                                          #   modes of BENCH_ROUND_MODES with BENCH_MODES=1,
#                                          #   default: i8s and the fast mode
#                                          #   int8hr-i8ve-mem2-fp32prompt), ratios per round
#   BENCH_ROUND_OBJECTS=1,4 ...            # their object counts (default: BENCH_OBJECTS)
#   BENCH_EDGETAM=1 scripts/bench.sh       # EdgeTAM mode (issue 15) instead: EdgeTAM at 1024 in
#                                          #   the official EdgeTAM predictor and in our engine,
#                                          #   and our SAM 2.1-tiny exact mode, in interleaved
#                                          #   rounds (official, ours, tiny, official, ...);
#                                          #   our masks' IoU (and background IoU) against the
#                                          #   official's. Needs scripts/setup.sh
#                                          #   --with-edgetam-tools (.venv-edgetam).
#   BENCH_EDGETAM_OBJECTS=1,4 BENCH_ROUNDS=2  # its object counts and rounds (defaults)
#   BENCH_WEIGHTS=random ...               # the seeded random weights instead of the default
#                                          #   "trained" (models/train_synthetic.py, trained once
#                                          #   into target/bench, ~25 min on 2 cores): masks
#                                          #   that follow their prompts (README: "The
#                                          #   trained benchmark model" says how well), so
#                                          #   that the modes' fidelity means something
#   BENCH_OBJECT_SCORE_BIAS=0 ...          # plain random weights (default 10: the object-score
#                                          #   head's bias is raised on both sides so objects
#                                          #   stay present; plain random weights judge every
#                                          #   object absent and the masks are empty, which
#                                          #   makes the modes' IoU meaningless; the compute
#                                          #   is the same either way)
#
# Needs scripts/setup.sh --with-export-tools (.venv-models: torch + sam2 for the official
# predictor and the export). The SAM 2.1 hiera-tiny model is exported with seeded random
# weights (speed does not depend on the weights) into target/bench/ the first time
# (~1.5 min per image size). Frames: the first BENCH_FRAMES frames of bedroom.mp4 at its
# size (960x540); the steady state is every frame from BENCH_WARMUP (8: memory bank full).
# The outputs of each part are kept in target/bench/*.txt; the report at the end prints
# ms/frame per stage, GFLOP/s against the matmul peak measured in the same run and against
# the matmul timed between the frames (the paired pass), peak RSS
# and the ratios official/ours.

set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

VIDEO="${BENCH_VIDEO:-$REPO_ROOT/../shared/data/videos/bedroom.mp4}"
OBJECTS="${BENCH_OBJECTS:-1,2,4,8}"
FRAMES="${BENCH_FRAMES:-12}"
WARMUP="${BENCH_WARMUP:-8}"
CONFIG="${BENCH_CONFIG:-sam2.1_hiera_t}"
OUT="${BENCH_DIR:-$REPO_ROOT/target/bench}"
PY="$REPO_ROOT/.venv-models/bin/python"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }
# impl round: names the RESULT lines of one part of an interleaved round
tag() { sed -E "s/^RESULT \{/RESULT {\"round\": $2, /; s/\"impl\": ?\"(official|sam2track)\"/\"impl\": \"$1\"/"; }

[ -x "$PY" ] || die "no $PY: run scripts/setup.sh --with-export-tools first"
[ -f "$VIDEO" ] || die "no video at $VIDEO (set BENCH_VIDEO)"
mkdir -p "$OUT"

BIAS="${BENCH_OBJECT_SCORE_BIAS:-10}"
SUFFIX=""
if [ "$BIAS" != 0 ]; then SUFFIX="-bias$BIAS"; fi
# The weights (issue 16): "trained" (default), the seeded random model after a few minutes
# of models/train_synthetic.py (masks follow what was prompted and vary in size; the README's
# "The trained benchmark model" says how well), or "random", the seeded random
# weights alone (every mask ~90% of the frame). Speed does not depend on them. The EdgeTAM
# comparison (below) keeps the random ones by default.
DEFAULT_WEIGHTS=trained
if [ "${BENCH_EDGETAM:-0}" = 1 ]; then DEFAULT_WEIGHTS=random; fi
WEIGHTS="${BENCH_WEIGHTS:-$DEFAULT_WEIGHTS}"
WEIGHT_ARGS=(--random-weights --seed 0)
OFFICIAL_WEIGHT_ARGS=(--seed 0)
case "$WEIGHTS" in
    random) ;;
    trained)
        SUFFIX="-trained$SUFFIX"
        CKPT="$OUT/trained-$CONFIG-s0.pt"
        TRAIN_STAMP="$(cat models/train_synthetic.py models/sam2_graphs.py | sha256sum | cut -c1-16)"
        WEIGHT_ARGS=(--checkpoint "$CKPT")
        OFFICIAL_WEIGHT_ARGS=(--checkpoint "$CKPT")
        ;;
    *) die "BENCH_WEIGHTS=$WEIGHTS: trained or random" ;;
esac
# Exports are redone when the export tool changed since (its sources' hash in a stamp).
# (and, with trained weights, when the checkpoint was trained again)
TOOL_STAMP="$(cat models/export.py models/sam2_graphs.py models/quantize.py models/files.py | sha256sum | cut -c1-16)${TRAIN_STAMP:+-$TRAIN_STAMP}"
# EdgeTAM's `sam2` package (setup.sh --with-edgetam-tools) replaces Meta's on the path.
EDGETAM_PATH="$REPO_ROOT/.venv-edgetam"
py_for() { # config -> the python command line for it
    case "$1" in
        edgetam*) echo "env PYTHONPATH=$EDGETAM_PATH $PY" ;;
        *) echo "$PY" ;;
    esac
}
export_model() { # size dir [config [export.py options...]]
    local config="${3:-$CONFIG}"
    if [ ! -f "$2/model.json" ] || [ "$(cat "$2/.tool-stamp" 2>/dev/null)" != "$TOOL_STAMP" ]; then
        local weights=(--random-weights --seed 0)
        # the trained weights are SAM 2.1-tiny's (EdgeTAM keeps its random ones)
        if [ "$config" = "$CONFIG" ]; then weights=("${WEIGHT_ARGS[@]}"); fi
        log "exporting $config at $1 (${weights[*]}, object score bias $BIAS) into $2"
        rm -rf "$2"
        $(py_for "$config") models/export.py --config "$config" "${weights[@]}" \
            --object-score-bias "$BIAS" --image-size "$1" --out "$2" "${@:4}" >"$OUT/export-$(basename "$2").log" 2>&1 \
            || { tail -n 20 "$OUT/export-$(basename "$2").log" >&2; die "export failed"; }
        echo "$TOOL_STAMP" >"$2/.tool-stamp"
    fi
}
quantize_model() { # fp32-dir int8-dir [graphs [quantize.py options...]]
    local graphs="${3:-image_encoder,memory_attention}"
    if [ ! -f "$2/model.json" ] || [ "$(cat "$2/.tool-stamp" 2>/dev/null)" != "$TOOL_STAMP" ]; then
        log "quantising $1 into $2 (int8 $graphs ${*:4})"
        rm -rf "$2"
        "$PY" models/quantize.py --model "$1" --out "$2" --graphs "$graphs" "${@:4}" >"$OUT/quantize.log" 2>&1 \
            || { tail -n 20 "$OUT/quantize.log" >&2; die "quantisation failed"; }
        echo "$TOOL_STAMP" >"$2/.tool-stamp"
    fi
}
if [ "${BENCH_EDGETAM:-0}" = 1 ]; then
    [ -d "$EDGETAM_PATH/sam2/modeling" ] || die "BENCH_EDGETAM=1: no $EDGETAM_PATH: run scripts/setup.sh --with-edgetam-tools first"
    [ "$CONFIG" = sam2.1_hiera_t ] || die "BENCH_EDGETAM=1 compares with sam2.1_hiera_t (unset BENCH_CONFIG)"
    MODEL_EDGETAM="$OUT/edgetam-1024$SUFFIX"
    export_model 1024 "$MODEL_EDGETAM" edgetam
fi
# The speed modes (BENCH_MODES=1; BENCH_MODE_NAMES, BENCH_ROUND_MODES): their model
# directories (made below when a mode runs) and options; the names are checked here, before
# anything runs.
MODEL_1024="$OUT/$CONFIG-1024$SUFFIX"
MODEL_512="$OUT/$CONFIG-512$SUFFIX"
# 768 input: 48x48 tokens instead of 64x64 (the encoder ~0.56x the FLOPs, the memory
# attention's products ~0.32x)
MODEL_768="$OUT/$CONFIG-768$SUFFIX"
MODEL_768_INT8HR_I8S="$OUT/$CONFIG-768$SUFFIX-int8hr-int8-scores"
MODEL_768_I8S="$OUT/$CONFIG-768$SUFFIX-int8-scores"
MODEL_INT8="$OUT/$CONFIG-1024$SUFFIX-int8"
MODEL_I8S="$OUT/$CONFIG-1024$SUFFIX-int8-scores"
MODEL_INT8_I8S="$OUT/$CONFIG-1024$SUFFIX-int8-int8-scores"
MODEL_INT8ATTN_I8S="$OUT/$CONFIG-1024$SUFFIX-int8attn-int8-scores"
MODEL_INT8HR="$OUT/$CONFIG-1024$SUFFIX-int8hr"
MODEL_INT8HR_I8S="$OUT/$CONFIG-1024$SUFFIX-int8hr-int8-scores"
# the same with the fp32 encoder kept for frames with prompts (quantize.py --fp32-prompted-frames)
MODEL_INT8HR_I8S_FP32P="$OUT/$CONFIG-1024$SUFFIX-int8hr-int8-scores-fp32-prompted"
# int8 attention values too (export.py --int8-attention-values: the self-attention's
# softmax weights times its values as int8 products)
MODEL_I8V="$OUT/$CONFIG-1024$SUFFIX-int8-values"
MODEL_INT8HR_I8V_FP32P="$OUT/$CONFIG-1024$SUFFIX-int8hr-int8-values-fp32-prompted"
# and the image encoder's global attention as int8 scores and values (--int8-encoder-attention;
# its fp32 encoder for prompted frames from the plain export)
MODEL_I8VE="$OUT/$CONFIG-1024$SUFFIX-int8-values-encoder"
MODEL_INT8HR_I8VE_FP32P="$OUT/$CONFIG-1024$SUFFIX-int8hr-int8-values-encoder-fp32-prompted"
# the 8-bit int8 range (--int8-bits 8 on both tools; every int8 of runs S8-S12): exact
# only where the CPU has VNNI, saturating elsewhere (models/quantize.py, engine::cpu)
MODEL_I8S_8BIT="$OUT/$CONFIG-1024$SUFFIX-int8-scores-8bit"
MODEL_INT8HR_I8S_8BIT="$OUT/$CONFIG-1024$SUFFIX-int8hr-int8-scores-8bit"
MODE_NAMES="${BENCH_MODE_NAMES:-mem3 int8 int8-mem3 int8-mem2 512 512-mem3 i8s i8s-mem3 int8-i8s-mem3
    int8-i8s-mem2 int8attn-i8s-mem3 int8attn-i8s-mem2 int8hr int8hr-i8s-mem3 int8hr-i8s-mem2
    int8hr-i8s-mem2-fp32prompt i8v int8hr-i8v-mem2-fp32prompt int8hr-i8ve-mem2-fp32prompt i8s-8bit
    int8hr-i8s-mem2-8bit 768 768-int8hr-i8s-mem2}"
mode_spec() { # name -> the model and the bench options of that speed mode
    case "$1" in
        mem3) echo "$MODEL_1024 --memory-frames 3" ;;
        int8) echo "$MODEL_INT8" ;;
        int8-mem3) echo "$MODEL_INT8 --memory-frames 3" ;;
        int8-mem2) echo "$MODEL_INT8 --memory-frames 2" ;;
        512) echo "$MODEL_512" ;;
        512-mem3) echo "$MODEL_512 --memory-frames 3" ;;
        i8s) echo "$MODEL_I8S" ;;
        i8s-mem3) echo "$MODEL_I8S --memory-frames 3" ;;
        int8-i8s-mem3) echo "$MODEL_INT8_I8S --memory-frames 3" ;;
        int8-i8s-mem2) echo "$MODEL_INT8_I8S --memory-frames 2" ;;
        int8attn-i8s-mem3) echo "$MODEL_INT8ATTN_I8S --memory-frames 3" ;;
        int8attn-i8s-mem2) echo "$MODEL_INT8ATTN_I8S --memory-frames 2" ;;
        int8hr) echo "$MODEL_INT8HR" ;;
        int8hr-i8s-mem3) echo "$MODEL_INT8HR_I8S --memory-frames 3" ;;
        int8hr-i8s-mem2) echo "$MODEL_INT8HR_I8S --memory-frames 2" ;;
        int8hr-i8s-mem2-fp32prompt) echo "$MODEL_INT8HR_I8S_FP32P --memory-frames 2" ;;
        i8v) echo "$MODEL_I8V" ;;
        int8hr-i8v-mem2-fp32prompt) echo "$MODEL_INT8HR_I8V_FP32P --memory-frames 2" ;;
        int8hr-i8ve-mem2-fp32prompt) echo "$MODEL_INT8HR_I8VE_FP32P --memory-frames 2" ;;
        i8s-8bit) echo "$MODEL_I8S_8BIT" ;;
        int8hr-i8s-mem2-8bit) echo "$MODEL_INT8HR_I8S_8BIT --memory-frames 2" ;;
        768) echo "$MODEL_768" ;;
        768-int8hr-i8s-mem2) echo "$MODEL_768_INT8HR_I8S --memory-frames 2" ;;
        *) die "unknown speed mode $1" ;;
    esac
}
# the modes of the interleaved rounds (BENCH_ROUNDS > 1, with BENCH_MODES=1)
ROUND_MODES=""
if [ "${BENCH_MODES:-0}" = 1 ]; then ROUND_MODES="${BENCH_ROUND_MODES-i8s int8hr-i8ve-mem2-fp32prompt}"; fi
for name in $MODE_NAMES $ROUND_MODES; do mode_spec "$name" >/dev/null; done
# needed dir...: does a mode that runs use one of these model directories?
needed() {
    local name dir
    for name in $MODE_NAMES $ROUND_MODES; do
        for dir in "$@"; do
            if [ "$(mode_spec "$name" | cut -d' ' -f1)" = "$dir" ]; then return 0; fi
        done
    done
    return 1
}

# The trained benchmark model, trained once per version of the training tool.
if [ "$WEIGHTS" = trained ] && { [ ! -f "$CKPT" ] || [ "$(cat "$CKPT.stamp" 2>/dev/null)" != "$TRAIN_STAMP" ]; }; then
    BG="$OUT/train-backgrounds"
    rm -rf "$BG" && mkdir -p "$BG"
    for v in 01_dog 02_cups; do # other videos than the benchmark's
        gst-launch-1.0 -q filesrc location="$(dirname "$VIDEO")/$v.mp4" ! qtdemux ! h264parse \
            ! avdec_h264 ! videorate ! video/x-raw,framerate=2/1 ! identity eos-after=12 \
            ! videoconvert ! video/x-raw,format=RGB ! pngenc compression-level=1 \
            ! multifilesink location="$BG/$v-%03d.png"
    done
    log "training the benchmark model ($CONFIG, seed 0: ~25 min on 2 cores)"
    "$PY" models/train_synthetic.py --config "$CONFIG" --seed 0 --backgrounds "$BG" \
        --threads 2 --out "$CKPT" >"$OUT/train-$CONFIG.log" 2>&1 \
        || { tail -n 20 "$OUT/train-$CONFIG.log" >&2; die "training failed"; }
    echo "$TRAIN_STAMP" >"$CKPT.stamp"
fi

export_model 1024 "$MODEL_1024"

FRAME_DIR="$OUT/frames"
if [ "$(ls "$FRAME_DIR"/*.png 2>/dev/null | wc -l)" -lt "$FRAMES" ]; then
    log "decoding $FRAMES frames of $VIDEO"
    rm -rf "$FRAME_DIR" && mkdir -p "$FRAME_DIR"
    gst-launch-1.0 -q filesrc location="$VIDEO" ! qtdemux ! h264parse ! avdec_h264 \
        ! identity eos-after="$FRAMES" ! videoconvert ! video/x-raw,format=RGB \
        ! pngenc compression-level=1 ! multifilesink location="$FRAME_DIR/%05d.png"
fi
# One positive click per object (frame pixels of bedroom.mp4): girl, boy, pink pillow,
# white pillow, bed, dresser, candle, mirror.
cat >"$FRAME_DIR/prompts.json" <<'JSON'
{"points": [[400, 225], [225, 260], [600, 350], [490, 360], [400, 470], [890, 400], [690, 90], [940, 250]]}
JSON
# The same model input for both sides (issue 16): each frame resized once, as the official
# loader does (PIL, models/prepared.py), kept as 1024x1024 PNG with the clicks scaled to
# it. The official predictor gets these pixels through --prepared (its normalisation, no
# JPEG re-encode); our engine reads the same files (its own resize is then the identity).
# Masks come out at 1024x1024 on both sides.
INPUT_DIR="$OUT/prepared-1024"
"$PY" - "$FRAME_DIR" "$INPUT_DIR" 1024 "$FRAMES" <<'PYEOF'
import json, os, sys
sys.path.insert(0, "models")
import prepared
from PIL import Image
src, dst, size, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
names = sorted(x for x in os.listdir(src) if x.endswith(".png"))[:n]
prepared.prepare(src, dst, size, names)
w, h = Image.open(os.path.join(src, names[0])).size
with open(os.path.join(src, "prompts.json")) as f:
    points = json.load(f)["points"]
with open(os.path.join(dst, "prompts.json"), "w") as f:
    json.dump({"points": [[x * size / w, y * size / h] for x, y in points]}, f)
PYEOF

# An n^3 fp32 MatMul graph: ONNX Runtime's own matmul throughput in this run.
MATMUL="$OUT/matmul4096.onnx"
[ -f "$MATMUL" ] || "$PY" - "$MATMUL" <<'PYEOF'
import sys
from onnx import TensorProto, helper, save
n = 4096
g = helper.make_graph(
    [helper.make_node("MatMul", ["A", "B"], ["C"])], "matmul",
    [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "AB"],
    [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])])
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), sys.argv[1])
PYEOF

log "building the benchmark (release)"
cargo build --quiet --release -p gst-plugin-sam2 --example bench
BENCH="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples/bench"

if [ "${BENCH_EDGETAM:-0}" = 1 ]; then
    EOBJ="${BENCH_EDGETAM_OBJECTS:-1,4}"
    ROUNDS="${BENCH_ROUNDS:-2}"
    REPORTS=()
    for round in $(seq 1 "$ROUNDS"); do
        log "round $round/$ROUNDS: official EdgeTAM predictor (PyTorch), objects $EOBJ"
        $(py_for edgetam) models/bench_official.py --frames "$INPUT_DIR" --prepared --objects "$EOBJ" --config edgetam \
            --num-frames "$FRAMES" --warmup "$WARMUP" --object-score-bias "$BIAS" \
            --save-masks "$OUT/masks-official-edgetam$SUFFIX" \
            | tag official-edgetam "$round" | tee "$OUT/edgetam-official-$round.txt"
        log "round $round/$ROUNDS: sam2track, EdgeTAM, objects $EOBJ"
        "$BENCH" --model "$MODEL_EDGETAM" --frames "$INPUT_DIR" --objects "$EOBJ" --num-frames "$FRAMES" \
            --warmup "$WARMUP" --matmul "$MATMUL" --reference "$OUT/masks-official-edgetam$SUFFIX" \
            | tag sam2track-edgetam "$round" | tee "$OUT/edgetam-ours-$round.txt"
        log "round $round/$ROUNDS: sam2track, SAM 2.1-tiny exact, objects $EOBJ"
        "$BENCH" --model "$MODEL_1024" --frames "$INPUT_DIR" --objects "$EOBJ" --num-frames "$FRAMES" \
            --warmup "$WARMUP" | tag sam2track-tiny "$round" | tee "$OUT/edgetam-tiny-$round.txt"
        REPORTS+=("$OUT/edgetam-official-$round.txt" "$OUT/edgetam-ours-$round.txt" "$OUT/edgetam-tiny-$round.txt")
    done
    log "report"
    python3 scripts/bench_report.py --rounds "${REPORTS[@]}" | tee "$OUT/report-edgetam$SUFFIX.txt"
    exit 0
fi

REPORTS=()
REFERENCE_ARGS=()
if [ "${BENCH_OFFICIAL:-1}" = 1 ]; then
    log "official SAM2VideoPredictor (PyTorch), objects $OBJECTS"
    rm -rf "$OUT/masks-official$SUFFIX"
    "$PY" models/bench_official.py --frames "$INPUT_DIR" --prepared --objects "$OBJECTS" --config "$CONFIG" \
        --num-frames "$FRAMES" --warmup "$WARMUP" --object-score-bias "$BIAS" --flops "${OFFICIAL_WEIGHT_ARGS[@]}" \
        --save-masks "$OUT/masks-official$SUFFIX" | tee "$OUT/official.txt"
    REPORTS+=("$OUT/official.txt")
    # exact mode's masks against the official's on the same input
    REFERENCE_ARGS=(--reference "$OUT/masks-official$SUFFIX")
fi

log "sam2track engine, objects $OBJECTS"
ELEMENT_ARGS=()
if [ "${BENCH_ELEMENT:-0}" = 1 ]; then ELEMENT_ARGS=(--element --video "$VIDEO"); fi
# The stages against the matmul measured between frames (object counts; none: "").
PAIRED="${BENCH_PAIRED_OBJECTS-1,4}"
PAIRED_ARGS=()
if [ -n "$PAIRED" ]; then PAIRED_ARGS=(--paired "$PAIRED"); fi
"$BENCH" --model "$MODEL_1024" --frames "$INPUT_DIR" --objects "$OBJECTS" --num-frames "$FRAMES" \
    --warmup "$WARMUP" --matmul "$MATMUL" --save-masks "$OUT/masks-exact$SUFFIX" "${ELEMENT_ARGS[@]}" \
    "${PAIRED_ARGS[@]}" "${REFERENCE_ARGS[@]}" \
    | tee "$OUT/ours$SUFFIX.txt"

REPORTS+=("$OUT/ours$SUFFIX.txt")
if [ "${BENCH_MODES:-0}" = 1 ]; then
    MODE_OBJECTS="${BENCH_MODE_OBJECTS:-$OBJECTS}"
    # each model directory only when a mode that runs uses it
    if needed "$MODEL_512"; then export_model 512 "$MODEL_512"; fi
    if needed "$MODEL_768"; then export_model 768 "$MODEL_768"; fi
    # the fast mode's recipe at 768
    if needed "$MODEL_768_INT8HR_I8S"; then
        export_model 768 "$MODEL_768_I8S" "$CONFIG" --int8-attention-scores
        quantize_model "$MODEL_768_I8S" "$MODEL_768_INT8HR_I8S"
    fi
    # int8 everywhere (quantize.py --int8-high-res: the high-resolution path too)
    if needed "$MODEL_INT8"; then
        quantize_model "$MODEL_1024" "$MODEL_INT8" image_encoder,memory_attention --int8-high-res
    fi
    # quantize.py's default: int8 weights everywhere but upstream of the encoder's
    # high-resolution features (the trunk's first stages, whose int8 weights cost that
    # fidelity, run S12)
    if needed "$MODEL_INT8HR"; then quantize_model "$MODEL_1024" "$MODEL_INT8HR"; fi
    # the memory attention's attention scores as int8 products (export.py
    # --int8-attention-scores), alone and under each int8 variant above; int8 weights in
    # the memory attention only (the int8 encoder costs most of int8's fidelity on small
    # masks, run S11)
    if needed "$MODEL_I8S" "$MODEL_INT8_I8S" "$MODEL_INT8ATTN_I8S" "$MODEL_INT8HR_I8S" "$MODEL_INT8HR_I8S_FP32P"; then
        export_model 1024 "$MODEL_I8S" "$CONFIG" --int8-attention-scores
    fi
    if needed "$MODEL_INT8_I8S"; then
        quantize_model "$MODEL_I8S" "$MODEL_INT8_I8S" image_encoder,memory_attention --int8-high-res
    fi
    if needed "$MODEL_INT8ATTN_I8S"; then quantize_model "$MODEL_I8S" "$MODEL_INT8ATTN_I8S" memory_attention; fi
    if needed "$MODEL_INT8HR_I8S"; then quantize_model "$MODEL_I8S" "$MODEL_INT8HR_I8S"; fi
    if needed "$MODEL_INT8HR_I8S_FP32P"; then
        quantize_model "$MODEL_I8S" "$MODEL_INT8HR_I8S_FP32P" image_encoder,memory_attention --fp32-prompted-frames
    fi
    # int8 attention values on top of the int8 scores, alone and in the fast mode's recipe
    if needed "$MODEL_I8V" "$MODEL_INT8HR_I8V_FP32P"; then
        export_model 1024 "$MODEL_I8V" "$CONFIG" --int8-attention-scores --int8-attention-values
    fi
    if needed "$MODEL_INT8HR_I8V_FP32P"; then
        quantize_model "$MODEL_I8V" "$MODEL_INT8HR_I8V_FP32P" image_encoder,memory_attention --fp32-prompted-frames
    fi
    if needed "$MODEL_INT8HR_I8VE_FP32P"; then
        export_model 1024 "$MODEL_I8VE" "$CONFIG" --int8-attention-scores --int8-attention-values \
            --int8-encoder-attention
        quantize_model "$MODEL_I8VE" "$MODEL_INT8HR_I8VE_FP32P" image_encoder,memory_attention \
            --fp32-prompted-frames --fp32-encoder-from "$MODEL_1024"
    fi
    # the same with the full 8-bit range (--int8-bits 8). Its export skips the ONNX check:
    # on a CPU without VNNI the check fails by the very saturation these modes measure
    # (its fp32 parts are those of the checked exports above)
    if needed "$MODEL_I8S_8BIT" "$MODEL_INT8HR_I8S_8BIT"; then
        export_model 1024 "$MODEL_I8S_8BIT" "$CONFIG" --int8-attention-scores --int8-bits 8 --skip-check
    fi
    if needed "$MODEL_INT8HR_I8S_8BIT"; then
        quantize_model "$MODEL_I8S_8BIT" "$MODEL_INT8HR_I8S_8BIT" image_encoder,memory_attention --int8-bits 8
    fi
    for name in $MODE_NAMES; do
        log "speed mode: $name"
        read -r -a spec <<<"$(mode_spec "$name")"
        "$BENCH" --model "${spec[0]}" --frames "$INPUT_DIR" --objects "$MODE_OBJECTS" --num-frames "$FRAMES" \
            --warmup "$WARMUP" --reference "$OUT/masks-exact$SUFFIX" "${spec[@]:1}" \
            | sed "s/\"impl\":\"sam2track\"/\"impl\":\"sam2track-$name\"/" | tee "$OUT/mode-$name$SUFFIX.txt"
        REPORTS+=("$OUT/mode-$name$SUFFIX.txt")
    done
fi

# Interleaved rounds (BENCH_ROUNDS > 1): the pass above gives the fidelity (deterministic)
# and the FLOP counts; its speed figures come from one pass, official first, and this VM
# drifts by 10-40% within minutes. Each round runs the official predictor, exact mode and
# the speed modes of BENCH_ROUND_MODES (with BENCH_MODES=1; default: int8 scores, and the
# README's fast mode: int8 weights (high-res path fp32) + int8 attention scores and values
# + the encoder's int8 attention + 2 memory frames + the fp32 encoder on prompted frames)
# one after the other; the ratios are taken
# within each round.
ROUNDS="${BENCH_ROUNDS:-1}"
if [ "$ROUNDS" -gt 1 ]; then
    ROUND_OBJECTS="${BENCH_ROUND_OBJECTS:-$OBJECTS}"
    ROUND_REPORTS=()
    for round in $(seq 1 "$ROUNDS"); do
        if [ "${BENCH_OFFICIAL:-1}" = 1 ]; then
            log "round $round/$ROUNDS: official SAM2VideoPredictor, objects $ROUND_OBJECTS"
            "$PY" models/bench_official.py --frames "$INPUT_DIR" --prepared --objects "$ROUND_OBJECTS" --config "$CONFIG" \
                --num-frames "$FRAMES" --warmup "$WARMUP" --object-score-bias "$BIAS" "${OFFICIAL_WEIGHT_ARGS[@]}" \
                | tag official "$round" | tee "$OUT/round-$round-official$SUFFIX.txt"
            ROUND_REPORTS+=("$OUT/round-$round-official$SUFFIX.txt")
        fi
        log "round $round/$ROUNDS: sam2track exact, objects $ROUND_OBJECTS"
        "$BENCH" --model "$MODEL_1024" --frames "$INPUT_DIR" --objects "$ROUND_OBJECTS" --num-frames "$FRAMES" \
            --warmup "$WARMUP" --matmul "$MATMUL" | tag sam2track "$round" | tee "$OUT/round-$round-exact$SUFFIX.txt"
        ROUND_REPORTS+=("$OUT/round-$round-exact$SUFFIX.txt")
        for name in $ROUND_MODES; do
            log "round $round/$ROUNDS: sam2track $name, objects $ROUND_OBJECTS"
            read -r -a spec <<<"$(mode_spec "$name")"
            "$BENCH" --model "${spec[0]}" --frames "$INPUT_DIR" --objects "$ROUND_OBJECTS" --num-frames "$FRAMES" \
                --warmup "$WARMUP" "${spec[@]:1}" | tag "sam2track-$name" "$round" \
                | tee "$OUT/round-$round-$name$SUFFIX.txt"
            ROUND_REPORTS+=("$OUT/round-$round-$name$SUFFIX.txt")
        done
    done
fi

log "report"
python3 scripts/bench_report.py "${REPORTS[@]}" | tee "$OUT/report$SUFFIX.txt"
if [ "$ROUNDS" -gt 1 ]; then
    echo
    python3 scripts/bench_report.py --rounds "${ROUND_REPORTS[@]}" | tee "$OUT/report-rounds$SUFFIX.txt"
fi
