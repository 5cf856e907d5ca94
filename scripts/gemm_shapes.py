#!/usr/bin/env python3
# SPDX-License-Identifier: MPL-2.0
"""fp32 GEMM libraries on the products SAM 2.1-tiny at 1024 runs (issue 16, item 2).

  .venv-models/bin/python scripts/gemm_shapes.py                # every backend found
  .venv-models/bin/python -m pip install mkl                    # optional: Intel MKL
  .venv-models/bin/python scripts/gemm_shapes.py --threads 2 --rounds 5 --only memory

A 4096^3 matmul says which library is fastest on a CPU only for that shape: on the Intel
Xeon of run S16 (README) MKL ran it 1.6x as fast as ONNX Runtime's MLAS, yet on the
memory attention's own products MLAS was the faster. This prints GFLOP/s per backend on
the shapes of the exported graphs, in interleaved rounds (each backend once per round,
the median over rounds: this VM drifts), and each backend's ratio to ONNX Runtime's:

- ort:   ONNX Runtime's CPU provider (MLAS), a one-node MatMul graph, I/O bound once;
- mkl:   cblas_sgemm of Intel MKL (libmkl_rt from the PyPI wheel `mkl`, if installed, or
         --mkl PATH); MKL_THREADING_LAYER=GNU unless set;
- numpy: numpy.matmul (numpy's bundled OpenBLAS);
- torch: torch.matmul (PyTorch's CPU BLAS: MKL on x86 builds), as the official predictor.

Shapes are M x N x K (C[M,N] = A[M,K] B[K,N]; "t": B given as [N,K], the attention scores'
q k^T). Needs numpy, onnx and onnxruntime (the export venv has them).
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from files import cpu_fields, cpu_info  # noqa: E402

# (group, name, M, N, K, B transposed): the products of the graphs at 1024 (4096 tokens of
# 256 channels at stride 16), as models/sam2_graphs.py writes them.
SHAPES = [
    ("square", "4096^3 (the benchmark's matmul figure)", 4096, 4096, 4096, False),
    ("memory", "cross-attention scores, 512 queries x 7 memories (+bias column)", 512, 28736, 257, True),
    ("memory", "cross-attention values (Cm = 64, projected after)", 512, 64, 28736, False),
    ("memory", "self-attention scores, 512 queries", 512, 4096, 256, True),
    ("memory", "self-attention values", 512, 256, 4096, False),
    ("memory", "MLP up 256 -> 2048", 4096, 2048, 256, False),
    ("memory", "MLP down 2048 -> 256", 4096, 256, 2048, False),
    ("memory", "projection 256 -> 256", 4096, 256, 256, False),
    ("encoder", "stage 1 qkv 96 -> 288 (a band of 16,384 tokens)", 16384, 288, 96, False),
    ("encoder", "stage 2 MLP up 192 -> 768", 16384, 768, 192, False),
    ("encoder", "stage 3 qkv 384 -> 1152", 4096, 1152, 384, False),
    ("encoder", "stage 3 MLP up 384 -> 1536", 4096, 1536, 384, False),
    ("encoder", "stage 3 MLP down 1536 -> 384", 4096, 384, 1536, False),
]


def cpu_line() -> str:
    """The CPU as bench.sh's RESULT lines record it (models/files.py), with its family and model."""
    fields, _ = cpu_fields()
    c = cpu_info()
    if not fields:
        return "CPU: unknown (no /proc/cpuinfo)"
    return (
        f"CPU: {c['model'] or '?'} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')}; "
        f"{c['logical_cpus']} logical CPUs; flags: {' '.join(c['flags'])})"
    )


def ort_backend(threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def make(a, b, c, transb):
        m_, k = a.shape
        n = c.shape[1]
        nodes = [helper.make_node("MatMul", ["A", "Bt" if transb else "B"], ["C"])]
        if transb:
            nodes.insert(0, helper.make_node("Transpose", ["B"], ["Bt"], perm=[1, 0]))
        graph = helper.make_graph(
            nodes,
            "gemm",
            [
                helper.make_tensor_value_info("A", TensorProto.FLOAT, [m_, k]),
                helper.make_tensor_value_info("B", TensorProto.FLOAT, list(b.shape)),
            ],
            [helper.make_tensor_value_info("C", TensorProto.FLOAT, [m_, n])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        io = sess.io_binding()
        io.bind_cpu_input("A", a)
        io.bind_cpu_input("B", b)
        # into c, as the other backends write (no allocation per call)
        io.bind_output("C", "cpu", 0, np.float32, list(c.shape), c.ctypes.data)
        return lambda: sess.run_with_iobinding(io)

    return f"onnxruntime {ort.__version__}", make


def find_mkl(path: str | None) -> str | None:
    if path:
        return path
    for pattern in ("libmkl_rt.so.*", "libmkl_rt.so"):
        hits = sorted(glob.glob(os.path.join(sys.prefix, "lib", pattern)))
        if hits:
            return hits[-1]
    return None


def mkl_backend(path: str, threads: int):
    os.environ.setdefault("MKL_THREADING_LAYER", "GNU")
    lib = ctypes.CDLL(path)
    lib.MKL_Set_Num_Threads(ctypes.c_int(threads))
    ptr = ctypes.c_void_p
    row_major, no_trans, trans = 101, 111, 112

    def make(a, b, c, transb):
        m_, k = a.shape
        n = c.shape[1]
        ldb = b.shape[1]
        args = (
            row_major, no_trans, trans if transb else no_trans, m_, n, k, ctypes.c_float(1.0),
            a.ctypes.data_as(ptr), k, b.ctypes.data_as(ptr), ldb, ctypes.c_float(0.0), c.ctypes.data_as(ptr), n,
        )
        return lambda: lib.cblas_sgemm(*args)

    return f"MKL ({os.path.basename(path)})", make


def numpy_backend():
    def make(a, b, c, transb):
        bb = b.T if transb else b
        return lambda: np.matmul(a, bb, out=c)

    return f"numpy {np.__version__}", make


def torch_backend(threads: int):
    import torch

    torch.set_num_threads(threads)

    def make(a, b, c, transb):
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        tb = tb.t() if transb else tb
        return lambda: torch.matmul(ta, tb, out=tc)

    return f"torch {torch.__version__}", make


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    ap.add_argument("--repeat", type=int, default=3, help="products per backend per round")
    ap.add_argument("--only", choices=("square", "memory", "encoder"), help="one group of shapes")
    ap.add_argument("--mkl", help="path to libmkl_rt (default: the `mkl` wheel's, if installed)")
    ap.add_argument("--backends", default="ort,mkl,numpy,torch")
    args = ap.parse_args(argv)
    want = args.backends.split(",")

    backends = {}
    if "ort" in want:
        backends["ort"] = ort_backend(args.threads)
    if "mkl" in want:
        path = find_mkl(args.mkl)
        if path:
            backends["mkl"] = mkl_backend(path, args.threads)
        else:
            print("mkl: not found (pip install mkl into this venv, or --mkl PATH): skipped")
    if "numpy" in want:
        backends["numpy"] = numpy_backend()
    if "torch" in want:
        try:
            backends["torch"] = torch_backend(args.threads)
        except ImportError:
            print("torch: not importable here: skipped")
    if "ort" not in backends:
        raise SystemExit("the ratios are against ONNX Runtime: keep ort in --backends")

    print(cpu_line())
    print(f"{args.threads} threads, {args.rounds} interleaved rounds x {args.repeat} products; "
          + ", ".join(f"{k}: {v[0]}" for k, v in backends.items()))
    print(f"{'shape (M x N x K)':<22} " + " ".join(f"{k:>13}" for k in backends) + "   GFLOP/s (x ort)")
    rng = np.random.default_rng(0)
    for group, name, m_, n, k, transb in SHAPES:
        if args.only and group != args.only:
            continue
        a = rng.standard_normal((m_, k), dtype=np.float32)
        b = rng.standard_normal((n, k) if transb else (k, n), dtype=np.float32)
        runs = {}
        for key, (_, make) in backends.items():
            c = np.empty((m_, n), np.float32)
            runs[key] = (make(a, b, c, transb), c)
            runs[key][0]()  # warm-up: packing buffers, thread pools
        ref = runs["ort"][1].copy()
        for key, (_, c) in runs.items():
            err = float(np.abs(c - ref).max() / max(1.0, float(np.abs(ref).max())))
            if err > 1e-3:
                raise SystemExit(f"{key} disagrees with onnxruntime on {m_}x{n}x{k}: relative error {err:.2e}")
        flops = 2.0 * m_ * n * k * args.repeat
        rates = {key: [] for key in runs}
        for _ in range(args.rounds):
            for key, (fn, _) in runs.items():
                t = time.perf_counter()
                for _ in range(args.repeat):
                    fn()
                rates[key].append(flops / (time.perf_counter() - t) / 1e9)
        med = {key: float(np.median(v)) for key, v in rates.items()}
        cells = " ".join(
            f"{med[key]:6.0f}" + (f" ({med[key] / med['ort']:.2f})" if key != "ort" else "       ") for key in runs
        )
        shape = f"{m_}x{n}x{k}{'t' if transb else ''}"
        print(f"{shape:<22} {cells}   {group}: {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
