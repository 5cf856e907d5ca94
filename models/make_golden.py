#!/usr/bin/env python3
"""Regenerate the golden fixtures under tests/fixtures/ (needs the export venv: torch + sam2).

  python models/make_golden.py                 # micro model (seed 0) + golden scenario
  PYTHONPATH=.venv-edgetam python models/make_golden.py --family edgetam
                                               # micro EdgeTAM (seed 0) + EdgeTAM golden

What it writes
  tests/fixtures/micro/            the micro SAM 2.1 model exported by export.py (seed 0)
  tests/fixtures/micro-int8/       its int8 variant, all int8 (quantize.py --int8-high-res;
                                   tests/engine_parity.rs)
  tests/fixtures/micro-int8-hr/    its int8 variant, high-resolution path fp32 (quantize.py)
  tests/fixtures/golden/frames/    N real frames of bedroom.mp4 (every 3rd), RGB PNG, frame size
  tests/fixtures/golden/inputs/    the same frames as the official loader prepares them
                                   (PIL resize to S x S, uint8 RGB PNG); normalising them
                                   gives the exact image tensor the official predictor used
  tests/fixtures/golden/*.png      mask prompts (frame size, 0/255)
  tests/fixtures/golden/golden.json + golden.bin
                                   the scripted scenario and the official SAM2VideoPredictor's
                                   output per frame and object

With --family edgetam (EdgeTAM's `sam2` package first on PYTHONPATH, models/requirements-edgetam.txt):
  tests/fixtures/micro-edgetam/    the micro EdgeTAM exported by export.py (seed 0)
  tests/fixtures/golden-edgetam/   golden.json + golden.bin + mask prompts: EDGETAM_SCENARIO
                                   through EdgeTAM's official SAM2VideoPredictor, on the frames
                                   and inputs of tests/fixtures/golden (same video, same 128x128
                                   input size; made by the default run, checked bit for bit)

The scenario is driven in streaming order: on frame t, prompts for objects that are new (or
removals) are applied first, then frame t is tracked (propagate_in_video for exactly that
frame), then corrections for objects already tracked on t are applied (the official flow
when a user clicks on a frame they are looking at). Frame t is computed before frame t+1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # the predictor's per-frame progress bars

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export as E  # noqa: E402
import prepared  # noqa: E402
import sam2_graphs as G  # noqa: E402

REPO = os.path.dirname(HERE)
DEFAULT_VIDEO = os.path.join(REPO, "..", "shared", "data", "videos", "bedroom.mp4")
FRAME_W, FRAME_H = 192, 108
NUM_FRAMES = int(os.environ.get("SAM2TRACK_GOLDEN_FRAMES", "32"))  # >= 16 so that max_obj_ptrs = min(num_frames, 16) matches a live stream
FRAME_STRIDE = 3
SEED = 0
MIN_SCORE_MARGIN = 0.05
PARITY_LOGIT_TOL = 1e-3  # the engine's parity tolerance on low-res logits (issue/engine tests)
MIN_OBJECT_LOGIT_GAP = 5 * PARITY_LOGIT_TOL  # two objects on a frame differ by more than this
MIN_SENSITIVITY = 10 * PARITY_LOGIT_TOL  # a wrong memory selection changes logits by more
# Float noise must not be amplified to the parity tolerance: bf16 storage of memories turns
# 1e-6 differences (onnxruntime vs torch) into occasional 1-ulp flips that propagate.
NOISE = 1e-6
MAX_NOISE_EFFECT = PARITY_LOGIT_TOL / 10

# Prompts in frame pixels (192x108). "when": "before" = applied before frame t is tracked
# (new objects, removals); "after" = a correction on the frame just tracked.
SCENARIO = [
    {"frame": 0, "obj_id": 1, "kind": "points", "points": [[80.0, 45.0]], "labels": [1], "when": "before"},
    {"frame": 0, "obj_id": 2, "kind": "box", "box": [106.0, 57.0, 137.0, 82.0], "when": "before"},
    {"frame": 5, "obj_id": 1, "kind": "points", "points": [[60.0, 92.0]], "labels": [0], "when": "after"},
    {"frame": 8, "obj_id": 3, "kind": "points", "points": [[175.0, 76.0], [178.0, 92.0]], "labels": [1, 1], "when": "before"},
    {"frame": 12, "obj_id": 4, "kind": "mask", "file": "mask_f12_obj4.png", "when": "before"},
    {"frame": 16, "obj_id": 1, "kind": "points", "points": [[82.0, 40.0], [70.0, 95.0]], "labels": [1, 0], "when": "after"},
    {"frame": 20, "obj_id": 2, "kind": "remove", "when": "before"},
    {"frame": 24, "obj_id": 5, "kind": "points", "points": [[150.0, 20.0]], "labels": [0], "when": "before"},
    {"frame": 27, "obj_id": 5, "kind": "mask", "file": "mask_f27_obj5_empty.png", "when": "after"},
]

# EdgeTAM's official predictor is the older SAM 2 video predictor (edgetam-dimos 1.0.1), with
# global rather than per-object bookkeeping:
#  - it refuses new objects once tracking has started (`tracking_has_started`): every object
#    is added on frame 0, before the first frame is tracked; no object added mid-stream;
#  - a prompt frame is a conditioning frame for ALL objects: on the next frame it
#    consolidates the frame across objects and re-encodes every object's memory there, taking
#    an object without a prompt on that frame from its tracked output (its memory re-encoded
#    from the binarised mask, as a conditioning frame: a correction of one object changes the
#    others' memories) or, where it has no output there (a prompt before the frame is
#    tracked), from an empty placeholder (mask -1024, object score +10) that becomes that
#    object's conditioning memory. sam2track, like Meta's current SAM 2 predictor (sam2
#    1.1.0, the SAM 2 golden), keeps objects independent; we do not copy this.
# So this scenario prompts, on every frame with a prompt after frame 0, every live object
# (corrections "after" the frame is tracked): each object's conditioning outputs are then
# its own, and the two bookkeepings agree (make_golden checks it: no placeholder is made).
# Prompt kinds: click, box, mask, negative-only click (an absent object), negative and
# positive + negative refinement clicks, a box and a mask as corrections, an empty mask
# ("not here"), a removal.
EDGETAM_SCENARIO = [
    {"frame": 0, "obj_id": 1, "kind": "points", "points": [[80.0, 45.0]], "labels": [1], "when": "before"},
    {"frame": 0, "obj_id": 2, "kind": "box", "box": [106.0, 57.0, 137.0, 82.0], "when": "before"},
    {"frame": 0, "obj_id": 3, "kind": "mask", "file": "mask_f0_obj3.png", "when": "before"},
    {"frame": 0, "obj_id": 4, "kind": "points", "points": [[150.0, 20.0]], "labels": [0], "when": "before"},
    {"frame": 6, "obj_id": 1, "kind": "points", "points": [[60.0, 92.0]], "labels": [0], "when": "after"},
    {"frame": 6, "obj_id": 2, "kind": "box", "box": [104.0, 55.0, 140.0, 84.0], "when": "after"},
    {"frame": 6, "obj_id": 3, "kind": "points", "points": [[175.0, 76.0], [178.0, 92.0]], "labels": [1, 1], "when": "after"},
    {"frame": 6, "obj_id": 4, "kind": "mask", "file": "mask_f6_obj4_empty.png", "when": "after"},
    {"frame": 13, "obj_id": 2, "kind": "remove", "when": "before"},
    {"frame": 19, "obj_id": 1, "kind": "points", "points": [[82.0, 40.0], [70.0, 95.0]], "labels": [1, 0], "when": "after"},
    {"frame": 19, "obj_id": 3, "kind": "mask", "file": "mask_f19_obj3.png", "when": "after"},
    {"frame": 19, "obj_id": 4, "kind": "points", "points": [[30.0, 15.0]], "labels": [0], "when": "after"},
]


# Mask prompts other than the default ellipse (file name -> ellipse box)
MASK_ELLIPSES = {"mask_f19_obj3.png": [12, 74, 150, 106]}


def make_mask_prompt(path):
    """An ellipse over the front of the bed (SAM 2 golden: object 4); files named *empty*:
    an empty mask (the user says "not here": the official predictor then marks the object
    absent)."""
    im = Image.new("L", (FRAME_W, FRAME_H), 0)
    if "empty" not in os.path.basename(path):
        ImageDraw.Draw(im).ellipse(MASK_ELLIPSES.get(os.path.basename(path), [4, 80, 140, 106]), fill=255)
    im.save(path)


def decode_frames(video, out_dir):
    """Decode `video` with GStreamer at FRAME_W x FRAME_H and keep every FRAME_STRIDE-th frame."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!", "videoconvert", "!",
            "videoscale", "!", f"video/x-raw,format=RGB,width={FRAME_W},height={FRAME_H}", "!", "pngenc", "!",
            "multifilesink", f"location={tmp}/%05d.png",
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
        os.makedirs(out_dir, exist_ok=True)
        for i in range(NUM_FRAMES):
            src = os.path.join(tmp, f"{i * FRAME_STRIDE:05d}.png")
            Image.open(src).convert("RGB").save(os.path.join(out_dir, f"{i:05d}.png"))


def frame_names():
    return [f"{i:05d}.png" for i in range(NUM_FRAMES)]


def prepare_inputs(frames_dir, inputs_dir, image_size):
    """What sam2.utils.misc._load_img_as_tensor does before normalising, kept as uint8."""
    prepared.prepare(frames_dir, inputs_dir, image_size, frame_names())


def load_prepared(inputs_dir, image_size):
    """The official normalisation applied to the prepared uint8 inputs (bit-exact)."""
    return prepared.load(inputs_dir, image_size, frame_names())


def pack_mask(mask: np.ndarray) -> bytes:
    return np.packbits(mask.astype(np.uint8).reshape(-1), bitorder="big").tobytes()


@torch.inference_mode()
def run_scenario(predictor, images, golden_dir, scenario):
    with prepared.fed_to_official(images, FRAME_H, FRAME_W):
        state = predictor.init_state(video_path="<prepared>")

    record = {}  # (frame, obj_id) -> dict
    ctx = {}
    orig_track = predictor._track_step

    def track_hook(*a, **kw):
        res = orig_track(*a, **kw)
        ctx["ious"] = res[1][2]
        return res

    orig_rsfi = predictor._run_single_frame_inference

    def rsfi_hook(**kw):
        out, pm = orig_rsfi(**kw)
        if kw["output_dict"] is state.get("output_dict"):
            # the older predictor (EdgeTAM's) tracks all objects in one batch
            obj_ids = [state["obj_idx_to_id"][i] for i in range(kw["batch_size"])]
        else:
            obj_ids = [
                next(state["obj_idx_to_id"][i] for i, d in state["output_dict_per_obj"].items() if d is kw["output_dict"])
            ]
        for i, obj_id in enumerate(obj_ids):
            record[(kw["frame_idx"], obj_id)] = {
                "is_cond": kw["point_inputs"] is not None or kw["mask_inputs"] is not None,
                "object_score": float(out["object_score_logits"][i].reshape(-1)[0]),
                "iou": float(ctx["ious"][i].max()),
                "logits": out["pred_masks"][i, 0].clone(),
            }
        return out, pm

    def no_placeholder(*a, **kw):
        raise AssertionError(
            "the official predictor filled an object's output with its empty placeholder: the "
            "scenario prompts a frame without prompting every live object (see EDGETAM_SCENARIO)"
        )

    predictor._track_step = track_hook
    predictor._run_single_frame_inference = rsfi_hook
    if hasattr(predictor, "_get_empty_mask_ptr"):
        predictor._get_empty_mask_ptr = no_placeholder
    try:
        final = _drive(predictor, state, golden_dir, scenario)
    finally:
        del predictor._track_step  # back to the class methods
        del predictor._run_single_frame_inference
        predictor.__dict__.pop("_get_empty_mask_ptr", None)
    return record, final


def _drive(predictor, state, golden_dir, scenario):
    """Apply `scenario` in streaming order; returns frame -> {obj_id: binary mask}."""

    def apply(p):
        t, oid = p["frame"], p["obj_id"]
        if p["kind"] == "points":
            return predictor.add_new_points_or_box(
                state, frame_idx=t, obj_id=oid, points=np.array(p["points"], np.float32),
                labels=np.array(p["labels"], np.int32), clear_old_points=True,
            )  # fmt: skip
        if p["kind"] == "box":
            return predictor.add_new_points_or_box(state, frame_idx=t, obj_id=oid, box=np.array(p["box"], np.float32))
        if p["kind"] == "mask":
            m = np.array(Image.open(os.path.join(golden_dir, p["file"]))) > 127
            return predictor.add_new_mask(state, frame_idx=t, obj_id=oid, mask=m)
        if p["kind"] == "remove":
            predictor.remove_object(state, oid, strict=True, need_output=False)
            return None
        raise ValueError(p["kind"])

    final = {}  # frame -> {obj_id: bool mask at frame size}
    for t in range(NUM_FRAMES):
        for p in scenario:
            if p["frame"] == t and p["when"] == "before":
                apply(p)
        for f, obj_ids, masks in predictor.propagate_in_video(state, start_frame_idx=t, max_frame_num_to_track=0):
            assert f == t
            final[t] = {oid: (masks[i, 0] > 0.0).numpy() for i, oid in enumerate(obj_ids)}
        for p in scenario:
            if p["frame"] == t and p["when"] == "after":
                _, obj_ids, masks = apply(p)
                final[t] = {oid: (masks[i, 0] > 0.0).numpy() for i, oid in enumerate(obj_ids)}
    return final


def write_golden(record, final, golden_dir, model_dir, facts, fam):
    frames = []
    blob = bytearray()
    L = facts["low_res_mask_size"]
    for t in range(NUM_FRAMES):
        objs = []
        for oid in sorted(final[t]):
            r = record[(t, oid)]
            logits = r["logits"].numpy().astype("<f4")
            assert logits.shape == (L, L)
            mask = final[t][oid]
            assert mask.shape == (FRAME_H, FRAME_W)
            entry = {
                "obj_id": oid,
                "is_cond": r["is_cond"],
                "object_score": r["object_score"],
                "iou": r["iou"],
                "mask_area": int(mask.sum()),
                "logits_offset": len(blob),
            }
            blob += logits.tobytes()
            entry["mask_offset"] = len(blob)
            blob += pack_mask(mask)
            objs.append(entry)
        frames.append({"frame": t, "objects": objs})
    with open(os.path.join(golden_dir, "golden.bin"), "wb") as f:
        f.write(bytes(blob))
    manifest = json.load(open(os.path.join(model_dir, "model.json")))
    doc = {
        "format": "sam2track-golden",
        "format_version": 1,
        "model_dir": os.path.relpath(model_dir, golden_dir),
        "model_graph_sha256": {k: v["sha256"] for k, v in manifest["graphs"].items()},
        "source": {"video": "bedroom.mp4", "first_frame": 0, "frame_stride": FRAME_STRIDE},
        "frame_size": [FRAME_W, FRAME_H],
        "num_frames": NUM_FRAMES,
        "frames_dir": os.path.relpath(fam["frames_dir"], golden_dir),
        "inputs_dir": os.path.relpath(fam["inputs_dir"], golden_dir),
        "reference": {
            "predictor": fam["predictor"],
            "add_all_frames_to_correct_as_cond": manifest["settings"]["add_all_frames_to_correct_as_cond"],
            "fill_hole_area_applied": False,
            "note": fam["hole_note"],
            **fam.get("reference_extra", {}),
        },
        "scenario": fam["scenario"],
        "binary": {
            "file": "golden.bin",
            "logits": f"float32 little-endian [{L}, {L}] row-major: the chosen low-res mask logits",
            "mask": "final binary mask at frame size, row-major bits packed MSB-first "
            "(ceil(W*H/8) bytes): official video-res logits > 0",
        },
        "frames": frames,
    }
    with open(os.path.join(golden_dir, "golden.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return doc


def sanity(doc, record, final, log):
    """The fixture must be able to catch mistakes (see the notes on random weights)."""
    # 1. both object-score signs occur, each with a margin that float noise cannot flip
    scores = np.array([o["object_score"] for fr in doc["frames"] for o in fr["objects"]])
    n_abs = int((scores <= 0).sum())
    log(f"entries {len(scores)}, absent (score <= 0): {n_abs}, min |score| {np.abs(scores).min():.3f}")
    assert 0 < n_abs < len(scores) // 2, "want some, but not mostly, absent object/frame pairs"
    assert np.abs(scores).min() >= MIN_SCORE_MARGIN, "an object score is too close to 0"
    # 2. masks are neither empty nor (nearly) full
    W, H = doc["frame_size"]
    areas = [o["mask_area"] / (W * H) for fr in doc["frames"] for o in fr["objects"] if o["object_score"] > 0]
    log(f"present mask coverage: min {min(areas):.3f} mean {np.mean(areas):.3f} max {max(areas):.3f}")
    assert min(areas) > 0.0 and max(areas) < 0.97
    # 3. objects on a frame are told apart by the logits check (a mix-up of two objects
    #    changes some logit by far more than the 1e-3 parity tolerance); two absent objects
    #    have the same logits by construction (NO_OBJ_SCORE everywhere)
    present = lambda t, o: record[(t, o)]["object_score"] > 0  # noqa: E731
    closest = min(
        float((record[(t, a)]["logits"] - record[(t, b)]["logits"]).abs().max())
        for t in final
        for a in final[t]
        for b in final[t]
        if a < b and (present(t, a) or present(t, b))
    )
    log(f"smallest max-abs logit difference between two objects on a frame: {closest:.3f}")
    assert closest >= MIN_OBJECT_LOGIT_GAP, "two objects' logits are too alike to catch a mix-up"


def _logit_gap(a, b):
    return max(float((a[k]["logits"] - b[k]["logits"]).abs().max()) for k in a if k in b)


def noise_effect(predictor, images, golden_dir, record, log, scenario):
    """Re-run with 1e-6 relative noise on every new memory (before the bf16 rounding) and
    require the logits to move far less than the parity tolerance: the fixture must not
    be chaotic, or no independent implementation could match it."""
    orig = predictor._encode_new_memory
    gen = torch.Generator().manual_seed(1)

    def noisy(*a, **kw):
        feats, pos = orig(*a, **kw)
        return feats * (1 + NOISE * torch.randn(feats.shape, generator=gen)), pos

    predictor._encode_new_memory = noisy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alt, _ = run_scenario(predictor, images, golden_dir, scenario)
    finally:
        del predictor._encode_new_memory
    gap = _logit_gap(record, alt)
    log(f"noise: {NOISE:g} relative noise on memories moves the logits by up to {gap:.2e}")
    assert gap <= MAX_NOISE_EFFECT, "the scenario amplifies float noise: parity could not hold"


def sensitivity(predictor, images, golden_dir, record, log, scenario):
    """A wrong memory selection must show in the golden logits: re-run with one memory
    frame fewer and with half the object pointers and require a clear difference."""
    for attr, value in (("num_maskmem", predictor.num_maskmem - 1), ("max_obj_ptrs_in_encoder", 8)):
        old = getattr(predictor, attr)
        setattr(predictor, attr, value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                alt, _ = run_scenario(predictor, images, golden_dir, scenario)
        finally:
            setattr(predictor, attr, old)
        gap = _logit_gap(record, alt)
        log(f"sensitivity: {attr} {old} -> {value} changes the logits by up to {gap:.3f}")
        assert gap >= MIN_SENSITIVITY, f"the golden cannot tell a wrong {attr}"


def _pkg_version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=DEFAULT_VIDEO)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument(
        "--family", choices=("sam2", "edgetam"), default="sam2",
        help="sam2: the micro SAM 2.1 model and tests/fixtures/golden (Meta's sam2 package); "
        "edgetam: the micro EdgeTAM and tests/fixtures/golden-edgetam (EdgeTAM's package first on "
        "PYTHONPATH), on the frames of tests/fixtures/golden",
    )  # fmt: skip
    args = ap.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    try:
        import sam2._C  # noqa: F401

        raise SystemExit("sam2._C is installed: reinstall sam2 with SAM2_BUILD_CUDA=0 (goldens skip hole filling)")
    except ImportError:
        pass
    edgetam = args.family == "edgetam"
    config = "micro-edgetam" if edgetam else "micro"
    why = G.check_package_for(config)
    if why:
        raise SystemExit(why)
    torch.manual_seed(SEED)

    model_dir = os.path.join(args.out, config)
    sam2_golden_dir = os.path.join(args.out, "golden")
    golden_dir = os.path.join(args.out, "golden-edgetam" if edgetam else "golden")
    fam = {
        "scenario": EDGETAM_SCENARIO if edgetam else SCENARIO,
        "frames_dir": os.path.join(sam2_golden_dir, "frames"),
        "inputs_dir": os.path.join(sam2_golden_dir, "inputs"),
        "predictor": "sam2.sam2_video_predictor.SAM2VideoPredictor (sam2 1.1.0, CPU, fp32)",
        "hole_note": "hole filling needs the optional CUDA extension sam2._C, absent here: "
        "the predictor warns and skips it, so the golden has no hole filling",
    }
    if edgetam:
        import sam2

        fam["predictor"] = (
            f"EdgeTAM's sam2.sam2_video_predictor.SAM2VideoPredictor (edgetam-dimos "
            f"{_pkg_version('edgetam-dimos')}, timm {_pkg_version('timm')}, CPU, fp32)"
        )
        fam["hole_note"] = (
            "EdgeTAM's hole filling runs sam2._C on CUDA and OpenCV on the CPU; neither is "
            "installed here: the predictor warns and skips it, so the golden has no hole filling"
        )
        fam["reference_extra"] = {
            "patched": G.PERCEIVER_PATCH,
            "older_predictor": "global frame bookkeeping: new objects only before tracking "
            "starts, a prompt frame is a conditioning frame for every object; the scenario "
            "prompts every live object on each prompt frame after frame 0, so per-object "
            "bookkeeping (sam2track, sam2 1.1.0) gives the same (see EDGETAM_SCENARIO in "
            "models/make_golden.py)",
        }
        log(f"EdgeTAM package: {os.path.dirname(sam2.__file__)}")
        G.patch_perceiver_for_batches()

    rc = E.main(["--config", config, "--random-weights", "--seed", str(SEED), "--out", model_dir])
    if rc != 0:
        raise SystemExit(f"{config} export failed its checks")
    if not edgetam:
        import quantize

        shutil.rmtree(model_dir + "-int8", ignore_errors=True)
        quantize.main(["--model", model_dir, "--out", model_dir + "-int8", "--int8-high-res"])
        shutil.rmtree(model_dir + "-int8-hr", ignore_errors=True)
        quantize.main(["--model", model_dir, "--out", model_dir + "-int8-hr"])

    os.makedirs(golden_dir, exist_ok=True)
    for p in fam["scenario"]:
        if p["kind"] == "mask":
            make_mask_prompt(os.path.join(golden_dir, p["file"]))

    predictor, _ = G.build_model(config, seed=SEED)
    facts = G.model_facts(predictor)
    if edgetam:
        for k in ("clear_non_cond_mem_around_input", "clear_non_cond_mem_for_multi_obj"):
            fam["reference_extra"][k] = bool(getattr(predictor, k))
        # the SAM 2 golden's frames and inputs (same video, same input size): checked, not rewritten
        with tempfile.TemporaryDirectory() as tmp:
            prepare_inputs(fam["frames_dir"], tmp, facts["image_size"])
            for i in range(NUM_FRAMES):
                name = f"{i:05d}.png"
                a = np.array(Image.open(os.path.join(tmp, name)))
                b = np.array(Image.open(os.path.join(fam["inputs_dir"], name)))
                if a.shape != b.shape or (a != b).any():
                    raise SystemExit(f"{fam['inputs_dir']}/{name} is not this model's input: run the default family first")
    else:
        decode_frames(args.video, fam["frames_dir"])
        prepare_inputs(fam["frames_dir"], fam["inputs_dir"], facts["image_size"])
    images = load_prepared(fam["inputs_dir"], facts["image_size"])
    scenario = fam["scenario"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record, final = run_scenario(predictor, images, golden_dir, scenario)
    doc = write_golden(record, final, golden_dir, model_dir, facts, fam)
    sanity(doc, record, final, log)
    sensitivity(predictor, images, golden_dir, record, log, scenario)
    noise_effect(predictor, images, golden_dir, record, log, scenario)
    log(f"wrote {golden_dir}/golden.json and golden.bin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
