"""The depthwise kernels (backends/c/kernels/depthwise.c: forward, dx, dw with alpha/beta)
against PyTorch autograd in float64, on every vector path the backends build: AVX2/FMA (host
-march=native), plain C (x86-64 without AVX2) and NEON (arm64 under qemu-aarch64). The
geometries reach the flat path (stride 1 and 2, planes from 1×1 to 64×64, channel counts
that leave vector tails, odd sizes, pad 0/1/2, asymmetric pads, dilation, k = 5, a channel
multiplier) and the general one (stride 3, windows that leave the flat path). Every call gets
the workspace the lowering plans (conv_plan), fenced by a canary; every operand ends at an
inaccessible page (no read or write past it) and outputs start as NaN (every element written)."""

import platform
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pockengine.backends.c.library import CKernelLibrary
from pockengine.backends import get_target
from pockengine.backends.c.toolchain import COMMON_FLAGS
from test_gemm import GUARDED_OPERANDS
from test_gemm import build as build_driver

DRIVER = r"""
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "pock.h"
#include "gemm.c"
#include "im2col.c"
#include "depthwise.c"

/* records: 18 geometry int64, workspace floats, sizes of x, w, dy; alpha, beta (float32);
   x, w, dy, dw (float32). Out per record: canary intact (int64), y, dx, dw. */
""" + GUARDED_OPERANDS + r"""
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    long h[22];
    float ab[2];
    while (fread(h, sizeof(long), 22, in) == 22) {
        if (fread(ab, sizeof(float), 2, in) != 2) return 3;
        long ws = h[18], nx = h[19], nw = h[20], ny = h[21];
        size_t mx, mw, mdy, mdw, my, mdx;
        float *x = get(in, nx, &mx), *w = get(in, nw, &mw), *dy = get(in, ny, &mdy), *dw = get(in, nw, &mdw);
        float *y = get(NULL, ny, &my), *dx = get(NULL, nx, &mdx);
        float *work = malloc((size_t)(ws + 16) * sizeof(float));
        for (long i = 0; i < 16; i++) work[ws + i] = 1234.5f;
        pk_depthwise_forward(h, x, w, y, work);
        pk_depthwise_backward_input(h, dy, w, dx, work);
        pk_depthwise_backward_weight(h, x, dy, dw, ab[0], ab[1], work);
        long intact = 1;
        for (long i = 0; i < 16; i++) intact &= work[ws + i] == 1234.5f;
        fwrite(&intact, sizeof(long), 1, out);
        put(y, ny, my, out); put(dx, nx, mdx, out); put(dw, nw, mdw, out);
        put(x, nx, mx, NULL); put(w, nw, mw, NULL); put(dy, ny, mdy, NULL);
        free(work);
    }
    fclose(out);
    return 0;
}
"""

# (N, C, H, W, multiplier, kernel, stride, padding (top, left, bottom, right), dilation)
CASES = [
    (2, 5, 8, 8, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),     # W1's small planes, odd channel count
    (2, 7, 4, 4, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (3, 3, 4, 4, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),     # 4×4 → 2×2
    (2, 3, 8, 8, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),     # 8×8 → 4×4
    (2, 3, 1, 1, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),     # 1×1 planes
    (2, 3, 1, 1, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (2, 3, 2, 2, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 3, 2, 2, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (2, 3, 7, 7, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),     # 49 outputs: vector tails
    (2, 3, 7, 7, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),     # odd sizes with stride 2
    (1, 2, 9, 13, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 3, 16, 16, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 2, 64, 64, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),   # long streams, the split of wide rows
    (1, 2, 64, 64, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 2, 33, 40, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 2, 5, 6, 1, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1)),     # pad 0 (dx larger than dy)
    (1, 2, 6, 5, 1, (3, 3), (1, 1), (2, 2, 2, 2), (1, 1)),     # pad 2 (dy larger than dx)
    (1, 3, 9, 8, 1, (3, 3), (2, 2), (0, 0, 0, 0), (1, 1)),
    (1, 2, 10, 11, 1, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),   # k = 5
    (1, 2, 11, 10, 1, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
    (1, 2, 9, 9, 1, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),     # dilation
    (1, 2, 12, 9, 1, (3, 3), (2, 2), (2, 2, 2, 2), (2, 2)),
    (2, 3, 7, 9, 1, (3, 3), (1, 1), (1, 0, 0, 1), (1, 1)),     # asymmetric padding
    (2, 3, 8, 9, 1, (3, 3), (2, 2), (0, 1, 1, 0), (1, 1)),
    (2, 3, 6, 7, 2, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),     # a channel multiplier of 2
    (1, 3, 8, 8, 2, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (2, 3, 6, 9, 1, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1)),     # 1×3
    (2, 3, 9, 9, 1, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1)),     # 1×1 stride 2: phases no tap reads
    (1, 3, 10, 10, 1, (3, 3), (3, 3), (1, 1, 1, 1), (1, 1)),   # stride 3: the general path
    (1, 2, 12, 12, 1, (3, 3), (1, 1), (0, 0, 0, 0), (3, 3)),   # shifts beyond a row: general
    (1, 2, 20, 34, 1, (3, 3), (2, 1), (1, 1, 1, 1), (1, 1)),   # unequal strides: general
]


def out_size(n, k, s, lo, hi, d):
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def geometry(case):
    n, c, h, w, m, k, s, p, d = case
    ho, wo = out_size(h, k[0], s[0], p[0], p[2], d[0]), out_size(w, k[1], s[1], p[1], p[3], d[1])
    props = SimpleNamespace(groups=c, stride=s, padding=p, dilation=d)
    plans = [CKernelLibrary().conv_plan(kind, (n, c, h, w), (c * m, 1, *k), props, (n, c * m, ho, wo))
             for kind in ("forward", "input", "weight")]
    assert all(plan[0] == plans[0][0] for plan in plans)
    return plans[0][0], max(plan[1] for plan in plans), (n, c * m, ho, wo)


def reference(case, x, w, dy, dw, alpha, beta):
    c, s, p, d = case[1], case[6], case[7], case[8]
    x, w = (torch.from_numpy(a).double().requires_grad_() for a in (x, w))
    y = F.conv2d(F.pad(x, (p[1], p[3], p[0], p[2])), w, stride=s, dilation=d, groups=c)
    y.backward(torch.from_numpy(dy).double())
    return y.detach().numpy(), x.grad.numpy(), alpha * w.grad.numpy() + beta * dw


def run_cases(binary, tmp_path, runner=()):
    rng = np.random.default_rng(0)
    records, checks = [], []
    for i, case in enumerate(CASES):
        n, c, h, w, m, k = case[:6]
        geom, work, ys = geometry(case)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((c * m, 1, *k)).astype(np.float32)
        dy = rng.standard_normal(ys).astype(np.float32)
        dw = rng.standard_normal(wt.shape).astype(np.float32)
        alpha, beta = ((1.0, 0.0), (-0.5, 0.9))[i % 2]
        records.append(np.array([*geom, work, x.size, wt.size, dy.size], np.int64).tobytes()
                       + np.array([alpha, beta], np.float32).tobytes() + x.tobytes() + wt.tobytes() + dy.tobytes()
                       + dw.tobytes())
        checks.append((case, reference(case, x, wt, dy, dw, alpha, beta)))
    (tmp_path / "in.bin").write_bytes(b"".join(records))
    res = subprocess.run([*runner, str(binary), "in.bin", "out.bin"], cwd=tmp_path, capture_output=True, text=True,
                         check=False, timeout=300)
    assert res.returncode == 0, res.stderr
    raw, at = (tmp_path / "out.bin").read_bytes(), 0
    for case, wants in checks:
        assert np.frombuffer(raw, np.int64, 1, at)[0] == 1, f"workspace overrun: {case}"
        at += 8
        for name, want in zip(("y", "dx", "dw"), wants):
            got = np.frombuffer(raw, np.float32, want.size, at).reshape(want.shape)
            at += 4 * want.size
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=f"{name} {case}")
    assert at == len(raw)


NO_CC = shutil.which("cc") is None
NOT_X86 = platform.machine() not in ("x86_64", "AMD64")


def build(tmp_path, cc, flags, ldflags=()):
    return build_driver(tmp_path, cc, flags, ldflags, DRIVER)


@pytest.mark.skipif(NO_CC, reason="no C compiler")
def test_host_kernels(tmp_path):
    """-march=native: the AVX2/FMA streams, even/odd splits and merges."""
    run_cases(build(tmp_path, "cc", get_target("c").cflags), tmp_path)


@pytest.mark.skipif(NOT_X86 or NO_CC, reason="the plain-C build is the x86-64 baseline")
def test_plain_c_kernels(tmp_path):
    """x86-64 without AVX2: the four-lane plain C vectors."""
    run_cases(build(tmp_path, "cc", [*COMMON_FLAGS, "-march=x86-64"]), tmp_path)


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64") is None,
                    reason="aarch64-linux-gnu-gcc and qemu-aarch64 not installed")
def test_neon_kernels_under_qemu(tmp_path):
    target = get_target("arm64")
    run_cases(build(tmp_path, target.cc, target.cflags, target.ldflags), tmp_path, target.runner)


@pytest.mark.skipif(NOT_X86 or NO_CC, reason="the AVX2 kernels under the sanitizers")
def test_host_kernels_under_sanitizers(tmp_path):
    """ASan/UBSan over every case: no access outside the operands and the planned workspace."""
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-march=native",
             "-fopenmp-simd"]
    run_cases(build(tmp_path, "cc", flags, flags), tmp_path)
