"""Quantization ops (ir/ops/quant.py) on the kernel libraries: the affine maps are loop
nests built from existing scalar instructions; the integer contractions run on the float
GEMM/convolution kernels, cut along K so that every partial sum is exact.

Rounding half to even is the 1.5·2²³ trick: for |v| ≤ 2²², (v + 12582912) - 12582912 in
float32 is v rounded to the nearest integer, ties to even (the default rounding mode; the C
targets build without -ffast-math, so the two operations stay). v is clamped to ±2²² first,
which changes nothing after saturation to 8 bits, and the clamp (a select) keeps the compiler
from contracting a product before it into one FMA.

Exactness of the integer contractions: a' = a - a_zp and b' = b - b_zp are integers with
|a'| ≤ A, |b'| ≤ B (A, B from the element types and, when they are constants, the zero
points: 255 at worst for 8 bits). A float32 sum of K such products is exact in any order
while K·A·B ≤ 2²⁴, so K is cut into chunks of at most ⌊2²⁴ / (A·B)⌋ (≥ 258), each chunk runs
the f32 kernel and its (exact) result is added in int32. The result equals the interpreter's
int64 accumulation whenever it fits int32, as onnxruntime's does.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import types as T
from ...ir.ops import quant as Q
from ...ir.ops.state import ConstantOp
from ..kernel_ir import View, contiguous_strides
from ..lower_to_kernels import LoweringError, MapBuilder, dtype_of, lowers, map_form
from .linalg import batch_layout

MAGIC = 12582912.0  # 1.5·2²³
LIMIT = 4194304.0  # 2²²
EXACT = 1 << 24  # integers exactly representable in float32


def _rounded(mb, x, s, z) -> tuple:
    """round_half_even(x / s) + z as a float (unclamped above 2²² in magnitude); NaN stays NaN."""
    v = mb.emit("train.div", (x, s))
    v = mb.emit("train.clamp", (v,), "f32", (-LIMIT, LIMIT))
    v = mb.emit("train.sub", (mb.emit("train.add", (v, mb.const(MAGIC))), mb.const(MAGIC)))
    return mb.emit("train.add", (v, mb.emit("train.cast", (z,), "f32")))


def _saturated(mb, op, x, s, z) -> tuple:
    lo, hi = T.int_range(T.element(op.zero_point))
    v = _rounded(mb, x, s, z)
    v = mb.emit("train.where", (mb.emit("train.ne", (v, v), "i1"), mb.const(lo), v))  # NaN → lowest
    return mb.emit("train.clamp", (v,), "f32", (float(lo), float(hi)))


@map_form(Q.QuantizeOp)
def quantize_form(mb, op, operands):
    x, s, z = (operands.ref(i) for i in range(3))
    return [mb.emit("train.cast", (_saturated(mb, op, x, s, z),), dtype_of(op.result.type))]


@map_form(Q.DequantizeOp)
def dequantize_form(mb, op, operands):
    q, s, z = (operands.ref(i) for i in range(3))
    diff = mb.emit("train.sub", (mb.emit("train.cast", (q,), "i32"), mb.emit("train.cast", (z,), "i32")), "i32")
    return [mb.emit("train.mul", (mb.emit("train.cast", (diff,), "f32"), s))]


@map_form(Q.FakeQuantizeOp)
def fake_quantize_form(mb, op, operands):
    x, s, z = (operands.ref(i) for i in range(3))
    q = _saturated(mb, op, x, s, z)
    return [mb.emit("train.mul", (mb.emit("train.sub", (q, mb.emit("train.cast", (z,), "f32"))), s))]


@map_form(Q.FakeQuantizeBackwardOp)
def fake_quantize_backward_form(mb, op, operands):
    x, s, z, dy = (operands.ref(i) for i in range(4))
    lo, hi = T.int_range(T.element(op.zero_point))
    v = _rounded(mb, x, s, z)  # NaN fails both comparisons: no gradient, as in torch
    inside = mb.emit("train.and", (mb.emit("train.ge", (v, mb.const(lo)), "i1"),
                                   mb.emit("train.le", (v, mb.const(hi)), "i1")), "i1")
    return [mb.emit("train.where", (inside, dy, mb.const(0.0)))]


# --- integer contractions ---------------------------------------------------------------


def _magnitude(value, zp) -> int:
    """The largest |v - zp| over the value's element type and the zero point's values."""
    lo, hi = T.int_range(T.element(value))
    if isinstance(zp.owner, ConstantOp):
        z = zp.owner.array().astype(np.int64)
        zlo, zhi = int(z.min(initial=0)), int(z.max(initial=0))
    else:
        zlo, zhi = lo, hi
    return max(hi - zlo, zhi - lo, 1)


def _centered(lw, view: View, zp: View) -> View:
    """A float32 copy of view - zp (exact: at most 9-bit integers)."""
    mb = MapBuilder(view.shape)
    diff = mb.emit("train.sub", (mb.emit("train.cast", (mb.input(view),), "i32"),
                                 mb.emit("train.cast", (mb.input(zp),), "i32")), "i32")
    out = lw.scratch(math.prod(view.shape)).reshaped(view.shape)
    lw.steps.append(mb.finish([out], [mb.emit("train.cast", (diff,), "f32")], lw.origin()))
    return out


def _accumulate(lw, acc: View, part: View, first: bool) -> None:
    """acc (int32) = part, or acc + part, part an exact float32 result."""
    mb = MapBuilder(acc.shape)
    v = mb.emit("train.cast", (mb.input(part),), "i32")
    if not first:
        v = mb.emit("train.add", (mb.input(acc), v), "i32")
    lw.steps.append(mb.finish([acc], [v], lw.origin()))


def _sub_view(v: View, axis: int, start: int, stop: int) -> View:
    st = v.elem_strides()
    shape = (*v.shape[:axis], stop - start, *v.shape[axis + 1:])
    return View(v.storage, v.dtype, shape, v.offset + start * st[axis], st)


def _chunk(lhs, lhs_zp, rhs, rhs_zp) -> int:
    return max(1, EXACT // (_magnitude(lhs, lhs_zp) * _magnitude(rhs, rhs_zp)))


@lowers(Q.MatmulIntegerOp)
def lower_matmul_integer(lw, op):
    a = _centered(lw, lw.view(op.lhs), lw.view(op.lhs_zero_point))
    b = _centered(lw, lw.view(op.rhs), lw.view(op.rhs_zero_point))
    c = lw.result(op.result)
    k = a.shape[-1]
    kc = _chunk(op.lhs, op.lhs_zero_point, op.rhs, op.rhs_zero_point)
    part = lw.scratch(math.prod(c.shape)).reshaped(c.shape)
    for k0 in range(0, k, kc):
        k1 = min(k, k0 + kc)
        _matmul(lw, _sub_view(a, len(a.shape) - 1, k0, k1), _sub_view(b, len(b.shape) - 2, k0, k1), part)
        _accumulate(lw, c, part, k0 == 0)


def _matmul(lw, a: View, b: View, c: View) -> None:
    """c = a·b on the library's f32 matmul (as backends/lowering/linalg.py's lower_matmul)."""
    m, k = a.shape[-2:]
    n = b.shape[-1]
    batch, (sa, sb, sc) = batch_layout(c.shape[:-2], [a, b, c])
    ra, ca = a.elem_strides()[-2:]
    rb, cb = b.elem_strides()[-2:]
    work = lw.scratch(lw.library.gemm_workspace(m, n, k))
    lw.call("matmul", {"nbatch": len(batch), "batch": batch or (1,), "sa": sa or (0,), "sb": sb or (0,),
                       "sc": sc or (0,), "m": m, "n": n, "k": k, "a": a, "ra": ra, "ca": ca, "b": b, "rb": rb, "cb": cb,
                       "c": c, "work": work}, [a, b], [c, work])


@lowers(Q.ConvIntegerOp)
def lower_conv_integer(lw, op):
    x = _centered(lw, lw.view(op.x), lw.view(op.x_zero_point))
    w = _centered(lw, lw.view(op.weight), lw.view(op.weight_zero_point))
    y = lw.result(op.result)
    _, cin, kh, kw = w.shape
    cc = max(1, _chunk(op.x, op.x_zero_point, op.weight, op.weight_zero_point) // (kh * kw))
    if cc < cin and op.p.groups != 1:
        raise LoweringError(f"a grouped integer convolution with {cin}x{kh}x{kw} taps per output exceeds the "
                            f"float32-exact {cc * kh * kw} (interpret it, or use groups = 1)")
    part = lw.scratch(math.prod(y.shape)).reshaped(y.shape)
    for c0 in range(0, cin, cc):
        c1 = min(cin, c0 + cc)
        xs, ws = (x, w) if c1 - c0 == cin else (_packed(lw, _sub_view(x, 1, c0, c1)), _packed(lw, _sub_view(w, 1, c0, c1)))
        geometry, floats = lw.library.conv_plan("forward", xs.shape, ws.shape, op.p, y.shape)
        work = lw.scratch(floats)
        lw.call("conv2d", {"geometry": geometry, "x": xs, "w": ws, "y": part, "work": work, "epilogue": None},
                [xs, ws], [part, work])
        _accumulate(lw, y, part, c0 == 0)


def _packed(lw, v: View) -> View:
    out = View(lw.scratch(math.prod(v.shape)).storage, v.dtype, v.shape, 0, contiguous_strides(v.shape))
    lw.copy(v, out)
    return out
