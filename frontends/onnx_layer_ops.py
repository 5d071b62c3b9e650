"""ONNX translations of layers beyond onnx_nn_ops.py: RMSNormalization, InstanceNormalization,
GroupNormalization, MeanVarianceNormalization, LpNormalization, ConvTranspose, Resize, Attention,
RotaryEmbedding, Hardmax, LpPool, CenterCropPad, OneHot and GridSample (2-D).

All are decompositions into existing `train` ops (statistics norms as in decompositions.py, the
shared helpers of the torch frontend), except ConvTranspose, which is `train.conv_transpose2d`
(1-D lifted to 2-D). Resize (nearest, linear, cubic) gathers with indices and weights computed
at import, one axis at a time, following the ONNX coordinate transformations.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import linalg as L
from ..ir.ops import norm as N
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from . import decompositions as D
from .onnx_importer import Known, element, shape, translates
from .onnx_math_ops import Builder
from .onnx_ops import axis_of, reshape, scalar

# --- normalizations ------------------------------------------------------------------------------


@translates("RMSNormalization", 23)
def rms_norm(g, n):
    x, gamma = n.input(0), n.input(1)
    xs = shape(x)
    axis = axis_of(n, x, n.attr("axis", -1))
    if shape(gamma) != xs[axis:]:
        gamma = g.emit(S.BroadcastOp, gamma, shape=list(xs[axis:]))
    return g.emit(N.RmsNormOp, x, gamma, axis=axis, eps=n.attr("epsilon", 1e-5))


@translates("InstanceNormalization", 6)
def instance_norm(g, n):
    x = n.input(0)
    y, _, _ = D.stats_norm(Builder(g), x, list(range(2, len(shape(x)))), n.attr("epsilon", 1e-5))
    return D.channel_affine(Builder(g), y, n.input(1), n.input(2))


@translates("GroupNormalization", 18)
def group_norm(g, n):
    """Statistics over each group's channels and positions; scale/bias per group (opset 18)
    or per channel (21)."""
    x, scale, bias = n.input(0), n.input(1), n.input(2)
    xs = shape(x)
    groups = n.attr("num_groups")
    c = xs[1]
    if c % groups:
        raise n.error(f"{c} channels do not split into {groups} groups")
    grouped = reshape(g, x, [xs[0], groups, math.prod(xs[1:]) // groups])
    y, _, _ = D.stats_norm(Builder(g), grouped, [2], n.attr("epsilon", 1e-5))
    y = reshape(g, y, xs)
    if shape(scale) == (groups,) and groups != c:  # opset 18: one value per group
        idx = Known(np.repeat(np.arange(groups, dtype=np.int64), c // groups))
        scale, bias = g.emit(S.GatherOp, scale, idx, axis=0), g.emit(S.GatherOp, bias, idx, axis=0)
    return D.channel_affine(Builder(g), y, scale, bias)


@translates("MeanVarianceNormalization", 9)
def mean_variance_norm(g, n):
    x = n.input(0)
    axes = [axis_of(n, x, a) for a in n.attr("axes", [0, 2, 3])]
    mean = g.emit(R.MeanOp, x, axes=axes, keepdims=True)
    d = g.emit(E.SubOp, x, mean)
    var = g.emit(R.MeanOp, g.emit(E.MulOp, d, d), axes=axes, keepdims=True)
    return g.emit(E.DivOp, d, g.emit(E.AddOp, g.emit(E.SqrtOp, var), scalar(g, 1e-9, var)))


@translates("LpNormalization", 1)
def lp_norm(g, n):
    x = n.input(0)
    axis = axis_of(n, x, n.attr("axis", -1))
    p = n.attr("p", 2)
    if p == 1:
        norm = g.emit(R.SumOp, g.emit(E.AbsOp, x), axes=[axis], keepdims=True)
    elif p == 2:
        norm = g.emit(E.SqrtOp, g.emit(R.SumOp, g.emit(E.MulOp, x, x), axes=[axis], keepdims=True))
    else:
        raise n.error(f"LpNormalization with p={p} is not supported (1 and 2 are)")
    zero = g.emit(E.EqOp, norm, scalar(g, 0, norm))  # a zero vector stays zero (ONNX's reference)
    return g.emit(E.WhereOp, zero, scalar(g, 0, x), g.emit(E.DivOp, x, norm))


# --- transposed convolution ------------------------------------------------------------------------


@translates("ConvTranspose", 1)
def conv_transpose(g, n):
    x, w = n.input(0), n.input(1)
    rank, ws = len(shape(x)), shape(w)
    if rank not in (3, 4):
        raise n.error(f"{rank - 2}-D ConvTranspose is not supported (1-D and 2-D are)")
    k = len(ws) - 2
    strides = list(n.attr("strides") or [1] * k)
    dil = list(n.attr("dilations") or [1] * k)
    out_pad = list(n.attr("output_padding") or [0] * k)
    pads = list(n.attr("pads") or [0] * (2 * k))
    auto = n.attr("auto_pad", "NOTSET")
    out_shape = n.attr("output_shape")
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        ins = shape(x)[2:]
        target = list(out_shape)[-k:] if out_shape is not None else [i * s for i, s in zip(ins, strides)]
        lo, hi = [], []
        for i in range(k):
            total = strides[i] * (ins[i] - 1) + out_pad[i] + (ws[2 + i] - 1) * dil[i] + 1 - target[i]
            if total < 0:  # ONNX: the extra output gets output padding
                out_pad[i] -= total
                total = 0
            small, big = total // 2, total - total // 2
            lo.append(small if auto == "SAME_UPPER" else big)
            hi.append(big if auto == "SAME_UPPER" else small)
        pads = lo + hi
    elif auto == "VALID":
        pads = [0] * (2 * k)
    if k == 1:
        x = reshape(g, x, [*shape(x)[:2], 1, shape(x)[2]])
        w = reshape(g, w, [*ws[:2], 1, ws[2]])
        strides, dil, out_pad, pads = [1, *strides], [1, *dil], [0, *out_pad], [0, pads[0], 0, pads[1]]
    y = g.emit(L.ConvTranspose2dOp, x, w, stride=strides, padding=pads, dilation=dil, output_padding=out_pad,
               groups=n.attr("group", 1))
    if n.has(2):
        y = g.emit(E.AddOp, y, reshape(g, n.input(2), [shape(y)[1], 1, 1]))
    return reshape(g, y, [*shape(y)[:2], shape(y)[3]]) if k == 1 else y


# --- Resize ------------------------------------------------------------------------------------------

ROUND = {
    "round_prefer_floor": lambda v: np.ceil(v - 0.5),
    "round_prefer_ceil": lambda v: np.floor(v + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


def _source(n, mode, x, length, out, scale):
    """ONNX's coordinate transformation: the input coordinate of each output position."""
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = out / (scale * length)
        center = length / 2
        return center * (1 - adjustment) + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out > 1 else np.full_like(x, -0.5)
    if mode == "align_corners":
        return np.zeros_like(x) if out == 1 else x * (length - 1) / (out - 1)
    if mode == "asymmetric":
        return x / scale
    raise n.error(f"Resize coordinate_transformation_mode {mode!r} is not supported")


@translates("Resize", 10)
def resize(g, n):
    x = n.input(0)
    xs, r = shape(x), len(shape(x))
    if n.opset < 11:
        scales, sizes, axes = n.const(1), None, list(range(r))
        coord, nearest = "asymmetric", "floor"
    else:
        scales, sizes = n.const(2), n.const(3)
        coord = n.attr("coordinate_transformation_mode", "half_pixel")
        nearest = n.attr("nearest_mode", "round_prefer_floor")
        axes = [axis_of(n, x, a) for a in n.attr("axes", list(range(r)))]
    mode = n.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise n.error(f"Resize mode {mode!r} is not supported (nearest, linear and cubic are)")
    if n.attr("antialias", 0):
        raise n.error("Resize with antialias=1 is not supported")
    if scales is not None and scales.size:
        scale = [float(s) for s in np.ravel(scales)]
        out = [math.floor(xs[a] * s) for a, s in zip(axes, scale)]
    elif sizes is not None and sizes.size:
        out = [int(s) for s in np.ravel(sizes)]
        scale = [o / xs[a] for a, o in zip(axes, out)]
        policy = n.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            s = min(scale) if policy == "not_larger" else max(scale)
            scale = [s] * len(axes)
            out = [round(xs[a] * s) for a in axes]  # Python rounds half to even, as ONNX's reference
    else:
        raise n.error("Resize needs scales or sizes")
    if coord == "align_corners" and scales is not None and scales.size and any(
            xs[a] * s != o for a, s, o in zip(axes, scale, out)):
        # the ONNX reference divides by length · scale, onnxruntime by the output length
        raise n.error("Resize align_corners with scales that do not give whole output lengths is ambiguous "
                      "(onnxruntime and the ONNX reference differ); pass sizes")
    y, el = x, element(x)
    for a, o, s in zip(axes, out, scale):
        length = xs[a]
        if o == length and s == 1.0:
            continue
        src = _source(n, coord, np.arange(o, dtype=np.float64), length, o, s)
        if mode == "nearest":
            idx = np.clip(ROUND[nearest](src), 0, length - 1).astype(np.int64)
            y = g.emit(S.GatherOp, y, Known(idx), axis=a)
            continue
        if mode == "cubic":
            y = _cubic(g, n, y, a, src, length, r, el)
            continue
        src = np.clip(src, 0, length - 1)
        i0 = np.floor(src).astype(np.int64)
        i1 = np.minimum(i0 + 1, length - 1)
        lam = (src - i0).reshape([o] + [1] * (r - a - 1))
        lo = g.emit(E.MulOp, g.emit(S.GatherOp, y, Known(i0), axis=a), Known((1 - lam).astype(T.numpy_dtype(el))))
        hi = g.emit(E.MulOp, g.emit(S.GatherOp, y, Known(i1), axis=a), Known(lam.astype(T.numpy_dtype(el))))
        y = g.emit(E.AddOp, lo, hi)
    return y


def _cubic(g, n, y, axis, src, length, rank, el):
    """Four taps per output position with Keys' cubic weights (coefficient A = cubic_coeff_a), the
    input edge-padded (indices clamped); exclude_outside drops outside taps and renormalizes."""
    a = n.attr("cubic_coeff_a", -0.75)
    base = np.floor(src)
    ratio = np.where(src == base, 1.0, src - base)
    first = np.where(src == base, src - 2, base - 1).astype(np.int64)
    taps = first[:, None] + np.arange(4)
    d = np.stack([ratio + 1, ratio, 1 - ratio, 2 - ratio], axis=1)  # distance of each tap
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    w = np.where(d <= 1, near, far)
    if n.attr("exclude_outside", 0):
        w = np.where((taps < 0) | (taps >= length), 0.0, w)
        w = w / w.sum(axis=1, keepdims=True)
    taps = np.clip(taps, 0, length - 1)
    out = None
    for t in range(4):
        wt = Known(w[:, t].reshape([len(src)] + [1] * (rank - axis - 1)).astype(T.numpy_dtype(el)))
        term = g.emit(E.MulOp, g.emit(S.GatherOp, y, Known(taps[:, t]), axis=axis), wt)
        out = term if out is None else g.emit(E.AddOp, out, term)
    return out


# --- Attention -----------------------------------------------------------------------------------------


def _heads(g, v, heads):
    """[B, S, H·D] → [B, H, S, D]."""
    b, s, hd = shape(v)
    return g.emit(S.TransposeOp, reshape(g, v, [b, s, heads, hd // heads]), perm=[0, 2, 1, 3])


def _known_bias(n, q_len, kv_len, past, nonpad, batch):
    """The import-time part of the bias: causal frontier, sliding window, padding (0 / -inf)."""
    i = np.arange(q_len).reshape(q_len, 1)
    j = np.arange(kv_len).reshape(1, kv_len)
    offset = (nonpad.reshape(-1, 1, 1, 1) - q_len) if nonpad is not None and past == 0 else np.array(past)
    allowed = np.ones((1, 1, q_len, kv_len), bool)
    if n.attr("is_causal", 0):
        allowed = allowed & (j <= i + offset)
    left, right = n.attr("left_window_size", -1), n.attr("right_window_size", -1)
    if left >= 0:
        allowed = allowed & ((i + offset) - j <= left)
    if right >= 0:
        allowed = allowed & (j - (i + offset) <= right)
    if nonpad is not None:
        allowed = allowed & (np.arange(kv_len) < nonpad.reshape(-1, 1, 1, 1))
    return allowed


@translates("Attention", 23)
def attention(g, n):
    """softmax(Q·Kᵀ·scale [softcap] + bias) · V as ONNX's reference computes it (scale split as √scale
    on each of Q and K); bool masks are 0 / -inf biases; fully masked rows give 0."""
    q, k, v = n.input(0), n.input(1), n.input(2)
    three_d = len(shape(q)) == 3
    if three_d:
        hq, hkv = n.attr("q_num_heads"), n.attr("kv_num_heads")
        if not hq or not hkv:
            raise n.error("3-D Attention inputs need q_num_heads and kv_num_heads")
        q, k, v = _heads(g, q, hq), _heads(g, k, hkv), _heads(g, v, hkv)
    el = element(q)
    past = 0
    if n.has(4) or n.has(5):
        if not (n.has(4) and n.has(5)):
            raise n.error("past_key and past_value must be given together")
        past = shape(n.input(4))[2]
        k = g.emit(S.ConcatOp, n.input(4), k, axis=2)
        v = g.emit(S.ConcatOp, n.input(5), v, axis=2)
    present_k, present_v = k, v
    nonpad = n.const(6) if n.has(6) else None
    batch, heads, q_len, head = shape(q)
    kv_len = shape(k)[2]
    scale = n.attr("scale")
    scale = math.sqrt(1 / math.sqrt(head) if scale is None else scale)
    if shape(k)[1] != heads:  # grouped-query: kv head h serves q heads h·r .. h·r + r - 1
        reps = heads // shape(k)[1]
        idx = Known(np.arange(heads, dtype=np.int64) // reps)
        k, v = g.emit(S.GatherOp, k, idx, axis=1), g.emit(S.GatherOp, v, idx, axis=1)
    qs = g.emit(E.MulOp, q, scalar(g, scale, q))
    kt = g.emit(S.TransposeOp, g.emit(E.MulOp, k, scalar(g, scale, k)), perm=[0, 1, 3, 2])
    scores = g.emit(L.MatmulOp, qs, kt)
    softcap = n.attr("softcap", 0.0)
    if softcap and softcap > 0:
        scores = g.emit(E.MulOp, g.emit(E.TanhOp, g.emit(E.DivOp, scores, scalar(g, softcap, scores))),
                        scalar(g, softcap, scores))
    allowed = _known_bias(n, q_len, kv_len, past, nonpad, batch)
    neg_inf = np.array(-np.inf, T.numpy_dtype(el))
    bias = Known(np.where(allowed, np.zeros((), T.numpy_dtype(el)), neg_inf))
    if n.has(3):
        m = n.input(3)
        if element(m) == T.i1:
            m = g.emit(E.WhereOp, m, scalar(g, 0, q), Known(neg_inf))
        pad = kv_len - shape(m)[-1]
        if pad > 0:
            pads = [0] * (2 * len(shape(m)))
            pads[2 * len(shape(m)) - 1] = pad
            m = g.emit(L.PadOp, m, pads=pads, value=float("-inf"))
        bias = g.emit(E.AddOp, bias, m)
    with_bias = g.emit(E.AddOp, scores, bias)
    if isinstance(bias, Known):
        live = Known(np.max(bias.array, axis=-1, keepdims=True) > -np.inf)
    else:
        live = g.emit(R.AnyOp, g.emit(E.NeOp, bias, Known(neg_inf)), axes=[len(shape(bias)) - 1], keepdims=True)
    if isinstance(live, Known) and live.array.all():
        p = g.emit(R.SoftmaxOp, with_bias, axis=-1)
    else:  # finite scores into the softmax for masked rows, then 0
        zero = scalar(g, 0, q)
        p = g.emit(E.WhereOp, live, g.emit(R.SoftmaxOp, g.emit(E.WhereOp, live, with_bias, zero), axis=-1), zero)
    y = g.emit(L.MatmulOp, p, v)
    if three_d:
        y = reshape(g, g.emit(S.TransposeOp, y, perm=[0, 2, 1, 3]), [batch, q_len, heads * shape(v)[3]])
    mode = n.attr("qk_matmul_output_mode", 0)
    if mode == 2 and n.wants(3) and n.attr("is_causal", 0):
        raise n.error("qk_matmul_output_mode 2 with is_causal is ambiguous (onnxruntime masks with the "
                      "lowest float, the ONNX reference with -inf)")
    qk = {0: scores, 1: scores, 2: with_bias, 3: p}.get(mode)
    if qk is None:
        raise n.error(f"qk_matmul_output_mode {mode} is not supported (0..3 are)")
    return [y, present_k, present_v, qk]


@translates("RotaryEmbedding", 23)
def rotary_embedding(g, n):
    """x·cos + rotate(x)·sin on the first rotary_embedding_dim features of each head (halves, or
    even/odd pairs when interleaved); caches gathered by position_ids."""
    x, cos, sin = n.input(0), n.input(1), n.input(2)
    xs = shape(x)
    if len(xs) == 4:  # [B, H, S, D] → [B, S, H, D]
        x = g.emit(S.TransposeOp, x, perm=[0, 2, 1, 3])
    else:
        heads = n.attr("num_heads", 0)
        if not heads:
            raise n.error("3-D RotaryEmbedding input needs num_heads")
        x = reshape(g, x, [xs[0], xs[1], heads, xs[2] // heads])
    b_, seq, heads, head = shape(x)
    rot = n.attr("rotary_embedding_dim", 0) or head
    if n.has(3):
        pos = n.input(3)
        cos, sin = g.emit(S.GatherOp, cos, pos, axis=0), g.emit(S.GatherOp, sin, pos, axis=0)
    if shape(cos)[-1] != rot // 2:
        raise n.error(f"cos_cache's last dimension {shape(cos)[-1]} is not rotary_embedding_dim/2 = {rot // 2}")
    cos = reshape(g, cos, [*shape(cos)[:-1], 1, rot // 2])
    sin = reshape(g, sin, [*shape(sin)[:-1], 1, rot // 2])
    xr = x if rot == head else g.emit(S.SliceOp, x, axes=[3], starts=[0], ends=[rot])
    inter = n.attr("interleaved", 0)
    if inter:
        x1 = g.emit(S.SliceOp, xr, axes=[3], starts=[0], ends=[rot], steps=[2])
        x2 = g.emit(S.SliceOp, xr, axes=[3], starts=[1], ends=[rot], steps=[2])
    else:
        x1 = g.emit(S.SliceOp, xr, axes=[3], starts=[0], ends=[rot // 2])
        x2 = g.emit(S.SliceOp, xr, axes=[3], starts=[rot // 2], ends=[rot])
    real = g.emit(E.SubOp, g.emit(E.MulOp, cos, x1), g.emit(E.MulOp, sin, x2))
    imag = g.emit(E.AddOp, g.emit(E.MulOp, sin, x1), g.emit(E.MulOp, cos, x2))
    if inter:
        pair = [b_, seq, heads, rot // 2, 1]
        y = reshape(g, g.emit(S.ConcatOp, reshape(g, real, pair), reshape(g, imag, pair), axis=4),
                    [b_, seq, heads, rot])
    else:
        y = g.emit(S.ConcatOp, real, imag, axis=3)
    if rot != head:
        y = g.emit(S.ConcatOp, y, g.emit(S.SliceOp, x, axes=[3], starts=[rot], ends=[head]), axis=3)
    return g.emit(S.TransposeOp, y, perm=[0, 2, 1, 3]) if len(xs) == 4 else reshape(g, y, xs)


@translates("Hardmax", 13)
def hardmax(g, n):
    """1 at the first maximum along axis, else 0."""
    from .onnx_math_ops import _arg

    x = n.input(0)
    axis = axis_of(n, x, n.attr("axis", -1))

    class _Axis:
        def __init__(self, base):
            self._b = base

        def __getattr__(self, k):
            return getattr(self._b, k)

        def attr(self, k, default=None):
            return {"axis": axis, "keepdims": 1, "select_last_index": 0}.get(k, default)

    first = _arg(g, _Axis(n), True)
    d = shape(x)[axis]
    idx = Known(np.arange(d, dtype=np.int64).reshape([d] + [1] * (len(shape(x)) - axis - 1)))
    return g.emit(E.CastOp, g.emit(E.EqOp, first, idx), to=str(element(x)))


@translates("LpPool", 11)
def lp_pool(g, n):
    """(Σ_window |x|^p)^(1/p): a count-including-pad average pool of |x|^p times the window size."""
    from .onnx_nn_ops import _window

    x = n.input(0)
    p = n.attr("p", 2)
    kernel = n.attr("kernel_shape")
    rank = len(shape(x))
    if rank != 4 or n.attr("ceil_mode", 0):
        raise n.error("LpPool is supported for 2-D windows without ceil_mode")
    strides, dil, lo, hi = _window(n, x, kernel)
    if any(d != 1 for d in dil):
        raise n.error("LpPool with dilations is not supported")
    a = g.emit(E.AbsOp, x)
    powered = g.emit(E.MulOp, a, a) if p == 2 else g.emit(E.PowOp, a, scalar(g, p, a))
    avg = g.emit(L.AvgPool2dOp, powered, kernel=list(kernel), stride=list(strides), padding=[*lo, *hi],
                 count_include_pad=True)
    total = g.emit(E.MulOp, avg, scalar(g, math.prod(kernel), avg))
    return g.emit(E.SqrtOp, total) if p == 2 else g.emit(E.PowOp, total, scalar(g, 1.0 / p, total))


@translates("CenterCropPad", 18)
def center_crop_pad(g, n):
    x = n.input(0)
    target = n.ints(1)
    axes = [axis_of(n, x, a) for a in n.attr("axes", list(range(len(shape(x)))))]
    for a, t in zip(axes, target):
        d = shape(x)[a]
        if t < d:  # crop: start at (d - t) // 2
            s0 = (d - t) // 2
            x = g.emit(S.SliceOp, x, axes=[a], starts=[s0], ends=[s0 + t])
        elif t > d:  # pad: (t - d) // 2 before
            pads = [0] * (2 * len(shape(x)))
            pads[a] = (t - d) // 2
            pads[a + len(shape(x))] = t - d - (t - d) // 2
            x = g.emit(L.PadOp, x, pads=pads, value=0.0)
    return x


@translates("OneHot", 11)
def one_hot(g, n):
    idx, values = n.input(0), n.input(2)
    depth = int(np.ravel(n.const(1))[0])
    axis = n.attr("axis", -1)
    r = len(shape(idx)) + 1
    axis = axis + r if axis < 0 else axis
    idx = idx if element(idx) == T.i64 else g.emit(E.CastOp, idx, to="i64")
    idx = g.emit(E.WhereOp, g.emit(E.LtOp, idx, Known(np.array(0, np.int64))),
                 g.emit(E.AddOp, idx, Known(np.array(depth, np.int64))), idx)
    ish = list(shape(idx))
    idx = reshape(g, idx, ish[:axis] + [1] + ish[axis:])
    hot = g.emit(E.EqOp, idx, Known(np.arange(depth, dtype=np.int64).reshape([depth] + [1] * (r - axis - 1))))
    off = g.emit(S.SliceOp, values, axes=[0], starts=[0], ends=[1])
    on = g.emit(S.SliceOp, values, axes=[0], starts=[1], ends=[2])
    return g.emit(E.WhereOp, hot, reshape(g, on, []), reshape(g, off, []))


@translates("GridSample", 16)
def grid_sample(g, n):
    """2-D bilinear / nearest sampling at run-time grid positions: corner indices into the flattened
    image [N, C, H·W] through gather_elements; zeros padding masks outside corners, border clamps
    them. (Bicubic, reflection and 3-D grids are refused.)"""
    from .onnx_math_ops import floor

    x, grid = n.input(0), n.input(1)
    mode = {"bilinear": "linear", "linear": "linear", "nearest": "nearest"}.get(n.attr("mode", "bilinear"))
    pad = n.attr("padding_mode", "zeros")
    if len(shape(x)) != 4 or mode is None or pad not in ("zeros", "border"):
        raise n.error("GridSample is supported for 2-D images, bilinear/nearest, zeros/border padding")
    b_, c, h, w = shape(x)
    _, ho, wo, _ = shape(grid)
    align = n.attr("align_corners", 0)
    el = element(x)

    def coord(i, length):  # the grid's normalized [-1, 1] → pixel coordinates
        v = reshape(g, g.emit(S.SliceOp, grid, axes=[3], starts=[i], ends=[i + 1]), [b_, ho * wo])
        v = g.emit(E.AddOp, v, scalar(g, 1, v))
        if align:
            return g.emit(E.MulOp, v, scalar(g, (length - 1) / 2, v))
        return g.emit(E.DivOp, g.emit(E.SubOp, g.emit(E.MulOp, v, scalar(g, length, v)), scalar(g, 1, v)),
                      scalar(g, 2, v))

    gx, gy = coord(0, w), coord(1, h)
    nan = g.emit(E.OrOp, g.emit(E.NeOp, gx, gx), g.emit(E.NeOp, gy, gy))  # NaN positions read pixel 0, give NaN
    flat = reshape(g, x, [b_, c, h * w])

    def pixel(yi, xi):  # yi, xi: float tensors holding integers, [N, Ho·Wo]
        inside = None
        if pad == "zeros":
            inside = g.emit(E.AndOp, g.emit(E.AndOp, g.emit(E.GeOp, xi, scalar(g, 0, xi)),
                                            g.emit(E.LeOp, xi, scalar(g, w - 1, xi))),
                            g.emit(E.AndOp, g.emit(E.GeOp, yi, scalar(g, 0, yi)),
                                   g.emit(E.LeOp, yi, scalar(g, h - 1, yi))))
        xc = g.emit(E.WhereOp, nan, scalar(g, 0, xi), g.emit(E.ClampOp, xi, min=0.0, max=float(w - 1)))
        yc = g.emit(E.WhereOp, nan, scalar(g, 0, yi), g.emit(E.ClampOp, yi, min=0.0, max=float(h - 1)))
        idx = g.emit(E.CastOp, g.emit(E.AddOp, g.emit(E.MulOp, yc, scalar(g, w, yc)), xc), to="i64")
        idx = g.emit(S.BroadcastOp, reshape(g, idx, [b_, 1, ho * wo]), shape=[b_, c, ho * wo])
        v = g.emit(S.GatherElementsOp, flat, idx, axis=2)
        if inside is not None:
            v = g.emit(E.WhereOp, reshape(g, inside, [b_, 1, ho * wo]), v, scalar(g, 0, v))
        return v

    if mode == "nearest":  # round half to even, as the reference's np.rint
        def rint(v):
            half = g.emit(E.AddOp, v, scalar(g, 0.5, v))
            f = floor(g, half)
            odd = g.emit(E.NeOp, g.emit(E.SubOp, f, g.emit(E.MulOp, floor(g, g.emit(E.MulOp, f, scalar(g, 0.5, f))),
                                                           scalar(g, 2, f))), scalar(g, 0, f))
            tie = g.emit(E.AndOp, g.emit(E.EqOp, f, half), odd)
            return g.emit(E.SubOp, f, g.emit(E.CastOp, tie, to=str(el)))

        y = pixel(rint(gy), rint(gx))
    else:
        x0, y0 = floor(g, gx), floor(g, gy)
        x1, y1 = g.emit(E.AddOp, x0, scalar(g, 1, x0)), g.emit(E.AddOp, y0, scalar(g, 1, y0))
        wx1, wy1 = g.emit(E.SubOp, gx, x0), g.emit(E.SubOp, gy, y0)
        wx0, wy0 = g.emit(E.SubOp, scalar(g, 1, wx1), wx1), g.emit(E.SubOp, scalar(g, 1, wy1), wy1)
        y = None
        for yi, wy in ((y0, wy0), (y1, wy1)):
            for xi, wx in ((x0, wx0), (x1, wx1)):
                wgt = reshape(g, g.emit(E.MulOp, wy, wx), [b_, 1, ho * wo])
                term = g.emit(E.MulOp, pixel(yi, xi), wgt)
                y = term if y is None else g.emit(E.AddOp, y, term)
    y = g.emit(E.WhereOp, reshape(g, nan, [b_, 1, ho * wo]), scalar(g, math.nan, y), y)
    return reshape(g, y, [b_, c, ho, wo])
