"""Core ATen → `train`, the layers of common models that have no train op of their own.

Each lowering is a decomposition into ops the dialect already has (with their VJP rules,
interpreter implementations and C map forms), except transposed convolution, which is its own
op (`train.conv_transpose2d`, whose forward is conv2d's input-gradient kernel):

    scaled_dot_product_attention   softmax(q·kᵀ·scale + mask) · v, decomposed (matmul, softmax)
    leaky_relu, elu (SELU), softplus   where / exp / log forms, overflow-safe in both directions
    native_group_norm, _native_batch_norm_legit (InstanceNorm, batch statistics)
    convolution (transposed; 3-D)   conv_transpose2d; 3-D as a 2-D conv over depth windows
    max_pool3d, avg_pool3d          a max / mean over depth slices, then the 2-D pool
    upsample_nearest2d, upsample_bilinear2d   gathers with import-time indices and weights

Registered into torch_ops.ATEN (frontends/torch_import.py imports this module).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import linalg as L
from ..ir.ops import norm as N
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from . import decompositions as D
from .torch_import import Unavailable, Unsupported
from .torch_ops import cast, lower, reshape, shape

aten = torch.ops.aten
NEG_INF = float("-inf")


def _t(b, v):
    r = len(shape(v))
    return b.op(S.TransposeOp, v, perm=[*range(r - 2), r - 1, r - 2])


_min0 = D.min0  # shared with the ONNX frontend (decompositions.py)


# --- attention ------------------------------------------------------------------------------


def attention(b, q, k, v, mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """torch's scaled_dot_product_attention, math form:

        s = q·kᵀ·scale (+ mask, or -inf where a bool mask / the causal triangle is False)
        y = softmax(s, -1) · v, rows whose scores are all -inf giving 0 (torch's _safe_softmax)

    Grouped-query attention (fewer k/v heads than q heads) repeats each k/v head."""
    if dropout_p:
        raise Unsupported(f"attention dropout (dropout_p={dropout_p}): import module.eval()")
    el, qs, ks = T.element(q), shape(q), shape(k)
    if len(qs) >= 3 and len(ks) >= 3 and qs[-3] != ks[-3]:
        if qs[-3] % ks[-3]:
            raise Unsupported(f"{qs[-3]} query heads over {ks[-3]} key/value heads")
        k, v = _repeat_heads(b, k, qs[-3] // ks[-3]), _repeat_heads(b, v, qs[-3] // ks[-3])
    scale = 1 / math.sqrt(qs[-1]) if scale is None else scale
    s = b.op(E.MulOp, b.op(L.MatmulOp, q, _t(b, k)), b.scalar(scale, el))
    may_mask_rows = False
    if is_causal:
        s = b.op(E.WhereOp, b.const(np.tril(np.ones((qs[-2], ks[-2]), bool))), s, b.scalar(NEG_INF, el))
    if mask is not None:
        known = b.array(mask)
        if T.element(mask) == T.i1:
            s = b.op(E.WhereOp, mask, s, b.scalar(NEG_INF, el))
            may_mask_rows = known is None or not np.broadcast_to(known, (*known.shape[:-1], ks[-2])).any(-1).all()
        else:
            s = b.op(E.AddOp, s, cast(b, mask, el))
            may_mask_rows = known is None or bool(np.isneginf(known).any())
    if may_mask_rows:  # a fully masked row gives 0, not NaN: finite scores in, zeros out (no NaN gradient)
        live = b.op(R.AnyOp, b.op(E.NeOp, s, b.scalar(NEG_INF, el)), axes=[len(shape(s)) - 1], keepdims=True)
        p = b.op(R.SoftmaxOp, b.op(E.WhereOp, live, s, b.scalar(0.0, el)), axis=-1)
        p = b.op(E.WhereOp, live, p, b.scalar(0.0, el))
    else:
        p = b.op(R.SoftmaxOp, s, axis=-1)
    y = b.op(L.MatmulOp, p, v)

    def logsumexp():  # the flash variants' second output, built only when read
        m = b.op(R.MaxOp, s, axes=[len(shape(s)) - 1], keepdims=True)
        z = b.op(R.SumOp, b.op(E.ExpOp, b.op(E.SubOp, s, m)), axes=[len(shape(s)) - 1], keepdims=True)
        return reshape(b, b.op(E.AddOp, m, b.op(E.LogOp, z)), shape(s)[:-1])

    return y, logsumexp


def _repeat_heads(b, x, n):
    """repeat_interleave(x, n, dim=-3): [.., H, S, E] → [.., H·n, S, E]."""
    xs = shape(x)
    y = b.op(S.BroadcastOp, reshape(b, x, (*xs[:-2], 1, *xs[-2:])), shape=[*xs[:-2], n, *xs[-2:]])
    return reshape(b, y, (*xs[:-3], xs[-3] * n, *xs[-2:]))


@lower(aten.scaled_dot_product_attention.default)
def sdpa(b, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False):
    return attention(b, q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)[0]


@lower(aten._scaled_dot_product_flash_attention_for_cpu.default)
def sdpa_flash_cpu(b, q, k, v, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    return attention(b, q, k, v, attn_mask, dropout_p, is_causal, scale)


@lower(aten._scaled_dot_product_attention_math.default)
def sdpa_math(b, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, dropout_mask=None, *, scale=None,
              enable_gqa=False):
    if dropout_mask is not None:
        raise Unsupported("attention with a dropout mask")
    y, _ = attention(b, q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    return y, Unavailable("the attention weights of _scaled_dot_product_attention_math")


@lower(aten._scaled_dot_product_efficient_attention.default)
def sdpa_efficient(b, q, k, v, attn_bias, compute_log_sumexp, dropout_p=0.0, is_causal=False, *, scale=None):
    y, lse = attention(b, q, k, v, attn_bias, dropout_p, is_causal, scale)
    return y, lse, Unavailable("the philox seed of attention"), Unavailable("the philox offset of attention")


@lower(aten._scaled_dot_product_flash_attention.default)
def sdpa_flash(b, q, k, v, dropout_p=0.0, is_causal=False, return_debug_mask=False, *, scale=None):
    y, lse = attention(b, q, k, v, None, dropout_p, is_causal, scale)
    return (y, lse, *[Unavailable(f"output {i} of _scaled_dot_product_flash_attention") for i in range(2, 9)])


# --- activations ----------------------------------------------------------------------------


@lower(aten.leaky_relu.default)
def leaky_relu(b, x, negative_slope=0.01):
    return D.leaky_relu(b, x, negative_slope)


@lower(aten.elu.default)
def elu(b, x, alpha=1.0, scale=1.0, input_scale=1.0):
    return D.elu(b, x, alpha, scale, input_scale)


@lower(aten.softplus.default)
def softplus(b, x, beta=1.0, threshold=20.0):
    return D.softplus(b, x, beta, threshold)


@lower(aten.log1p.default)
def log1p(b, x):
    el = b.out_element()
    return b.op(E.LogOp, b.op(E.AddOp, cast(b, x, el), b.scalar(1.0, el)))


# --- normalization --------------------------------------------------------------------------


_stats_norm = D.stats_norm  # shared with the ONNX frontend (decompositions.py)
_channel_affine = D.channel_affine


@lower(aten.native_group_norm.default)
def group_norm(b, x, weight, bias, n, c, hw, group, eps):
    """GroupNorm: layer_norm over each group's [C/G, H, W] (affine ones/zeros), then γ, β per channel."""
    xs, el = shape(x), T.element(x)
    size = math.prod(xs[1:]) // group
    g = reshape(b, x, (xs[0], group, size))
    ones, zeros = b.const(np.ones(size), el), b.const(np.zeros(size), el)
    y = _channel_affine(b, reshape(b, b.op(N.LayerNormOp, g, ones, zeros, axis=-1, eps=eps), xs), weight, bias)

    def stats():
        _, mean, rstd = _stats_norm(b, g, [2], eps)
        return reshape(b, mean, (xs[0], group)), reshape(b, rstd, (xs[0], group))

    return y, lambda: stats()[0], lambda: stats()[1]


@lower(aten._native_batch_norm_legit.no_stats)
def batch_norm_batch_stats(b, x, weight, bias, training, momentum, eps):
    """Normalization with the batch's own statistics and no running ones: InstanceNorm (as torch
    exports it, a batch norm of [1, N·C, H, W]) and BatchNorm(track_running_stats=False)."""
    y, mean, rstd = _stats_norm(b, x, [0, *range(2, len(shape(x)))], eps)
    c = shape(x)[1]
    return (_channel_affine(b, y, weight, bias), lambda: reshape(b, mean, (c,)), lambda: reshape(b, rstd, (c,)))


@lower(aten.repeat.default)
def repeat(b, x, repeats):
    """x.repeat(r): tile, as a broadcast over interleaved unit dims and a reshape."""
    xs = (1,) * (len(repeats) - len(shape(x))) + shape(x)
    if all(r == 1 for r in repeats):
        return reshape(b, x, xs)
    inter = [d for s in xs for d in (1, s)]
    y = b.op(S.BroadcastOp, reshape(b, x, inter), shape=[d for r, s in zip(repeats, xs) for d in (r, s)])
    return reshape(b, y, [r * s for r, s in zip(repeats, xs)])


# --- convolution and pooling ----------------------------------------------------------------


def conv_transpose(b, x, w, stride, padding, dilation, output_padding, groups):
    if len(shape(x)) == 3:  # 1-d as a 2-d of height 1
        x, w = reshape(b, x, (*shape(x)[:2], 1, shape(x)[2])), reshape(b, w, (*shape(w)[:2], 1, shape(w)[2]))
        y = b.op(L.ConvTranspose2dOp, x, w, stride=[1, stride[0]], padding=[0, padding[0]],
                 dilation=[1, dilation[0]], output_padding=[0, output_padding[0]], groups=groups)
        return reshape(b, y, (shape(y)[0], shape(y)[1], shape(y)[3]))
    if len(shape(x)) != 4:
        raise Unsupported(f"{len(shape(x)) - 2}-d transposed convolution")
    return b.op(L.ConvTranspose2dOp, x, w, stride=stride, padding=padding, dilation=dilation,
                output_padding=output_padding, groups=groups)


def conv3d(b, x, w, stride, padding, dilation, groups):
    try:
        return D.conv3d(b, x, w, stride, padding, dilation, groups)
    except ValueError as e:
        raise Unsupported(str(e)) from None


def _no_ceil_3d(ceil_mode, what):
    if ceil_mode:
        raise Unsupported(f"{what} with ceil_mode=True")


def _triple(v):
    v = [v] if isinstance(v, int) else list(v)
    return v * 3 if len(v) == 1 else v


@lower(aten.max_pool3d_with_indices.default)
def max_pool3d(b, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    """Max over the depth window (elementwise maxima of its slices), then max_pool2d."""
    _no_ceil_3d(ceil_mode, "max_pool3d")
    k, s, p, d = _triple(kernel_size), _triple(stride or kernel_size), _triple(padding), _triple(dilation)
    try:
        y = D.max_pool3d(b, x, k, s, p, d)
    except ValueError as e:
        raise Unsupported(str(e)) from None
    return y, Unavailable("the indices of max_pool3d_with_indices")


@lower(aten.avg_pool3d.default)
def avg_pool3d(b, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over the depth window, then avg_pool2d (separable when padding counts in the divisor)."""
    _no_ceil_3d(ceil_mode, "avg_pool3d")
    k, s, p = _triple(kernel_size), _triple(stride or kernel_size), _triple(padding)
    if divisor_override is not None or (not count_include_pad and any(p)):
        raise Unsupported("avg_pool3d with divisor_override or count_include_pad=False and padding")
    try:
        return D.avg_pool3d(b, x, k, s, p)
    except ValueError as e:
        raise Unsupported(str(e)) from None


# --- upsampling -----------------------------------------------------------------------------


def _source_scale(n_in, n_out, align_corners, scale):
    """torch's area_pixel_compute_scale: input pixels per output pixel (float32, as its kernels)."""
    if align_corners:
        return np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0)
    return np.float32(1 / scale) if scale is not None and scale > 0 else np.float32(n_in / n_out)


def _scales(scale_factors, rank):
    if scale_factors is None:
        return [None] * rank
    return list(scale_factors) if len(scale_factors) == rank else list(scale_factors) * rank


def _nearest(b, x, scale_factors, exact):
    y = x
    out = b.out_shape()
    for axis, sc in zip((2, 3), _scales(scale_factors, 2)):
        n_in, n_out = shape(x)[axis], out[axis]
        scale = _source_scale(n_in, n_out, False, sc)
        dst = np.arange(n_out, dtype=np.float32)
        src = np.floor((dst + np.float32(0.5)) * scale if exact else dst * scale).astype(np.int64)
        idx = np.minimum(src, n_in - 1)
        if n_out != n_in or (idx != np.arange(n_in)).any():
            y = b.op(S.GatherOp, y, b.const(idx), axis=axis)
    return y


@lower(aten.upsample_nearest2d.vec)
def upsample_nearest(b, x, output_size, scale_factors):
    return _nearest(b, x, scale_factors, exact=False)


@lower(aten._upsample_nearest_exact2d.vec)
def upsample_nearest_exact(b, x, output_size, scale_factors):
    return _nearest(b, x, scale_factors, exact=True)


@lower(aten.upsample_nearest2d.default)
def upsample_nearest_default(b, x, output_size, scales_h=None, scales_w=None):
    return _nearest(b, x, None if scales_h is None else [scales_h, scales_w], exact=False)


@lower(aten.upsample_bilinear2d.vec)
def upsample_bilinear(b, x, output_size, align_corners, scale_factors):
    """Separable: along H then W, y = x[i0]·(1 - λ) + x[i1]·λ with the indices and weights of
    torch's kernel computed at import."""
    y, el, out = x, T.element(x), b.out_shape()
    for axis, sc in zip((2, 3), _scales(scale_factors, 2)):
        n_in, n_out = shape(x)[axis], out[axis]
        scale = _source_scale(n_in, n_out, align_corners, sc)
        dst = np.arange(n_out, dtype=np.float32)
        src = dst * scale if align_corners else np.maximum((dst + np.float32(0.5)) * scale - np.float32(0.5), 0)
        i0 = src.astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        lam = (src - i0).astype(np.float32)
        if n_in == n_out and not lam.any() and (i0 == np.arange(n_in)).all():
            continue
        bshape = (n_out,) + (1,) * (3 - axis)
        lo = b.op(E.MulOp, b.op(S.GatherOp, y, b.const(i0), axis=axis), b.const((1 - lam).reshape(bshape), el))
        hi = b.op(E.MulOp, b.op(S.GatherOp, y, b.const(i1), axis=axis), b.const(lam.reshape(bshape), el))
        y = b.op(E.AddOp, lo, hi)
    return y


@lower(aten.upsample_bilinear2d.default)
def upsample_bilinear_default(b, x, output_size, align_corners, scales_h=None, scales_w=None):
    return upsample_bilinear(b, x, output_size, align_corners, None if scales_h is None else [scales_h, scales_w])

