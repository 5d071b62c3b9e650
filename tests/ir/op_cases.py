"""Hypothesis generators of valid instances of every `train` op, and random inputs for them.

`CASES[OpClass]` is a strategy drawing a `Case`: the operand types, the properties (Python
values, as `Op.build` takes them) and, for ops that need a module-level `train.param`, the
declarations. `case.module()` wraps the op in `func.func @f` so it can be printed, parsed and
interpreted; `case.inputs(rng)` draws arrays inside the op's domain (positive for log/sqrt,
in-range indices and labels). A new op in `pockengine.ir.dialect.OPS` needs an entry here
(tests/ir/test_roundtrip.py fails otherwise).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import loss as Lo
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.state import ROLES, ConstantOp, GetOp, ParamOp, SetOp, SetSliceOp
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, bf16, f16, f32, f64, i1, i32, i64
from xdsl.ir import Attribute, Block, Operation, Region


def examples(n: int) -> int:
    """Hypothesis examples for a test: n, times $POCK_HYPOTHESIS_SCALE for a thorough run."""
    return n * int(os.environ.get("POCK_HYPOTHESIS_SCALE", "1"))


FLOATS = [f32, f64]
NUMERIC = [f32, f64, i64]
ANY = [f32, f64, i64, i1]


@dataclass
class Case:
    op: type[Operation]
    operands: list[TensorType]
    props: dict = field(default_factory=dict)
    params: list[tuple[str, TensorType, str, bool]] = field(default_factory=list)
    make: Callable[[list], Operation] | None = None  # for ops not built by `op.build(*args, **props)`
    domain: Callable[[np.random.Generator, list[np.ndarray]], list[np.ndarray]] | None = None

    def build(self, args) -> Operation:
        return self.make(args) if self.make else self.op.build(*args, **self.props)

    def module(self) -> ModuleOp:
        block = Block(arg_types=self.operands)
        op = self.build(list(block.args))
        block.add_ops([op, func.ReturnOp(*op.results)])
        fn = func.FuncOp("f", (self.operands, [r.type for r in op.results]), Region(block))
        decls = [ParamOp(n, t, role, tr) for n, t, role, tr in self.params]
        return ModuleOp([*decls, fn])

    def inputs(self, rng: np.random.Generator) -> list[np.ndarray]:
        arrays = [random_array(t, rng) for t in self.operands]
        arrays = self.domain(rng, arrays) if self.domain else arrays
        return [np.asarray(a) for a in arrays]  # 0-d arrays, not numpy scalars

    def weights(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {n: random_array(t, rng) for n, t, _, _ in self.params}


def random_array(t: TensorType, rng: np.random.Generator) -> np.ndarray:
    shape, el = T.shape(t), t.element_type
    if el == i1:
        return rng.random(shape) < 0.5
    if el in (i64, i32):
        return rng.integers(-3, 4, shape).astype(T.numpy_dtype(el))
    return rng.standard_normal(shape).astype(T.numpy_dtype(el))


# --- shapes ---------------------------------------------------------------------

dims = st.integers(1, 4)


def shapes(min_rank=0, max_rank=4, dim=dims):
    return st.lists(dim, min_size=min_rank, max_size=max_rank).map(tuple)


@st.composite
def broadcastable(draw, n: int, min_rank=0, max_rank=4):
    """`n` shapes that broadcast together (some dims 1, some leading dims dropped)."""
    out = draw(shapes(min_rank, max_rank))
    result = []
    for _ in range(n):
        drop = draw(st.integers(0, len(out)))
        s = tuple(1 if draw(st.booleans()) and draw(st.booleans()) else d for d in out[drop:])
        result.append(s)
    return result


@st.composite
def factorization(draw, total: int, max_rank=4):
    """A random shape with `total` elements."""
    out, left = [], total
    for _ in range(draw(st.integers(0, max_rank - 1))):
        divs = [d for d in range(1, left + 1) if left % d == 0]
        d = draw(st.sampled_from(divs))
        out.append(d)
        left //= d
    out.insert(draw(st.integers(0, len(out))), left)
    return tuple(out)


def axis_of(rank: int):
    return st.integers(-rank, rank - 1)


# --- per-family generators ---------------------------------------------------------


_OF_KIND = {"float": FLOATS, "numeric": NUMERIC, "integer": [i64, i1], "i1": [i1], "any": ANY}


def _dtype_rule(op) -> list[Attribute]:
    """Element types the op's first operand may have (TrainOp.ELEMENTS / FLOAT_ONLY)."""
    return FLOATS if getattr(op, "FLOAT_ONLY", False) else _OF_KIND[op.ELEMENTS]


def positive(indices):
    """Domain: make the listed float operands strictly positive (log, sqrt, pow base)."""

    def fix(rng, arrays):
        for i in indices:
            a = arrays[i]
            arrays[i] = (np.abs(a) + 0.5).astype(a.dtype) if a.dtype.kind == "f" else a
        return arrays

    return fix


def nonzero(indices):
    def fix(rng, arrays):
        for i in indices:
            a = arrays[i]
            if a.dtype.kind in "iu":
                arrays[i] = np.where(a == 0, 1, a).astype(a.dtype)
            elif a.dtype.kind == "f":
                arrays[i] = np.where(np.abs(a) < 0.25, 0.5, a).astype(a.dtype)
        return arrays

    return fix


_POSITIVE = {E.SqrtOp, E.RsqrtOp, E.LogOp}


@st.composite
def unary(draw, op):
    el = draw(st.sampled_from(_dtype_rule(op)))
    props = {}
    if op is E.GeluOp:
        props["approximate"] = draw(st.sampled_from(["none", "tanh"]))
    if op is E.ClampOp:
        lo = draw(st.none() | st.floats(-3, 1, width=32))
        hi = draw(st.none() | st.floats(1, 3, width=32) | st.just(math.inf))
        props = {"min": lo, "max": hi}
    if op is E.CastOp:
        props["to"] = draw(st.sampled_from(["f16", "bf16", "f32", "f64", "i64", "i32", "i1"]))
    domain = positive([0]) if op in _POSITIVE else nonzero([0]) if op is E.ReciprocalOp else None
    return Case(op, [T.tensor(draw(shapes()), el)], props, domain=domain)


@st.composite
def binary(draw, op):
    el = draw(st.sampled_from(_dtype_rule(op)))
    a, b = draw(broadcastable(2))
    domain = None
    if op is E.DivOp:
        domain = nonzero([1])
    if op is E.PowOp:
        domain = _pow_domain
    return Case(op, [T.tensor(a, el), T.tensor(b, el)], domain=domain)


def _pow_domain(rng, arrays):
    a, b = arrays
    if a.dtype.kind == "f":
        return [(np.abs(a) + 0.5).astype(a.dtype), b]
    return [a, np.abs(b)]  # integers to negative powers are an error in numpy


@st.composite
def where(draw, op):
    el = draw(st.sampled_from(ANY))
    c, a, b = draw(broadcastable(3))
    return Case(op, [T.tensor(c, i1), T.tensor(a, el), T.tensor(b, el)])


@st.composite
def conv2d(draw, op, depthwise=None):
    el = draw(st.sampled_from(FLOATS))
    g = draw(st.integers(1, 3))
    if depthwise if depthwise is not None else draw(st.booleans()):
        cin, cout = 1, draw(st.integers(1, 2))
    else:
        cin, cout = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    padding = draw(st.sampled_from([pads, pads[:2], pads[:1]]))  # 4, 2 (h, w) or 1 values
    pads = L.pad4(padding)
    h = max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]) + draw(st.integers(0, 4))
    w = max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]) + draw(st.integers(0, 4))
    n = draw(st.integers(1, 2))
    props = {"stride": stride, "padding": padding, "dilation": dil, "groups": g}
    return Case(op, [T.tensor((n, cin * g, h, w), el), T.tensor((cout * g, cin, kh, kw), el)], props)


@st.composite
def conv_transpose2d(draw, op):
    el = draw(st.sampled_from(FLOATS))
    g, cin, cout = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    extra = [draw(st.integers(0, s - 1)) for s in stride]
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    # padding may not remove the whole output: (h - 1)·s + d·(k - 1) + extra + 1 - pads >= 1
    room = [(h - 1) * stride[0] + dil[0] * (kh - 1) + extra[0], (w - 1) * stride[1] + dil[1] * (kw - 1) + extra[1]]
    ph, pw = draw(st.integers(0, min(2, room[0] // 2))), draw(st.integers(0, min(2, room[1] // 2)))
    props = {"stride": stride, "padding": (ph, pw), "dilation": dil, "output_padding": extra, "groups": g}
    return Case(op, [T.tensor((draw(st.integers(1, 2)), cin * g, h, w), el), T.tensor((cin * g, cout, kh, kw), el)],
                props)


@st.composite
def matmul(draw, op):
    el = draw(st.sampled_from(FLOATS))
    m, k, n = draw(dims), draw(dims), draw(dims)
    ba, bb = draw(broadcastable(2, 0, 2))
    return Case(op, [T.tensor((*ba, m, k), el), T.tensor((*bb, k, n), el)])


@st.composite
def linear(draw, op):
    el = draw(st.sampled_from(FLOATS))
    lead, i, o = draw(shapes(0, 2)), draw(dims), draw(dims)
    return Case(op, [T.tensor((*lead, i), el), T.tensor((o, i), el)])


@st.composite
def pool(draw, op, torch_legal=False):
    """torch_legal: padding at most half the kernel, as PyTorch requires."""
    el = draw(st.sampled_from(FLOATS))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if op is L.MaxPool2dOp else (1, 1)
    if torch_legal:
        ph, pw = draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))
        pads = (ph, pw, ph, pw)
    elif op is L.AvgPool2dOp:  # each pad smaller than the kernel
        pads = tuple(draw(st.integers(0, min(2, k[i % 2] - 1))) for i in range(4))
    else:
        pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = max(1, dil[0] * (k[0] - 1) + 1 - pads[0] - pads[2]) + draw(st.integers(0, 4))
    w = max(1, dil[1] * (k[1] - 1) + 1 - pads[1] - pads[3]) + draw(st.integers(0, 4))
    props = {"kernel": k, "stride": stride, "padding": pads, "ceil_mode": draw(st.booleans())}
    if op is L.MaxPool2dOp:
        props["dilation"] = dil
    else:
        props["count_include_pad"] = draw(st.booleans())
    x = T.tensor((draw(st.integers(1, 2)), draw(dims), h, w), el)
    return Case(op, [x], props)


@st.composite
def global_avg_pool(draw, op):
    return Case(op, [T.tensor(draw(shapes(4, 4)), draw(st.sampled_from(FLOATS)))])


@st.composite
def pad(draw, op):
    el = draw(st.sampled_from(FLOATS))
    s = draw(shapes(1, 4))
    lo = [draw(st.integers(-d + 1, 2)) for d in s]
    hi = [draw(st.integers(-(d - 1 + min(a, 0)), 2)) for d, a in zip(s, lo)]
    value = draw(st.sampled_from([0.0, 1.5, -math.inf]))
    return Case(op, [T.tensor(s, el)], {"pads": lo + hi, "value": value})


@st.composite
def reshape(draw, op):
    s = draw(shapes())
    return Case(op, [T.tensor(s, draw(st.sampled_from(ANY)))], {"shape": draw(factorization(math.prod(s)))})


@st.composite
def transpose(draw, op):
    s = draw(shapes())
    return Case(op, [T.tensor(s, draw(st.sampled_from(ANY)))], {"perm": draw(st.permutations(range(len(s))))})


@st.composite
def broadcast(draw, op):
    out = draw(shapes())
    (x,) = draw(broadcastable(1)) if out else [()]
    drop = draw(st.integers(0, len(out)))
    x = tuple(1 if draw(st.booleans()) else d for d in out[drop:])
    return Case(op, [T.tensor(x, draw(st.sampled_from(ANY)))], {"shape": out})


@st.composite
def slice_(draw, op):
    s = draw(shapes(1, 4))
    axes = draw(st.lists(st.integers(0, len(s) - 1), min_size=1, max_size=len(s), unique=True))
    starts, ends, steps = [], [], []
    for a in axes:
        lo = draw(st.integers(0, s[a] - 1))
        starts.append(lo)
        ends.append(draw(st.integers(lo + 1, s[a])))
        steps.append(draw(st.integers(1, 3)))
    axes = [a - len(s) if draw(st.booleans()) else a for a in axes]
    return Case(op, [T.tensor(s, draw(st.sampled_from(ANY)))],
                {"axes": axes, "starts": starts, "ends": ends, "steps": steps})


@st.composite
def concat(draw, op):
    el = draw(st.sampled_from(ANY))
    s = draw(shapes(1, 4))
    axis = draw(axis_of(len(s)))
    ins = []
    for _ in range(draw(st.integers(1, 3))):
        t = list(s)
        t[axis] = draw(dims)
        ins.append(T.tensor(t, el))
    return Case(op, ins, {"axis": axis})


@st.composite
def gather(draw, op):
    s = draw(shapes(1, 3))
    axis = draw(axis_of(len(s)))
    idx_el = draw(st.sampled_from([i64, i32]))
    n = s[axis]

    def domain(rng, arrays):
        arrays[1] = rng.integers(-n, n, arrays[1].shape).astype(arrays[1].dtype)
        return arrays

    props = {"axis": axis}
    if draw(st.booleans()):
        props["padding_idx"] = draw(st.integers(0, n - 1))
    return Case(op, [T.tensor(s, draw(st.sampled_from(ANY))), T.tensor(draw(shapes(0, 2)), idx_el)],
                props, domain=domain)


@st.composite
def gather_elements(draw, op):
    s = draw(shapes(1, 3))
    axis = draw(axis_of(len(s)))
    ax = axis % len(s)
    idx = tuple(draw(dims) if a == ax else draw(st.integers(1, d)) for a, d in enumerate(s))

    def domain(rng, arrays):
        arrays[1] = rng.integers(-s[ax], s[ax], idx).astype(np.int64)
        return arrays

    return Case(op, [T.tensor(s, draw(st.sampled_from(ANY))), T.tensor(idx, i64)], {"axis": axis},
                domain=domain)


@st.composite
def reduce(draw, op):
    el = draw(st.sampled_from(_dtype_rule(op)))
    s = draw(shapes())
    axes = draw(st.lists(st.integers(0, len(s) - 1), max_size=len(s), unique=True)) if s else []
    axes = [a - len(s) if draw(st.booleans()) else a for a in axes]
    return Case(op, [T.tensor(s, el)], {"axes": axes, "keepdims": draw(st.booleans())})


@st.composite
def along_axis(draw, op):
    s = draw(shapes(1, 4))
    return Case(op, [T.tensor(s, draw(st.sampled_from(_dtype_rule(op))))], {"axis": draw(axis_of(len(s)))})


_eps = st.sampled_from([1e-5, 1e-6, 0.001, 0.1])


@st.composite
def batch_norm(draw, op):
    el = draw(st.sampled_from(FLOATS))
    s = draw(shapes(2, 4))
    c = T.tensor((s[1],), el)

    def domain(rng, arrays):
        arrays[4] = (np.abs(arrays[4]) + 0.1).astype(arrays[4].dtype)  # variance
        return arrays

    return Case(op, [T.tensor(s, el), c, c, c, c], {"eps": draw(_eps)}, domain=domain)


@st.composite
def last_axes_norm(draw, op):
    el = draw(st.sampled_from(FLOATS))
    s = draw(shapes(1, 4))
    axis = draw(axis_of(len(s)))
    aff = T.tensor(s[axis % len(s):], el)
    n_aff = 2 if op is N.LayerNormOp else 1
    return Case(op, [T.tensor(s, el)] + [aff] * n_aff, {"axis": axis, "eps": draw(_eps)})


@st.composite
def cross_entropy(draw, op):
    el = draw(st.sampled_from(FLOATS))
    n, c = draw(dims), draw(st.integers(1, 5))
    extra = draw(shapes(0, 2))
    ignore = draw(st.sampled_from([-100, 0, 2]))

    def domain(rng, arrays):
        lab = rng.integers(0, c, arrays[1].shape)
        arrays[1] = np.where(rng.random(lab.shape) < 0.2, ignore, lab).astype(np.int64)
        return arrays

    props = {"reduction": draw(st.sampled_from(["mean", "sum"])), "ignore_index": ignore}
    return Case(op, [T.tensor((n, c, *extra), el), T.tensor((n, *extra), i64)], props, domain=domain)


@st.composite
def mse(draw, op):
    t = T.tensor(draw(shapes()), draw(st.sampled_from(FLOATS)))
    return Case(op, [t, t], {"reduction": draw(st.sampled_from(["mean", "sum"]))})


# --- state -------------------------------------------------------------------------

param_names = st.sampled_from(["w", "fc1.weight", "features.0.weight", "layer-1.bias", "odd name", "_x"])


@st.composite
def param_decl(draw):
    trainable = draw(st.booleans())
    el = draw(st.sampled_from(FLOATS if trainable else ANY))
    return (draw(param_names), T.tensor(draw(shapes()), el), draw(st.sampled_from(ROLES)), trainable)


@st.composite
def get(draw, op):
    decl = draw(param_decl())
    return Case(op, [], params=[decl], make=lambda args: GetOp.create(
        result_types=[decl[1]], properties={"param": _sym(decl[0])}))


@st.composite
def set_(draw, op):
    decl = draw(param_decl())
    return Case(op, [decl[1]], params=[decl], make=lambda args: SetOp.of(decl[0], args[0]))


@st.composite
def set_slice(draw, op):
    name, full, role, trainable = draw(param_decl())
    s = T.shape(full)
    if not s:
        s = (draw(dims),)
        full = T.tensor(s, full.element_type)
    axis = draw(st.integers(0, len(s) - 1))
    n = draw(st.integers(1, s[axis]))
    start = draw(st.integers(0, s[axis] - n))
    part = T.tensor(tuple(n if a == axis else d for a, d in enumerate(s)), full.element_type)
    return Case(op, [part], params=[(name, full, role, trainable)],
                make=lambda args: op.of(name, args[0], axis, start))


def _sym(name):
    from xdsl.dialects.builtin import SymbolRefAttr

    return SymbolRefAttr(name)


@st.composite
def constant(draw, op):
    el = draw(st.sampled_from([f32, f64, i64, i32, i1]))
    s = draw(shapes(0, 3))
    dt = T.numpy_dtype(el)
    seed = draw(st.integers(0, 2**32 - 1))
    arr = random_array(T.tensor(s, el), np.random.default_rng(seed))
    if draw(st.booleans()):  # splats print as dense<v>
        arr = np.full(s, arr.flat[0] if arr.size else 0, dtype=dt)
    if el in FLOATS and arr.size and draw(st.booleans()):
        arr.flat[0] = draw(st.sampled_from([np.inf, -np.inf, 0.1, 1e-30, -0.0]))
    return Case(op, [], make=lambda args: ConstantOp.from_array(arr, el))


# --- the table ---------------------------------------------------------------------

CASES: dict[type[Operation], Callable] = {
    **{op: unary for op in E.UNARY_OPS},
    **{op: binary for op in E.BINARY_OPS},
    E.WhereOp: where,
    L.Conv2dOp: conv2d,
    L.ConvTranspose2dOp: conv_transpose2d,
    L.MatmulOp: matmul,
    L.LinearOp: linear,
    L.MaxPool2dOp: pool,
    L.AvgPool2dOp: pool,
    L.GlobalAvgPoolOp: global_avg_pool,
    L.PadOp: pad,
    S.ReshapeOp: reshape,
    S.TransposeOp: transpose,
    S.BroadcastOp: broadcast,
    S.SliceOp: slice_,
    S.ConcatOp: concat,
    S.GatherOp: gather,
    S.GatherElementsOp: gather_elements,
    **{op: reduce for op in (R.SumOp, R.MeanOp, R.MaxOp, R.AnyOp)},
    **{op: along_axis for op in (R.SoftmaxOp, R.LogSoftmaxOp, R.CumsumOp)},
    N.BatchNormOp: batch_norm,
    N.LayerNormOp: last_axes_norm,
    N.RmsNormOp: last_axes_norm,
    Lo.CrossEntropyOp: cross_entropy,
    Lo.MseOp: mse,
    ParamOp: get,  # the declaration plus a read of it
    GetOp: get,
    SetOp: set_,
    SetSliceOp: set_slice,
    ConstantOp: constant,
}

from quant_cases import QUANT_CASES

CASES.update(QUANT_CASES)


def all_cases() -> dict[type[Operation], Callable]:
    """Forward ops (here) plus backward and optimizer ops (train_cases.py, built from these)."""
    from train_cases import TRAIN_CASES

    return {**CASES, **TRAIN_CASES}


def cases(op) -> st.SearchStrategy[Case]:
    return all_cases()[op](op)


ROUNDTRIP_ONLY_ELEMENTS = [f16, bf16]  # printable but not interpretable in numpy
