#!/usr/bin/env python3
"""Make an int8 variant of an exported model directory (a speed mode for CPUs).

  python models/quantize.py --model models/sam2.1_hiera_t --out models/sam2.1_hiera_t-int8

Copies the model directory and rewrites the heavy graphs (by default the image encoder
and the memory attention) with ONNX Runtime's dynamic quantisation: the weights of every
MatMul/Gemm whose second input is a constant (in the image encoder: but those of its
high-resolution path, below) become int8 (per output channel, in the 7-bit range [-64, 64]
by default: see INT8_MAX_ABS), the activations are quantised to uint8 per tensor at run
time, and the products run on the CPU's integer dot-product units (AVX-512 VNNI /
AVX-VNNI / AVX2). Products of two
activations (the attention matrices) stay fp32 here: quantize_dynamic re-quantises both
sides of each product per call, which cost accuracy for no speed. The memory attention's
cross-attention scores have their own int8 form, made at export (`export.py
--int8-attention-scores`: keys quantised once per layer, int8 x uint8 products; with
`--int8-attention-values` the self-attention's softmax weights times its values too); a graph
exported that way can be quantised here too (precision "int8-dynamic+int8-scores", or
"int8-dynamic+int8-scores+int8-values"). The graphs keep the inputs and outputs of models/CONTRACT.md, so the
engine and the element load the result like any other model directory; model.json gets
the new sha256, a `precision` of "int8-dynamic" and the `int8_max_abs` of its int8 values
(64 or 127; the plugin warns where 127 saturates) on each rewritten graph.

The image encoder's MatMuls that its high-resolution outputs depend on (high_res_feat_0/1,
the stride-4 and stride-8 features the mask decoder adds back when it upsamples: the
trunk's first stages) stay fp32 unless --int8-high-res. Measured on the benchmark model
(README, run S12): int8 there moves high_res_feat_1 by ~2% (relative RMS; most of it the
weights': their per-channel int8 rounding alone, activations fp32, gives as much) and
costs 8% mask IoU on masks of ~0.5% of the frame (0.91 against 0.99); keeping them fp32
costs 4-8% of the int8 encoder's time (int8 gains little there: those stages have large
activations for their FLOPs, and dynamic quantisation converts every activation per call).

--fp32-prompted-frames keeps the fp32 image encoder next to the int8 one, as the optional
graph `prompt_image_encoder` (models/CONTRACT.md): the engine encodes the frames that get
prompts with it and every other frame with the int8 one. The prompted frame's mask is the
one the user judges a click by, and its memory conditions every later frame; measured on
the benchmark model (README, run S19) the int8 encoder cost that frame's small mask 5% IoU
while the tracked frames kept >= 0.985. The price is the fp32 encoder's weights in memory
and its time on prompted frames only.

The fidelity cost is printed here per output on random inputs (max abs diff against the
fp32 graph) and measured on real frames by scripts/bench.sh (BENCH_MODES=1: mask IoU
against the exact model). Needs onnx + onnxruntime (the export venv has both).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from files import int8_saturation_note, sha256  # noqa: E402

QUANTIZABLE = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder")
DEFAULT_GRAPHS = ("image_encoder", "memory_attention")
PRECISION = "int8-dynamic"
# The optional graph of --fp32-prompted-frames (models/CONTRACT.md).
PROMPT_IMAGE_ENCODER = "prompt_image_encoder"


# The image encoder's outputs that the mask decoder adds back at full detail
# (models/CONTRACT.md): every MatMul upstream of them stays fp32 (unless --int8-high-res).
HIGH_RES_OUTPUTS = ("high_res_feat_0", "high_res_feat_1")


def upstream_matmuls(model, outputs) -> list[str]:
    """Names of the MatMul/Gemm nodes with a constant second operand (those quantize_dynamic
    rewrites here) that any of `outputs` depends on."""
    producer = {o: n for n in model.graph.node for o in n.output}
    constants = {i.name for i in model.graph.initializer}
    missing = [o for o in outputs if o not in producer]
    if missing:
        raise SystemExit(f"the image encoder has no output {missing} (--int8-high-res quantises without them)")
    seen, stack, names = set(), list(outputs), []
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in ("MatMul", "Gemm") and node.input[1] in constants:
            names.append(node.name)
        stack.extend(node.input)
    return names


# The weights' int8 range: 7 bits ([-64, 64], --int8-bits 7, the default) or 8 ([-127, 127]).
# On an x86 CPU without VNNI (AVX2 only, or AVX-512 without VNNI: AMD Zen 1-3, Intel before
# Cascade Lake) ONNX Runtime's uint8 x int8 kernel adds pairs of products in int16
# (vpmaddubsw) and saturates beyond 32,767: 255 * 64 * 2 = 32,640 never does, full-range
# weights do (measured on an AMD EPYC Zen 2: the micro int8 model's high_res_feat_1 off by
# 34%, mask IoU 0.88; with 7-bit weights exact). ONNX Runtime calls the 7-bit range
# "reduce_range". CPUs with VNNI (AVX-512 VNNI, AVX-VNNI) multiply-add in int32 and are
# exact either way; 8 bits halves the weights' rounding there.
INT8_MAX_ABS = {7: 64, 8: 127}


def quantize(src: str, dst: str, keep_fp32: tuple[str, ...] = (), bits: int = 7) -> int:
    """Dynamic int8 quantisation of src into dst with `bits`-bit weights (see INT8_MAX_ABS);
    the MatMuls upstream of the outputs `keep_fp32` stay fp32. Returns how many MatMul/Gemm
    nodes were kept fp32 that way."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(src, load_external_data=False)
    ir_version = model.ir_version
    exclude = upstream_matmuls(model, keep_fp32) if keep_fp32 else []
    del model
    quantize_dynamic(
        src,
        dst,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=bits == 7,
        op_types_to_quantize=["MatMul", "Gemm"],
        nodes_to_exclude=exclude,
        extra_options={"MatMulConstBOnly": True},
    )
    # keep the IR version of the source (newer onnx packages write versions that older
    # ONNX Runtime builds refuse)
    q = onnx.load(dst)
    if q.ir_version != ir_version:
        q.ir_version = ir_version
        onnx.save(q, dst)
    return len(exclude)


def compare(name: str, fp32: str, int8: str, manifest: dict, log) -> dict:
    """Max abs diff per output of the int8 graph against the fp32 one, and the largest
    |value| of the fp32 output (for scale), on the export tool's example inputs."""
    import onnxruntime as ort

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import sam2_graphs as G

    # manifests from before EdgeTAM (the test fixtures) have no memory_tokens: H*W then
    spec = G.graph_specs({"memory_tokens": manifest["feat_size"] ** 2, **manifest})[name]
    sizes = {"B": 2, "N": 3, "Nm": 3, "P": 4, "S": manifest["image_size"]}
    inputs = {k: v.numpy() for k, v in G.example_inputs(spec, seed=7, sizes=sizes).items()}
    so = ort.SessionOptions()
    so.log_severity_level = 3
    outs = [ort.InferenceSession(p, so, providers=["CPUExecutionProvider"]).run(None, inputs) for p in (fp32, int8)]
    result = {}
    for (oname, _, _), ref, got in zip(spec["outputs"], *outs):
        diff = float(np.abs(got.astype(np.float64) - ref).max())
        scale = float(np.abs(ref).max())
        result[oname] = {"max_abs_diff": diff, "max_abs_fp32": scale}
        log(f"  {name}.{oname}: max abs diff {diff:.3g} (fp32 values up to {scale:.3g})")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory written by export.py")
    ap.add_argument("--out", required=True, help="output directory (created; must not be --model)")
    ap.add_argument(
        "--graphs",
        default=",".join(DEFAULT_GRAPHS),
        help=f"comma-separated graphs to quantise, of {','.join(QUANTIZABLE)} (default: %(default)s)",
    )
    ap.add_argument(
        "--int8-high-res",
        action="store_true",
        help="quantise the image encoder's MatMuls that its high-resolution outputs depend on too "
        "(the trunk's first stages; by default they stay fp32: on small masks int8 there cost 8%% "
        "mask IoU for 4-8%% of the encoder's time)",
    )
    ap.add_argument(
        "--int8-bits",
        type=int,
        choices=sorted(INT8_MAX_ABS),
        default=7,
        help="the weights' range: 7 bits ([-64, 64], the default: exact on every CPU) or 8 "
        "([-127, 127]: half the rounding, but exact only on x86 CPUs with VNNI (AVX-512 VNNI, "
        "AVX-VNNI); without it ONNX Runtime's uint8 x int8 products saturate)",
    )
    ap.add_argument(
        "--fp32-prompted-frames",
        action="store_true",
        help="keep the fp32 image encoder as prompt_image_encoder: the frames that get prompts "
        "are encoded by it (needs image_encoder among --graphs)",
    )
    ap.add_argument(
        "--fp32-encoder-from",
        metavar="DIR",
        help="with --fp32-prompted-frames: take that encoder from this model directory (export.py's "
        "plain export of the same checkpoint and size) instead of --model; needed when --model's "
        "image encoder is not fp32 (export.py --int8-encoder-attention)",
    )
    ap.add_argument("--skip-check", action="store_true", help="do not compare with the fp32 graphs")
    args = ap.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731

    graphs = [g for g in args.graphs.split(",") if g]
    unknown = [g for g in graphs if g not in QUANTIZABLE]
    if unknown or not graphs:
        ap.error(f"--graphs: unknown {unknown}, choose from {QUANTIZABLE}")
    if os.path.abspath(args.model) == os.path.abspath(args.out):
        ap.error("--out must differ from --model")
    with open(os.path.join(args.model, "model.json")) as f:
        manifest = json.load(f)
    for g in graphs:
        # int8-scores graphs (export.py --int8-attention-scores, with or without
        # --int8-attention-values) still have fp32 weights
        if manifest["graphs"][g].get("precision", "fp32") not in ("fp32", "int8-scores", "int8-scores+int8-values"):
            ap.error(f"{g} in {args.model} is already {manifest['graphs'][g]['precision']}")

    if args.fp32_prompted_frames and "image_encoder" not in graphs:
        ap.error("--fp32-prompted-frames: the image encoder is not quantised (--graphs)")
    if args.fp32_prompted_frames and PROMPT_IMAGE_ENCODER in manifest["graphs"]:
        ap.error(f"--fp32-prompted-frames: {args.model} has a {PROMPT_IMAGE_ENCODER} already")
    if args.fp32_encoder_from and not args.fp32_prompted_frames:
        ap.error("--fp32-encoder-from needs --fp32-prompted-frames")
    fp32_dir, fp32_manifest = args.model, manifest
    if args.fp32_encoder_from:
        fp32_dir = args.fp32_encoder_from
        if not os.path.isfile(os.path.join(fp32_dir, "model.json")):
            ap.error(f"--fp32-encoder-from: {fp32_dir} has no model.json (a directory written by export.py)")
        with open(os.path.join(fp32_dir, "model.json")) as f:
            fp32_manifest = json.load(f)
        for key in ("model", "image_size"):
            if fp32_manifest.get(key) != manifest.get(key):
                ap.error(f"--fp32-encoder-from: {fp32_dir} is not the same model as {args.model} ({key} differs)")
    if args.fp32_prompted_frames and fp32_manifest["graphs"]["image_encoder"].get("precision", "fp32") != "fp32":
        ap.error(
            f"--fp32-prompted-frames: the image encoder of {fp32_dir} is "
            f"{fp32_manifest['graphs']['image_encoder']['precision']}, not fp32 (--fp32-encoder-from)"
        )
    os.makedirs(args.out, exist_ok=True)
    if args.fp32_prompted_frames:
        # the exported encoder as it is (its entry copied before the loop rewrites it)
        entry = json.loads(json.dumps(fp32_manifest["graphs"]["image_encoder"]))
        entry["file"] = f"{PROMPT_IMAGE_ENCODER}.onnx"
        shutil.copyfile(
            os.path.join(fp32_dir, fp32_manifest["graphs"]["image_encoder"]["file"]),
            os.path.join(args.out, entry["file"]),
        )
        manifest["graphs"][PROMPT_IMAGE_ENCODER] = entry
        log(f"kept the fp32 image encoder of {fp32_dir} as {entry['file']} (frames with prompts)")
    note = int8_saturation_note(args.int8_bits)
    if note and not args.skip_check:
        log(f"note: {note} (the differences below are this machine's)")
    checks, high_res = {}, None
    for name, entry in manifest["graphs"].items():
        if name == PROMPT_IMAGE_ENCODER and args.fp32_prompted_frames:
            continue  # copied above
        src = os.path.join(args.model, entry["file"])
        dst = os.path.join(args.out, entry["file"])
        if name in graphs:
            t = time.time()
            keep = HIGH_RES_OUTPUTS if name == "image_encoder" and not args.int8_high_res else ()
            kept = quantize(src, dst, keep, args.int8_bits)
            log(
                f"quantised {entry['file']}: {os.path.getsize(src) / 1e6:.1f} -> "
                f"{os.path.getsize(dst) / 1e6:.1f} MB ({time.time() - t:.1f} s)"
                + (f"; {kept} MatMuls upstream of the high-resolution features kept fp32" if keep else "")
            )
            if name == "image_encoder":
                high_res = (
                    "int8 (--int8-high-res)"
                    if args.int8_high_res
                    else f"fp32: the {kept} MatMul/Gemm with constant weights upstream of "
                    f"{', '.join(HIGH_RES_OUTPUTS)} not quantised"
                )
            if not args.skip_check:
                checks[name] = compare(name, src, dst, manifest, log)
            was = entry.get("precision", "fp32")
            entry["precision"] = PRECISION if was == "fp32" else f"{PRECISION}+{was}"
            # the largest |value| of the int8 operand of the graph's uint8 x int8 products
            # (an int8-scores graph from before the field: 127)
            entry["int8_max_abs"] = max(
                INT8_MAX_ABS[args.int8_bits], entry.get("int8_max_abs", 0 if was == "fp32" else 127)
            )
            entry["sha256"] = sha256(dst)
        else:
            shutil.copyfile(src, dst)
    import onnxruntime

    manifest.setdefault("export", {})["quantization"] = {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weights": f"int8 in [-{INT8_MAX_ABS[args.int8_bits]}, {INT8_MAX_ABS[args.int8_bits]}] "
        f"({args.int8_bits} bits), per output channel",
        "weight_bits": args.int8_bits,
        "activations": "uint8, per tensor, at run time",
        "ops": "MatMul/Gemm with a constant second input",
        "graphs": graphs,
        "onnxruntime": onnxruntime.__version__,
        "checks": checks,
        "fp32_prompted_frames": args.fp32_prompted_frames,
        **({"fp32_encoder_from": os.path.basename(os.path.normpath(args.fp32_encoder_from))} if args.fp32_encoder_from else {}),
    }
    if high_res:
        manifest["export"]["quantization"]["image_encoder_high_res_path"] = high_res
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
