"""Hypothesis generators of the quantization ops (ir/ops/quant.py), merged into op_cases.CASES."""

from __future__ import annotations

import numpy as np
import op_cases as F
from hypothesis import strategies as st
from op_cases import FLOATS, Case, broadcastable, dims, shapes
from pockengine.ir import types as T
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import quant as Q
from xdsl.dialects.builtin import i8, i32

INTS = [i8, T.ui8]


def _full_range(indices, scale_at=None, x_at=None):
    """Domain: integer operands over their whole range, scales positive, x spread over
    about twice the quantized range (saturation on both sides is exercised)."""

    def fix(rng, arrays):
        for i in indices:
            info = np.iinfo(arrays[i].dtype) if arrays[i].dtype != np.int32 else np.iinfo(np.int16)
            arrays[i] = rng.integers(info.min, int(info.max) + 1, arrays[i].shape).astype(arrays[i].dtype)
        if scale_at is not None:
            s = arrays[scale_at]
            arrays[scale_at] = (np.abs(s) * 0.05 + 0.01).astype(s.dtype)
        if x_at is not None:
            x = arrays[x_at]
            arrays[x_at] = (x * 200 * float(np.max(arrays[scale_at]))).astype(x.dtype)
        return arrays

    return fix


@st.composite
def affine(draw, op):
    """x, a per-tensor or per-axis scale and zero point (same shape)."""
    xs = draw(shapes(0, 3))
    qs = () if not xs or draw(st.booleans()) else tuple(d if i == draw(st.integers(0, len(xs) - 1)) else 1
                                                        for i, d in enumerate(xs))
    el = draw(st.sampled_from(FLOATS))
    if op is Q.DequantizeOp:
        qel = draw(st.sampled_from([*INTS, i32]))
        return Case(op, [T.tensor(xs, qel), T.tensor(qs, el), T.tensor(qs, qel)], domain=_full_range([0, 2], 1))
    qel = draw(st.sampled_from(INTS))
    operands = [T.tensor(xs, el), T.tensor(qs, el), T.tensor(qs, qel)]
    if op is Q.FakeQuantizeBackwardOp:
        operands.append(T.tensor(xs, el))
    return Case(op, operands, domain=_full_range([2], 1, 0))


@st.composite
def matmul_integer(draw, op):
    a_el, b_el = draw(st.sampled_from(INTS)), draw(st.sampled_from(INTS))
    m, k, n = draw(dims), draw(dims), draw(dims)
    ba, bb = draw(broadcastable(2, 0, 2))
    az = draw(st.sampled_from([(), (m, 1)]))
    bz = draw(st.sampled_from([(), (n,)]))
    return Case(op, [T.tensor((*ba, m, k), a_el), T.tensor((*bb, k, n), b_el), T.tensor(az, a_el), T.tensor(bz, b_el)],
                domain=_full_range([0, 1, 2, 3]))


@st.composite
def conv_integer(draw, op):
    c = draw(F.conv2d(L.Conv2dOp))
    x, w = c.operands
    x_el, w_el = draw(st.sampled_from(INTS)), draw(st.sampled_from(INTS))
    wz = draw(st.sampled_from([(), (T.shape(w)[0], 1, 1, 1)]))
    return Case(op, [T.tensor(T.shape(x), x_el), T.tensor(T.shape(w), w_el), T.tensor((), x_el), T.tensor(wz, w_el)],
                c.props, domain=_full_range([0, 1, 2, 3]))


QUANT_CASES = {
    Q.QuantizeOp: affine, Q.DequantizeOp: affine, Q.FakeQuantizeOp: affine, Q.FakeQuantizeBackwardOp: affine,
    Q.MatmulIntegerOp: matmul_integer, Q.ConvIntegerOp: conv_integer,
}
