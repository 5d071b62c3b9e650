"""The GEMM engine (backends/c/kernels/gemm.c) and the contractions on it (matmul, linear,
linear_backward_weight) against float64 numpy, on every micro-kernel the backends build:
AVX2/FMA (host -march=native), plain C (host without it) and NEON (arm64 under
qemu-aarch64). Sizes straddle the tile and block edges (MR, NR, KC, MC, NC), operands are
transposed or padded views, beta accumulates, batches broadcast. The workspace each call
gets is the one the lowering plans (gemm_workspace), fenced by a canary; every operand ends
at an inaccessible page (no read past it); elements of C outside the view keep their values."""

import platform
import shutil
import subprocess

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided
from pockengine.backends.c.library import KERNEL_DIR
from pockengine.backends.c.library import CKernelLibrary
from pockengine.backends import get_target
from pockengine.backends.c.toolchain import COMMON_FLAGS

# Operands for the C test drivers: n floats ending right before an inaccessible page (a read
# or write past an operand faults); get reads them from f, or fills them with NaN when f is
# NULL (an output whose every element must be written); put writes them to out (if any) and
# unmaps them.
GUARDED_OPERANDS = r"""
static float *get(FILE *f, long n, size_t *mapped) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = (size_t)n * sizeof(float);
    *mapped = (bytes + page - 1) / page * page + page;
    char *base = mmap(NULL, *mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || mprotect(base + *mapped - page, page, PROT_NONE)) exit(5);
    float *p = (float *)(base + *mapped - page - bytes);
    if (f && fread(p, sizeof(float), (size_t)n, f) != (size_t)n) exit(3);
    if (!f) for (long i = 0; i < n; i++) p[i] = NAN;
    return p;
}
static void put(float *p, long n, size_t mapped, FILE *out) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (out) fwrite(p, sizeof(float), (size_t)n, out);
    munmap((char *)(p + n) + page - mapped, mapped);
}
"""

DRIVER = r"""
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "pock.h"
#include "gemm.c"
#include "matmul.c"
#include "linear.c"
#include "linear_backward_weight.c"
""" + GUARDED_OPERANDS + r"""

/* records: 24 int64 (op, M, N, K, six strides, batch dims, shape[2], sa[2], sb[2], sc[2],
   has_ab, sizes of a, b, c, workspace floats), alpha, beta, then a, b, c as float32.
   Out per record: canary intact (int64), then c. */
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    long p[24];
    float ab[2];
    while (fread(p, sizeof(long), 24, in) == 24) {
        if (fread(ab, sizeof(float), 2, in) != 2) return 3;
        long M = p[1], N = p[2], K = p[3], ws = p[23];
        size_t ma, mb, mc;
        float *a = get(in, p[20], &ma), *b = get(in, p[21], &mb), *c = get(in, p[22], &mc);
        float *work = malloc((size_t)(ws + 16) * sizeof(float));
        for (long i = 0; i < 16; i++) work[ws + i] = 1234.5f;
        switch (p[0]) {
        case 0: pk_gemm_ab(M, N, K, a, p[4], p[5], b, p[6], p[7], c, p[8], p[9], ab[0], ab[1], work); break;
        case 1: pk_matmul(p[10], p + 11, p + 13, p + 15, p + 17, M, N, K, a, p[4], p[5], b, p[6], p[7], c, work); break;
        case 2: pk_linear(M, N, K, a, p[4], p[5], b, p[6], p[7], c, work); break;
        case 3: pk_linear_backward_weight(M, N, K, a, p[4], p[5], b, p[6], p[7], c, p[19] ? ab : NULL, work); break;
        default: return 4;
        }
        long intact = 1;
        for (long i = 0; i < 16; i++) intact &= work[ws + i] == 1234.5f;
        fwrite(&intact, sizeof(long), 1, out);
        put(c, p[22], mc, out); put(a, p[20], ma, NULL); put(b, p[21], mb, NULL);
        free(work);
    }
    fclose(out);
    return 0;
}
"""


def view(rng, shape, strides):
    """Random storage and the view of `shape` with element `strides` into it."""
    size = 1 + sum((d - 1) * s for d, s in zip(shape, strides)) if all(shape) else 1
    store = rng.standard_normal(size).astype(np.float32)
    return store, as_strided(store, shape, [4 * s for s in strides])


def layout(rows, cols, kind):
    """(row stride, column stride) of a rows×cols operand: n(ormal), t(ransposed), p(added
    rows), s(trided both ways)."""
    return {"n": (cols, 1), "t": (1, rows), "p": (cols + 3, 1), "s": (2 * cols + 1, 2)}[kind]


class Cases:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.records, self.checks = [], []

    def add(self, op, mnk, a, b, c, strides, want, ab=(1.0, 0.0), batch=(0, (1, 1), (0, 0), (0, 0), (0, 0)),
            has_ab=0, work=None):
        m, n, k = mnk
        nb, shape, sa, sb, sc = batch
        work = CKernelLibrary().gemm_workspace(m, n, k) if work is None else work
        pad = lambda v: [*v, *[0] * (2 - len(v))]
        head = [op, m, n, k, *strides, nb, *pad(shape), *pad(sa), *pad(sb), *pad(sc), has_ab, a.size, b.size, c.size,
                work]
        self.records.append(np.array(head, np.int64).tobytes() + np.array(ab, np.float32).tobytes()
                            + a.tobytes() + b.tobytes() + c.tobytes())
        self.checks.append((c.size, want, f"op {op} {mnk} strides {strides} ab {ab} batch {batch}"))

    def gemm(self, m, n, k, la, lb, lc, alpha=1.0, beta=0.0):
        sa, sb, sc = layout(m, k, la), layout(k, n, lb), layout(m, n, lc)
        a, av = view(self.rng, (m, k), sa)
        b, bv = view(self.rng, (k, n), sb)
        c, cv = view(self.rng, (m, n), sc)
        want = c.astype(np.float64)
        wv = as_strided(want, (m, n), [8 * s for s in sc])
        wv[...] = alpha * (av.astype(np.float64) @ bv.astype(np.float64)) + (beta * cv if beta else 0.0)
        self.add(0, (m, n, k), a, b, c, (*sa, *sb, *sc), want, (alpha, beta))

    def matmul(self, batch, a_batch, b_batch, m, n, k, la, lb):
        """c[batch] = a[a_batch]·b[b_batch], a size-1 dim broadcasting (stride 0)."""
        sa, sb = layout(m, k, la), layout(k, n, lb)
        a, av = view(self.rng, (*a_batch, m, k), self._batched(a_batch, m, k, sa))
        b, bv = view(self.rng, (*b_batch, k, n), self._batched(b_batch, k, n, sb))
        c = np.zeros(int(np.prod(batch)) * m * n, np.float32)
        want = (av.astype(np.float64) @ bv.astype(np.float64)).reshape(-1)
        bst = lambda v, shape: [0 if d == 1 else s // 4 for d, s in zip(shape, v.strides[:-2])]
        cst = [int(np.prod(batch[i + 1:])) * m * n for i in range(len(batch))]
        self.add(1, (m, n, k), a, b, c, (*sa, *sb, n, 1), want,
                 batch=(len(batch), batch, bst(av, a_batch), bst(bv, b_batch), cst))

    @staticmethod
    def _batched(bshape, rows, cols, st):
        step = (rows - 1) * st[0] + (cols - 1) * st[1] + 1
        out, acc = [], step
        for d in reversed(bshape):
            out.insert(0, acc)
            acc *= d
        return [*out, *st]

    def linear(self, m, n, k, lx, lw):
        sx, sw = layout(m, k, lx), layout(n, k, lw)
        x, xv = view(self.rng, (m, k), sx)
        w, wv = view(self.rng, (n, k), sw)
        y = np.zeros(m * n, np.float32)
        self.add(2, (m, n, k), x, w, y, (*sx, *sw, n, 1), (xv.astype(np.float64) @ wv.T.astype(np.float64)).reshape(-1))

    def linear_backward_weight(self, m, n, k, lx, ld, ab=None):
        sx, sd = layout(m, k, lx), layout(m, n, ld)
        x, xv = view(self.rng, (m, k), sx)
        dy, dv = view(self.rng, (m, n), sd)
        dw = self.rng.standard_normal(n * k).astype(np.float32)
        alpha, beta = ab or (1.0, 0.0)
        want = alpha * (dv.T.astype(np.float64) @ xv.astype(np.float64)).reshape(-1) + beta * dw
        self.add(3, (m, n, k), x, dy, dw, (*sx, *sd, k, 1), want, (alpha, beta), has_ab=int(ab is not None),
                 work=CKernelLibrary().gemm_workspace(n, k, m))

    def run(self, binary, tmp_path, runner=()):
        (tmp_path / "in.bin").write_bytes(b"".join(self.records))
        res = subprocess.run([*runner, str(binary), "in.bin", "out.bin"], cwd=tmp_path, capture_output=True,
                             text=True, check=False)
        assert res.returncode == 0, res.stderr
        raw = (tmp_path / "out.bin").read_bytes()
        at = 0
        for size, want, what in self.checks:
            intact = np.frombuffer(raw, np.int64, 1, at)[0]
            got = np.frombuffer(raw, np.float32, size, at + 8)
            at += 8 + 4 * size
            assert intact == 1, f"workspace overrun: {what}"
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(want).max())),
                                       err_msg=what)
        assert at == len(raw)


def edge_cases(quick: bool) -> Cases:
    """Sizes at the tile/block edges, every layout pair, beta, the small-M swapped form."""
    cs = Cases(0)
    ms = [1, 5, 6, 7, 13, 47, 97] + ([] if quick else [145])
    for i, m in enumerate(ms):
        for j, (n, k) in enumerate([(1, 3), (15, 8), (16, 9), (17, 17), (33, 64), (100, 130)] +
                                   ([] if quick else [(48, 257)])):
            la, lb = "ntps"[(i + j) % 4], "ntps"[(i + 2 * j) % 4]
            cs.gemm(m, n, k, la, lb, "np"[(i + j) % 2], *((1.0, 0.0), (1.0, 1.0), (-0.5, 0.9))[(i + j) % 3])
    for la in "ntps":  # every layout pair once on multi-tile sizes, one of them C transposed
        for lb in "ntps":
            cs.gemm(23, 70, 41, la, lb, "t" if la == lb == "t" else "n", 1.0, 0.5 if la == "p" else 0.0)
    cs.gemm(8, 200, 19, "n", "t", "n")  # small M, transposed B: run as Cᵀ = Bᵀ·Aᵀ
    cs.gemm(1, 16, 40, "n", "t", "n")  # ... which needs more workspace than the product as given
    cs.gemm(7, 9, 300, "p", "n", "n", 1.0, 0.5)  # two K blocks: the second adds to the first
    cs.gemm(90, 120, 16, "n", "t", "p", 0.5, 1.0)
    cs.gemm(301, 20, 30, "t", "n", "n")  # A transposed with long columns: packed, not read in place
    cs.gemm(7, 1040 if not quick else 300, 12, "n", "n", "n", 1.0, 1.0)  # more than one NC block (not quick)
    cs.gemm(4, 5, 0, "n", "n", "n", 1.0, 0.5)  # K = 0: C = beta·C
    cs.matmul((3, 2), (3, 1), (1, 2), 13, 17, 9, "n", "t")  # both operands broadcast
    cs.matmul((4,), (4,), (4,), 20, 11, 35, "t", "n")
    cs.matmul((2, 3), (2, 3), (1, 1), 9, 18, 7, "p", "s")
    cs.linear(37, 21, 19, "n", "n")
    cs.linear(5, 40, 33, "p", "t")
    cs.linear_backward_weight(29, 14, 22, "n", "n")
    cs.linear_backward_weight(31, 19, 12, "p", "p", ab=(0.1, 0.9))
    return cs


def build(tmp_path, cc, flags, ldflags=(), driver=DRIVER):
    """The driver over the kernels, compiled with `flags` (test_depthwise.py brings its own)."""
    (tmp_path / "driver.c").write_text(driver)
    subprocess.run([cc, "-std=c99", *flags, "-I", str(KERNEL_DIR), "-o", "driver", "driver.c", *ldflags, "-lm"],
                   cwd=tmp_path, check=True)
    return tmp_path / "driver"


@pytest.fixture(scope="module")
def host_cc():
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    return "cc"


def test_host_kernel(tmp_path, host_cc):
    """-march=native: the AVX2/FMA micro-kernels, direct rows of A, 8×8 transposing packs."""
    cs = edge_cases(quick=False)
    cs.run(build(tmp_path, host_cc, get_target("c").cflags), tmp_path)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the plain-C build is the x86-64 baseline")
def test_plain_c_kernel(tmp_path, host_cc):
    """x86-64 without AVX2: the portable 4×4 micro-kernel and packing of every operand."""
    cs = edge_cases(quick=False)
    cs.run(build(tmp_path, host_cc, [*COMMON_FLAGS, "-march=x86-64"]), tmp_path)


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64") is None,
                    reason="aarch64-linux-gnu-gcc and qemu-aarch64 not installed")
def test_neon_kernel_under_qemu(tmp_path):
    cs = edge_cases(quick=True)
    target = get_target("arm64")
    cs.run(build(tmp_path, target.cc, target.cflags, target.ldflags), tmp_path, target.runner)


@pytest.mark.parametrize("march", ["native", "x86-64"])
def test_threaded_kernel(tmp_path, host_cc, march):
    """Built with OpenMP on 3 threads and every region forced on (issue 19): threads pack their
    own B panels and a share of each packed A block (the x86-64 build packs every A), and run the
    epilogue on their own columns; uneven splits of panels and rows included."""
    if march == "x86-64" and platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the plain-C build is the x86-64 baseline")
    flags = get_target("c").cflags if march == "native" else [*COMMON_FLAGS, "-march=x86-64"]
    threads = ["-fopenmp", "-DPK_THREADS=3", "-DPK_PAR_MIN=1", "-DPK_PAR_GEMM_MIN=0"]
    edge_cases(quick=True).run(build(tmp_path, host_cc, [*flags, *threads], ["-fopenmp"]), tmp_path)
