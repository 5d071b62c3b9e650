"""ONNX translations for layers: Conv, pooling, Gemm/MatMul, normalizations, LRN, Pad,
Dropout and SoftmaxCrossEntropyLoss (elementwise and shape ops: onnx_ops.py).

The dialect's windows are 2-D (NCHW): 1-D convolutions and pools are lifted to 2-D with a
unit height, exactly; 3-D ones become 2-D ones over depth windows (decompositions.py). ONNX pads are [x1_begin, x2_begin, ..,
x1_end, x2_end], the dialect's [top, left, bottom, right] is the same order for 2-D.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import linalg as L
from ..ir.ops import loss as Lo
from ..ir.ops import norm as N
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from . import decompositions as D
from .onnx_importer import Known, element, shape, translates
from .onnx_math_ops import Builder
from .onnx_ops import axis_of, gather_elements, reshape, scalar


def _window(n, x, kernel):
    """strides, dilations, pads before and after for each spatial dim (auto_pad resolved)."""
    k = len(kernel)
    strides = n.attr("strides") or [1] * k
    dil = n.attr("dilations") or [1] * k
    auto = n.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = n.attr("pads") or [0] * (2 * k)
        return strides, dil, list(pads[:k]), list(pads[k:])
    if auto == "VALID":
        return strides, dil, [0] * k, [0] * k
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise n.error(f"unknown auto_pad {auto!r}")
    lo, hi = [], []
    for size, kk, s, d in zip(shape(x)[2:], kernel, strides, dil):
        total = max((math.ceil(size / s) - 1) * s + (kk - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        lo.append(small if auto == "SAME_UPPER" else big)
        hi.append(big if auto == "SAME_UPPER" else small)
    return strides, dil, lo, hi


def _lift(g, n, x, what):
    """[N, C, L] → [N, C, 1, L]; 2-D passes; other ranks are refused."""
    rank = len(shape(x))
    if rank == 4:
        return x
    if rank == 3:
        return reshape(g, x, [*shape(x)[:2], 1, shape(x)[2]])
    raise n.error(f"{rank - 2}-D {what} is not supported (1-D, 2-D and 3-D are)")


def _spatial(vals, one, rank):
    return ([one] if rank == 3 else []) + list(vals)


@translates("Conv", 1)
def conv(g, n):
    x, w = n.input(0), n.input(1)
    rank, ws = len(shape(x)), shape(w)
    strides, dil, lo, hi = _window(n, x, ws[2:])
    if rank == 5:  # one 2-D convolution over the depth windows (decompositions.conv3d)
        y = D.conv3d(Builder(g), x, w, strides, lo, dil, n.attr("group", 1), padding_end=hi)
        return g.emit(E.AddOp, y, reshape(g, n.input(2), [ws[0], 1, 1, 1])) if n.has(2) else y
    x4 = _lift(g, n, x, "convolution")
    w4 = _lift(g, n, w, "convolution")
    y = g.emit(L.Conv2dOp, x4, w4, stride=_spatial(strides, 1, rank), dilation=_spatial(dil, 1, rank),
               padding=[*_spatial(lo, 0, rank), *_spatial(hi, 0, rank)], groups=n.attr("group", 1))
    if n.has(2):
        y = g.emit(E.AddOp, y, reshape(g, n.input(2), [ws[0], 1, 1]))
    return reshape(g, y, [*shape(y)[:2], shape(y)[3]]) if rank == 3 else y


def _pool(g, n, op, x=None, **extra):
    x = n.input(0) if x is None else x
    rank = len(shape(x))
    kernel = n.attr("kernel_shape")
    strides, dil, lo, hi = _window(n, x, kernel)
    if rank == 5:
        return _pool3d(g, n, op, x, kernel, strides, dil, lo, hi, extra)
    x4 = _lift(g, n, x, "pooling")
    if op is L.MaxPool2dOp:
        extra["dilation"] = _spatial(dil, 1, rank)
    elif any(d != 1 for d in dil):
        raise n.error("AveragePool with dilations is not supported")
    y = g.emit(op, x4, kernel=_spatial(kernel, 1, rank),
               stride=_spatial(strides, 1, rank), padding=[*_spatial(lo, 0, rank), *_spatial(hi, 0, rank)],
               ceil_mode=bool(n.attr("ceil_mode", 0)), **extra)
    return reshape(g, y, [*shape(y)[:2], shape(y)[3]]) if rank == 3 else y


def _pool3d(g, n, op, x, kernel, strides, dil, lo, hi, extra):
    """Depth slices reduced elementwise, then the 2-D pool (decompositions.max_pool3d/avg_pool3d)."""
    if n.attr("ceil_mode", 0):
        raise n.error("3-D pooling with ceil_mode=1 is not supported")
    if op is L.MaxPool2dOp:
        return D.max_pool3d(Builder(g), x, kernel, strides, lo, dil, p_end=hi)
    if any(d != 1 for d in dil):
        raise n.error("AveragePool with dilations is not supported")
    if not extra["count_include_pad"] and any(lo + hi):
        raise n.error("3-D AveragePool with padding and count_include_pad=0 is not supported")
    return D.avg_pool3d(Builder(g), x, kernel, strides, lo, p_end=hi)


@translates("MaxPool", 1)
def max_pool(g, n):
    if n.wants(1):
        raise n.error("the Indices output of MaxPool is not supported")
    x = n.input(0)
    if element(x) in (T.i8, T.ui8):  # 8-bit values are exact in f32: pool them as floats
        from ..ir.ops import quant as Q  # (train.cast has no 8-bit types: the identity affine maps)

        one, zero = Known(np.ones((), np.float32)), Known(np.zeros((), T.numpy_dtype(element(x))))
        return g.emit(Q.QuantizeOp, _pool(g, n, L.MaxPool2dOp, g.emit(Q.DequantizeOp, x, one, zero)), one, zero)
    return _pool(g, n, L.MaxPool2dOp)


@translates("AveragePool", 1)
def avg_pool(g, n):
    return _pool(g, n, L.AvgPool2dOp, count_include_pad=bool(n.attr("count_include_pad", 0)))


@translates("GlobalAveragePool", 1)
def global_avg_pool(g, n):
    x = n.input(0)
    rank = len(shape(x))
    if rank == 4:
        return g.emit(L.GlobalAvgPoolOp, x)
    return g.emit(R.MeanOp, x, axes=list(range(2, rank)), keepdims=True)


@translates("Gemm", 1)
def gemm(g, n):
    """y = alpha · A' · B' + beta · C; with transB it is the canonical Linear (x · Wᵀ)."""
    a, b = n.input(0), n.input(1)
    if n.attr("transA", 0):
        a = g.emit(S.TransposeOp, a, perm=[1, 0])
    y = g.emit(L.LinearOp, a, b) if n.attr("transB", 0) else g.emit(L.MatmulOp, a, b)
    alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
    if alpha != 1.0:
        y = g.emit(E.MulOp, y, scalar(g, alpha, y))
    if n.has(2) and beta != 0.0:
        c = n.input(2)
        if beta != 1.0:
            c = g.emit(E.MulOp, c, scalar(g, beta, c))
        y = g.emit(E.AddOp, y, c)
    return y


@translates("MatMul", 1)
def matmul(g, n):
    """numpy matmul: a 1-D operand gets a unit dim that is dropped again afterwards."""
    a, b = n.input(0), n.input(1)
    ra, rb = len(shape(a)), len(shape(b))
    if ra == 1:
        a = reshape(g, a, [1, shape(a)[0]])
    if rb == 1:
        b = reshape(g, b, [shape(b)[0], 1])
    y = g.emit(L.MatmulOp, a, b)
    out = list(shape(y))
    if rb == 1:
        out.pop(-1)
    if ra == 1:
        out.pop(-1 if rb == 1 else -2)
    return reshape(g, y, out)


@translates("BatchNormalization", 6)
def batch_norm(g, n):
    if any(n.wants(i) for i in range(1, 5)) or n.attr("training_mode", 0):
        raise n.error("training-mode BatchNormalization is not supported (inference form only)")
    if n.opset < 9 and n.attr("spatial", 1) == 0:
        raise n.error("BatchNormalization with spatial=0 is not supported")
    return g.emit(N.BatchNormOp, *[n.input(i) for i in range(5)], eps=n.attr("epsilon", 1e-5))


@translates("LayerNormalization", 17)
def layer_norm(g, n):
    x, gamma = n.input(0), n.input(1)
    xs = shape(x)
    axis = axis_of(n, x, n.attr("axis", -1))
    eps = n.attr("epsilon", 1e-5)
    if shape(gamma) != xs[axis:]:
        gamma = g.emit(S.BroadcastOp, gamma, shape=list(xs[axis:]))
    beta = n.input(2) if n.has(2) else Known(np.zeros(xs[axis:], T.numpy_dtype(x.type.element_type)))
    if shape(beta) != xs[axis:]:
        beta = g.emit(S.BroadcastOp, beta, shape=list(xs[axis:]))
    outs = [g.emit(N.LayerNormOp, x, gamma, beta, axis=axis, eps=eps)]
    if n.wants(1) or n.wants(2):  # the statistics, spelled out
        axes = list(range(axis, len(xs)))
        mean = g.emit(R.MeanOp, x, axes=axes, keepdims=True)
        d = g.emit(E.SubOp, x, mean)
        var = g.emit(R.MeanOp, g.emit(E.MulOp, d, d), axes=axes, keepdims=True)
        outs += [mean, g.emit(E.RsqrtOp, g.emit(E.AddOp, var, scalar(g, eps, var)))]
    return outs


@translates("LRN", 1)
def lrn(g, n):
    """y = x / (bias + alpha/size · Σ_{channel window} x²)^beta, with the window sum as a
    count-including-pad average pool (÷ size) over channels."""
    x = n.input(0)
    xs = shape(x)
    if len(xs) < 3:
        raise n.error(f"LRN needs [N, C, ...] input, got {T.fmt(xs)}")
    size = n.attr("size")
    alpha, beta, bias = n.attr("alpha", 1e-4), n.attr("beta", 0.75), n.attr("bias", 1.0)
    sq = reshape(g, g.emit(E.MulOp, x, x), [xs[0], 1, xs[1], math.prod(xs[2:])])
    lo = (size - 1) // 2
    avg = g.emit(L.AvgPool2dOp, sq, kernel=[size, 1], stride=[1, 1], padding=[lo, 0, size - 1 - lo, 0],
                 count_include_pad=True)
    avg = reshape(g, avg, xs)
    base = g.emit(E.AddOp, g.emit(E.MulOp, avg, scalar(g, alpha, avg)), scalar(g, bias, avg))
    return g.emit(E.DivOp, x, g.emit(E.PowOp, base, scalar(g, beta, base)))


@translates("Dropout", 1)
def dropout(g, n):
    x = n.input(0)
    if n.opset >= 12 and n.has(2) and bool(n.const(2).item()):
        ratio = float(n.const(1).item()) if n.has(1) else 0.5
        if ratio != 0.0:
            raise n.error("Dropout in training mode is not supported (inference form only)")
    if not n.wants(1):
        return x
    mask = np.ones(shape(x), bool if n.opset >= 10 else T.numpy_dtype(x.type.element_type))
    return [x, Known(mask)]


@translates("Pad", 2, 10)
def pad_attr(g, n):
    return _pad(g, n, n.input(0), list(n.attr("pads")), n.attr("mode", "constant"), n.attr("value", 0.0))


@translates("Pad", 11)
def pad_inputs(g, n):
    x = n.input(0)
    pads = n.ints(1)
    value = n.const(2)
    axes = n.ints(3)
    if axes is not None:  # Pad-18: pads for the listed axes only
        r, k = len(shape(x)), len(axes)
        full = [0] * (2 * r)
        for i, a in enumerate(axes):
            a = axis_of(n, x, a)
            full[a], full[a + r] = pads[i], pads[i + k]
        pads = full
    return _pad(g, n, x, pads, n.attr("mode", "constant"), 0.0 if value is None else value.item())


def _pad(g, n, x, pads, mode, value):
    if mode == "constant":
        return g.emit(L.PadOp, x, pads=pads, value=float(value))
    if mode not in ("reflect", "edge", "wrap"):
        raise n.error(f"unknown pad mode {mode!r}")
    r = len(shape(x))
    for a in range(r):  # crop (negative pads), then gather the indices np.pad would visit
        lo, hi = pads[a], pads[a + r]
        d = shape(x)[a]
        if lo < 0 or hi < 0:
            x = g.emit(S.SliceOp, x, axes=[a], starts=[max(-lo, 0)], ends=[d - max(-hi, 0)])
            d = shape(x)[a]
        if lo > 0 or hi > 0:
            idx = np.pad(np.arange(d, dtype=np.int64), (max(lo, 0), max(hi, 0)), mode=mode)
            x = g.emit(S.GatherOp, x, Known(idx), axis=a)
    return x


@translates("SoftmaxCrossEntropyLoss", 12)
def softmax_cross_entropy(g, n):
    """train.cross_entropy when unweighted with mean/sum; otherwise spelled out:
    loss_i = -w[y_i] · log_softmax(x)_i[y_i], mean = Σ loss / Σ w over kept labels."""
    x, y = n.input(0), n.input(1)
    reduction = n.attr("reduction", "mean")
    ignore = n.attr("ignore_index")
    logp = g.emit(R.LogSoftmaxOp, x, axis=1)
    if not n.has(2) and reduction in ("mean", "sum"):
        ce = g.emit(Lo.CrossEntropyOp, x, y, reduction=reduction, ignore_index=ignore)
        return [ce, logp] if n.wants(1) else ce
    loss = nll(g, logp, y, n.input(2) if n.has(2) else None, reduction, ignore)
    return [loss, logp] if n.wants(1) else loss


@translates("NegativeLogLikelihoodLoss", 12)
def negative_log_likelihood(g, n):
    return nll(g, n.input(0), n.input(1), n.input(2) if n.has(2) else None, n.attr("reduction", "mean"),
               n.attr("ignore_index"))


def nll(g, logp, y, weight, reduction, ignore):
    """loss_i = -w[y_i] · logp_i[y_i] over kept labels; mean = Σ loss / Σ w (ONNX's definition)."""
    y = g.emit(E.CastOp, y, to="i64") if y.type.element_type != T.i64 else y
    valid = None
    if ignore is not None:
        valid = g.emit(E.NeOp, y, scalar(g, ignore, y))
        y = g.emit(E.WhereOp, valid, y, scalar(g, 0, y))
    ys = list(shape(y))
    picked = gather_elements(g, logp, reshape(g, y, [ys[0], 1, *ys[1:]]), 1)
    loss = g.emit(E.NegOp, reshape(g, picked, ys))
    weight = g.emit(S.GatherOp, weight, y, axis=0) if weight is not None else None
    if weight is not None:
        loss = g.emit(E.MulOp, loss, weight)
    if valid is not None:
        zero = scalar(g, 0, loss)
        loss = g.emit(E.WhereOp, valid, loss, zero)
        kept = g.emit(E.CastOp, valid, to=str(loss.type.element_type))
        weight = kept if weight is None else g.emit(E.WhereOp, valid, weight, zero)
    if reduction != "none":
        axes = list(range(len(ys)))
        total = g.emit(R.SumOp, loss, axes=axes)
        if reduction == "mean":
            count = g.emit(R.SumOp, weight, axes=axes) if weight is not None else scalar(g, math.prod(ys), total)
            total = g.emit(E.DivOp, total, count)
        loss = total
    return loss
