"""Layer decompositions both frontends share (torch_nn_ops.py, onnx_layer_ops.py).

Each function builds a layer that has no `train` op of its own out of ops that do (so VJP rules,
interpreter and kernels come for free). They take a builder `b` with

    b.op(OpClass, *operands, **props) -> value     (folded when every operand is known)
    b.const(array, element=None) -> value          b.scalar(value, element) -> value

which the torch importer provides itself and the ONNX importer through `onnx_layer_ops.Builder`.
Shapes are read from `v.type`, so a value known at import (the ONNX frontend's `Known`) works too.
"""

from __future__ import annotations

from ..ir.ops import elementwise as E
from ..ir.ops import linalg as L
from ..ir.ops import reduce as R
from ..ir.ops import shape as S

NEG_INF = float("-inf")


def shape(v) -> tuple[int, ...]:
    return tuple(v.type.get_shape())


def element(v):
    return v.type.element_type


def reshape(b, x, dims):
    dims = [int(d) for d in dims]
    return x if tuple(dims) == shape(x) else b.op(S.ReshapeOp, x, shape=dims)


def min0(b, x, bound):
    """min(bound, x) with the constant first: `bound < x ? bound : x` keeps a NaN x in C too."""
    return b.op(E.MinimumOp, b.scalar(bound, element(x)), x)


# --- activations ----------------------------------------------------------------------------


def leaky_relu(b, x, negative_slope=0.01):
    el = element(x)
    return b.op(E.WhereOp, b.op(E.GtOp, x, b.scalar(0, el)), x, b.op(E.MulOp, x, b.scalar(negative_slope, el)))


def elu(b, x, alpha=1.0, scale=1.0, input_scale=1.0):
    """x > 0 ? scale·x : scale·alpha·(exp(input_scale·x) - 1); the exp sees min(0, ·), so the
    untaken branch never overflows (its gradient would be 0·inf). SELU is elu with constants."""
    el = element(x)
    neg = b.op(E.ExpOp, min0(b, b.op(E.MulOp, x, b.scalar(input_scale, el)) if input_scale != 1 else x, 0.0))
    neg = b.op(E.MulOp, b.op(E.SubOp, neg, b.scalar(1.0, el)), b.scalar(alpha * scale, el))
    pos = x if scale == 1 else b.op(E.MulOp, x, b.scalar(scale, el))
    return b.op(E.WhereOp, b.op(E.GtOp, x, b.scalar(0, el)), pos, neg)


def softplus(b, x, beta=1.0, threshold=20.0):
    """βx > threshold ? x : log(1 + exp(min(threshold, βx))) / β (torch's decomposition, which
    overflows exp in the untaken branch and so makes NaN gradients, is not used)."""
    el = element(x)
    z = x if beta == 1 else b.op(E.MulOp, x, b.scalar(beta, el))
    soft = b.op(E.LogOp, b.op(E.AddOp, b.op(E.ExpOp, min0(b, z, threshold)), b.scalar(1.0, el)))
    soft = soft if beta == 1 else b.op(E.DivOp, soft, b.scalar(beta, el))
    return b.op(E.WhereOp, b.op(E.GtOp, z, b.scalar(threshold, el)), x, soft)


# --- normalization --------------------------------------------------------------------------


def stats_norm(b, x, axes, eps):
    """(x - mean) · rsqrt(var + eps) over `axes` (biased variance); also (mean, rstd), kept dims."""
    el = element(x)
    mean = b.op(R.MeanOp, x, axes=axes, keepdims=True)
    d = b.op(E.SubOp, x, mean)
    var = b.op(R.MeanOp, b.op(E.MulOp, d, d), axes=axes, keepdims=True)
    rstd = b.op(E.RsqrtOp, b.op(E.AddOp, var, b.scalar(eps, el)))
    return b.op(E.MulOp, d, rstd), mean, rstd


def channel_affine(b, y, weight, bias):
    per_c = (shape(y)[1],) + (1,) * (len(shape(y)) - 2)
    if weight is not None:
        y = b.op(E.MulOp, y, reshape(b, weight, per_c))
    return y if bias is None else b.op(E.AddOp, y, reshape(b, bias, per_c))


# --- 3-D convolution and pooling ------------------------------------------------------------


def depth_windows(b, x, k, stride, pad, dilation, fill=0.0, pad_end=None):
    """The k depth slices of [N, C, D, ...] a 3-D window reads: k tensors [N, C, D_out, ...]."""
    xs = shape(x)
    pad_end = pad if pad_end is None else pad_end
    if pad or pad_end:
        rank = len(xs)
        pads = [0] * (2 * rank)
        pads[2], pads[rank + 2] = pad, pad_end
        x = b.op(L.PadOp, x, pads=pads, value=fill)
    d = xs[2] + pad + pad_end
    d_out = (d - dilation * (k - 1) - 1) // stride + 1
    if d_out < 1:
        raise ValueError(f"window {k} (dilation {dilation}) larger than padded depth {d}")
    return [b.op(S.SliceOp, x, axes=[2], starts=[i * dilation], ends=[i * dilation + stride * (d_out - 1) + 1],
                 steps=[stride]) if (k, d_out, stride) != (1, d, 1) else x for i in range(k)], d_out


def fold_depth(b, y, n, d_out):
    """[N·D_out, C, H, W] → [N, C, D_out, H, W]."""
    ys = shape(y)
    return b.op(S.TransposeOp, reshape(b, y, (n, d_out, *ys[1:])), perm=[0, 2, 1, 3, 4])


def conv3d(b, x, w, stride, padding, dilation, groups, padding_end=None):
    """3-D convolution as one 2-D convolution: the kD depth windows become input channels
    ([N·D_out, C·kD, H, W], channel c·kD + i), the weight [O, C/g, kD, kH, kW] → [O, C/g·kD, kH, kW].
    `padding` is [D, H, W] (both sides) unless `padding_end` gives the ends."""
    (n, c, _, h, wd), (o, cg, kd, kh, kw) = shape(x), shape(w)
    end = padding if padding_end is None else padding_end
    slices, d_out = depth_windows(b, x, kd, stride[0], padding[0], dilation[0], pad_end=end[0])
    stack = b.op(S.ConcatOp, *[reshape(b, s, (n, c, 1, d_out, h, wd)) for s in slices], axis=2) if kd > 1 \
        else reshape(b, slices[0], (n, c, 1, d_out, h, wd))
    cols = reshape(b, b.op(S.TransposeOp, stack, perm=[0, 3, 1, 2, 4, 5]), (n * d_out, c * kd, h, wd))
    pad2 = list(padding[1:]) if padding_end is None else [*padding[1:], *padding_end[1:]]
    y = b.op(L.Conv2dOp, cols, reshape(b, w, (o, cg * kd, kh, kw)), stride=list(stride[1:]), padding=pad2,
             dilation=list(dilation[1:]), groups=groups)
    return fold_depth(b, y, n, d_out)


def _depth_to_batch(b, m, n, c, d_out):
    return reshape(b, b.op(S.TransposeOp, m, perm=[0, 2, 1, 3, 4]), (n * d_out, c, *shape(m)[3:]))


def max_pool3d(b, x, k, s, p, d, p_end=None):
    """Max over the depth window (elementwise maxima of its slices), then max_pool2d."""
    end = p if p_end is None else p_end
    slices, d_out = depth_windows(b, x, k[0], s[0], p[0], d[0], fill=NEG_INF, pad_end=end[0])
    m = slices[0]
    for t in slices[1:]:
        m = b.op(E.MaximumOp, m, t)
    n, c = shape(x)[:2]
    pad2 = list(p[1:]) if p_end is None else [*p[1:], *p_end[1:]]
    y = b.op(L.MaxPool2dOp, _depth_to_batch(b, m, n, c, d_out), kernel=list(k[1:]), stride=list(s[1:]),
             padding=pad2, dilation=list(d[1:]))
    return fold_depth(b, y, n, d_out)


def avg_pool3d(b, x, k, s, p, p_end=None):
    """Mean over the depth window, then avg_pool2d; padding counts in the divisor (separable)."""
    end = p if p_end is None else p_end
    slices, d_out = depth_windows(b, x, k[0], s[0], p[0], 1, pad_end=end[0])
    m = slices[0]
    for t in slices[1:]:
        m = b.op(E.AddOp, m, t)
    if k[0] > 1:
        m = b.op(E.MulOp, m, b.scalar(1 / k[0], element(x)))
    n, c = shape(x)[:2]
    pad2 = list(p[1:]) if p_end is None else [*p[1:], *p_end[1:]]
    y = b.op(L.AvgPool2dOp, _depth_to_batch(b, m, n, c, d_out), kernel=list(k[1:]), stride=list(s[1:]),
             padding=pad2, count_include_pad=True)
    return fold_depth(b, y, n, d_out)
