#!/usr/bin/env python3
"""Time the official PyTorch SAM2VideoPredictor on the benchmark frames (scripts/bench.sh).

  python models/bench_official.py --frames DIR --objects 1,2,4,8 [--config sam2.1_hiera_t]

On a GPU (--device cuda) it runs as the official README measures its speed: bf16 autocast
(--autocast bf16) around init_state, the clicks and propagate_in_video, TF32 for fp32
products on Ampere and later (as the official benchmark script sets them), eager (no
torch.compile). Stage hooks are left out there (CUDA launches are asynchronous: a hook's
wall time says nothing), and each count reports torch.cuda.max_memory_allocated (peak of
the tensors PyTorch's caching allocator handed out: weights, the frames init_state holds
on the GPU, activations, the memory bank; not the CUDA context, nor blocks the allocator
keeps cached, which max_memory_reserved adds) and max_memory_reserved.

DIR holds the benchmark frames as PNG (00000.png, ...; frame size, RGB) and prompts.json
(object points, frame pixels) written by scripts/bench.sh; our engine's benchmark
(examples/bench.rs) reads the same files. For each object count N the official predictor
is set up as its users do (init_state on a JPEG folder: every frame loaded up front and
held as an S x S fp32 tensor), objects 1..N get one positive click on frame 0, and
propagate_in_video yields one frame at a time. A frame's time is the wall time between two
yields; the steady state is every frame from --warmup on (memory bank full: 7 memories
from frame 7). Per stage: forward hooks on the image encoder, memory attention, prompt
encoder + mask decoder (+ object pointer projection) and memory encoder; the rest of a
frame's time is "other" (pre/post-processing, the predictor's bookkeeping).

Weights are random (seeded): speed does not depend on them. Prints one JSON line per
object count (prefixed "RESULT ") plus the fp32 matmul throughput of this process (torch,
4096^3), measured before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prepared  # noqa: E402
from files import cpu_info  # noqa: E402
import sam2_graphs as G  # noqa: E402

STAGES = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder")


def matmul_gflops(n: int = 4096, reps: int = 3) -> float:
    """Best-of-`reps` fp32 n^3 matmul throughput (GFLOP/s) in this process."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


@torch.no_grad()
def count_flops(model, steady_ptrs: int) -> dict:
    """FLOPs per frame and object at the steady state (7 memories, `steady_ptrs` object
    pointers), counted by torch's FlopCounterMode (matmuls, convolutions, attention):
    "official" runs the official modules, "ours" the wrappers exported as our graphs."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(fn) -> float:
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return float(counter.get_total_flops())

    facts = G.model_facts(model)
    specs = G.graph_specs(facts)
    nm = model.num_maskmem
    sizes = {"B": 1, "N": 1, "Nm": nm, "P": steady_ptrs, "S": facts["image_size"]}
    ours = {}
    for name, wrapper in G.WRAPPERS.items():
        mod = wrapper(model).eval()
        inp = G.example_inputs(specs[name], seed=0, sizes=sizes)
        if name == "memory_attention":
            inp["memory_valid"].fill_(1.0)
            inp["obj_ptr_valid"].fill_(1.0)
        ours[name] = flops(lambda: mod(*inp.values()))
    # The official memory attention on the same amount of memory.
    C, Cm, H = facts["hidden_dim"], facts["mem_dim"], facts["feat_size"]
    HW = H * H
    k = C // Cm
    curr = torch.randn(HW, 1, C)
    mem = torch.randn(nm * HW + steady_ptrs * k, 1, Cm)
    official = dict(ours)
    # The official image encoder (our graph re-lays it out and merges two 1x1 convs).
    image = G.example_inputs(specs["image_encoder"], seed=0, sizes=sizes)["image"]
    official["image_encoder"] = flops(lambda: model.forward_image(image))
    official["memory_attention"] = flops(
        lambda: model.memory_attention(
            curr=[curr], memory=mem, curr_pos=[torch.randn_like(curr)], memory_pos=torch.randn_like(mem),
            num_obj_ptr_tokens=steady_ptrs * k,
        )
    )
    return {"official": official, "ours": ours, "memories": nm, "pointers": steady_ptrs}


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) of this process."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class StageTimer:
    """Wall time spent inside given modules (forward pre/post hooks)."""

    def __init__(self, modules: dict):
        self.total = dict.fromkeys(STAGES, 0.0)
        self._start = {}
        for stage, mods in modules.items():
            for m in mods:
                m.register_forward_pre_hook(self._pre(stage, m))
                m.register_forward_hook(self._post(stage, m))

    def _pre(self, stage, m):
        def hook(*_):
            self._start[id(m)] = time.perf_counter()

        return hook

    def _post(self, stage, m):
        def hook(*_):
            self.total[stage] += time.perf_counter() - self._start.pop(id(m))

        return hook

    def take(self) -> dict:
        out = self.total
        self.total = dict.fromkeys(STAGES, 0.0)
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", required=True, help="benchmark folder (PNG frames + prompts.json)")
    ap.add_argument("--objects", default="1,2,4,8")
    ap.add_argument("--config", default="sam2.1_hiera_t")
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--num-frames", type=int, default=0, help="frames used (0: all in the folder)")
    ap.add_argument("--warmup", type=int, default=8, help="frames before the steady state")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--checkpoint",
        help="official checkpoint for --config instead of --seed's random weights (e.g. the "
        "benchmark's trained model from models/train_synthetic.py)",
    )
    ap.add_argument(
        "--object-score-bias",
        type=float,
        default=0.0,
        help="added to the object-score head's bias, as export.py --object-score-bias does",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--flops", action="store_true", help="also count FLOPs per stage (official and ours)")
    ap.add_argument(
        "--save-masks",
        metavar="DIR",
        help="write each frame's binary masks (frame size, one byte per pixel, objects in id "
        "order) as DIR/objects{N}-frame{i:05}.bin, the format of examples/bench.rs --save-masks",
    )
    ap.add_argument(
        "--prepared",
        action="store_true",
        help="--frames holds prepared image_size x image_size inputs (models/prepared.py: the "
        "official loader's PIL resize, kept as PNG; our engine reads the same files): they reach "
        "init_state normalised as the official loader does, instead of through a JPEG folder, "
        "and the masks come out at that size",
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the official predictor on the GPU)")
    ap.add_argument(
        "--autocast",
        choices=("none", "bf16"),
        default="none",
        help="bf16: torch.autocast(bfloat16) around the predictor's calls, as the official README runs it",
    )
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    if cuda and torch.cuda.get_device_properties(0).major >= 8:
        # as the official benchmark script (and notebooks) do on Ampere and later
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    autocast = (
        torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16)
        if args.autocast == "bf16"
        else contextlib.nullcontext()
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    with open(os.path.join(args.frames, "prompts.json")) as f:
        prompts = json.load(f)
    names = sorted(n for n in os.listdir(args.frames) if n.endswith(".png"))
    if args.num_frames:
        names = names[: args.num_frames]
    if len(names) <= args.warmup:
        raise SystemExit(f"need more than --warmup={args.warmup} frames, {args.frames} has {len(names)}")
    counts = [int(x) for x in args.objects.split(",")]
    if max(counts) > len(prompts["points"]):
        raise SystemExit(f"prompts.json has points for {len(prompts['points'])} objects")

    # The CPU's matmul says nothing about a GPU run.
    peak_before = None if cuda else matmul_gflops()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
        + (f" ({torch.cuda.get_device_name(0)})" if cuda else "")
        + f", autocast {args.autocast}"
        + ("" if peak_before is None else f"; matmul 4096^3 fp32: {peak_before:.1f} GFLOP/s")
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = G.build_model(
            args.config,
            image_size=args.image_size,
            checkpoint=args.checkpoint,
            seed=None if args.checkpoint else args.seed,
        )
        if args.object_score_bias:
            G.bias_object_scores(model, args.object_score_bias)
    patched = None
    if G.is_edgetam_config(args.config):
        # the official EdgeTAM predictor fails on a batch of 2+ objects without it
        G.patch_perceiver_for_batches()
        patched = G.PERCEIVER_PATCH
        print(f"patched: {patched}")
    model.to(args.device)
    if args.flops:
        steady_ptrs = min(max(args.warmup, 1), model.max_obj_ptrs_in_encoder)
        print("RESULT " + json.dumps({"impl": "flops", **count_flops(model, steady_ptrs)}), flush=True)
    timer = StageTimer(
        {}
        if cuda
        else {
            "image_encoder": [model.image_encoder],
            "memory_attention": [model.memory_attention],
            "mask_decoder": [model.sam_prompt_encoder, model.sam_mask_decoder, model.obj_ptr_proj],
            # EdgeTAM: its spatial perceiver compresses each new memory (our memory
            # encoder graph holds it too)
            "memory_encoder": [model.memory_encoder]
            + ([model.spatial_perceiver] if getattr(model, "spatial_perceiver", None) is not None else []),
        }
    )

    # --prepared: init_state gets the prepared inputs (official normalisation), loaded once
    if args.prepared:
        S = args.image_size
        inputs = prepared.load(args.frames, S, names)
    with tempfile.TemporaryDirectory() as jpg_dir:
        # The official loader reads a folder of JPEG frames.
        for i, n in enumerate(names if not args.prepared else []):
            Image.open(os.path.join(args.frames, n)).convert("RGB").save(
                os.path.join(jpg_dir, f"{i:05d}.jpg"), quality=100
            )
        for count in counts:
            reset_peak_rss()
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            feed = prepared.fed_to_official(inputs, S, S) if args.prepared else contextlib.nullcontext()
            t0 = time.perf_counter()
            with autocast, feed:
                state = model.init_state(video_path=jpg_dir)
            load_s = time.perf_counter() - t0
            timer.take()
            with autocast:
                for obj in range(count):
                    x, y = prompts["points"][obj]
                    model.add_new_points_or_box(
                        state,
                        frame_idx=0,
                        obj_id=obj + 1,
                        points=np.array([[x, y]], np.float32),
                        labels=np.array([1], np.int32),
                    )
            frames = []
            t = time.perf_counter()
            with autocast:
                for frame_idx, obj_ids, masks in model.propagate_in_video(state):
                    binary = (masks > 0.0).cpu().numpy()  # the user's binary masks at frame size
                    now = time.perf_counter()
                    frames.append(
                        {"frame": frame_idx, "ms": (now - t) * 1e3, "stages_ms": {k: v * 1e3 for k, v in timer.take().items()}}
                    )
                    if args.save_masks:
                        order = np.argsort(np.asarray(obj_ids))
                        os.makedirs(args.save_masks, exist_ok=True)
                        with open(os.path.join(args.save_masks, f"objects{count}-frame{frame_idx:05d}.bin"), "wb") as f:
                            f.write(binary[order].astype(np.uint8).tobytes())
                    t = time.perf_counter()
                    print(f"  official objects={count} frame {frame_idx}: {frames[-1]['ms']:.1f} ms", file=sys.stderr, flush=True)
            steady = [f for f in frames if f["frame"] >= args.warmup]
            total = sum(f["ms"] for f in steady) / len(steady)
            stage_means = {s: sum(f["stages_ms"][s] for f in steady) / len(steady) for s in STAGES}
            result = {
                "impl": "official",
                "config": args.config,
                **({"patched": patched} if patched else {}),
                "objects": count,
                "image_size": args.image_size,
                "device": args.device,
                "autocast": args.autocast,
                "input": "prepared" if args.prepared else "jpeg folder",
                "frames": len(frames),
                "steady_frames": len(steady),
                "ms_per_frame": total,
                "ms_median": sorted(f["ms"] for f in steady)[len(steady) // 2],
                "fps": 1e3 / total,
                "first_frame_ms": frames[0]["ms"],
                "stages_ms": None if cuda else {**stage_means, "other": total - sum(stage_means.values())},
                "load_ms_per_frame": load_s * 1e3 / len(names),
                "peak_rss_mib": rss_kib("VmHWM") / 1024,
                "cpu": cpu_info(),
            }
            if cuda:
                result["cuda_max_memory_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
                result["cuda_max_memory_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
            print("RESULT " + json.dumps(result), flush=True)
            del state
    peak_after = None if cuda else matmul_gflops()
    if peak_after is not None:
        print(f"matmul 4096^3 fp32 after: {peak_after:.1f} GFLOP/s")
    print("RESULT " + json.dumps({"impl": "official", "matmul_gflops": [peak_before, peak_after], "cpu": cpu_info()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
