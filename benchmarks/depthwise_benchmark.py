"""Depthwise convolution kernels (backends/c/kernels/depthwise.c) on W1's depthwise layers
(MobileNetV2-w0.35, 3×128×128, batch 8), one thread: GFLOP/s of forward, dx and dw next to
PyTorch's conv2d(groups=C) and its convolution_backward, interleaved in one run.

    .venv/bin/python benchmarks/depthwise_benchmark.py [--kernels DIR] [--reps 20]

--kernels builds another copy of the kernel library (e.g. an older depthwise.c) for a
before/after table; the C is compiled with the host target's flags."""

import argparse
import ctypes
import os
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
import torch.nn.functional as F
from pockengine.backends.c.library import KERNEL_DIR
from pockengine.backends.c.library import CKernelLibrary
from pockengine.backends import get_target

# (C, H, W, stride, layers) of W1's depthwise 3×3 convolutions, padding 1
SHAPES = [(16, 64, 64, 1, 1), (48, 64, 64, 2, 1), (48, 32, 32, 1, 1), (48, 32, 32, 2, 1), (96, 16, 16, 1, 2),
          (96, 16, 16, 2, 1), (144, 8, 8, 1, 4), (192, 8, 8, 1, 2), (192, 8, 8, 2, 1), (336, 4, 4, 1, 3)]
BATCH = 8

SOURCE = r"""
#define _POSIX_C_SOURCE 199309L
#include <time.h>
#include "pock.h"
#include "gemm.c"
#include "im2col.c"
#include "depthwise.c"
/* seconds per call, the best of `trials` runs of `reps` calls */
double bench(int kind, long reps, long trials, const long *g, float *x, float *w, float *y, float *work) {
    double best = 1e30;
    for (long t = 0; t < trials; t++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long r = 0; r < reps; r++) {
            if (kind == 0) pk_depthwise_forward(g, x, w, y, work);
            else if (kind == 1) pk_depthwise_backward_input(g, y, w, x, work);
            else pk_depthwise_backward_weight(g, x, y, w, 1.0f, 0.0f, work);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = ((b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec)) / reps;
        best = s < best ? s : best;
    }
    return best;
}
"""


def build(kernel_dir: Path, out: Path) -> ctypes.CDLL:
    src = out / "bench.c"
    src.write_text(SOURCE)
    target = get_target("c")
    subprocess.run([target.cc, "-std=c99", *target.cflags, "-shared", "-fPIC", "-I", str(kernel_dir), "-o",
                    str(out / "bench.so"), str(src), "-lm"], check=True)
    lib = ctypes.CDLL(str(out / "bench.so"))
    lib.bench.restype = ctypes.c_double
    lib.bench.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_long] + [ctypes.c_void_p] * 5
    return lib


def ptr(arr):
    return arr.ctypes.data_as(ctypes.c_void_p)


def torch_time(fn, reps, trials):
    best = 1e30
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", type=Path, help="another kernel directory, compared in the same run")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--trials", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    libs = {"ours": build(KERNEL_DIR, tmp)}
    if a.kernels:
        (tmp / "other").mkdir()
        libs["other"] = build(a.kernels, tmp / "other")
    names = ["fwd", "dx", "dw"]
    print(f"W1 depthwise 3×3 pad 1, batch {BATCH}, one thread: GFLOP/s (torch = conv2d(groups=C) and its backward)")
    print(f"{'C×H×W':>12} {'s':>2} {'×':>2} " + " ".join(f"{k + ' ' + n:>10}" for n in names
                                                       for k in [*libs, "torch"]))
    total = {k: [0.0] * 3 for k in [*libs, "torch"]}
    for c, h, w, s, count in SHAPES:
        ho, wo = (h + 2 - 3) // s + 1, (w + 2 - 3) // s + 1
        props = SimpleNamespace(groups=c, stride=(s, s), padding=(1, 1, 1, 1), dilation=(1, 1))
        xs, ws, ys = (BATCH, c, h, w), (c, 1, 3, 3), (BATCH, c, ho, wo)
        geom, work = CKernelLibrary().conv_plan("forward", xs, ws, props, ys)
        work = max(work, *(CKernelLibrary().conv_plan(k, xs, ws, props, ys)[1] for k in ("input", "weight")))
        g = np.array(geom, np.int64)
        rng = np.random.default_rng(0)
        x, wt, y = (rng.standard_normal(sh).astype(np.float32) for sh in (xs, ws, ys))
        ws_buf = np.zeros(work + 16, np.float32)
        flops = 2 * BATCH * c * ho * wo * 9
        row = {}
        for k, lib in libs.items():
            row[k] = [flops / lib.bench(kind, a.reps, a.trials, ptr(g), ptr(x), ptr(wt), ptr(y), ptr(ws_buf)) / 1e9
                      for kind in range(3)]
        tx, tw, ty = (torch.from_numpy(v) for v in (x, wt, y))
        backward = partial(torch.ops.aten.convolution_backward, ty, tx, tw, None, [s, s], [1, 1], [1, 1], False,
                           [0, 0], c)
        fns = [partial(F.conv2d, tx, tw, stride=s, padding=1, groups=c), partial(backward, [True, False, False]),
               partial(backward, [False, True, False])]
        row["torch"] = [flops / torch_time(f, a.reps, a.trials) / 1e9 for f in fns]
        for k, v in row.items():
            for i in range(3):
                total[k][i] += count * flops / v[i] / 1e9  # seconds per W1 step
        print(f"{f'{c}×{h}×{w}':>12} {s:>2} {count:>2} " + " ".join(f"{row[k][i]:10.1f}" for i in range(3)
                                                                   for k in row))
    print("ms per W1 step over these layers (fwd, dx, dw): " + "; ".join(
        f"{k} {' '.join(f'{1e3 * t:.2f}' for t in v)}" for k, v in total.items()))


if __name__ == "__main__":
    main()
