#!/usr/bin/env python3
"""Export SAM 2 / SAM 2.1 / EdgeTAM into the four ONNX graphs of models/CONTRACT.md plus model.json.

Examples
  # a real checkpoint downloaded from Meta (see README "Models")
  python models/export.py --config sam2.1_hiera_t --checkpoint sam2.1_hiera_tiny.pt --out models/sam2.1_hiera_t
  # seeded random weights (tests, benchmarks), optionally at another input size
  python models/export.py --config sam2.1_hiera_t --random-weights --seed 0 --out /tmp/t1024
  python models/export.py --config sam2.1_hiera_t --random-weights --image-size 512 --out /tmp/t512
  # the micro test model committed under tests/fixtures/micro
  python models/export.py --config micro --random-weights --seed 0 --out tests/fixtures/micro
  # EdgeTAM (edgetam.pt from the EdgeTAM repository) and its micro test model, with
  # EdgeTAM's `sam2` package importable instead of Meta's (models/requirements-edgetam.txt)
  python models/export.py --config edgetam --checkpoint edgetam.pt --out models/edgetam
  python models/export.py --config micro-edgetam --random-weights --seed 0 --out tests/fixtures/micro-edgetam
  # the int8-scores CPU speed mode (the memory attention's q k^T as int8 products)
  python models/export.py --config sam2.1_hiera_t --checkpoint sam2.1_hiera_tiny.pt \
      --int8-attention-scores --out models/sam2.1_hiera_t-int8-scores
  # the fast mode's: its self-attention's values too, and the image encoder's global attention
  python models/export.py --config sam2.1_hiera_t --checkpoint sam2.1_hiera_tiny.pt \
      --int8-attention-scores --int8-attention-values --int8-encoder-attention \
      --out models/sam2.1_hiera_t-int8-attention

After writing the graphs the tool checks (1) each wrapper against the official sam2 code
path it replaces and (2) each ONNX graph against the wrapper with onnxruntime, on random
inputs at sizes other than the export example; it prints the max abs diff per output and
exits non-zero above --tol (default 1e-4; a graph with int8 attention answers to INT8_SCORES_TOL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sam2_graphs as G  # noqa: E402
from files import int8_saturation_note, sha256  # noqa: E402

MANIFEST_FORMAT = "sam2track-model"
MANIFEST_VERSION = 1
OPSET = 17
GRAPH_ORDER = ["image_encoder", "memory_attention", "mask_decoder", "memory_encoder"]
# Sizes of the example inputs used for tracing (all >= 2: dims of 1 may get fixed).
EXPORT_SIZES = {"B": 2, "N": 3, "Nm": 3, "P": 5}
# Different sizes for the checks, so that dynamic dims are exercised.
CHECK_SIZES = [{"B": 3, "N": 2, "Nm": 2, "P": 4}, {"B": 1, "N": 1, "Nm": 1, "P": 1}]


def _sizes_with_s(sizes, facts):
    return {**sizes, "S": facts["image_size"]}


# ---------------------------------------------------------------------------------------
# (1) wrappers vs the official code path
# ---------------------------------------------------------------------------------------


def _maxdiff(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


def _tokens_first(t):
    """An official memory tensor as [tokens, B, Cm]: [B, Cm, H, W] (SAM 2) or
    [B, tokens, Cm] (EdgeTAM, after the spatial perceiver)."""
    return t.permute(1, 0, 2) if t.dim() == 3 else t.flatten(2).permute(2, 0, 1)


@torch.no_grad()
def _official_memory_pos(model, facts):
    """The memory position encoding the official _encode_new_memory returns, [Mt, 1, Cm]."""
    S, C, H = facts["image_size"], facts["hidden_dim"], facts["feat_size"]
    _, pos = model._encode_new_memory(
        current_vision_feats=[torch.zeros(H * H, 1, C)],
        feat_sizes=[(H, H)],
        pred_masks_high_res=torch.zeros(1, 1, S, S),
        object_score_logits=torch.ones(1, 1),
        is_mask_from_pts=False,
    )
    return _tokens_first(pos[-1])


@torch.no_grad()
def check_against_official(model, facts, log) -> float:
    """Compare each re-written wrapper with the official sam2 modules, per object (one at a
    time: EdgeTAM's official perceiver cannot run a batch of 2+ objects)."""
    worst = 0.0
    specs = G.graph_specs(facts)
    S, C, Cm = facts["image_size"], facts["hidden_dim"], facts["mem_dim"]
    H = facts["feat_size"]
    k = C // Cm
    edgetam = "spatial_perceiver" in facts

    # memory attention: batched + padded wrapper vs the official module per object
    ma = G.MemoryAttentionGraph(model).eval()
    inp = G.example_inputs(specs["memory_attention"], seed=11, sizes={"B": 3, "Nm": 3, "P": 4})
    got = ma(**inp)
    me_pos = _official_memory_pos(model, facts)  # [Mt, 1, Cm]
    diffs = []
    for b in range(inp["memory"].shape[0]):
        mems, poss = [], []
        for s in range(inp["memory"].shape[1]):
            if inp["memory_valid"][b, s] > 0:
                mems.append(inp["memory"][b, s].unsqueeze(1))  # [HW, 1, Cm]
                tpos = model.maskmem_tpos_enc[inp["memory_tpos_index"][b, s]]
                poss.append(me_pos + tpos)
        valid_p = inp["obj_ptr_valid"][b] > 0
        ptrs = inp["obj_ptrs"][b][valid_p]  # [P', C]
        tp = inp["obj_ptr_tpos"][b][valid_p]
        if model.add_tpos_enc_to_obj_ptrs:
            tpos_dim = C if model.proj_tpos_enc_in_obj_ptrs else Cm
            ppos = model.obj_ptr_tpos_proj(G.get_1d_sine_pe(tp, dim=tpos_dim))
        else:
            ppos = torch.zeros(len(tp), Cm)
        ptr_tokens = ptrs.reshape(-1, 1, k, Cm).permute(0, 2, 1, 3).flatten(0, 1)
        ppos = ppos.unsqueeze(1).repeat_interleave(k, dim=0)
        memory = torch.cat(mems + [ptr_tokens], dim=0)
        memory_pos = torch.cat(poss + [ppos], dim=0)
        curr = inp["vision_feat"].flatten(2).permute(2, 0, 1)
        curr_pos = inp["vision_pos"].flatten(2).permute(2, 0, 1)
        extra = {"num_spatial_mem": len(mems)} if edgetam else {}
        ref = model.memory_attention(
            curr=[curr],
            curr_pos=[curr_pos],
            memory=memory,
            memory_pos=memory_pos,
            num_obj_ptr_tokens=ptr_tokens.shape[0],
            **extra,
        )
        ref = ref.permute(1, 2, 0).reshape(1, C, H, H)
        diffs.append(_maxdiff(got[b : b + 1], ref))
    what = "RoPEAttentionv2 on the perceiver's memory" if edgetam else "padded batch of 3 vs per-object"
    log(f"  official check memory_attention ({what}): max abs diff {max(diffs):.3g}")
    worst = max(worst, max(diffs))

    # mask decoder: wrapper vs official prompt encoder + decoder + pointer MLP
    md = G.MaskDecoderGraph(model).eval()
    inp = G.example_inputs(specs["mask_decoder"], seed=12, sizes={"B": 2, "N": 4, "S": S})
    inp["point_labels"] = torch.tensor([[1, 0, -1, 2], [3, 1, 0, 0]], dtype=torch.int32)
    masks, iou, ptr, score = md(**inp)
    pe = model.sam_prompt_encoder
    diffs = []
    for b in range(2):
        has = inp["has_mask_input"][b] > 0
        sparse, dense = pe(
            points=(inp["point_coords"][b : b + 1], inp["point_labels"][b : b + 1]),
            boxes=None,
            masks=inp["mask_input"][b : b + 1] if has else None,
        )
        r_masks, r_iou, r_tok, r_score = model.sam_mask_decoder.predict_masks(
            image_embeddings=inp["image_embed"][b : b + 1],
            image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[inp["high_res_feat_0"], inp["high_res_feat_1"]],
        )
        r_ptr = model.obj_ptr_proj(r_tok)
        diffs += [
            _maxdiff(masks[b : b + 1], r_masks),
            _maxdiff(iou[b : b + 1], r_iou),
            _maxdiff(ptr[b : b + 1], r_ptr),
            _maxdiff(score[b : b + 1], r_score),
        ]
    log(f"  official check mask_decoder (points, box corners, padding, mask prompt): max abs diff {max(diffs):.3g}")
    worst = max(worst, max(diffs))

    # memory encoder: wrapper vs SAM2Base._encode_new_memory per object
    mg = G.MemoryEncoderGraph(model).eval()
    inp = G.example_inputs(specs["memory_encoder"], seed=13, sizes={"B": 2})
    feats = mg(**inp)
    diffs = []
    for b in range(2):
        hi = F.interpolate(inp["masks"][b : b + 1], size=(S, S), mode="bilinear", align_corners=False)
        vf = inp["vision_feat"].flatten(2).permute(2, 0, 1)
        r_feats, r_pos = model._encode_new_memory(
            current_vision_feats=[vf],
            feat_sizes=[(H, H)],
            pred_masks_high_res=hi,
            object_score_logits=inp["object_score_logits"][b : b + 1],
            is_mask_from_pts=bool(inp["is_mask_from_pts"][b] > 0),
        )
        diffs.append(_maxdiff(feats[b : b + 1], _tokens_first(r_feats).transpose(0, 1)))
        # the PE that memory_attention bakes in must be the one the official encoder gives
        diffs.append(_maxdiff(ma.maskmem_pos, _tokens_first(r_pos[-1]).transpose(0, 1)))
    what = " + spatial perceiver" if edgetam else ""
    log(f"  official check memory_encoder{what} (binarised + sigmoid, present + absent): max abs diff {max(diffs):.3g}")
    worst = max(worst, max(diffs))

    # image encoder: the exported wrapper (re-laid-out Hiera, or the official structure
    # with chunked global attention) vs the official forward_image
    image = G.example_inputs(specs["image_encoder"], seed=13, sizes={"S": S})["image"]
    wrapper = G.WRAPPERS["image_encoder"](model)
    got = wrapper(image)
    ref = model.forward_image(image)
    want = (ref["backbone_fpn"][0], ref["backbone_fpn"][1], ref["backbone_fpn"][-1], ref["vision_pos_enc"][-1])
    diff = max(_maxdiff(a, b) for a, b in zip(got, want))
    log(f"  official check image_encoder ({type(wrapper).__name__}): max abs diff {diff:.3g}")
    if isinstance(wrapper, G.HieraImageEncoderGraph):
        # the leading window-local blocks band by band, one row of windows per band
        # (small models have fewer rows than a default band)
        banded = G.HieraImageEncoderGraph(model, chunk_rows=1)(image)
        d = max(_maxdiff(a, b) for a, b in zip(banded, want))
        log(f"  official check image_encoder (bands of one row of windows): max abs diff {d:.3g}")
        diff = max(diff, d)
    return max(worst, diff)


# ---------------------------------------------------------------------------------------
# (2) ONNX export + onnxruntime parity
# ---------------------------------------------------------------------------------------


# A graph with int8 attention (the memory attention of --int8-attention-scores, with or
# without --int8-attention-values; the image encoder of --int8-encoder-attention, measured
# within ~1e-3 at 1024) against the torch function it exports. The quantisation is the same (DynamicQuantizeLinear, QuantizeLinear and the
# integer products checked bit-exact against the torch code), but the fp32 parts before it
# differ by ~1e-6 between torch and ONNX Runtime, and a value that close to a rounding
# boundary quantises one step apart; with sharp attention that moves the output by up to
# ~2e-3 (hiera-tiny at 1024) / 3e-2 (the micro model, whose attention is sharpened). A
# wiring mistake moves it by O(1). The fidelity that matters is measured on frames
# (bench.sh modes, tests/engine_parity.rs).
INT8_SCORES_TOL = 0.1


def export_graph(model, name, spec, path, facts, int8_scores=0, int8_values=False):
    """int8_scores: 0, or the key levels of the int8-scores memory attention (or, for the
    image encoder, of its global blocks' int8 attention); int8_values: the memory
    attention's self-attention values too (G._Int8Values)."""
    if name == "memory_attention" and int8_scores:
        wrapper = G.MemoryAttentionGraph(model, int8_scores=int8_scores, int8_values=int8_values).eval()
    elif name == "image_encoder" and int8_scores:  # main() checked that it is a Hiera
        wrapper = G.HieraImageEncoderGraph(model, int8_attention=int8_scores).eval()
    else:
        wrapper = G.WRAPPERS[name](model).eval()
    inp = G.example_inputs(spec, seed=1, sizes=_sizes_with_s(EXPORT_SIZES, facts))
    names_in = [n for n, _, _ in spec["inputs"]]
    names_out = [n for n, _, _ in spec["outputs"]]
    dyn = {}
    for n, _, shape in spec["inputs"] + spec["outputs"]:
        d = {i: s for i, s in enumerate(shape) if isinstance(s, str)}
        if d:
            dyn[n] = d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(inp[n] for n in names_in),
            path,
            dynamo=False,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dyn,
            opset_version=OPSET,
            # HieraImageEncoderGraph uses ONNX Runtime contrib ops (CONTRACT.md)
            custom_opsets={"com.microsoft": 1},
            do_constant_folding=True,
        )
    return wrapper


def dedupe_constants(path: str, min_elems: int = 1024) -> int:
    """The TorchScript exporter writes one Constant node per use of a buffer (the RoPE
    cos/sin tables appear once per attention call: ~135 MB at 1024). Replace identical
    large Constants by one shared initializer. Returns the bytes saved."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    g = model.graph
    shared = {}  # (dtype, shape, bytes) -> initializer name
    rename = {}
    keep = []
    saved = 0
    for node in g.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            arr = numpy_helper.to_array(node.attribute[0].t)
            if arr.size >= min_elems:
                key = (arr.dtype.str, arr.shape, arr.tobytes())
                if key in shared:
                    rename[node.output[0]] = shared[key]
                    saved += arr.nbytes
                else:
                    name = f"shared_const_{len(shared)}"
                    shared[key] = name
                    g.initializer.append(numpy_helper.from_array(arr, name))
                    rename[node.output[0]] = name
                continue
        keep.append(node)
    for node in keep:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for out in g.output:
        if out.name in rename:
            raise RuntimeError(f"constant graph output {out.name} cannot be shared")
    del g.node[:]
    g.node.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return saved


@torch.no_grad()
def check_onnx(wrapper, name, spec, path, facts, tol, log) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    got_in = [(i.name, i.type) for i in sess.get_inputs()]
    want_in = [(n, f"tensor({'float' if d == 'float32' else d})") for n, d, _ in spec["inputs"]]
    if got_in != want_in:
        raise SystemExit(f"{name}: graph inputs {got_in} != contract {want_in}")
    got_out = [o.name for o in sess.get_outputs()]
    if got_out != [n for n, _, _ in spec["outputs"]]:
        raise SystemExit(f"{name}: graph outputs {got_out} != contract")
    result = {}
    sizes_list = CHECK_SIZES if name != "image_encoder" else CHECK_SIZES[:1]
    for ci, sizes in enumerate(sizes_list):
        inp = G.example_inputs(spec, seed=100 + ci, sizes=_sizes_with_s(sizes, facts))
        ref = wrapper(**inp)
        if not isinstance(ref, (tuple, list)):
            ref = (ref,)
        outs = sess.run(None, {k: v.numpy() for k, v in inp.items()})
        for (oname, _, oshape), r, o in zip(spec["outputs"], ref, outs):
            want_shape = [sizes[d] if isinstance(d, str) else d for d in oshape]
            if list(o.shape) != want_shape:
                raise SystemExit(f"{name}.{oname}: shape {list(o.shape)} != {want_shape} for sizes {sizes}")
            d = float(np.abs(o - r.numpy()).max())
            result[oname] = max(result.get(oname, 0.0), d)
    for oname, d in result.items():
        flag = "ok" if d <= tol else "FAIL"
        log(f"  onnx check {name}.{oname}: max abs diff {d:.3g} [{flag}]")
    return result


def tensor_json(t: torch.Tensor) -> dict:
    a = t.detach().to(torch.float32).contiguous().numpy()
    return {"shape": list(a.shape), "data": [float(x) for x in a.reshape(-1)]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--config",
        required=True,
        help=f"one of {sorted(G.NAMED_CONFIGS)}, '{G.MICRO_CONFIG}', or (with EdgeTAM's package, "
        f"models/requirements-edgetam.txt) {sorted(G.EDGETAM_CONFIGS)}",
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="official .pt checkpoint matching --config")
    src.add_argument("--random-weights", action="store_true", help="seeded random weights (tests/benchmarks)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--object-score-bias",
        type=float,
        default=0.0,
        help="add this to the object-score head's bias (benchmarks: plain random weights, and "
        "models/train_synthetic.py's full-size checkpoints whose object-score head stays random, "
        "judge every object absent, so masks are empty; a positive bias keeps objects present so "
        "that the masks of speed modes can be compared)",
    )
    ap.add_argument("--image-size", type=int, help="model input size (multiple of 64; default: the config's)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs diff allowed in the checks")
    ap.add_argument("--skip-check", action="store_true", help="write the graphs without checking them")
    ap.add_argument(
        "--int8-attention-scores",
        action="store_true",
        help="a CPU speed mode: the memory attention's attention scores (q k^T of its cross- and "
        "self-attention) as int8 products (keys int8 per layer, queries uint8 per chunk, "
        "MatMulInteger); its graph's precision becomes int8-scores (README: speed modes)",
    )
    ap.add_argument(
        "--int8-attention-values",
        action="store_true",
        help="with --int8-attention-scores: the memory attention's self-attention product of the "
        "softmax weights with the values as int8 products too (each weight row scaled by its "
        "largest weight to uint8, values int8 per layer); its graph's precision becomes "
        "int8-scores+int8-values (README: speed modes)",
    )
    ap.add_argument(
        "--int8-encoder-attention",
        action="store_true",
        help="a CPU speed mode: the image encoder's global-attention blocks (Hiera) with their "
        "attention scores and values as int8 products (as --int8-attention-values does in the "
        "memory attention); its graph's precision becomes int8-scores+int8-values. Pair it with "
        "quantize.py --fp32-prompted-frames --fp32-encoder-from <the plain export> (README: "
        "speed modes)",
    )
    ap.add_argument(
        "--int8-bits",
        type=int,
        choices=(7, 8),
        default=7,
        help="with --int8-attention-scores / --int8-encoder-attention: the int8 keys' and values' range, 7 bits ([-64, 64], the default: exact "
        "on every CPU) or 8 ([-127, 127]: exact only on x86 CPUs with VNNI (AVX-512 VNNI, "
        "AVX-VNNI); without it ONNX Runtime's uint8 x int8 products saturate)",
    )
    ap.add_argument(
        "--corrections-not-cond",
        action="store_true",
        help="record add_all_frames_to_correct_as_cond=false (official default) in the manifest",
    )
    args = ap.parse_args(argv)

    if args.config not in G.NAMED_CONFIGS and args.config != G.MICRO_CONFIG and not G.is_edgetam_config(args.config):
        ap.error(f"unknown --config {args.config}")
    why = G.check_package_for(args.config)
    if why:
        ap.error(why)
    if args.int8_attention_values and not args.int8_attention_scores:
        ap.error("--int8-attention-values needs --int8-attention-scores")
    if args.image_size is not None and args.image_size % 64 != 0:
        ap.error("--image-size must be a multiple of 64")

    torch.manual_seed(args.seed)
    log = lambda m: print(m, flush=True)  # noqa: E731
    t0 = time.time()
    model, _ = G.build_model(
        args.config,
        image_size=args.image_size,
        checkpoint=args.checkpoint,
        seed=args.seed if args.random_weights else None,
        add_all_frames_to_correct_as_cond=not args.corrections_not_cond,
    )
    if args.object_score_bias:
        G.bias_object_scores(model, args.object_score_bias)
    if args.int8_encoder_attention:
        why = G.hiera_fast_path_unsupported(model)
        if why:
            ap.error(f"--int8-encoder-attention: only Hiera image encoders ({why})")
    nparams = sum(p.numel() for p in model.parameters())
    facts = G.model_facts(model)
    specs = G.graph_specs(facts)
    log(f"built {args.config} at {facts['image_size']}: {nparams / 1e6:.3f} M parameters")
    os.makedirs(args.out, exist_ok=True)

    worst = 0.0
    checks = {}
    failed = []  # graphs held to their own tolerance (int8 scores) that exceeded it
    if not args.skip_check:
        worst = check_against_official(model, facts, log)
        checks["official_max_abs_diff"] = worst

    graphs = {}
    for name in GRAPH_ORDER:
        path = os.path.join(args.out, f"{name}.onnx")
        t1 = time.time()
        int8_scores = 0
        levels = G.KEY_LEVELS_7BIT if args.int8_bits == 7 else G.KEY_LEVELS_8BIT
        if (args.int8_attention_scores and name == "memory_attention") or (
            args.int8_encoder_attention and name == "image_encoder"
        ):
            int8_scores = levels
        # the image encoder's int8 attention is scores and values alike
        int8_values = bool(int8_scores) and (args.int8_attention_values or name == "image_encoder")
        wrapper = export_graph(model, name, specs[name], path, facts, int8_scores, int8_values)
        saved = dedupe_constants(path)
        log(
            f"exported {name}.onnx ({os.path.getsize(path) / 1e6:.2f} MB, "
            f"{saved / 1e6:.1f} MB of repeated constants shared, {time.time() - t1:.1f} s)"
        )
        if not args.skip_check:
            tol = max(args.tol, INT8_SCORES_TOL) if int8_scores else args.tol
            res = check_onnx(wrapper, name, specs[name], path, facts, tol, log)
            checks[name] = res
            if int8_scores:  # it answers to its own tolerance (above)
                if max(res.values()) > tol:
                    failed.append(f"{name} {max(res.values()):.3g} > {tol:g}")
            else:
                worst = max(worst, max(res.values()))
        graphs[name] = {
            "file": f"{name}.onnx",
            # int8_max_abs: the largest |value| of the int8 operand of its uint8 x int8
            # products (the engine warns where ONNX Runtime's kernel saturates beyond 64)
            **(
                {
                    "precision": "int8-scores+int8-values" if int8_values else "int8-scores",
                    "int8_max_abs": int8_scores,
                }
                if int8_scores
                else {}
            ),
            "sha256": sha256(path),
            "inputs": [{"name": n, "dtype": d, "shape": s} for n, d, s in specs[name]["inputs"]],
            "outputs": [{"name": n, "dtype": d, "shape": s} for n, d, s in specs[name]["outputs"]],
        }

    family = G.config_family(args.config)
    micro = args.config in (G.MICRO_CONFIG, "micro-edgetam")
    if args.random_weights:
        weights = {"kind": "random", "seed": args.seed, "calibrated_for_golden": micro}
    else:
        weights = {"kind": "checkpoint", "file": os.path.basename(args.checkpoint), "sha256": sha256(args.checkpoint)}
    if args.object_score_bias:
        weights["object_score_bias"] = args.object_score_bias
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "model": {
            "config": args.config,
            "family": family,
            "sam2_1": family.endswith("sam2.1"),
            "weights": weights,
            "parameters": nparams,
        },
        **facts,
        "preprocess": {
            "resize": "stretch to image_size x image_size (aspect ratio not kept)",
            "color": "RGB",
            "scale": 1.0 / 255.0,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "settings": G.model_flags(model),
        "constants": {k: tensor_json(v) for k, v in G.host_constants(model).items()},
        "graphs": graphs,
        "export": {
            "opset": OPSET,
            "torch": torch.__version__.split("+")[0],
            **(
                {"edgetam-dimos": _pkg_version("edgetam-dimos"), "timm": _pkg_version("timm")}
                if G.is_edgetam_config(args.config)
                else {"sam2": _pkg_version("sam2")}
            ),
            "onnx": _pkg_version("onnx"),
            "onnxruntime": _pkg_version("onnxruntime"),
            "checks": checks,
            "tolerance": args.tol,
        },
    }
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    log(f"wrote {os.path.join(args.out, 'model.json')} in {time.time() - t0:.1f} s")
    if not args.skip_check:
        if worst > args.tol or failed:
            log(f"FAILED: max abs diff {worst:.3g} (tolerance {args.tol:g})" + "".join(f"; {f}" for f in failed))
            note = int8_saturation_note(args.int8_bits) if (args.int8_attention_scores or args.int8_encoder_attention) else None
            if note and failed:
                log(f"  ({note})")
            return 1
        log(f"all checks passed: max abs diff {worst:.3g} <= {args.tol:g}")
    return 0


def _pkg_version(name):
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
