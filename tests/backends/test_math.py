"""The vectorizable math of pock.h (pk_expf, pk_erff, pk_tanhf, pk_sigmoidf and the GELU/SiLU
derivatives) against double-precision references, edge values included: exp(-inf) = 0
(masked attention), exp(+inf) = inf, no NaN from large inputs."""

import ctypes
import math
import shutil
import subprocess

import numpy as np
import pytest
from pockengine.backends.c_renderer import KERNEL_DIR

FUNCS = ["pk_expf", "pk_erff", "pk_tanhf", "pk_sigmoidf", "pk_geluf", "pk_gelu_tanhf", "pk_gelu_grad",
         "pk_gelu_tanh_grad", "pk_silu_grad"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("math")
    body = "\n".join(f"void m_{f}(long n, const float *x, float *y) {{ for (long i = 0; i < n; i++) y[i] = {f}(x[i]); }}"
                     for f in FUNCS)
    (d / "m.c").write_text(f'#include "{KERNEL_DIR / "pock.h"}"\n{body}\n')
    subprocess.run(["cc", "-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", "-o", str(d / "m.so"),
                    str(d / "m.c"), "-lm"], check=True)
    return ctypes.CDLL(str(d / "m.so"))


def run(lib, name, x):
    x = np.ascontiguousarray(x, np.float32)
    y = np.empty_like(x)
    getattr(lib, f"m_{name}")(ctypes.c_long(x.size), x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p))
    return y


def reference(name, x):
    x = x.astype(np.float64)
    erf = np.vectorize(math.erf)
    s = 1 / (1 + np.exp(-x))
    t = np.tanh(0.7978845608028654 * (x + 0.044715 * x**3))
    return {
        "pk_expf": np.exp(x), "pk_erff": erf(x), "pk_tanhf": np.tanh(x), "pk_sigmoidf": s,
        "pk_geluf": 0.5 * x * (1 + erf(x / np.sqrt(2))), "pk_gelu_tanhf": 0.5 * x * (1 + t),
        "pk_gelu_grad": 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi),
        "pk_gelu_tanh_grad": 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x),
        "pk_silu_grad": s * (1 + x * (1 - s)),
    }[name]


@pytest.mark.parametrize("name", FUNCS)
def test_accuracy_on_a_dense_grid(lib, name):
    x = np.linspace(-12, 12, 200001, dtype=np.float32)
    with np.errstate(over="ignore"):
        want = reference(name, x)
    got = run(lib, name, x)
    err = np.abs(got - want) / np.maximum(np.abs(want), 1.0)
    assert err.max() < 2e-6, f"{name}: max error {err.max():.2e} at x = {x[err.argmax()]}"


def test_exp_edges(lib):
    x = np.array([-np.inf, -1e30, -3.4e38, -200, -87, 0, 1e-8, 88, 89, 1e30, np.inf], np.float32)
    got = run(lib, "pk_expf", x)
    assert got[0] == 0 and got[1] < 1e-37 and got[2] < 1e-37 and got[3] < 1e-37
    np.testing.assert_allclose(got[4:8], np.exp(x[4:8].astype(np.float64)), rtol=2e-6)
    assert np.isinf(got[8:]).all() and (got[8:] > 0).all()
    s = run(lib, "pk_sigmoidf", np.array([-np.inf, -1e30, 1e30, np.inf], np.float32))
    np.testing.assert_array_equal(s, [0, 0, 1, 1])
