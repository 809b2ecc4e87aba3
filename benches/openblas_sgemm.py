#!/usr/bin/env python3
"""numpy/OpenBLAS sgemm on this CPU, the reference `hebb bench gemm` is compared against.

Prints one JSON object per shape: median seconds of `a @ b` in float32 over several runs and
GFLOP/s (2*M*N*K). Usage: benches/openblas_sgemm.py [SIZE ...]   (default 256 512 1024 2048).
"""
import json
import sys
import time

import numpy as np


def bench(m, n, k, trans_a=False, repeats=7):
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    op_a = a.T if trans_a else a
    op_a @ b  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        op_a @ b
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    return {"kernel": "numpy_sgemm", "shape": {"m": m, "n": n, "k": k},
            "median_s": median, "gflops": 2 * m * n * k / median * 1e-9}


if __name__ == "__main__":
    sizes = [int(s) for s in sys.argv[1:]] or [256, 512, 1024, 2048]
    config = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    blas = config.get("Build Dependencies", {}).get("blas", {}).get("name", "?") if isinstance(config, dict) else "?"
    print(json.dumps({"numpy": np.__version__, "blas": blas}))
    for s in sizes:
        print(json.dumps(bench(s, s, s)))
    print(json.dumps(bench(128, 864, 9216, trans_a=True)))
