"""Backward-only ops in numpy (definitions straight from the sums in ir/ops/grad.py)."""

from __future__ import annotations

import numpy as np

from ..ops import grad as G
from . import impl
from .elementwise import erf, sigmoid
from .linalg import _pad_nchw, windows
from .reduce import softmax


def _window_origins(ho, wo, kh, kw, stride, dilation):
    """For each kernel tap (i, j): the row/col slices of the padded input it reads over all outputs."""
    sh, sw = stride
    dh, dw = dilation
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i * dh, i * dh + (ho - 1) * sh + 1, sh), slice(j * dw, j * dw + (wo - 1) * sw + 1, sw)


def _padded_zeros(n, c, h, w, kh, kw, ho, wo, stride, dilation, padding):
    pt, pl, pb, pr = padding
    # rows a window may touch, the ceil-mode overhang included
    hp = max(h + pt + pb, (ho - 1) * stride[0] + (kh - 1) * dilation[0] + 1)
    wp = max(w + pl + pr, (wo - 1) * stride[1] + (kw - 1) * dilation[1] + 1)
    return np.zeros((n, c, hp, wp), dtype=np.float64)


@impl(G.Conv2dBackwardInputOp)
def run_conv2d_backward_input(interp, op, dy, w):
    p = op.p
    n, o, ho, wo = dy.shape
    _, cg, kh, kw = w.shape
    g = p.groups
    h, wd = p.input_size
    dxp = _padded_zeros(n, cg * g, h, wd, kh, kw, ho, wo, p.stride, p.dilation, p.padding)
    dyg = dy.reshape(n, g, o // g, ho, wo)
    wg = w.reshape(g, o // g, cg, kh, kw)
    view = dxp.reshape(n, g, cg, *dxp.shape[2:])
    for i, j, rows, cols in _window_origins(ho, wo, kh, kw, p.stride, p.dilation):
        view[:, :, :, rows, cols] += np.einsum("ngohw,goc->ngchw", dyg, wg[..., i, j])
    pt, pl = p.padding[:2]
    return dxp[:, :, pt:pt + h, pl:pl + wd].astype(dy.dtype)


@impl(G.Conv2dBackwardWeightOp)
def run_conv2d_backward_weight(interp, op, x, dy):
    p = op.p
    n, c, _, _ = x.shape
    _, o, ho, wo = dy.shape
    g = p.groups
    kh, kw = p.kernel
    win = windows(_pad_nchw(x, p.padding), kh, kw, p.stride, p.dilation)[:, :, :ho, :wo]
    win = win.reshape(n, g, c // g, ho, wo, kh, kw)
    dw = np.einsum("ngchwij,ngohw->gocij", win, dy.reshape(n, g, o // g, ho, wo), optimize=True)
    return dw.reshape(o, c // g, kh, kw).astype(x.dtype)


@impl(G.LinearBackwardWeightOp)
def run_linear_backward_weight(interp, op, x, dy):
    return (dy.reshape(-1, dy.shape[-1]).T @ x.reshape(-1, x.shape[-1])).astype(x.dtype)


def _pool_backward(op, dy, h, w, dilation, spread):
    """Accumulate spread(i, j, rows, cols) over every kernel tap into a padded dx, then crop."""
    p = op.p
    n, c, ho, wo = dy.shape
    kh, kw = p.kernel
    dxp = _padded_zeros(n, c, h, w, kh, kw, ho, wo, p.stride, dilation, p.padding)
    for i, j, rows, cols in _window_origins(ho, wo, kh, kw, p.stride, dilation):
        dxp[:, :, rows, cols] += spread(i, j)
    pt, pl = p.padding[:2]
    return dxp[:, :, pt:pt + h, pl:pl + w].astype(dy.dtype)


@impl(G.MaxPool2dBackwardOp)
def run_max_pool2d_backward(interp, op, x, dy):
    p = op.p
    ho, wo = dy.shape[2:]
    kh, kw = p.kernel
    dxp = _padded_zeros(*x.shape, kh, kw, ho, wo, p.stride, p.dilation, p.padding)
    pt, pl = p.padding[:2]
    xp = np.full(dxp.shape, -np.inf)
    xp[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]] = x
    win = windows(xp, kh, kw, p.stride, p.dilation)[:, :, :ho, :wo].reshape(*dy.shape, kh * kw)
    inside = np.zeros(dxp.shape, bool)
    inside[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]] = True
    ins = windows(inside, kh, kw, p.stride, p.dilation)[:, :, :ho, :wo].reshape(*dy.shape, kh * kw)
    # the first maximum among the window's cells inside the input, in row-major order (a NaN is the
    # maximum), as PyTorch picks: padding never wins, even over a window of -inf
    m = np.where(ins, win, -np.inf).max(axis=-1, keepdims=True)
    first = (ins & ((win == m) | (np.isnan(win) & np.isnan(m)))).argmax(axis=-1)
    # dy goes to the maximum only (a scatter, as PyTorch): `dy * mask` would spread a NaN dy over the window
    return _pool_backward(op, dy, *x.shape[2:], p.dilation, lambda i, j: np.where(first == i * kw + j, dy, 0))


@impl(G.AvgPool2dBackwardOp)
def run_avg_pool2d_backward(interp, op, dy):
    p = op.p
    h, w = p.input_size
    ho, wo = dy.shape[2:]
    kh, kw = p.kernel
    # the forward's divisor per window: cells inside the input (+ padding when counted)
    inside = _padded_zeros(1, 1, h, w, kh, kw, ho, wo, p.stride, (1, 1), p.padding)
    pt, pl, pb, pr = p.padding
    if p.count_include_pad:
        inside[:, :, :h + pt + pb, :w + pl + pr] = 1
    else:
        inside[:, :, pt:pt + h, pl:pl + w] = 1
    cnt = windows(inside, kh, kw, p.stride, (1, 1))[:, :, :ho, :wo].sum(axis=(4, 5))
    share = dy / cnt
    return _pool_backward(op, dy, h, w, (1, 1), lambda i, j: share)


@impl(G.SliceBackwardOp)
def run_slice_backward(interp, op, dy):
    p = op.p
    dx = np.zeros(p.input_shape, dtype=dy.dtype)
    idx = [slice(None)] * dx.ndim
    for a, s, e, k in zip(p.axes, p.starts, p.ends, p.steps):
        idx[a] = slice(s, e, k)
    dx[tuple(idx)] = dy
    return dx


@impl(G.GatherBackwardOp)
def run_gather_backward(interp, op, dy, indices):
    p = op.p
    dx = np.zeros(p.input_shape, dtype=dy.dtype)
    axis = p.axis % dx.ndim
    np.add.at(dx, (slice(None),) * axis + (indices,), dy)
    if p.padding_idx >= 0:
        dx[(slice(None),) * axis + (p.padding_idx,)] = 0
    return dx


@impl(G.GatherElementsBackwardOp)
def run_gather_elements_backward(interp, op, dy, indices):
    p = op.p
    dx = np.zeros(p.input_shape, dtype=dy.dtype)
    axis = p.axis % dx.ndim
    at = list(np.indices(indices.shape, sparse=True))
    at[axis] = indices
    np.add.at(dx, tuple(at), dy)
    return dx


@impl(G.SoftmaxBackwardOp)
def run_softmax_backward(interp, op, y, dy):
    return y * (dy - (dy * y).sum(axis=op.p.axis, keepdims=True))


@impl(G.LogSoftmaxBackwardOp)
def run_log_softmax_backward(interp, op, y, dy):
    return dy - np.exp(y) * dy.sum(axis=op.p.axis, keepdims=True)


def _norm_axes(op, x):
    return tuple(range(op.p.axis % x.ndim, x.ndim))


def _leading(op, x):
    return tuple(range(op.p.axis % x.ndim))


def _xhat(op, x):
    ax = _norm_axes(op, x)
    mu = x.mean(axis=ax, keepdims=True)
    rstd = 1 / np.sqrt(((x - mu) ** 2).mean(axis=ax, keepdims=True) + op.p.eps)
    return (x - mu) * rstd, rstd


@impl(G.LayerNormBackwardOp)
def run_layer_norm_backward(interp, op, x, gamma, dy):
    ax = _norm_axes(op, x)
    xhat, rstd = _xhat(op, x)
    g = dy * gamma
    return rstd * (g - g.mean(axis=ax, keepdims=True) - xhat * (g * xhat).mean(axis=ax, keepdims=True))


@impl(G.LayerNormBackwardGammaOp)
def run_layer_norm_backward_gamma(interp, op, x, dy):
    return (dy * _xhat(op, x)[0]).sum(axis=_leading(op, x))


def _rms(op, x):
    return 1 / np.sqrt((x * x).mean(axis=_norm_axes(op, x), keepdims=True) + op.p.eps)


@impl(G.RmsNormBackwardOp)
def run_rms_norm_backward(interp, op, x, gamma, dy):
    r = _rms(op, x)
    g = dy * gamma
    return r * g - r**3 * x * (g * x).mean(axis=_norm_axes(op, x), keepdims=True)


@impl(G.RmsNormBackwardGammaOp)
def run_rms_norm_backward_gamma(interp, op, x, dy):
    return (dy * x * _rms(op, x)).sum(axis=_leading(op, x))


@impl(G.CrossEntropyBackwardOp)
def run_cross_entropy_backward(interp, op, logits, labels, dloss):
    from .loss import check_labels

    valid = check_labels(labels, logits.shape[1], op.p.ignore_index)
    safe = np.expand_dims(np.where(valid, labels, 0), 1)
    d = softmax(logits, 1)
    np.put_along_axis(d, safe, np.take_along_axis(d, safe, axis=1) - 1, axis=1)
    d *= np.expand_dims(valid, 1)
    scale = dloss if op.p.reduction == "sum" else dloss / max(valid.sum(), 1)
    return (d * scale).astype(logits.dtype)


@impl(G.GeluBackwardOp)
def run_gelu_backward(interp, op, x, dy):
    if op.p.approximate == "tanh":
        c = np.sqrt(2 / np.pi)
        inner = c * (x + 0.044715 * x**3)
        t = np.tanh(inner)
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    else:
        d = 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    return (dy * d).astype(x.dtype)


@impl(G.SiluBackwardOp)
def run_silu_backward(interp, op, x, dy):
    s = sigmoid(x)
    return dy * s * (1 + x * (1 - s))
