#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Summarise the RESULT lines of scripts/bench.sh (standard library only).

  python3 scripts/bench_report.py target/bench/official.txt target/bench/ours.txt [modes...]
  python3 scripts/bench_report.py --rounds target/bench/edgetam-*.txt    (BENCH_EDGETAM=1)
  python3 scripts/bench_report.py --rounds target/bench/round-*.txt      (BENCH_ROUNDS=2)

Prints, per object count: ms/frame of the official predictor and of each sam2track run,
their ratio official/ours, ms per stage, achieved GFLOP/s of the heavy stages against the
fp32 matmul throughput measured in the same run, peak RSS, and for the speed modes their
mask IoU against exact mode. --rounds: interleaved rounds (BENCH_ROUNDS, BENCH_EDGETAM=1:
every figure per round and the ratios within each round, where the VM's drift cancels).
"""

from __future__ import annotations

import json
import sys

STAGES = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder", "other")
SHORT = {"image_encoder": "enc", "memory_attention": "attn", "mask_decoder": "dec", "memory_encoder": "memenc", "other": "other"}


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.startswith("RESULT "):
                    rows.append(json.loads(line[len("RESULT ") :]))
    return rows


def _med(v):
    v = sorted(v)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def cpu_line(rows) -> str:
    """The CPU the RESULT lines name (every line should name the same one)."""
    cpus = {json.dumps(r["cpu"], sort_keys=True) for r in rows if r.get("cpu")}
    if not cpus:
        return "CPU: not recorded (RESULT lines from an older benchmark)"
    if len(cpus) > 1:
        return "CPU: DIFFERENT CPUs in these results, do not compare them: " + "; ".join(sorted(cpus))
    c = json.loads(cpus.pop())
    return f"CPU: {c['model']} ({c['logical_cpus']} logical CPUs; flags: {' '.join(c['flags']) or 'none of those recorded'})"


def rounds_report(rows) -> int:
    """Interleaved rounds (BENCH_ROUNDS; BENCH_EDGETAM=1): each implementation once per
    round, one after the other; every figure per round and the ratios taken within each
    round, against the first implementation of the files (the official predictor)."""
    runs = [r for r in rows if "ms_per_frame" in r and "round" in r]
    if not runs:
        print("no RESULT lines with rounds")
        return 1
    print(cpu_line(rows))
    impls = list(dict.fromkeys(r["impl"] for r in runs))
    rounds = sorted({r["round"] for r in runs})
    by = {(r["impl"], r["objects"], r["round"]): r for r in runs}
    peaks = {}
    for r in rows:
        if isinstance(r.get("matmul_gflops"), list):  # the closing line of each process
            peaks.setdefault("PyTorch" if r["impl"].startswith("official") else "ONNX Runtime", []).extend(p for p in r["matmul_gflops"] if p)
    if peaks:
        print("fp32 matmul 4096^3 in this run (GFLOP/s, min-max): " + ", ".join(f"{k} {min(v):.0f}-{max(v):.0f}" for k, v in peaks.items()))
    print(f"{len(rounds)} interleaved rounds ({', '.join(impls)}); ms/frame at the steady state")
    print()
    width = max(22, max(len(i) for i in impls) + 2)
    header = f"{'impl':<{width}}{'obj':>4}  {'ms/frame per round':<22}" + " ".join(f"{SHORT[s]:>7}" for s in STAGES) + f"{'peak RSS MiB':>14}"
    print(header)
    print("-" * len(header))
    counts = sorted({r["objects"] for r in runs})
    for n in counts:
        for impl in impls:
            rs = [by[(impl, n, k)] for k in rounds if (impl, n, k) in by]
            if not rs:
                continue
            per = "/".join(f"{r['ms_per_frame']:.0f}" for r in rs)
            stages = " ".join(f"{_med([r['stages_ms'][s] for r in rs]):7.0f}" for s in STAGES)
            rss = max(r["peak_rss_mib"] for r in rs)
            print(f"{impl:<{width}}{n:>4}  {per:<22}{stages}{rss:>14.0f}")
    print("(stages: median over the rounds; peak RSS: the largest)")
    print()

    def ratios(num, den, n):
        v = [by[(num, n, k)]["ms_per_frame"] / by[(den, n, k)]["ms_per_frame"] for k in rounds if (num, n, k) in by and (den, n, k) in by]
        return "/".join(f"{x:.2f}" for x in v) + (f" (median {_med(v):.2f}x)" if v else "-")

    base = impls[0]
    for n in counts:
        print(f"{n} object(s), {base} / each, per round:")
        for impl in impls[1:]:
            print(f"  {impl:<{width}}{ratios(base, impl, n)}")
        if "sam2track-tiny" in impls and "sam2track-edgetam" in impls:
            print(f"  ours SAM 2.1-tiny exact / ours EdgeTAM: {ratios('sam2track-tiny', 'sam2track-edgetam', n)}")
        for impl in impls[1:]:
            ious = [by[(impl, n, k)].get("iou_vs_reference") for k in rounds if (impl, n, k) in by]
            iou = next((i for i in ious if i), None)
            if iou:
                print(f"  {impl} masks vs the reference ({iou['masks']} masks, every frame): IoU mean {iou['mean']:.3f} min {iou['min']:.3f}; "
                      f"background IoU mean {iou.get('background_mean', float('nan')):.3f} min {iou.get('background_min', float('nan')):.3f}")
    return 0


def main(paths) -> int:
    if paths and paths[0] == "--rounds":
        return rounds_report(load(paths[1:]))
    rows = load(paths)
    flops = next((r for r in rows if r.get("impl") == "flops"), None)
    peaks = {}
    for r in rows:
        if "matmul_gflops" in r:
            peaks[r["impl"]] = [p for p in r["matmul_gflops"] if p]
    runs = [r for r in rows if "ms_per_frame" in r]
    element = [r for r in rows if r.get("impl") == "sam2track-element"]
    paired = [r for r in rows if r.get("impl") == "sam2track-paired"]
    official = {r["objects"]: r for r in runs if r["impl"] == "official"}
    peak = max((max(v) for v in peaks.values() if v), default=None)

    print(cpu_line(rows))
    print("fp32 matmul 4096^3 (GFLOP/s, before/after): " + ", ".join(f"{k}: " + "/".join(f"{p:.0f}" for p in v) for k, v in peaks.items()))
    if peak:
        print(f"peak used below: {peak:.0f} GFLOP/s (the best of all)")
    print()
    header = f"{'impl':<22}{'obj':>4}{'ms/frame':>10}{'vs official':>12}  " + " ".join(f"{SHORT[s]:>7}" for s in STAGES) + f"{'peak RSS MiB':>14}  IoU mean/min, background IoU mean/min, |low-res logit diff| mean/max"
    print(header)
    print("-" * len(header))
    for r in sorted(runs, key=lambda r: (r["objects"], r["impl"] != "official", r["impl"])):
        o = official.get(r["objects"])
        ratio = f"{o['ms_per_frame'] / r['ms_per_frame']:.2f}x" if o and r["impl"] != "official" else ""
        iou = r.get("iou_vs_reference")
        iou_s = f"{iou['mean']:.3f}/{iou['min']:.3f}" if iou else ""
        if iou and "min_at" in iou:  # where the lowest mask is: frame 0 is the prompted one
            at = iou["min_at"]
            tracked = iou.get("tracked_frames_min")
            iou_s += f" (min at frame {at['frame']}, object {at['object'] + 1}" + (
                f"; tracked frames' min {tracked:.3f})" if tracked is not None else ")")
        if iou and "background_mean" in iou:
            iou_s += f", bg {iou['background_mean']:.3f}/{iou['background_min']:.3f}"
        if iou and "low_res_logit_abs_diff" in iou:
            d = iou["low_res_logit_abs_diff"]
            iou_s += f", logits {d['mean']:.3g}/{d['max']:.3g}"
        if iou and iou.get("both_empty"):
            iou_s += f" ({iou['both_empty']}/{iou['masks']} empty)"
        stages = " ".join(f"{r['stages_ms'][s]:7.0f}" for s in STAGES)
        print(f"{r['impl']:<22}{r['objects']:>4}{r['ms_per_frame']:>10.0f}{ratio:>12}  {stages}{r['peak_rss_mib']:>14.0f}  {iou_s}")
    print("(IoU etc. against the reference: exact mode against the official predictor's masks on the")
    print(" same prepared input; speed modes against exact mode; low-res logits: speed modes only)")
    exact = [r for r in runs if r["impl"] == "sam2track" and "masks" in r]
    if exact:
        print()
        print("exact mode's masks (every frame; area = share of the frame; object pairs = IoU of two")
        print("objects' masks on one frame: near 1 means the objects are not told apart; prompted frame:")
        print("whether each object's click lies inside its own mask -- masks that do not follow their")
        print("prompts make the figures at several objects say no more than one):")
        for r in sorted(exact, key=lambda r: r["objects"]):
            a, p = r["masks"]["area"], r["masks"]["object_pair_iou"]
            line = f"  {r['objects']} obj: area min {a['min']:.3f} p10 {a['p10']:.3f} median {a['median']:.3f} p90 {a['p90']:.3f} max {a['max']:.3f}"
            if p["n"]:
                line += f"; object pairs IoU median {p['median']:.3f} max {p['max']:.3f}"
            print(line)
            pf = r["masks"].get("prompted_frame")
            if pf and pf["clicks"]:
                line = f"    prompted frame: clicks inside their own masks {pf['clicks_inside_own_mask']} of {pf['clicks']}"
                q = pf["object_pair_iou"]
                if q["n"]:
                    line += f"; object pairs IoU median {q['median']:.3f} max {q['max']:.3f}"
                print(line)
            c, n = r["masks"].get("inside_logit_median"), r["masks"].get("near_threshold_per_mask_pixel")
            if c and c["n"]:
                print(
                    f"    confidence: median low-res logit inside a mask p10 {c['p10']:.2f} median {c['median']:.2f} "
                    f"p90 {c['p90']:.2f}; low-res pixels within +-{r['masks']['near_threshold_margin']:g} of the "
                    f"threshold per mask pixel median {n['median']:.1f} max {n['max']:.1f}"
                )
        print("  (a confident mask has its inside logits far above 0 and few pixels near the threshold")
        print("   but at its edges; where many sit near it, speed modes' small numeric changes move it)")
    if flops and peak:
        print()
        print("achieved GFLOP/s of the heavy stages (FLOPs per object-frame at the steady state counted")
        print(f"by torch's FlopCounterMode: {flops['memories']} memories, {flops['pointers']} pointers)")
        for r in sorted(runs, key=lambda r: (r["objects"], r["impl"])):
            if r["impl"] not in ("official", "sam2track"):
                continue  # the exact fp32 runs only
            kind = "official" if r["impl"] == "official" else "ours"
            n = r["objects"]
            enc = flops[kind]["image_encoder"] / (r["stages_ms"]["image_encoder"] / 1e3) / 1e9
            att_flops = flops[kind]["memory_attention"] * n
            att = att_flops / (r["stages_ms"]["memory_attention"] / 1e3) / 1e9
            eff = flops["official"]["memory_attention"] * n / (r["stages_ms"]["memory_attention"] / 1e3) / 1e9
            enc_eff = flops["official"]["image_encoder"] / (r["stages_ms"]["image_encoder"] / 1e3) / 1e9
            enc_s = f"encoder {enc:5.0f} GFLOP/s ({enc / peak:4.0%} of peak; {flops[kind]['image_encoder'] / 1e9:.0f} GFLOP"
            if kind == "ours":
                enc_s += f", {enc_eff:4.0f} official-FLOP/s = {enc_eff / peak:4.0%}"
            print(
                f"  {r['impl']:<20} {n} obj: {enc_s}), "
                f"memory attention {att:5.0f} GFLOP/s ({att / peak:4.0%}; {flops[kind]['memory_attention'] / 1e9:.0f} GFLOP/object)"
                + (f", {eff:5.0f} official-FLOP/s = {eff / peak:4.0%}" if kind == "ours" else "")
            )
    if flops and paired:
        print()
        print("the heavy stages against the matmul measured next to them (--paired: each steady-state")
        print("frame between two matmul measurements; median [min-max] over the frames)")
        for r in sorted(paired, key=lambda r: r["objects"]):
            n = r["objects"]
            cols = []
            for stage, per_obj in (("image_encoder", 1), ("memory_attention", n)):
                ours = [flops["ours"][stage] * per_obj / (p["stages_ms"][stage] / 1e3) / 1e9 / p["matmul_gflops"] for p in r["pairs"]]
                off = [flops["official"][stage] * per_obj / (p["stages_ms"][stage] / 1e3) / 1e9 / p["matmul_gflops"] for p in r["pairs"]]
                cols.append(f"{stage.replace('_', ' ')} {_med(ours):.0%} [{min(ours):.0%}-{max(ours):.0%}] of the matmul ({_med(off):.0%} in official FLOPs)")
            mm = [p["matmul_gflops"] for p in r["pairs"]]
            print(f"  sam2track {n} obj, matmul {min(mm):.0f}-{max(mm):.0f} GFLOP/s: " + "; ".join(cols))
    if paired and not flops:
        print()
        print("(--paired results present but no FLOP counts: run with the official predictor, BENCH_OFFICIAL=1)")
    for e in element:
        print()
        print(
            f"element (output={e['output']}) at {e['input']}: {e['element_ms_per_frame']:.0f} ms/frame from its "
            f"sink pad to its source pad, engine alone on the same frames {e['engine_ms_per_frame']:.0f} ms/frame: "
            f"overhead {e['overhead']:+.1%} (frames {e['frames'] - e['steady_frames']}..{e['frames'] - 1}, "
            f"best of {e['passes']} alternating passes; per pass element "
            + "/".join(f"{v:.0f}" for v in e["element_ms_per_pass"])
            + ", engine "
            + "/".join(f"{v:.0f}" for v in e["engine_ms_per_pass"])
            + ")"
        )
        if "own_overhead" in e:
            print(
                f"  within the element passes, frame by frame: engine {e['engine_in_element_ms_per_frame']:.0f} ms, "
                f"the element's own work {e['element_own_ms_per_frame']:.1f} ms = {e['own_overhead']:+.1%} over the engine"
            )
        if "host_ms" in e:
            print(
                "  the element's own work at that size, best of 5: "
                + ", ".join(f"{k} {v:.1f} ms" for k, v in e["host_ms"].items())
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
