"""The vectorizable math of pock.h (pk_expf, pk_erff, pk_tanhf, pk_sigmoidf, pk_selectf and the
GELU/SiLU derivatives) against double-precision references, built with the host target's
own flags (-std=c99: no FMA contraction but pk_fmaf's), edge values included: exp(-inf) = 0
(masked attention), exp(+inf) = inf, NaN in gives NaN out. Also: each function's loop
vectorizes (the reason these functions exist), and the arm64 build under qemu gives the same
accuracy."""

import ctypes
import math
import shutil
import subprocess

import numpy as np
import pytest
from pockengine.backends.c.library import KERNEL_DIR
from pockengine.backends import get_target

FUNCS = ["pk_expf", "pk_erff", "pk_tanhf", "pk_sigmoidf", "pk_geluf", "pk_gelu_tanhf", "pk_gelu_grad",
         "pk_gelu_tanh_grad", "pk_silu_grad"]
LOOPS = "\n".join(f"PK_NOINLINE void m_{f}(long n, const float *restrict x, float *restrict y) "
                  f"{{ for (long i = 0; i < n; i++) y[i] = {f}(x[i]); }}" for f in FUNCS)
SELECT = ("PK_NOINLINE void m_select(long n, const float *restrict c, const float *restrict a, float *restrict y) "
          "{ for (long i = 0; i < n; i++) y[i] = pk_selectf(c[i] > 0.0f, a[i], 0.0f); }")
SOURCE = f'#include "pock.h"\n{LOOPS}\n{SELECT}\n'


def flags(target):
    return ["-std=c99", *target.cflags, "-I", str(KERNEL_DIR)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    target = get_target("c")
    if target.available():
        pytest.skip(target.available())
    d = tmp_path_factory.mktemp("math")
    (d / "m.c").write_text(SOURCE)
    subprocess.run([target.cc, *flags(target), "-shared", "-fPIC", "-o", str(d / "m.so"), str(d / "m.c"), "-lm"],
                   check=True)
    return ctypes.CDLL(str(d / "m.so"))


def run(lib, name, *xs):
    xs = [np.ascontiguousarray(x, np.float32) for x in xs]
    y = np.empty_like(xs[0])
    ptrs = [x.ctypes.data_as(ctypes.c_void_p) for x in (*xs, y)]
    getattr(lib, f"m_{name}")(ctypes.c_long(y.size), *ptrs)
    return y


def reference(name, x):
    x = x.astype(np.float64)
    erf = np.vectorize(math.erf)
    sig = lambda: 1 / (1 + np.exp(-x))  # noqa: E731
    t = lambda: np.tanh(0.7978845608028654 * (x + 0.044715 * x**3))  # noqa: E731
    with np.errstate(over="ignore", invalid="ignore"):
        return {
            "pk_expf": lambda: np.exp(x), "pk_erff": lambda: erf(x), "pk_tanhf": lambda: np.tanh(x), "pk_sigmoidf": sig,
            "pk_geluf": lambda: 0.5 * x * (1 + erf(x / np.sqrt(2))), "pk_gelu_tanhf": lambda: 0.5 * x * (1 + t()),
            "pk_gelu_grad": lambda: 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi),
            "pk_gelu_tanh_grad": lambda: 0.5 * (1 + t()) + 0.5 * x * (1 - t() ** 2) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x),
            "pk_silu_grad": lambda: sig() * (1 + x * (1 - sig())),
        }[name]()


def ulps(got, want):
    """|got - want| in units of the float32 spacing at want."""
    w = want.astype(np.float32)
    return np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(w)).astype(np.float64)


@pytest.mark.parametrize("name", FUNCS)
def test_accuracy_on_a_dense_grid(lib, name):
    x = np.linspace(-12, 12, 200001, dtype=np.float32)
    want = reference(name, x)
    got = run(lib, name, x)
    err = np.abs(got - want) / np.maximum(np.abs(want), 1.0)
    assert err.max() < 2e-6, f"{name}: max error {err.max():.2e} at x = {x[err.argmax()]}"


def every_float(lo, hi, step=1):
    """Every `step`-th float32 in [lo, hi], a range of one sign."""
    if hi <= 0:
        return -every_float(-hi, -lo, step)
    assert lo >= 0
    a, b = np.array([lo, hi], np.float32).view(np.int32)
    return np.arange(int(a), int(b) + 1, step, dtype=np.int64).astype(np.int32).view(np.float32)


def test_exp_within_two_ulp(lib):
    """The documented bound: below 2 ulp wherever e^x is a normal float."""
    x = np.concatenate([every_float(-87.3, -1e-6, 97), every_float(1e-6, 88.72, 97), every_float(-1e-6, -1e-30, 9973), every_float(1e-30, 1e-6, 9973)])
    got = run(lib, "pk_expf", x)
    err = ulps(got, np.exp(x.astype(np.float64)))
    assert err.max() < 2, f"max {err.max():.2f} ulp at x = {x[err.argmax()]}"


def test_erf_bounds(lib):
    """Absolute error below 5e-7 everywhere (densest near |x| = 3.9), relative error a few
    ulp near 0 including denormals: erf(x) ~ 2x/sqrt(pi) must not flush to 0."""
    x = np.concatenate([every_float(0.0, 6.0, 61), every_float(3.5, 4.2, 3)])
    x = np.concatenate([x, -x])
    got = run(lib, "pk_erff", x)
    err = np.abs(got - reference("pk_erff", x))
    assert err.max() < 5e-7, f"max abs error {err.max():.2e} at x = {x[err.argmax()]}"
    small = np.concatenate([every_float(1e-30, 1e-3, 40009), np.array([1e-45, 1e-40, 1.2e-38], np.float32)])
    small = np.concatenate([small, -small])
    err = ulps(run(lib, "pk_erff", small), reference("pk_erff", small))
    normal = np.abs(small) >= np.finfo(np.float32).tiny
    assert err[normal].max() < 4, f"max {err[normal].max():.2f} ulp near 0"
    assert err[~normal].max() <= 64  # denormal results lose bits, but never flush to zero
    assert (np.sign(run(lib, "pk_erff", small)) == np.sign(small)).all()


def test_exp_edges(lib):
    x = np.array([-np.inf, -1e30, -3.4e38, -200, -110, -87, 0, -0.0, 1e-8, 1e-45, 88, 88.5, 88.72, 88.73, 89, 1e30,
                  np.inf], np.float32)
    got = run(lib, "pk_expf", x)
    assert (got[:5] == 0).all(), got[:5]
    np.testing.assert_allclose(got[5:13], np.exp(x[5:13].astype(np.float64)), rtol=2.4e-7)
    assert np.isfinite(got[11:13]).all()  # e^88.72 < FLT_MAX: no early overflow
    assert np.isinf(got[13:]).all() and (got[13:] > 0).all()
    s = run(lib, "pk_sigmoidf", np.array([-np.inf, -1e30, 1e30, np.inf], np.float32))
    np.testing.assert_array_equal(s, [0, 0, 1, 1])


def test_erf_edges(lib):
    x = np.array([-np.inf, -1e30, -4.0, -3.9, -0.0, 0.0, 3.9, 4.0, 9.0, 1e30, np.inf], np.float32)
    got = run(lib, "pk_erff", x)
    np.testing.assert_allclose(got, reference("pk_erff", x), atol=5e-7)
    assert (np.abs(got) <= 1).all()
    assert got[0] == -1 and got[-1] == 1 and np.signbit(got[4]) and not np.signbit(got[5])


@pytest.mark.parametrize("name", FUNCS)
def test_nan_in_nan_out(lib, name):
    x = np.array([np.nan, -np.nan, 1.0], np.float32)
    got = run(lib, name, x)
    assert np.isnan(got[:2]).all(), f"{name}(nan) = {got[:2]}"


def test_select_through_bits(lib):
    c = np.array([1, -1, 0, np.nan, np.inf, -0.0], np.float32)
    a = np.array([2, np.inf, np.nan, 5, -np.inf, 7], np.float32)
    np.testing.assert_array_equal(run(lib, "select", c, a), np.where(c > 0, a, 0).astype(np.float32))


def vectorized_loops(cc, args, tmp_path) -> set[str]:
    """The m_<name> functions (one a line) whose loop GCC reports as vectorized."""
    (tmp_path / "v.c").write_text(SOURCE)
    res = subprocess.run([cc, *args, "-c", "-o", str(tmp_path / "v.o"), str(tmp_path / "v.c"), "-fopt-info-vec-optimized"],
                         capture_output=True, text=True, check=True)
    rows = {int(ln.split(":")[1]) for ln in res.stderr.splitlines() if "v.c:" in ln and "loop vectorized" in ln}
    src = SOURCE.splitlines()
    return {src[r - 1].split("void m_")[1].split("(")[0] for r in rows if "void m_" in src[r - 1]}


@pytest.mark.parametrize("target_name", ["c", "arm64"])
def test_every_function_vectorizes(target_name, tmp_path):
    """No libm call, no branch: GCC vectorizes each loop (a silent regression otherwise)."""
    target = get_target(target_name)
    if shutil.which(target.cc) is None:
        pytest.skip(f"{target.cc} not installed")
    if "gcc version" not in subprocess.run([target.cc, "-v"], capture_output=True, text=True).stderr:
        pytest.skip("the vectorizer report is GCC's")
    missing = {*FUNCS, "select"} - vectorized_loops(target.cc, flags(target), tmp_path)
    assert not missing, f"not vectorized for {target_name}: {sorted(missing)}"


def test_arm64_build_under_qemu_is_as_accurate(tmp_path):
    """The NEON build (aarch64 FMA in pk_fmaf) on the dense grid, run under qemu-aarch64."""
    target = get_target("arm64")
    if target.available():
        pytest.skip(target.available())
    main = r'''
#include <stdio.h>
#include <stdlib.h>
typedef void (*fn)(long, const float *restrict, float *restrict);
int main(int argc, char **argv) {
    static const fn fns[] = {FNS};
    long n = atol(argv[1]);
    float *x = malloc(n * 4), *y = malloc(n * 4);
    FILE *f = fopen(argv[2], "rb"); if (fread(x, 4, n, f) != (size_t)n) return 1; fclose(f);
    FILE *o = fopen(argv[3], "wb");
    for (unsigned k = 0; k < sizeof fns / sizeof *fns; k++) { fns[k](n, x, y); fwrite(y, 4, n, o); }
    fclose(o);
    return 0;
}
'''.replace("FNS", ", ".join(f"m_{f}" for f in FUNCS))
    (tmp_path / "m.c").write_text(SOURCE + main)
    subprocess.run([target.cc, *flags(target), "-o", str(tmp_path / "m"), str(tmp_path / "m.c"), *target.ldflags, "-lm"],
                   check=True)
    x = np.concatenate([np.linspace(-12, 12, 40001, dtype=np.float32), np.array([-np.inf, np.inf, np.nan], np.float32)])
    x.tofile(tmp_path / "x.bin")
    subprocess.run([*target.runner, str(tmp_path / "m"), str(x.size), str(tmp_path / "x.bin"), str(tmp_path / "y.bin")],
                   check=True, timeout=120)
    ys = np.fromfile(tmp_path / "y.bin", np.float32).reshape(len(FUNCS), x.size)
    finite = slice(0, x.size - 3)
    for name, y in zip(FUNCS, ys):
        want = reference(name, x[finite])
        err = np.abs(y[finite] - want) / np.maximum(np.abs(want), 1.0)
        assert err.max() < 2e-6, f"arm64 {name}: max error {err.max():.2e} at x = {x[finite][err.argmax()]}"
        assert np.isnan(y[-1]), f"arm64 {name}(nan) = {y[-1]}"
    np.testing.assert_array_equal(ys[0][-3:-1], [0, np.inf])
