#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""Run a command and report the GPU memory it took (scripts/gpu-check.sh).

  python3 scripts/gpu_mem.py [--interval-ms 10] [--device 0] -- CMD [ARGS...]

Runs CMD with its output passed through, samples the GPU's memory while it runs and
prints, after it ends, one line

  GPUMEM {"peak_used_mib": ..., "baseline_mib": ..., "peak_over_baseline_mib": ...,
          "peak_process_mib": ..., "source": "nvml", "samples": N}

- peak_over_baseline_mib: device-wide used memory (NVML nvmlDeviceGetMemoryInfo, the
  figure nvidia-smi shows) at its highest while CMD ran, less what was used just before
  it started: everything CMD's process took, CUDA context, libraries' workspaces and
  allocator caches included (and anything else started on the GPU meanwhile: run one
  thing at a time).
- peak_process_mib: the largest per-process figure NVML gave for CMD's process id (or
  a child's), when the driver reports per-process memory (not inside every container);
  null otherwise.

NVML comes from the nvidia-ml-py package (pynvml) when installed, else libnvidia-ml.so.1
through ctypes. Without a GPU or NVML the command still runs, and the line says why there
is no figure ("source": null, "why": ...). Exits with CMD's exit status.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import threading
import time

MIB = 1024 * 1024


class _Nvml:
    """The few NVML calls used here, through pynvml or ctypes."""

    def __init__(self, index: int):
        try:
            import pynvml  # type: ignore

            pynvml.nvmlInit()
            self._py = pynvml
            self._h = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.name = pynvml.nvmlDeviceGetName(self._h)
            if isinstance(self.name, bytes):
                self.name = self.name.decode()
            return
        except ImportError:
            self._py = None
        lib = ctypes.CDLL("libnvidia-ml.so.1")
        if lib.nvmlInit_v2() != 0:
            raise RuntimeError("nvmlInit failed")
        h = ctypes.c_void_p()
        if lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(h)) != 0:
            raise RuntimeError(f"no GPU {index}")
        self._lib, self._h = lib, h
        buf = ctypes.create_string_buffer(96)
        lib.nvmlDeviceGetName(h, buf, 96)
        self.name = buf.value.decode()

    def used(self) -> int:
        if self._py:
            return int(self._py.nvmlDeviceGetMemoryInfo(self._h).used)

        class Memory(ctypes.Structure):
            _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

        m = Memory()
        if self._lib.nvmlDeviceGetMemoryInfo(self._h, ctypes.byref(m)) != 0:
            raise RuntimeError("nvmlDeviceGetMemoryInfo failed")
        return int(m.used)

    def per_process(self) -> dict[int, int]:
        """pid -> used bytes of the compute processes (empty when not reported)."""
        if not self._py:
            return {}
        try:
            procs = self._py.nvmlDeviceGetComputeRunningProcesses(self._h)
        except Exception:  # noqa: BLE001 (not supported in this container / driver)
            return {}
        out = {}
        for p in procs:
            if p.usedGpuMemory is not None:
                out[int(p.pid)] = int(p.usedGpuMemory)
        return out


def _children(pid: int) -> set[int]:
    """pid and its descendants (from /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(kids.get(p, []))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval-ms", type=float, default=10.0)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")

    report: dict = {"source": None, "peak_used_mib": None, "baseline_mib": None,
                    "peak_over_baseline_mib": None, "peak_process_mib": None, "samples": 0}
    try:
        nvml = _Nvml(args.device)
        report["source"] = "nvml"
        report["gpu"] = nvml.name
    except Exception as e:  # noqa: BLE001
        nvml = None
        report["why"] = f"no NVML ({e.__class__.__name__}: {e})"

    proc = subprocess.Popen(cmd) if nvml is None else None
    if nvml is not None:
        baseline = nvml.used()
        peak = [baseline, 0, 0]  # device used, process, samples
        stop = threading.Event()
        proc = subprocess.Popen(cmd)

        def sample() -> None:
            n = 0
            while not stop.is_set():
                peak[0] = max(peak[0], nvml.used())
                if n % 10 == 0:  # per-process figures are slower to read
                    per = nvml.per_process()
                    if per:
                        mine = _children(proc.pid)
                        peak[1] = max(peak[1], sum(v for k, v in per.items() if k in mine))
                n += 1
                peak[2] = n
                time.sleep(args.interval_ms / 1e3)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
    rc = proc.wait()
    if nvml is not None:
        stop.set()
        t.join()
        report.update(
            peak_used_mib=round(peak[0] / MIB, 1),
            baseline_mib=round(baseline / MIB, 1),
            peak_over_baseline_mib=round((peak[0] - baseline) / MIB, 1),
            peak_process_mib=round(peak[1] / MIB, 1) if peak[1] else None,
            samples=peak[2],
            interval_ms=args.interval_ms,
        )
    print("GPUMEM " + json.dumps(report), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
