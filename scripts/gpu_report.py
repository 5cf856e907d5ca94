#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""The markdown table of scripts/gpu-check.sh from its results folder.

  python3 scripts/gpu_report.py RESULTS_DIR > gpu-check.md

RESULTS_DIR holds what gpu-check.sh collected:
  facts.tsv             "key<TAB>value" lines: machine facts, in order ("title" is the heading)
  notes.txt             one line per part that was skipped, missing or failed
  parity-*.txt          `RESULT {...}` lines of examples/gpu_check.rs parity
  ours-*.txt            `RESULT {...}` lines of examples/gpu_check.rs bench, plus the
                        `GPUMEM {...}` line of scripts/gpu_mem.py
  official-*.txt        `RESULT {...}` lines of models/bench_official.py, plus GPUMEM
  element.json          the element in a pipeline, when it ran
Only figures found in these files are printed; a part without figures says why
(notes.txt) or "no result".
"""

from __future__ import annotations

import glob
import json
import os
import sys


def lines(path: str, prefix: str) -> list[dict]:
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(prefix + " "):
                try:
                    out.append(json.loads(line[len(prefix) + 1 :]))
                except json.JSONDecodeError:
                    pass
    return out


def fmt(v, digits=1, unit="") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v}{unit}"


def sci(v) -> str:
    return "n/a" if v is None else f"{v:.2e}"


WHY_NO_MEMORY: set[str] = set()


def gpu_mem(m: dict | None) -> str:
    if not m:
        return "n/a"
    if m.get("source") is None:
        WHY_NO_MEMORY.add(m.get("why", "no GPU"))
        return "n/a"
    s = f"{m['peak_over_baseline_mib']:,.0f} MiB"
    if m.get("peak_process_mib"):
        s += f" (process: {m['peak_process_mib']:,.0f})"
    return s


def main() -> int:
    d = sys.argv[1]
    out = []
    facts = {}
    if os.path.exists(os.path.join(d, "facts.tsv")):
        with open(os.path.join(d, "facts.tsv"), errors="replace") as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("\t")
                if key:
                    facts[key] = value.replace("|", "/")
    title = facts.pop("title", "GPU check")
    out.append(f"## {title}\n")
    if facts:
        out.append("| | |\n| --- | --- |")
        for k, v in facts.items():
            out.append(f"| {k} | {v} |")
        out.append("")

    # golden parity
    parity = []
    for path in sorted(glob.glob(os.path.join(d, "parity-*.txt")), key=os.path.getmtime):  # run order
        parity += lines(path, "RESULT")
    out.append("### Golden parity (micro model, tests/fixtures/golden, against the official predictor)\n")
    if parity:
        out.append(
            "The limits are the fp32 test's (tests/engine_parity.rs); an fp16 model is expected to differ"
            " more (on the CPU the micro model flips one object score: see models/fp16.py).\n"
        )
        out.append(
            "| model | provider | TF32 | pairs | min mask IoU | mean IoU | max abs logit diff | max abs score diff"
            " | score sign flips | fp32 limits (IoU >= 0.99, logits <= 1e-3) |"
        )
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in parity:
            tf32 = ("on" if r["tf32"] else "off") if r["provider"] != "cpu" else "-"
            out.append(
                f"| {r['label']} | {r['provider']} | {tf32} | {r['pairs']} | {r['min_iou']:.5f} | {r['mean_iou']:.5f}"
                f" | {sci(r['max_logit_diff'])} | {sci(r['max_score_diff'])} | {r['score_sign_mismatches']}"
                f" | {'within' if r['within_fp32_limits'] else 'outside'} |"
            )
    else:
        out.append("no parity result")
    out.append("")

    # speed
    rows = []
    for path in sorted(glob.glob(os.path.join(d, "ours-*.txt"))):
        mem = (lines(path, "GPUMEM") or [None])[-1]
        for r in lines(path, "RESULT"):
            if r.get("kind") == "bench":
                rows.append(("sam2track " + r["label"], r, mem, gpu_mem(mem)))
    for path in sorted(glob.glob(os.path.join(d, "official-*.txt"))):
        mem = (lines(path, "GPUMEM") or [None])[-1]
        for r in lines(path, "RESULT"):
            if r.get("impl") == "official" and "objects" in r:
                label = f"official SAM2VideoPredictor, {r.get('device', 'cpu')}, autocast {r.get('autocast', 'none')}"
                torch_mem = r.get("cuda_max_memory_allocated_mib")
                extra = gpu_mem(mem)
                if torch_mem is not None:
                    extra += (
                        f"; max_memory_allocated {torch_mem:,.0f} MiB,"
                        f" reserved {r['cuda_max_memory_reserved_mib']:,.0f} MiB"
                    )
                rows.append((label, r, mem, extra))
    out.append("### Speed (SAM 2.1 hiera-tiny, seeded random weights, same frames, same run)\n")
    if rows:
        size = {r.get("image_size") for _, r, _, _ in rows}
        frames = {(r.get("frames"), r.get("steady_frames")) for _, r, _, _ in rows}
        out.append(
            f"Input {'/'.join(str(s) for s in sorted(size, key=str))}; frames (all, steady state): "
            + ", ".join(f"{a}/{b}" for a, b in sorted(frames, key=str))
            + ". ms/frame: mean over the steady-state frames (memory bank full); FPS = 1000 / that."
            " GPU memory: device-wide used memory at its peak while the process ran, less what was"
            " used before it started (NVML, scripts/gpu_mem.py: CUDA context, workspaces and"
            " allocator caches included).\n"
        )
        official = {r["objects"]: r["ms_per_frame"] for lbl, r, _, _ in rows if lbl.startswith("official")}
        out.append(
            "| implementation | objects | ms/frame | FPS | official ms / this | median ms | first frame ms | peak GPU memory |"
        )
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for label, r, _, mem in sorted(rows, key=lambda t: (t[1]["objects"], t[0])):
            median = r.get("ms_median")
            # the official predictor's frame 0 came out of the clicks, before the timing
            first = "-" if label.startswith("official") else fmt(r.get("first_frame_ms"), 0)
            ratio = official.get(r["objects"])
            ratio = "" if ratio is None or label.startswith("official") else f"{ratio / r['ms_per_frame']:.2f}x"
            out.append(
                f"| {label} | {r['objects']} | {fmt(r['ms_per_frame'], 2)} | {fmt(1e3 / r['ms_per_frame'], 1)}"
                f" | {ratio} | {fmt(median, 2)} | {first} | {mem} |"
            )
        ours = [(lbl, r) for lbl, r, _, _ in rows if lbl.startswith("sam2track")]
        if ours:
            out.append("")
            out.append("sam2track per stage (ms/frame, steady state):\n")
            out.append("| implementation | objects | image encoder | memory attention | mask decoder | memory encoder | other |")
            out.append("| --- | --- | --- | --- | --- | --- | --- |")
            for lbl, r in sorted(ours, key=lambda t: (t[1]["objects"], t[0])):
                s = r["stages_ms"]
                out.append(
                    f"| {lbl} | {r['objects']} | {s['image_encoder']:.2f} | {s['memory_attention']:.2f}"
                    f" | {s['mask_decoder']:.2f} | {s['memory_encoder']:.2f} | {s['other']:.2f} |"
                )
    else:
        out.append("no speed result")
    out.append("")

    element = os.path.join(d, "element.json")
    out.append("### The element in a pipeline\n")
    if os.path.exists(element):
        with open(element) as f:
            e = json.load(f)
        out.append(
            f"`{e['pipeline']}`: {e['ms_per_frame']:.2f} ms/frame ({1e3 / e['ms_per_frame']:.1f} FPS),"
            f" from the wall time of {e['frames'][1]} against {e['frames'][0]} buffers"
            f" ({e['seconds'][1]:.2f} s, {e['seconds'][0]:.2f} s)."
        )
    else:
        out.append("no element result (see the notes)")
    out.append("")

    # arithmetic ONNX Runtime put on the CPU in a GPU run (engine::session::Placement)
    placed = {}
    for path in sorted(glob.glob(os.path.join(d, "*.txt"))):
        for r in lines(path, "RESULT"):
            for graph, ops in (r.get("compute_on_cpu") or {}).items():
                placed.setdefault((r.get("label", "?"), graph), ops)
    out.append("### Node placement\n")
    if placed:
        for (label, graph), ops in sorted(placed.items()):
            out.append(f"- {label}: {graph} runs on the CPU: " + ", ".join(f"{op} x{n}" for op, n in ops))
    else:
        out.append("No arithmetic node of any graph was placed on the CPU (ONNX Runtime's placement report).")
    out.append("")

    notes = os.path.join(d, "notes.txt")
    text = [f"peak GPU memory n/a: {why}" for why in sorted(WHY_NO_MEMORY)]
    if os.path.exists(notes):
        with open(notes) as f:
            text += [n.rstrip() for n in f if n.strip()]
    if text:
        out.append("### Notes: skipped, missing, failed\n")
        out += [f"- {n}" for n in text]
        out.append("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
