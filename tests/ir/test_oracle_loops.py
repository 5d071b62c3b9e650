"""The interpreter against direct definitions (nested loops over the output) and algebraic
properties: conv2d, pooling with any padding and ceil_mode, softmax, reshape/transpose."""

from __future__ import annotations

import itertools
import math

import numpy as np
import op_cases as C
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import examples
from pockengine.ir import types as T
from pockengine.ir.interpreter import Interpreter
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import loss as Lo
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region

SETTINGS = settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(case, arrays, dtype=np.float64):
    return Interpreter(case.module(), {}, dtype).call("f", *arrays)[0]


def wide(arrays):
    """Float inputs in float64, so that the loop definitions compute exactly."""
    return [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]


def chain(in_type, *builders):
    """func @f(x) { y1 = b1(x); y2 = b2(y1); ...; return }"""
    block = Block(arg_types=[in_type])
    v = block.args[0]
    for b in builders:
        op = b(v)
        block.add_op(op)
        v = op.results[0]
    block.add_op(func.ReturnOp(v))
    return ModuleOp([func.FuncOp("f", ([in_type], [v.type]), Region(block))])


def conv2d_loops(x, w, stride, padding, dilation, groups):
    """y[n, o, i, j] = Σ_{c, a, b} x[n, g(o)·C/g + c, i·sh + a·dh - pt, j·sw + b·dw - pl] · w[o, c, a, b]"""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    pt, pl, pb, pr = padding
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, ho, wo))
    per_group = o // groups
    for b, oc, i, j in itertools.product(range(n), range(o), range(ho), range(wo)):
        g = oc // per_group
        acc = 0.0
        for c, a, e in itertools.product(range(cg), range(kh), range(kw)):
            r, s = i * sh + a * dh - pt, j * sw + e * dw - pl
            if 0 <= r < h and 0 <= s < wd:
                acc += x[b, g * cg + c, r, s] * w[oc, c, a, e]
        y[b, oc, i, j] = acc
    return y


@SETTINGS
@given(data=st.data(), depthwise=st.sampled_from([None, True]))
def test_conv2d_matches_loops(data, depthwise):
    case = data.draw(C.conv2d(L.Conv2dOp, depthwise=depthwise))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, w = wide(case.inputs(rng))
    p = case.props
    want = conv2d_loops(x, w, p["stride"], L.pad4(p["padding"]), p["dilation"], p["groups"])
    np.testing.assert_allclose(run(case, [x, w]), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(run(case, [x, w], np.float32), want, rtol=1e-4, atol=1e-5)


def pool_size(size, k, s, lo, hi, d, ceil):
    """PyTorch's rule: floor or ceil, and in ceil mode the last window must start before the
    end of the input plus the leading padding."""
    span = size + lo + hi - d * (k - 1) - 1
    n = (-(-span // s) if ceil else span // s) + 1
    if ceil and (n - 1) * s >= size + lo:
        n -= 1
    return n


def pool_loops(x, kernel, stride, padding, dilation, ceil, kind, count_include_pad=True):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    pt, pl, pb, pr = padding
    ho = pool_size(h, kh, sh, pt, pb, dh, ceil)
    wo = pool_size(w, kw, sw, pl, pr, dw, ceil)
    y = np.zeros((n, c, ho, wo))
    for i, j in itertools.product(range(ho), range(wo)):
        rows = [i * sh - pt + a * dh for a in range(kh)]
        cols = [j * sw - pl + b * dw for b in range(kw)]
        inside = [(r, s) for r in rows for s in cols if 0 <= r < h and 0 <= s < w]
        if kind == "max":
            y[:, :, i, j] = np.max([x[:, :, r, s] for r, s in inside], axis=0) if inside else -np.inf
            continue
        total = sum((x[:, :, r, s] for r, s in inside), np.zeros((n, c)))
        if count_include_pad:  # padding counts, the ceil-mode overhang past it does not
            divisor = sum(1 for r in rows for s in cols if -pt <= r < h + pb and -pl <= s < w + pr)
        else:
            divisor = len(inside)
        y[:, :, i, j] = total / divisor
    return y


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(["max", "avg"]))
def test_pooling_matches_loops(data, kind):
    """Any padding (asymmetric, more than PyTorch allows), strides, dilation, ceil_mode."""
    op = L.MaxPool2dOp if kind == "max" else L.AvgPool2dOp
    case = data.draw(C.pool(op))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    (x,) = wide(case.inputs(rng))
    p = case.props
    want = pool_loops(x, p["kernel"], p["stride"], p["padding"], p.get("dilation", (1, 1)), p["ceil_mode"],
                      kind, p.get("count_include_pad", True))
    got = run(case, [x])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(data=st.data())
def test_softmax_rows_sum_to_one_and_ignore_shifts(data):
    case = data.draw(C.along_axis(R.SoftmaxOp))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    (x,) = wide(case.inputs(rng))
    x = x * 30  # large logits: the max-shift must keep this finite
    axis = case.props["axis"]
    y = run(case, [x])
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)
    assert (y >= 0).all()
    np.testing.assert_allclose(run(case, [x + 1000.0]), y, rtol=1e-9, atol=1e-12)
    log_case = C.Case(R.LogSoftmaxOp, case.operands, case.props)
    np.testing.assert_allclose(np.exp(run(log_case, [x])), y, rtol=1e-9, atol=1e-300)


@SETTINGS
@given(data=st.data())
def test_reshape_and_transpose_invert(data):
    s = data.draw(C.shapes())
    t = T.tensor(s, data.draw(st.sampled_from(C.ANY)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = np.asarray(C.random_array(t, rng))
    mid = data.draw(C.factorization(math.prod(s)))
    perm = data.draw(st.permutations(range(len(s))))
    inverse = list(np.argsort(perm))
    module = chain(t, lambda v: S.ReshapeOp.build(v, mid), lambda v: S.ReshapeOp.build(v, s),
                   lambda v: S.TransposeOp.build(v, perm=perm), lambda v: S.TransposeOp.build(v, perm=inverse))
    (y,) = Interpreter(module, {}, np.float64).call("f", x)
    np.testing.assert_array_equal(y, x)
    # and the transpose alone moves element (i0, .., ir) to position perm⁻¹
    module = chain(t, lambda v: S.TransposeOp.build(v, perm=perm))
    (z,) = Interpreter(module, {}, np.float64).call("f", x)
    for idx in itertools.islice(np.ndindex(*s), 20):
        assert z[tuple(idx[p] for p in perm)] == x[idx]


def test_cross_entropy_mean_over_no_kept_labels_is_zero():
    case = C.Case(Lo.CrossEntropyOp, [T.tensor((3, 4)), T.tensor((3,), T.i64)], {"ignore_index": 1})
    logits = np.random.default_rng(0).standard_normal((3, 4))
    assert run(case, [logits, np.array([1, 1, 1])]) == 0.0
    kept = run(case, [logits, np.array([1, 2, 1])])
    want = -(logits[1, 2] - np.log(np.exp(logits[1]).sum()))
    np.testing.assert_allclose(kept, want, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interpreter_precision(dtype):
    """Float math runs in the interpreter's dtype, whatever the IR's float type says."""
    case = C.Case(L.MatmulOp, [T.tensor((2, 3)), T.tensor((3, 2))])
    a = np.full((2, 3), 1 / 3)
    b = np.full((3, 2), 3.0)
    y = run(case, [a, b], dtype)
    assert y.dtype == dtype
    assert abs(y[0, 0] - 3.0) < (1e-15 if dtype == np.float64 else 1e-6)
