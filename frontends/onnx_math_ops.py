"""ONNX translations of ops that are decompositions into existing `train` ops: CastLike, Mod,
Floor/Ceil, Trilu, ArgMax/ArgMin, the other reductions (Min, L1, L2, SumSquare, LogSum,
LogSumExp), CumSum, the activations (LeakyRelu, PRelu, Elu, Selu, Celu, Softplus, HardSigmoid,
HardSwish, Softsign, ThresholdedRelu, Mish, Swish, Shrink, Sign), a few unary/variadic ops and
DepthToSpace/SpaceToDepth. The activations use the decompositions the torch frontend uses
(decompositions.py), through `Builder`.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import linalg as L
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from . import decompositions as D
from .onnx_importer import Known, element, shape, translates
from .onnx_ops import _reduce, axis_of, cast, reshape, scalar


class Builder:
    """The builder protocol of decompositions.py over the ONNX importer."""

    def __init__(self, g):
        self.g = g

    def op(self, cls, *operands, **props):
        return self.g.emit(cls, *operands, **props)

    def const(self, array, element=None):
        a = np.asarray(array)
        return Known(a if element is None else a.astype(T.numpy_dtype(element)))

    def scalar(self, value, element):
        return self.const(np.asarray(value), element)


@translates("CastLike", 15)
def cast_like(g, n):
    return cast(g, n.input(0), element(n.input(1)))


# --- rounding and Mod ------------------------------------------------------------------------

def floor(g, x):
    """floor through an i64 cast (truncation) and a correction; values beyond 2^52 are integral
    already and NaN / ±inf pass through unchanged (the cast is only taken where it is exact)."""
    t = cast(g, cast(g, x, T.i64), element(x))
    f = g.emit(E.SubOp, t, cast(g, g.emit(E.GtOp, t, x), element(x)))
    small = g.emit(E.LtOp, g.emit(E.AbsOp, x), scalar(g, 2.0 ** 52, x))
    return g.emit(E.WhereOp, small, f, x)


@translates("Floor", 6)
def floor_op(g, n):
    return floor(g, n.input(0))


@translates("Ceil", 6)
def ceil_op(g, n):
    return g.emit(E.NegOp, floor(g, g.emit(E.NegOp, n.input(0))))


@translates("Round", 11)
def round_op(g, n):
    """Round half to even: floor, then up where the fraction is over 1/2, and at exactly 1/2 up only
    from an odd floor. |x| ≥ 2^52 (integral already), ±inf and NaN pass through unchanged."""
    x = n.input(0)
    r = floor(g, x)
    d = g.emit(E.SubOp, x, r)
    half, one = scalar(g, 0.5, x), scalar(g, 1.0, x)
    odd = g.emit(E.SubOp, r, g.emit(E.MulOp, scalar(g, 2.0, x), floor(g, g.emit(E.MulOp, r, half))))
    up = g.emit(E.WhereOp, g.emit(E.GtOp, d, half), one, g.emit(E.WhereOp, g.emit(E.LtOp, d, half),
                                                                     scalar(g, 0.0, x), odd))
    small = g.emit(E.LtOp, g.emit(E.AbsOp, x), scalar(g, 2.0 ** 52, x))
    return g.emit(E.WhereOp, small, g.emit(E.AddOp, r, up), x)


@translates("Mod", 10)
def mod(g, n):
    """fmod=0: a - floor(a / b)·b (sign of b); fmod=1: a - trunc(a / b)·b (sign of a)."""
    a, b = n.input(0), n.input(1)
    fmod = n.attr("fmod", 0)
    if T.is_float(a):
        q = g.emit(E.DivOp, a, b)
        if not fmod:
            r = g.emit(E.SubOp, a, g.emit(E.MulOp, floor(g, q), b))
        else:
            t = g.emit(E.WhereOp, g.emit(E.LtOp, q, scalar(g, 0, q)), g.emit(E.NegOp, floor(g, g.emit(E.NegOp, q))),
                       floor(g, q))
            r = g.emit(E.SubOp, a, g.emit(E.MulOp, t, b))
        # a finite, b = ±inf: a (fmod, or same signs), else b; the spec's other cases are NaN already
        inf_b = g.emit(E.AndOp, g.emit(E.EqOp, g.emit(E.AbsOp, b), scalar(g, math.inf, b)),
                       g.emit(E.LtOp, g.emit(E.AbsOp, a), scalar(g, math.inf, a)))
        keep_a = inf_b if fmod else g.emit(E.AndOp, inf_b, g.emit(
            E.OrOp, g.emit(E.EqOp, a, scalar(g, 0, a)),
            g.emit(E.EqOp, g.emit(E.LtOp, a, scalar(g, 0, a)), g.emit(E.LtOp, b, scalar(g, 0, b)))))
        r = g.emit(E.WhereOp, inf_b, b, r) if not fmod else r
        return g.emit(E.WhereOp, keep_a, a, r)
    if fmod:
        from .onnx_ops import _trunc_div

        return g.emit(E.SubOp, a, g.emit(E.MulOp, _trunc_div(g, a, b), b))
    return g.emit(E.SubOp, a, g.emit(E.MulOp, g.emit(E.DivOp, a, b), b))  # integer train.div floors


# --- masks and indices -----------------------------------------------------------------------

@translates("Trilu", 14)
def trilu(g, n):
    x = n.input(0)
    xs = shape(x)
    k = int(n.const(1).item()) if n.has(1) else 0
    rows, cols = xs[-2], xs[-1]
    mask = np.tril(np.ones((rows, cols), bool), k) if not n.attr("upper", 1) else np.triu(np.ones((rows, cols), bool), k)
    return g.emit(E.WhereOp, Known(mask), x, scalar(g, 0, x))


def _arg(g, n, largest: bool):
    x = n.input(0)
    axis = axis_of(n, x, n.attr("axis", 0))
    keep = bool(n.attr("keepdims", 1))
    if element(x) == T.i1:
        x = cast(g, x, T.i64)
    v = x if largest else _neg(g, x)
    m = g.emit(R.MaxOp, v, axes=[axis], keepdims=True)
    hit = g.emit(E.EqOp, v, m)
    if T.is_float(x):  # a NaN is the extreme (numpy's argmax/argmin): the first NaN is picked
        hit = g.emit(E.OrOp, hit, g.emit(E.NeOp, v, v))
    d = shape(x)[axis]
    idx = Known(np.arange(d, dtype=np.int64).reshape([d] + [1] * (len(shape(x)) - axis - 1)))
    if n.attr("select_last_index", 0):
        pick = g.emit(R.MaxOp, g.emit(E.WhereOp, hit, idx, Known(np.array(-1, np.int64))), axes=[axis], keepdims=keep)
    else:
        neg = g.emit(E.WhereOp, hit, g.emit(E.NegOp, idx), Known(np.array(-d, np.int64)))
        pick = g.emit(E.NegOp, g.emit(R.MaxOp, neg, axes=[axis], keepdims=keep))
    return pick


translates("ArgMax", 1)(lambda g, n: _arg(g, n, True))
translates("ArgMin", 1)(lambda g, n: _arg(g, n, False))


@translates("CumSum", 11)
def cumsum(g, n):
    x = n.input(0)
    axis = axis_of(n, x, int(n.const(1).item()))
    d = shape(x)[axis]
    rev = Known(np.arange(d - 1, -1, -1, dtype=np.int64))
    if n.attr("reverse", 0):
        x = g.emit(S.GatherOp, x, rev, axis=axis)
    y = g.emit(R.CumsumOp, x, axis=axis)
    if n.attr("exclusive", 0):  # shift by one: a zero first, the last sum dropped
        pads = [0] * (2 * len(shape(x)))
        pads[axis] = 1
        y = g.emit(S.SliceOp, g.emit(L.PadOp, y, pads=pads, value=0.0), axes=[axis], starts=[0], ends=[d]) \
            if T.is_float(x) else g.emit(E.SubOp, y, x)
    if n.attr("reverse", 0):
        y = g.emit(S.GatherOp, y, rev, axis=axis)
    return y


# --- more reductions --------------------------------------------------------------------------

def _reduce_via(g, n, until, pre, op, post):
    """post(reduce(pre(x))) with onnx_ops._reduce's axes handling (ReduceMin is -max(-x))."""
    x = n.input(0)
    y = pre(g, x)

    class _Node:
        def __init__(self, base, value):
            self._b, self._v = base, value

        def __getattr__(self, k):
            return getattr(self._b, k)

        def input(self, i):
            return self._v if i == 0 else self._b.input(i)

    return post(g, _reduce(op, until, g, _Node(n, y)))


def _red(name, since, until, op, pre=lambda g, x: x, post=lambda g, y: y):
    translates(name, since)(lambda g, n: _reduce_via(g, n, until, pre, op, post))


def _neg(g, v):
    """An order-reversing, self-inverse map: -v for floats, -1 - v for integers (no overflow at
    the minimum, where -v wraps), so min = flip(max(flip(x)))."""
    return g.emit(E.NegOp, v) if T.is_float(v) else g.emit(E.SubOp, scalar(g, -1, v), v)


def _sq(g, v):
    return g.emit(E.MulOp, v, v)


_red("ReduceMin", 1, 17, R.MaxOp, pre=_neg, post=_neg)
_red("ReduceL1", 1, 17, R.SumOp, pre=lambda g, x: g.emit(E.AbsOp, x))
_red("ReduceL2", 1, 17, R.SumOp, pre=_sq, post=lambda g, y: g.emit(E.SqrtOp, y))
_red("ReduceSumSquare", 1, 17, R.SumOp, pre=_sq)
_red("ReduceLogSum", 1, 17, R.SumOp, post=lambda g, y: g.emit(E.LogOp, y))


@translates("ReduceLogSumExp", 1)
def reduce_log_sum_exp(g, n):
    """m + log Σ exp(x - m) with m the (finite) max over the same axes."""
    x = n.input(0)
    m = _reduce_via(g, n, 17, lambda g, v: v, R.MaxOp, lambda g, y: y)
    keep = bool(n.attr("keepdims", 1))
    if m is x:  # noop_with_empty_axes
        return x
    mk = m
    if not keep:  # the max again with kept dims, to subtract
        class _Keep:
            def __init__(self, base):
                self._b = base

            def __getattr__(self, k):
                return getattr(self._b, k)

            def attr(self, k, default=None):
                return 1 if k == "keepdims" else self._b.attr(k, default)

        mk = _reduce_via(g, _Keep(n), 17, lambda g, v: v, R.MaxOp, lambda g, y: y)
    def safe(v):
        return g.emit(E.WhereOp, g.emit(E.EqOp, g.emit(E.AbsOp, v), scalar(g, math.inf, v)), scalar(g, 0, v), v)

    s = _reduce_via(g, n, 17, lambda g, v: g.emit(E.ExpOp, g.emit(E.SubOp, v, safe(mk))), R.SumOp,
                    lambda g, y: g.emit(E.LogOp, y))
    return g.emit(E.AddOp, s, safe(m))


# --- activations ---------------------------------------------------------------------------------

def _act(name, since, fn):
    translates(name, since)(lambda g, n: fn(g, n, n.input(0), Builder(g)))


_act("LeakyRelu", 6, lambda g, n, x, b: D.leaky_relu(b, x, n.attr("alpha", 0.01)))
_act("Elu", 6, lambda g, n, x, b: D.elu(b, x, n.attr("alpha", 1.0)))
_act("Selu", 6, lambda g, n, x, b: D.elu(b, x, n.attr("alpha", 1.67326319217681884765625),
                                         n.attr("gamma", 1.05070102214813232421875)))
_act("Celu", 12, lambda g, n, x, b: D.elu(b, x, n.attr("alpha", 1.0), 1.0, 1.0 / n.attr("alpha", 1.0)))
_act("Softplus", 1, lambda g, n, x, b: D.softplus(b, x))
_act("Mish", 18, lambda g, n, x, b: g.emit(E.MulOp, x, g.emit(E.TanhOp, D.softplus(b, x))))
_act("Softsign", 1, lambda g, n, x, b: g.emit(E.DivOp, x, g.emit(E.AddOp, g.emit(E.AbsOp, x), scalar(g, 1, x))))


def _hard_sigmoid(g, x, alpha, beta):
    y = g.emit(E.AddOp, g.emit(E.MulOp, x, scalar(g, alpha, x)), scalar(g, beta, x))
    return g.emit(E.ClampOp, y, min=0.0, max=1.0)


_act("HardSigmoid", 6, lambda g, n, x, b: _hard_sigmoid(g, x, n.attr("alpha", 0.2), n.attr("beta", 0.5)))
_act("HardSwish", 14, lambda g, n, x, b: g.emit(E.MulOp, x, _hard_sigmoid(g, x, 1 / 6, 0.5)))
_act("ThresholdedRelu", 10, lambda g, n, x, b: g.emit(
    E.WhereOp, g.emit(E.GtOp, x, scalar(g, n.attr("alpha", 1.0), x)), x, scalar(g, 0, x)))
_act("Swish", 24, lambda g, n, x, b: g.emit(
    E.MulOp, x, g.emit(E.SigmoidOp, g.emit(E.MulOp, x, scalar(g, n.attr("alpha", 1.0), x)))))


@translates("PRelu", 6)
def prelu(g, n):
    x, slope = n.input(0), n.input(1)
    el = element(x)
    xs, ss = shape(x), shape(slope)
    if n.opset < 7 and len(ss) == 1 and len(xs) > 2 and ss[0] == xs[1] != 1:  # PRelu-6: one slope per channel
        slope = reshape(g, slope, [ss[0]] + [1] * (len(xs) - 2))
    return g.emit(E.WhereOp, g.emit(E.LtOp, x, scalar(g, 0, x)), g.emit(E.MulOp, x, slope), x) \
        if T.is_float(x) else g.emit(E.WhereOp, g.emit(E.LtOp, x, Known(np.zeros((), T.numpy_dtype(el)))),
                                     g.emit(E.MulOp, x, slope), x)


@translates("Shrink", 9)
def shrink(g, n):
    x = n.input(0)
    lambd, bias = n.attr("lambd", 0.5), n.attr("bias", 0.0)
    lo = g.emit(E.AddOp, x, scalar(g, bias, x))
    hi = g.emit(E.SubOp, x, scalar(g, bias, x))
    y = g.emit(E.WhereOp, g.emit(E.LtOp, x, scalar(g, -lambd, x)), lo, scalar(g, 0, x))
    return g.emit(E.WhereOp, g.emit(E.GtOp, x, scalar(g, lambd, x)), hi, y)


@translates("Sign", 9)
def sign(g, n):
    x = n.input(0)
    y = g.emit(E.WhereOp, g.emit(E.GtOp, x, scalar(g, 0, x)), scalar(g, 1, x),
               g.emit(E.WhereOp, g.emit(E.LtOp, x, scalar(g, 0, x)), scalar(g, -1, x), scalar(g, 0, x)))
    return g.emit(E.WhereOp, g.emit(E.NeOp, x, x), x, y) if T.is_float(x) else y  # NaN stays NaN


# --- unary and variadic -----------------------------------------------------------------------


def _exp_pair(g, x):
    return g.emit(E.ExpOp, x), g.emit(E.ExpOp, g.emit(E.NegOp, x))


translates("Sinh", 9)(lambda g, n: g.emit(E.MulOp, g.emit(E.SubOp, *_exp_pair(g, n.input(0))),
                                          scalar(g, 0.5, n.input(0))))
translates("Cosh", 9)(lambda g, n: g.emit(E.MulOp, g.emit(E.AddOp, *_exp_pair(g, n.input(0))),
                                          scalar(g, 0.5, n.input(0))))
translates("Tan", 7)(lambda g, n: g.emit(E.DivOp, g.emit(E.SinOp, n.input(0)), g.emit(E.CosOp, n.input(0))))
translates("Xor", 7)(lambda g, n: g.emit(E.NeOp, n.input(0), n.input(1)))


@translates("Mean", 6)
def mean(g, n):
    vals = n.inputs()
    out = vals[0]
    for v in vals[1:]:
        out = g.emit(E.AddOp, out, v)
    return out if len(vals) == 1 else g.emit(E.DivOp, out, scalar(g, len(vals), out))


@translates("IsInf", 10)
def isinf(g, n):
    x = n.input(0)
    pos = g.emit(E.EqOp, x, scalar(g, math.inf, x)) if n.attr("detect_positive", 1) else None
    neg = g.emit(E.EqOp, x, scalar(g, -math.inf, x)) if n.attr("detect_negative", 1) else None
    if pos is not None and neg is not None:
        return g.emit(E.OrOp, pos, neg)
    return pos if pos is not None else neg if neg is not None else Known(np.zeros(shape(x), bool))


@translates("GlobalMaxPool", 1)
def global_max_pool(g, n):
    x = n.input(0)
    return g.emit(R.MaxOp, x, axes=list(range(2, len(shape(x)))), keepdims=True)


@translates("DepthToSpace", 1)
def depth_to_space(g, n):
    x = n.input(0)
    b_, c, h, w = shape(x)
    s = n.attr("blocksize")
    if n.attr("mode", "DCR") == "DCR":
        y = g.emit(S.TransposeOp, reshape(g, x, [b_, s, s, c // (s * s), h, w]), perm=[0, 3, 4, 1, 5, 2])
    else:
        y = g.emit(S.TransposeOp, reshape(g, x, [b_, c // (s * s), s, s, h, w]), perm=[0, 1, 4, 2, 5, 3])
    return reshape(g, y, [b_, c // (s * s), h * s, w * s])


@translates("SpaceToDepth", 1)
def space_to_depth(g, n):
    x = n.input(0)
    b_, c, h, w = shape(x)
    s = n.attr("blocksize")
    perm = [0, 1, 3, 5, 2, 4] if n.attr("mode", "DCR") == "CRD" else [0, 3, 5, 1, 2, 4]
    y = g.emit(S.TransposeOp, reshape(g, x, [b_, c, h // s, s, w // s, s]), perm=perm)
    return reshape(g, y, [b_, c * s * s, h // s, w // s])


@translates("ReduceProd", 1)
def reduce_prod(g, n):
    """Π x = sign · exp(Σ log|x|), 0 where a factor is 0 (an empty product is 1); integers go
    through float64 and are rounded back."""
    x = n.input(0)
    el = element(x)
    xf = x if T.is_float(x) else cast(g, x, T.f64)
    magnitude = _reduce_via(g, n, 17, lambda g, v: g.emit(E.LogOp, g.emit(E.AbsOp, xf)), R.SumOp,
                            lambda g, y: g.emit(E.ExpOp, y))
    if magnitude is xf:  # noop_with_empty_axes
        return x
    negatives = _reduce_via(g, n, 17, lambda g, v: cast(g, g.emit(E.LtOp, xf, scalar(g, 0, xf)), T.i64),
                            R.SumOp, lambda g, y: y)
    two = Known(np.array(2, np.int64))
    odd = g.emit(E.NeOp, g.emit(E.SubOp, negatives, g.emit(E.MulOp, g.emit(E.DivOp, negatives, two), two)),
                 Known(np.array(0, np.int64)))
    zero = _reduce_via(g, n, 17, lambda g, v: g.emit(E.EqOp, xf, scalar(g, 0, xf)), R.AnyOp, lambda g, y: y)
    y = g.emit(E.WhereOp, odd, g.emit(E.NegOp, magnitude), magnitude)
    y = g.emit(E.WhereOp, zero, scalar(g, 0, y), y)
    if T.is_float(x):
        return y
    return cast(g, floor(g, g.emit(E.AddOp, y, scalar(g, 0.5, y))) if el != T.i1 else y, el)


# --- Einsum --------------------------------------------------------------------------------------


def _einsum_terms(n, eq: str, ranks: list[int]):
    """Input terms and the output term, '...' spelled with fresh letters (right-aligned)."""
    eq = eq.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise n.error(f"equation {eq!r} has {len(terms)} operands, the node {len(ranks)}")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in eq]
    width = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t), default=0)
    dots = "".join(spare[:width])
    terms = [t.replace("...", dots[width - (r - len(t.replace("...", ""))):]) for t, r in zip(terms, ranks)]
    if not arrow:
        counts = {c: "".join(terms).count(c) for c in "".join(terms)}
        out = dots + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in dots))
    out = out.replace("...", dots)
    for t, r in zip(terms, ranks):
        if len(t) != r or len(set(t)) != len(t):
            raise n.error(f"Einsum term {t!r} for a rank-{r} operand (repeated letters: diagonals are not supported)")
    return terms, out


def _sum_out(g, v, letters, drop):
    axes = [i for i, c in enumerate(letters) if c in drop]
    if not axes:
        return v, letters
    return g.emit(R.SumOp, v, axes=axes, keepdims=False), "".join(c for c in letters if c not in drop)


def _permute(g, v, letters, order):
    perm = [letters.index(c) for c in order]
    return (v if perm == list(range(len(perm))) else g.emit(S.TransposeOp, v, perm=perm)), order


def _einsum_pair(g, a, la, b, lb, keep):
    """Contract two operands with one batched matmul: [batch, free_a, k] · [batch, k, free_b]."""
    a, la = _sum_out(g, a, la, set(la) - set(lb) - keep)
    b, lb = _sum_out(g, b, lb, set(lb) - set(la) - keep)
    batch = [c for c in la if c in lb and c in keep]
    con = [c for c in la if c in lb and c not in keep]
    fa, fb = [c for c in la if c not in lb], [c for c in lb if c not in la]
    size = {}
    for v, ls in ((a, la), (b, lb)):
        for c, d in zip(ls, shape(v)):
            size[c] = max(size.get(c, 1), d)
    a, la = _permute(g, a, la, "".join(batch + fa + con))
    b, lb = _permute(g, b, lb, "".join(batch + con + fb))
    for name in ("a", "b"):
        v, ls = (a, la) if name == "a" else (b, lb)
        full = [size[c] for c in ls]
        if list(shape(v)) != full:
            v = g.emit(S.BroadcastOp, v, shape=full)
        a, b = (v, b) if name == "a" else (a, v)
    nb, na_, nk, nf = (math.prod(size[c] for c in part) for part in (batch, fa, con, fb))
    y = g.emit(L.MatmulOp, reshape(g, a, [nb, na_, nk]), reshape(g, b, [nb, nk, nf]))
    return reshape(g, y, [size[c] for c in batch + fa + fb]), "".join(batch + fa + fb)


@translates("Einsum", 12)
def einsum(g, n):
    vals = n.inputs()
    terms, out = _einsum_terms(n, n.attr("equation"), [len(shape(v)) for v in vals])
    v, letters = vals[0], terms[0]
    for i in range(1, len(vals)):
        later = set(out).union(*terms[i + 1:])
        v, letters = _einsum_pair(g, v, letters, vals[i], terms[i], later)
    v, letters = _sum_out(g, v, letters, set(letters) - set(out))
    return _permute(g, v, letters, out)[0]


@translates("TopK", 10)
def topk(g, n):
    """k arg-max steps (unrolled, k ≤ 256): each takes the first extreme among the not yet taken
    (ties: the lower index first, as ONNX says), gathers its value and marks it taken."""
    x = n.input(0)
    k = n.ints(1)[0] if n.opset >= 10 else n.attr("k")
    axis = axis_of(n, x, n.attr("axis", -1))
    if k > 256:
        raise n.error(f"TopK with k = {k} is not supported (it unrolls k steps; k <= 256 is)")
    xs = shape(x)
    if k == 0:
        empty = [*xs[:axis], 0, *xs[axis + 1:]]
        return [Known(np.zeros(empty, T.numpy_dtype(element(x)))), Known(np.zeros(empty, np.int64))]
    d = xs[axis]
    v = x if n.attr("largest", 1) else _neg(g, x)
    dt = T.numpy_dtype(element(x))
    lowest = Known(np.array(-np.inf if T.is_float(x) else np.iinfo(dt).min, dt))
    idx = Known(np.arange(d, dtype=np.int64).reshape([d] + [1] * (len(xs) - axis - 1)))
    taken = Known(np.zeros(xs, bool))
    values, indices = [], []
    for _ in range(k):
        cur = g.emit(E.WhereOp, taken, lowest, v)
        m = g.emit(R.MaxOp, cur, axes=[axis], keepdims=True)
        hit = g.emit(E.EqOp, cur, m)
        if T.is_float(x):
            hit = g.emit(E.OrOp, hit, g.emit(E.NeOp, cur, cur))
        hit = g.emit(E.AndOp, hit, g.emit(E.LogicalNotOp, taken))
        first = g.emit(E.NegOp, g.emit(R.MaxOp, g.emit(E.WhereOp, hit, g.emit(E.NegOp, idx), Known(np.array(-d, np.int64))),
                                       axes=[axis], keepdims=True))
        indices.append(first)
        values.append(g.emit(S.GatherElementsOp, x, first, axis=axis))
        taken = g.emit(E.OrOp, taken, g.emit(E.EqOp, idx, first))
    if k == 1:
        return [values[0], indices[0]]
    return [g.emit(S.ConcatOp, *values, axis=axis), g.emit(S.ConcatOp, *indices, axis=axis)]
