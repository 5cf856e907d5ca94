#!/usr/bin/env python3
"""Make an fp16 variant of an exported model directory (a speed mode for CUDA GPUs).

  python models/fp16.py --model models/sam2.1_hiera_t --out models/sam2.1_hiera_t-fp16
  python models/fp16.py --model ... --out ... --target cpu   # fp16 numerics, CPU-runnable

Copies the model directory and rewrites its graphs (by default all four) so that weights
and per-frame activations are float16, while every graph keeps the float32 inputs and
outputs of models/CONTRACT.md (a Cast after each float input, before each float output):
the engine and the element load the result like any other model directory. model.json
gets the new sha256s and a `precision` on each rewritten graph ("fp16", or
"fp16-emulated" for --target cpu) and an `export.fp16` record (target, what stayed fp32,
the checks below).

What is converted: every node with a float input that depends on a float graph input.
Tensors that depend only on weights, constants and shapes (the sine position tables,
pos_embed resizes, shape arithmetic) stay fp32: they are computed once and stay exact.
Constants beyond fp16's range are clamped to +-65504 (the memory attention's -1e9
padding bias: exp(-65504 - max) is 0 as well); the count is printed.

Kept in float32 (`--keep-fp32`, default norm,pe), from measurements on the micro model:
  norm  the hand-written channel LayerNorms (LayerNorm2d: ReduceMean, x - mean, Pow 2,
        ReduceMean, + eps, Sqrt, Div) of the mask decoder and the memory encoder: on
        random inputs (x - mean)^2 already reaches 1.6e3 in the mask downscaling, 2.5% of
        fp16's largest value, and eps = 1e-6 is below its normal range. The fused
        LayerNormalization ops are left fp16: ONNX Runtime computes their statistics in
        fp32 (stash_type) on both providers.
  pe    the sine encodings of input values (the prompt points' random Fourier features in
        the mask decoder, the pointers' temporal encoding in the memory attention) and
        the chain from the graph input to them: the point encoding's arguments reach
        25 rad, where an fp16 argument moves sin() by up to 7e-3 (rounding its result to
        fp16 costs 5e-4).
  heads the IoU, object-score and object-pointer MLPs of the mask decoder (one token per
        object, cheap). No measurable effect on the micro model: off by default.
Softmax stays fp16: ONNX Runtime's fp16 softmax kernels accumulate in fp32 already, and
the attention logits measured stay below 16 in magnitude. `--keep-nodes REGEX` keeps
more nodes (by name) to find out which ops matter for a model.

Targets (`--target`):
  cuda  (default) the real fp16 graphs: float16 initializers and tensors, for ONNX
        Runtime's CUDA (and TensorRT) provider, where fp16 halves memory traffic and runs
        on the tensor cores. ONNX Runtime's CPU provider loads them too (no missing
        kernel), but on x86 it has fp16 kernels only for moving data (Reshape,
        Transpose, Gather, Concat, Slice, ...) and LayerNormalization: it casts the
        inputs of MatMul, Gemm, Conv, Add, Mul, Erf, Softmax, MultiHeadAttention, ... to
        fp32 and runs chains of such ops in fp32 without rounding between them. On the CPU
        these graphs are therefore slower than the fp32 ones (1.05-1.4x on the micro
        model) and closer to fp32 than they are on a GPU.
  cpu   fp16 numerics emulated in fp32 graphs, to measure on a machine without a GPU
        what fp16 costs: the same nodes in the same precision as the cuda target, every
        tensor that target holds in fp16 rounded to fp16 (a Cast to fp16 and back, which
        ONNX Runtime keeps) and every converted weight holding fp16 values. Each op then
        computes in fp32 on fp16 values and rounds its result, as the CUDA kernels do
        (fp32 accumulation in cuBLAS/cuDNN GEMMs and convolutions, fp32 statistics in
        softmax and LayerNorm). Slower than the fp32 model; not a speed mode.

The tool checks itself: it runs each rewritten graph and its fp32 source with onnxruntime
on seeded random inputs and prints the max abs diff per output: for the cuda target on
the CPU provider (optimistic, see above), as the cpu-target emulation, and on the CUDA
provider when the installed onnxruntime has it. Needs onnx + onnxruntime + numpy (no
torch).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from files import sha256  # noqa: E402

GRAPHS = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder")
TARGETS = ("cuda", "cpu")
PRECISION = {"cuda": "fp16", "cpu": "fp16-emulated"}
KEEP_RULES = ("norm", "pe", "heads")
DEFAULT_KEEP = ("norm", "pe")
FP16_MAX = float(np.finfo(np.float16).max)

# Inputs that must stay fp32 whatever the node's precision (Resize: roi, scales).
FP32_ONLY_INPUTS = {"Resize": (1, 2)}
# Ops that only move values: their outputs hold their inputs' values, so an fp16 input
# gives fp16 values (no rounding needed after them in the cpu target).
LAYOUT_OPS = {
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Gather", "GatherElements",
    "Slice", "Concat", "Split", "Expand", "Tile", "Identity", "Where", "Pad", "DepthToSpace",
    "SpaceToDepth", "MaxPool", "ReduceMax", "ReduceMin", "Relu", "Neg", "Abs",
}  # fmt: skip
# Ops never converted: their type constraints exclude fp16 (Range) or they hold subgraphs.
NEVER_FP16 = {"Range", "If", "Loop", "Scan", "OneHot"}
# Ops that read only their input's shape: they take it in whichever precision it has.
SHAPE_OPS = {"Shape", "Size"}
SIN_COS = {"Sin", "Cos"}
# Mask decoder outputs computed by small per-token MLP heads (rule `heads`).
HEAD_OUTPUTS = {"mask_decoder": ("iou_pred", "obj_ptr", "object_score_logits")}


def _onnx():
    import onnx

    return onnx


# ---------------------------------------------------------------- analysis


def constants_to_initializers(model) -> None:
    """Top-level float Constant nodes become initializers (one kind of constant to
    handle below); other Constant nodes stay."""
    from onnx import TensorProto, numpy_helper

    g = model.graph
    keep = []
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.attribute) == 1:
            a = n.attribute[0]
            t = None
            if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                t = numpy_helper.to_array(a.t)
            elif a.name == "value_float":
                t = np.array(a.f, np.float32)
            elif a.name == "value_floats":
                t = np.array(list(a.floats), np.float32)
            if t is not None:
                g.initializer.append(numpy_helper.from_array(t.astype(np.float32), n.output[0]))
                continue
        keep.append(n)
    del g.node[:]
    g.node.extend(keep)


def elem_types(model) -> dict:
    """Element type of every tensor of the top-level graph. ONNX shape inference does not
    know the com.microsoft ops (MultiHeadAttention, FusedMatMul): their outputs get the
    type of their first input, and inference runs again from there."""
    onnx = _onnx()
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for _ in range(32):
        inferred = onnx.shape_inference.infer_shapes(m)
        g = inferred.graph
        types = {t.name: t.data_type for t in g.initializer}
        for v in list(g.input) + list(g.output) + list(g.value_info):
            if v.type.tensor_type.elem_type:
                types[v.name] = v.type.tensor_type.elem_type
        added = False
        for n in g.node:
            if n.domain not in ("", "ai.onnx") and n.input and n.input[0] in types:
                for o in n.output:
                    if o and o not in types:
                        m.graph.value_info.append(helper.make_tensor_value_info(o, types[n.input[0]], None))
                        added = True
        if not added:
            break
    untyped = [o for n in model.graph.node for o in n.output if o and o not in types]
    if untyped:
        raise ValueError(f"no element type inferred for {untyped[:5]} ({len(untyped)} tensors)")
    return types


def subgraph_names(model) -> set:
    """Names read inside subgraphs (If branches): such tensors keep their fp32 version."""
    from onnx import AttributeProto

    names = set()

    def subgraphs(node):
        for a in node.attribute:
            if a.type == AttributeProto.GRAPH:
                yield a.g
            elif a.type == AttributeProto.GRAPHS:
                yield from a.graphs

    def walk(graph):
        for n in graph.node:
            names.update(n.input)
            for sg in subgraphs(n):
                walk(sg)

    for n in model.graph.node:
        for sg in subgraphs(n):
            walk(sg)
    return names


def data_nodes(model, types: dict) -> list:
    """Indices of the nodes with a float input that depends on a float graph input: the
    per-frame work. Nodes fed only by weights, constants and shapes are not data."""
    from onnx import TensorProto

    g = model.graph
    data = {i.name for i in g.input if types.get(i.name) == TensorProto.FLOAT}
    out = []
    for k, n in enumerate(g.node):
        if any(i in data and types.get(i) == TensorProto.FLOAT for i in n.input):
            out.append(k)
            data.update(o for o in n.output if types.get(o) == TensorProto.FLOAT)
    return out


def _producers_consumers(g):
    prod = {o: k for k, n in enumerate(g.node) for o in n.output}
    cons = {}
    for k, n in enumerate(g.node):
        for i in n.input:
            cons.setdefault(i, []).append(k)
    return prod, cons


def norm_nodes(model) -> set:
    """The hand-written LayerNorm2d: m = ReduceMean(x); d = x - m; v = ReduceMean(d^2);
    y = d / Sqrt(v + eps). Returns the indices of those seven nodes per occurrence."""
    from onnx import numpy_helper

    g = model.graph
    prod, cons = _producers_consumers(g)
    inits = {t.name: t for t in g.initializer}
    found = set()
    for k, n in enumerate(g.node):
        if n.op_type != "Pow" or n.input[1] not in inits:
            continue
        if float(numpy_helper.to_array(inits[n.input[1]])) != 2.0:
            continue
        sub = prod.get(n.input[0])
        if sub is None or g.node[sub].op_type != "Sub":
            continue
        mean = prod.get(g.node[sub].input[1])
        if mean is None or g.node[mean].op_type != "ReduceMean":
            continue
        chain = [mean, sub, k]
        cur = k
        for op in ("ReduceMean", "Add", "Sqrt", "Div"):
            nxt = [c for c in cons.get(g.node[cur].output[0], []) if g.node[c].op_type == op]
            if len(nxt) != 1:
                break
            cur = nxt[0]
            chain.append(cur)
        else:
            if g.node[cur].input[0] == g.node[sub].output[0]:
                found.update(chain)
    return found


def pe_nodes(model, data: set) -> set:
    """Sin/Cos of data values and every data node upstream of them."""
    g = model.graph
    prod, _ = _producers_consumers(g)
    found = set()
    stack = [k for k in data if g.node[k].op_type in SIN_COS]
    while stack:
        k = stack.pop()
        if k in found or k not in data:
            continue
        found.add(k)
        stack.extend(prod[i] for i in g.node[k].input if i in prod)
    return found


def head_nodes(model, name: str, data: set) -> set:
    """Data nodes whose results reach only the head outputs of the mask decoder (the
    IoU, object-score and object-pointer MLPs), not its masks."""
    heads = set(HEAD_OUTPUTS.get(name, ()))
    if not heads:
        return set()
    g = model.graph
    _, cons = _producers_consumers(g)
    outputs = {o.name for o in g.output}
    reached = {}  # node index -> graph outputs its results reach
    for k in reversed(range(len(g.node))):
        r = set()
        for o in g.node[k].output:
            if o in outputs:
                r.add(o)
            for c in cons.get(o, []):
                r |= reached[c]
        reached[k] = r
    return {k for k in data if reached[k] and reached[k] <= heads}


def plan(model, name: str, keep: tuple, keep_nodes: str | None = None) -> dict:
    """Which nodes run in fp16 (the data nodes not kept in fp32), with the reasons."""
    types = elem_types(model)
    data = set(data_nodes(model, types))
    kept = {}
    if keep_nodes:
        pattern = re.compile(keep_nodes)
        kept["nodes"] = {k for k in data if pattern.search(model.graph.node[k].name)}
    if "norm" in keep:
        kept["norm"] = norm_nodes(model) & data
    if "pe" in keep:
        kept["pe"] = pe_nodes(model, data)
    if "heads" in keep:
        kept["heads"] = head_nodes(model, name, data)
    g = model.graph
    structural = {k for k in data if g.node[k].op_type in NEVER_FP16}
    shape = {k for k in data if g.node[k].op_type in SHAPE_OPS}
    fp16 = data - structural - shape - set().union(set(), *kept.values())
    kept_ops = {}
    for rule, ks in [*kept.items(), ("structural", structural)]:
        counts = {}
        for k in sorted(ks):
            op = g.node[k].op_type
            counts[op] = counts.get(op, 0) + 1
        if counts:
            kept_ops[rule] = counts
    return {"types": types, "fp16": fp16, "data": data - shape, "kept_ops": kept_ops}


# ---------------------------------------------------------------- rewriting


def convert(model, name: str, keep: tuple, target: str, keep_nodes: str | None = None) -> tuple:
    """Rewrites `model` in place; returns (model, report)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
    constants_to_initializers(model)
    p = plan(model, name, keep, keep_nodes)
    types, fp16 = p["types"], p["fp16"]
    g = model.graph
    emulate = target == "cpu"
    inits = {t.name: t for t in g.initializer}
    in_subgraphs = subgraph_names(model)
    graph_outputs = {o.name for o in g.output}
    new_nodes = []  # (position before which to insert, node)
    clamped = 0

    def is_float(t):
        return types.get(t) == FLOAT

    # fp16 versions of constants, made once each
    const16 = {}

    def const_fp16(t):
        nonlocal clamped
        if t not in const16:
            a = numpy_helper.to_array(inits[t]).astype(np.float32)
            big = np.abs(a) > FP16_MAX
            clamped += int(big.sum())
            h = np.clip(a, -FP16_MAX, FP16_MAX).astype(np.float16)
            name16 = f"{t}__fp16"
            g.initializer.append(numpy_helper.from_array(h, name16))
            if emulate:
                name32 = f"{t}__fp16r"
                new_nodes.append((0, helper.make_node("Cast", [name16], [name32], to=FLOAT, name=f"{name32}_cast")))
                const16[t] = name32
            else:
                const16[t] = name16
        return const16[t]

    # conversions of a tensor to the other precision, made once each (position: the
    # first consumer that needs it; tensors are produced before their consumers)
    conv = {}

    def to_prec(t, want16, at):
        key = (t, want16)
        if key not in conv:
            if want16:
                if emulate:
                    h, r = f"{t}__h", f"{t}__r16"
                    new_nodes.append((at, helper.make_node("Cast", [t], [h], to=HALF, name=f"{h}_cast")))
                    new_nodes.append((at, helper.make_node("Cast", [h], [r], to=FLOAT, name=f"{r}_cast")))
                    conv[key] = r
                else:
                    h = f"{t}__h"
                    new_nodes.append((at, helper.make_node("Cast", [t], [h], to=HALF, name=f"{h}_cast")))
                    conv[key] = h
            else:
                if emulate:  # fp16 values are exact in fp32
                    conv[key] = t
                else:
                    f = f"{t}__f"
                    new_nodes.append((at, helper.make_node("Cast", [t], [f], to=FLOAT, name=f"{f}_cast")))
                    conv[key] = f
        return conv[key]

    # precision of every float activation: 16 when an fp16 node makes it
    is16 = set()
    for k in sorted(fp16):
        is16.update(o for o in g.node[k].output if is_float(o))
    if is16 & in_subgraphs:
        raise ValueError(f"{name}: fp16 tensors read inside subgraphs: {sorted(is16 & in_subgraphs)[:5]}")
    # graph outputs made in fp16: the node writes `X__o16`, a Cast makes X (cuda target)
    renamed_out = {}
    if not emulate:
        for k in sorted(fp16):
            n = g.node[k]
            for j, o in enumerate(n.output):
                if o in graph_outputs and o in is16:
                    n.output[j] = f"{o}__o16"
                    renamed_out[o] = n.output[j]
        for n in g.node:
            for j, i in enumerate(n.input):
                if i in renamed_out:
                    n.input[j] = renamed_out[i]
        is16 = {renamed_out.get(t, t) for t in is16}

    rounded_after = []  # (node index, output) to round in the cpu target
    for k, n in enumerate(g.node):
        if n.op_type in SHAPE_OPS:
            continue
        want16 = k in fp16
        only32 = FP32_ONLY_INPUTS.get(n.op_type, ())
        for j, i in enumerate(n.input):
            if not i or not (is_float(i) or i in is16 or i in renamed_out.values()):
                continue
            w = want16 and j not in only32
            if i in inits:
                if w:
                    n.input[j] = const_fp16(i)
                continue
            have16 = i in is16
            if w != have16:
                n.input[j] = to_prec(i, w, k)
        if want16:
            if n.op_type == "Cast":
                for a in n.attribute:
                    if a.name == "to" and a.i == FLOAT and not emulate:
                        a.i = HALF
            if emulate and n.op_type not in LAYOUT_OPS:
                rounded_after.extend((k, j) for j, o in enumerate(n.output) if is_float(o))

    # the cpu target: round every output of an fp16 compute node (X__e32 -> X)
    for k, j in rounded_after:
        n = g.node[k]
        o = n.output[j]
        raw, h = f"{o}__e32", f"{o}__eh"
        n.output[j] = raw
        new_nodes.append((k + 1, helper.make_node("Cast", [raw], [h], to=HALF, name=f"{h}_cast")))
        new_nodes.append((k + 1, helper.make_node("Cast", [h], [o], to=FLOAT, name=f"{o}_round")))
    for o, o16 in renamed_out.items():
        new_nodes.append((len(g.node), helper.make_node("Cast", [o16], [o], to=FLOAT, name=f"{o}_cast")))

    # insert the new nodes at their positions (stable), keeping a topological order
    by_pos = {}
    for pos, node in new_nodes:
        by_pos.setdefault(pos, []).append(node)
    ordered = []
    for k, n in enumerate(g.node):
        ordered.extend(by_pos.get(k, []))
        ordered.append(n)
    ordered.extend(by_pos.get(len(g.node), []))
    del g.node[:]
    g.node.extend(ordered)

    # drop initializers nobody reads any more; value_info is stale (types changed)
    used = {i for n in g.node for i in n.input} | in_subgraphs | {o.name for o in g.output}
    keep_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep_inits)
    del g.value_info[:]
    onnx.checker.check_model(model)

    report = {
        "fp16_nodes": len(fp16),
        "data_nodes": len(p["data"]),
        "kept_fp32": p["kept_ops"],
        "clamped_constants": clamped,
    }
    return model, report


def convert_file(src: str, dst: str, name: str, keep: tuple, target: str, keep_nodes: str | None = None) -> dict:
    onnx = _onnx()

    model = onnx.load(src)
    ir_version = model.ir_version
    model, report = convert(model, name, keep, target, keep_nodes)
    model.ir_version = ir_version  # older ONNX Runtime builds refuse newer IR versions
    onnx.save(model, dst)
    return report


# ---------------------------------------------------------------- checking


def random_inputs(entry: dict, manifest: dict, seed: int, sizes: dict) -> dict:
    """Seeded random inputs for a graph, from its model.json entry (the value ranges of
    sam2_graphs.example_inputs, without torch)."""
    rng = np.random.default_rng(seed)
    S = manifest["image_size"]
    num_maskmem = manifest["settings"]["num_maskmem"]
    out = {}
    for t in entry["inputs"]:
        name = t["name"]
        shape = [sizes[d] if isinstance(d, str) else d for d in t["shape"]]
        if name == "memory_tpos_index":
            v = rng.integers(0, num_maskmem, shape, dtype=np.int64)
        elif name == "point_labels":
            v = rng.integers(-1, 4, shape, dtype=np.int32)
        elif name.endswith("_valid"):
            v = (rng.random(shape) > 0.3).astype(np.float32)
            v[..., 0] = 1.0
        elif name in ("has_mask_input", "is_mask_from_pts"):
            v = (np.arange(shape[0]) % 2).astype(np.float32)
        elif name == "point_coords":
            v = (rng.random(shape) * S).astype(np.float32)
        elif name == "obj_ptr_tpos":
            v = (rng.integers(-15, 16, shape) / 15.0).astype(np.float32)
        elif name in ("masks", "mask_input"):
            v = (rng.standard_normal(shape) * 8.0).astype(np.float32)
        elif name == "object_score_logits":
            v = np.array([[2.0], [-3.0]] * (shape[0] // 2) + [[1.0]] * (shape[0] % 2), np.float32)
        else:
            v = rng.standard_normal(shape).astype(np.float32)
        out[name] = v
    return out


def run(path: str, inputs: dict, provider: str = "CPUExecutionProvider") -> list:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=[provider]).run(None, inputs)


def compare(name: str, entry: dict, fp32: str, variants: dict, manifest: dict, log) -> dict:
    """Max abs diff per output of each variant (label -> (path, provider)) against the
    fp32 graph on the CPU, and the largest |value| of the fp32 output (for scale)."""
    sizes = {"B": 2, "N": 3, "Nm": 3, "P": 4}
    inputs = random_inputs(entry, manifest, seed=7, sizes=sizes)
    ref = run(fp32, inputs)
    result = {}
    for label, (path, provider) in variants.items():
        got = run(path, inputs, provider)
        for t, r, v in zip(entry["outputs"], ref, got):
            diff = float(np.abs(v.astype(np.float64) - r).max())
            scale = float(np.abs(r).max())
            result.setdefault(label, {})[t["name"]] = {"max_abs_diff": diff, "max_abs_fp32": scale}
            log(f"  {name}.{t['name']} [{label}]: max abs diff {diff:.3g} (fp32 values up to {scale:.3g})")
    return result


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory written by export.py")
    ap.add_argument("--out", required=True, help="output directory (created; must not be --model)")
    ap.add_argument(
        "--graphs",
        default=",".join(GRAPHS),
        help=f"comma-separated graphs to convert, of {','.join(GRAPHS)} (default: all)",
    )
    ap.add_argument("--target", choices=TARGETS, default="cuda", help="cuda: real fp16 graphs (default); cpu: emulated")
    ap.add_argument(
        "--keep-fp32",
        default=",".join(DEFAULT_KEEP),
        help=f"comma-separated rules of what stays fp32, of {','.join(KEEP_RULES)} ('' for none; default: %(default)s)",
    )
    ap.add_argument(
        "--keep-nodes",
        metavar="REGEX",
        help="also keep fp32 the nodes whose name matches (to find which ops are sensitive)",
    )
    ap.add_argument("--skip-check", action="store_true", help="do not compare with the fp32 graphs")
    args = ap.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731

    graphs = [g for g in args.graphs.split(",") if g]
    unknown = [g for g in graphs if g not in GRAPHS]
    if unknown or not graphs:
        ap.error(f"--graphs: unknown {unknown}, choose from {GRAPHS}")
    keep = tuple(r for r in args.keep_fp32.split(",") if r)
    if any(r not in KEEP_RULES for r in keep):
        ap.error(f"--keep-fp32: choose from {KEEP_RULES}")
    if os.path.abspath(args.model) == os.path.abspath(args.out):
        ap.error("--out must differ from --model")
    with open(os.path.join(args.model, "model.json")) as f:
        manifest = json.load(f)
    for g in graphs:
        if manifest["graphs"][g].get("precision", "fp32") != "fp32":
            ap.error(f"{g} in {args.model} is already {manifest['graphs'][g]['precision']}")

    os.makedirs(args.out, exist_ok=True)
    checks, reports = {}, {}
    for name, entry in manifest["graphs"].items():
        src = os.path.join(args.model, entry["file"])
        dst = os.path.join(args.out, entry["file"])
        if name not in graphs:
            shutil.copyfile(src, dst)
            continue
        t = time.time()
        reports[name] = convert_file(src, dst, name, keep, args.target, args.keep_nodes)
        r = reports[name]
        log(
            f"converted {entry['file']} ({args.target}): {os.path.getsize(src) / 1e6:.1f} -> "
            f"{os.path.getsize(dst) / 1e6:.1f} MB, {r['fp16_nodes']} of {r['data_nodes']} per-frame nodes "
            f"in fp16, kept fp32: {r['kept_fp32'] or 'none'}, constants clamped to fp16 range: "
            f"{r['clamped_constants']} ({time.time() - t:.1f} s)"
        )
        if not args.skip_check:
            variants = {args.target: (dst, "CPUExecutionProvider")}
            with tempfile.TemporaryDirectory() as tmp:
                if args.target == "cuda":
                    import onnxruntime

                    emu = os.path.join(tmp, entry["file"])
                    convert_file(src, emu, name, keep, "cpu", args.keep_nodes)
                    variants = {
                        "cuda graph on CPU": (dst, "CPUExecutionProvider"),
                        "emulated": (emu, "CPUExecutionProvider"),
                    }
                    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                        variants["cuda graph on CUDA"] = (dst, "CUDAExecutionProvider")
                checks[name] = compare(name, entry, src, variants, manifest, log)
        entry["precision"] = PRECISION[args.target]
        entry["sha256"] = sha256(dst)
    import onnx
    import onnxruntime

    manifest.setdefault("export", {})["fp16"] = {
        "tool": "models/fp16.py",
        "target": args.target,
        "graphs": graphs,
        "keep_fp32": list(keep),
        "keep_nodes": args.keep_nodes,
        "conversion": reports,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "checks": checks,
    }
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
