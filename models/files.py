# SPDX-License-Identifier: MPL-2.0
"""File helpers shared by the model tools (no torch import: quantize.py runs
without it)."""

from __future__ import annotations

import hashlib

# The CPU flags that decide which kernels ONNX Runtime and PyTorch can use (as
# examples/bench.rs records them).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_fields() -> tuple[dict, int]:
    """/proc/cpuinfo's fields as the first processor lists them, and the number of logical
    CPUs ({} and 0 where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        text = ""
    fields = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        fields.setdefault(k.strip(), v.strip())
    logical = sum(1 for line in text.splitlines() if line.startswith("processor"))
    return fields, logical


def cpu_info() -> dict:
    """This machine's CPU as every RESULT line records it."""
    fields, logical = cpu_fields()
    flags = fields.get("flags", "").split()
    return {"model": fields.get("model name", ""), "logical_cpus": logical, "flags": [f for f in CPU_FLAGS if f in flags]}


def sha256(path: str) -> str:
    """Hex SHA-256 of the file at `path`, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def int8_saturation_note(bits: int) -> str | None:
    """Why `bits`-bit int8 products are wrong on this machine, or None. ONNX Runtime's
    uint8 x int8 kernels on an x86 CPU without VNNI (no avx512_vnni / avx_vnni flag) add
    pairs of products in int16 and saturate with the full 8-bit range; the 7-bit range
    never does (engine::cpu in the plugin says the same at run time)."""
    if bits <= 7:
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None or ("avx512_vnni" in flags or "avx_vnni" in flags):
        return None
    return (
        "this CPU has no VNNI (avx512_vnni / avx_vnni): ONNX Runtime's uint8 x int8 products "
        "saturate here with the full 8-bit range, so the int8 results on this machine are "
        "wrong; use the 7-bit range (--int8-bits 7, the default), exact on every CPU"
    )
