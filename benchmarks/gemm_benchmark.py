"""GEMM microbenchmark: pk_gemm (backends/c/kernels/gemm.c) against torch.matmul, one thread,
on the contractions of the W3 (BERT-mini) and W4 (Llama-tiny) training steps, with the
operand layouts the compiled steps pass (a transposed operand is only swapped strides).

    python benchmarks/gemm_benchmark.py                  # every shape, prints the table
    python benchmarks/gemm_benchmark.py --only lm_head --rounds 9
    python benchmarks/gemm_benchmark.py --kernels /tmp/old_kernels   # another gemm.c

Ours and torch run interleaved round by round (the machine's clock drifts); each cell is the
median over rounds of the best of `--reps` calls, timed in this thread's CPU time so that a
core shared with other processes does not count their slices. Layout letters: A/B as stored row-major,
At/Bt read through swapped strides; `+=` accumulates (beta ≠ 0, the fused SGD update).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

KERNELS = Path(__file__).resolve().parent.parent / "backends" / "c" / "kernels"

# name, batch, M, N, K, A transposed, B transposed, beta. Shapes and layouts as the W3/W4
# steps call them (benchmarks/workloads.py; dump the step's C to see the calls).
SHAPES = [
    ("W4 lm_head fwd x·Wt", 1, 512, 8000, 256, 0, 1, 0.0),
    ("W4 lm_head dX dY·W", 1, 512, 256, 8000, 0, 0, 0.0),
    ("W4 lm_head dW+= dYt·X", 1, 8000, 256, 512, 1, 0, 0.9),
    ("W4 lm_head chunk x·Wt", 1, 32, 512, 256, 0, 1, 0.0),
    ("W4 lm_head chunk dX", 1, 32, 256, 8000, 0, 0, 0.0),
    ("W4 lm_head chunk dW+=", 1, 8000, 256, 32, 1, 0, 1.0),
    ("W4 mlp up x·Wt", 1, 512, 688, 256, 0, 1, 0.0),
    ("W4 mlp down x·Wt", 1, 512, 256, 688, 0, 1, 0.0),
    ("W4 mlp dX dY·W", 1, 512, 256, 688, 0, 0, 0.0),
    ("W4 mlp dW+= dYt·X", 1, 688, 256, 512, 1, 0, 0.9),
    ("W4 attn proj x·Wt", 1, 512, 256, 256, 0, 1, 0.0),
    ("W4 attn QKt", 16, 128, 128, 64, 0, 0, 0.0),
    ("W4 attn PV", 16, 128, 64, 128, 0, 0, 0.0),
    ("W3 proj x·Wt", 1, 1024, 256, 256, 0, 1, 0.0),
    ("W3 ffn up x·Wt", 1, 1024, 1024, 256, 0, 1, 0.0),
    ("W3 ffn down x·Wt", 1, 1024, 256, 1024, 0, 1, 0.0),
    ("W3 ffn dX dY·W", 1, 1024, 256, 1024, 0, 0, 0.0),
    ("W3 ffn dW+= dYt·X", 1, 1024, 256, 1024, 1, 0, 0.9),
    ("W3 attn QKt", 32, 128, 128, 64, 0, 0, 0.0),
    ("W3 attn PV", 32, 128, 64, 128, 0, 0, 0.0),
    ("W3 attn dP dO·Vt", 32, 128, 128, 64, 0, 1, 0.0),
    ("W3 attn dV Pt·dO", 32, 128, 64, 128, 1, 0, 0.0),
    ("W3 attn dQ dS·Kt", 32, 128, 64, 128, 0, 1, 0.0),
    ("W3 attn dK dSt·Q", 32, 64, 128, 128, 1, 0, 0.0),
    ("sgemm 1024^3", 1, 1024, 1024, 1024, 0, 0, 0.0),
]

WRAPPER = r"""
#include "pock.h"
#include "gemm.c"
#include "matmul.c"
long b_workspace(long M, long N, long K) { return pk_gemm_workspace(M, N, K); }
void b_gemm(long M, long N, long K, const float *a, long rsa, long csa, const float *b, long rsb, long csb,
            float *c, long rsc, long csc, float alpha, float beta, float *work) {
    pk_gemm_ab(M, N, K, a, rsa, csa, b, rsb, csb, c, rsc, csc, alpha, beta, work);
}
void b_matmul(long nb, long M, long N, long K, const float *a, long sa, long rsa, long csa,
              const float *b, long sb, long rsb, long csb, float *c, float *work) {
    long bs[1] = {nb}, as_[1] = {sa}, bs_[1] = {sb}, cs_[1] = {M * N};
    pk_matmul(1, bs, as_, bs_, cs_, M, N, K, a, rsa, csa, b, rsb, csb, c, work);
}
"""


def build(kernels: Path, flags: list[str]) -> ctypes.CDLL:
    d = Path(tempfile.mkdtemp(prefix="gemm-bench-"))
    (d / "w.c").write_text(WRAPPER)
    lib = d / "w.so"
    subprocess.run(["cc", "-std=c99", *flags, "-I", str(kernels), "-fPIC", "-shared", "-o", str(lib),
                    str(d / "w.c"), "-lm"], check=True)
    cdll = ctypes.CDLL(str(lib))
    cdll.b_workspace.restype = ctypes.c_long
    L, P, F = ctypes.c_long, ctypes.c_void_p, ctypes.c_float
    cdll.b_workspace.argtypes = [L, L, L]
    cdll.b_gemm.argtypes = [L, L, L, P, L, L, P, L, L, P, L, L, F, F, P]
    cdll.b_matmul.argtypes = [L, L, L, L, P, L, L, L, P, L, L, L, P, P]
    return cdll


def operands(nb, m, n, k, at, bt, rng):
    """Stored arrays and the (batch, row, column) strides in elements that read them as A, B."""
    a = rng.standard_normal((nb, k, m) if at else (nb, m, k), dtype=np.float32)
    b = rng.standard_normal((nb, n, k) if bt else (nb, k, n), dtype=np.float32)
    sa = (m * k, 1, m) if at else (m * k, k, 1)
    sb = (k * n, 1, k) if bt else (k * n, n, 1)
    return a, b, sa, sb


def runner_ours(lib, nb, m, n, k, at, bt, beta, rng):
    a, b, sa, sb = operands(nb, m, n, k, at, bt, rng)
    c = np.zeros((nb, m, n), np.float32)
    work = np.empty(lib.b_workspace(m, n, k), np.float32)
    ptr = lambda x: x.ctypes.data
    if nb == 1:
        return lambda: lib.b_gemm(m, n, k, ptr(a), sa[1], sa[2], ptr(b), sb[1], sb[2], ptr(c), n, 1, 1.0, beta,
                                  ptr(work)), (a, b, sa, sb, c)
    return lambda: lib.b_matmul(nb, m, n, k, ptr(a), sa[0], sa[1], sa[2], ptr(b), sb[0], sb[1], sb[2], ptr(c),
                                ptr(work)), (a, b, sa, sb, c)


def runner_torch(nb, m, n, k, at, bt, beta, rng):
    a, b, _, _ = operands(nb, m, n, k, at, bt, rng)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ta, tb = (ta.transpose(1, 2) if at else ta), (tb.transpose(1, 2) if bt else tb)
    if nb == 1:
        ta, tb = ta[0], tb[0]
        c = torch.zeros(m, n)
        if beta:
            return lambda: c.addmm_(ta, tb, beta=beta)
        return lambda: torch.mm(ta, tb, out=c)
    c = torch.zeros(nb, m, n)
    return lambda: torch.bmm(ta, tb, out=c)


def check(lib, nb, m, n, k, at, bt, beta, rng) -> float:
    """Largest error of ours against float64 numpy, relative to the result's scale."""
    fn, (a, b, _, _, c) = runner_ours(lib, nb, m, n, k, at, bt, beta, rng)
    c[...] = rng.standard_normal(c.shape, dtype=np.float32)
    c0 = c.astype(np.float64)
    fn()
    a64 = np.swapaxes(a, 1, 2) if at else a
    b64 = np.swapaxes(b, 1, 2) if bt else b
    want = a64.astype(np.float64) @ b64.astype(np.float64) + (beta * c0 if nb == 1 else 0.0)
    return float(np.abs(c - want).max() / (np.abs(want).max() + 1e-30))


def best_ms(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", type=Path, default=KERNELS, help="folder with pock.h, gemm.c, matmul.c")
    ap.add_argument("--only", default="", help="substring of the shape names to run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from pockengine.backends.c.toolchain import COMMON_FLAGS

    lib = build(args.kernels, [*COMMON_FLAGS, "-march=native"])
    rng = np.random.default_rng(0)
    print(f"{'contraction':24s} {'batch×M×N×K':>20s} {'ours ms':>8s} {'torch ms':>8s} {'ours GF/s':>9s} "
          f"{'torch GF/s':>10s} {'ours/torch':>10s} {'rel err':>8s}")
    total = [0.0, 0.0]
    for name, nb, m, n, k, at, bt, beta in SHAPES:
        if args.only not in name:
            continue
        err = check(lib, nb, m, n, k, at, bt, beta, rng)
        ours, _ = runner_ours(lib, nb, m, n, k, at, bt, beta, rng)
        theirs = runner_torch(nb, m, n, k, at, bt, beta, rng)
        to, tt = [], []
        for _ in range(args.rounds):
            to.append(best_ms(ours, args.reps))
            tt.append(best_ms(theirs, args.reps))
        o, t = statistics.median(to), statistics.median(tt)
        if not name.startswith("sgemm"):
            total[0] += o
            total[1] += t
        gf = 2 * nb * m * n * k / 1e6
        print(f"{name:24s} {f'{nb}×{m}×{n}×{k}':>20s} {o:8.3f} {t:8.3f} {gf / o:9.1f} {gf / t:10.1f} "
              f"{t / o:10.2f} {err:8.1e}")
    print(f"{'sum (W3/W4 shapes)':24s} {'':>20s} {total[0]:8.2f} {total[1]:8.2f} {'':9s} {'':10s} "
          f"{total[1] / max(total[0], 1e-9):10.2f}")


if __name__ == "__main__":
    main()
