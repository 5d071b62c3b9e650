"""conv2d, matmul, linear, pooling, pad in numpy."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ops import linalg as L
from . import impl


def _pad_nchw(x, pads, value=0.0):
    pt, pl, pb, pr = pads
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def windows(x, kh, kw, stride, dilation):
    """[N, C, H, W] → [N, C, Ho, Wo, kh, kw] view of every (dilated, strided) window."""
    sh, sw = stride
    dh, dw = dilation
    v = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d(x, w, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    n, c, _, _ = x.shape
    o, i, kh, kw = w.shape
    win = windows(_pad_nchw(x, padding), kh, kw, stride, dilation)  # N C Ho Wo kh kw
    ho, wo = win.shape[2:4]
    win = win.reshape(n, groups, c // groups, ho, wo, kh, kw)
    wg = w.reshape(groups, o // groups, i, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return y.reshape(n, o, ho, wo).astype(x.dtype)


@impl(L.Conv2dOp)
def run_conv2d(interp, op, x, w):
    p = op.p
    return conv2d(x, w, p.stride, p.padding, p.dilation, p.groups)


@impl(L.ConvTranspose2dOp)
def run_conv_transpose2d(interp, op, x, w):
    """conv2d's input gradient (ir/interpreter/grad.py) with dy = x and the output size as input_size."""
    from types import SimpleNamespace

    from .grad import run_conv2d_backward_input

    p = op.p
    geometry = SimpleNamespace(stride=p.stride, padding=p.padding, dilation=p.dilation, groups=p.groups,
                               input_size=op.result.type.get_shape()[2:])
    return run_conv2d_backward_input(interp, SimpleNamespace(p=geometry), x, w)


@impl(L.MatmulOp)
def run_matmul(interp, op, a, b):
    return np.matmul(a, b)


@impl(L.LinearOp)
def run_linear(interp, op, x, w):
    return np.matmul(x, w.T)


def _pool_input(x, op, value):
    p = op.p
    kh, kw = p.kernel
    pt, pl, pb, pr = p.padding
    ho, wo = op.result.type.get_shape()[2:]
    sh, sw = p.stride
    dh, dw = getattr(p, "dilation", (1, 1)) if isinstance(op, L.MaxPool2dOp) else (1, 1)
    # ceil_mode may need extra rows/cols at the bottom/right beyond the padding
    need_h = (ho - 1) * sh + (kh - 1) * dh + 1
    need_w = (wo - 1) * sw + (kw - 1) * dw + 1
    eb = max(need_h - (x.shape[2] + pt + pb), 0)
    er = max(need_w - (x.shape[3] + pl + pr), 0)
    xp = _pad_nchw(x, (pt, pl, pb + eb, pr + er), value)
    win = windows(xp, kh, kw, (sh, sw), (dh, dw))[:, :, :ho, :wo]
    return win, (pt, pl, pb, pr, eb, er)


@impl(L.MaxPool2dOp)
def run_max_pool2d(interp, op, x):
    win, _ = _pool_input(x, op, -np.inf)
    return win.max(axis=(4, 5)).astype(x.dtype)


@impl(L.AvgPool2dOp)
def run_avg_pool2d(interp, op, x):
    win, (pt, pl, pb, pr, eb, er) = _pool_input(x, op, 0.0)
    total = win.sum(axis=(4, 5))
    # divisor: window cells inside the input (+ padding when count_include_pad), never the ceil overhang
    ones = np.ones((1, 1, x.shape[2], x.shape[3]), x.dtype)
    inside = _pad_nchw(ones, (pt, pl, pb, pr), 1.0 if op.p.count_include_pad else 0.0)
    inside = np.pad(inside, ((0, 0), (0, 0), (0, eb), (0, er)))
    p = op.p
    cnt = windows(inside, *p.kernel, p.stride, (1, 1))[:, :, : total.shape[2], : total.shape[3]].sum(axis=(4, 5))
    return (total / cnt).astype(x.dtype)


@impl(L.GlobalAvgPoolOp)
def run_global_avg_pool(interp, op, x):
    return x.mean(axis=(2, 3), keepdims=True).astype(x.dtype)


@impl(L.PadOp)
def run_pad(interp, op, x):
    pads = op.p.pads
    r = x.ndim
    lo, hi = pads[:r], pads[r:]
    # negative pads crop (ONNX allows them)
    x = x[tuple(slice(max(-a, 0), x.shape[i] - max(-b, 0)) for i, (a, b) in enumerate(zip(lo, hi)))]
    return np.pad(x, [(max(a, 0), max(b, 0)) for a, b in zip(lo, hi)], constant_values=op.p.value)
