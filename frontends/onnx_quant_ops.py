"""ONNX translations of quantized models: QuantizeLinear, DequantizeLinear,
DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv (the ops
onnxruntime.quantization writes in its QDQ and QOperator formats and quantize_dynamic).

How a quantized graph lands in the `train` dialect (ir/ops/quant.py):
- int8/uint8 weights (an initializer read by DequantizeLinear) become frozen `train.param`s of
  type i8/ui8 (role "weight", not trainable) read through `train.dequantize`: the int8 bytes
  are what is stored, the float weight is computed. int32 biases through DequantizeLinear are
  dequantized at import (the same float32 product onnxruntime computes) into float parameters,
  which train.
- A DequantizeLinear reading a QuantizeLinear with the same scale and zero point (an
  activation's Q→DQ pair) becomes one `train.fake_quantize`, which gradients cross with the
  straight-through estimator (passes/vjp/quant.py).
- Per-axis scales and zero points are reshaped to broadcast along `axis`; blocked ones
  (opset 21 `block_size`, known at import) are repeated along it.
- QLinearMatMul / QLinearConv are decompositions: the exact int32 accumulation
  (`train.matmul_integer` / `train.conv_integer`, plus the int32 bias), then the requantization
  y = saturate(round(float(acc) · (s_a·s_b / s_y)) + z_y) with the multiplier rounded to float32
  as onnxruntime does. Bit-exact against onnxruntime in tests/frontends/test_onnx_quantized.py.
Gradients do not cross integer values: in QOperator or dynamically quantized models only the
float ops after the last integer op train; the QDQ format keeps every layer trainable.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import i8, i32
from xdsl.ir import SSAValue

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import quant as Q
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from ..ir.ops.state import ConstantOp, GetOp, ParamOp
from .onnx_importer import Known, element, element_of_onnx, infer_roles, shape, translates
from .onnx_nn_ops import _window
from .onnx_ops import axis_of, cast, reshape

_INT_NAMES = {"INT8": i8, "UINT8": T.ui8, "INT32": i32}


def _onnx_name(code: int) -> str:
    import onnx

    return onnx.TensorProto.DataType.Name(code)


def _quant_element(n, v, what: str, allowed=(i8, T.ui8)):
    """The element type of an integer operand, or a one-line refusal naming the node."""
    if isinstance(v, Known) and v.array.dtype not in (np.int8, np.uint8, np.int32):
        raise n.error(f"{what} has element type {v.array.dtype}; int8 and uint8 quantization is supported "
                      "(not int4/int16/float8)")
    el = element(v)
    if el not in allowed:
        names = ", ".join(k.lower() for k, e in _INT_NAMES.items() if e in allowed)
        raise n.error(f"{what} has element type {el}; supported: {names}")
    return el


def _float_operand(n, v, what: str):
    if not T.is_float(v.type):
        raise n.error(f"{what} must be a float tensor, got {v.type}")
    return v


def _per_axis(g, n, p, x, axis: int, block: int, what: str):
    """A scale or zero point shaped to broadcast against x: rank-0/1-element as is, 1-D along
    `axis`, blocked (block_size > 0, same rank as x) repeated `block` times along it."""
    ps, xs = shape(p), shape(x)
    if block:
        if len(ps) != len(xs):
            raise n.error(f"blocked {what} must have x's rank {len(xs)}, got {T.fmt(ps)}")
        if isinstance(p, Known):
            return Known(np.take(np.repeat(p.array, block, axis=axis), range(xs[axis]), axis=axis))
        if ps[axis] * block < xs[axis]:
            raise n.error(f"blocked {what} {T.fmt(ps)} with block_size {block} does not cover input {T.fmt(xs)}")
        # [.., C/B, ..] → [.., C/B, 1, ..] → [.., C/B, B, ..] → [.., C/B·B, ..] → the first C
        lifted = reshape(g, p, [*ps[:axis + 1], 1, *ps[axis + 1:]])
        wide = g.emit(S.BroadcastOp, lifted, shape=[*ps[:axis + 1], block, *ps[axis + 1:]])
        flat = reshape(g, wide, [*ps[:axis], ps[axis] * block, *ps[axis + 1:]])
        if ps[axis] * block == xs[axis]:
            return flat
        return g.emit(S.SliceOp, flat, axes=[axis], starts=[0], ends=[xs[axis]])
    if len(ps) == 0 or (len(ps) == 1 and ps[0] == 1 and not xs):
        return _named(reshape(g, p, []), p)
    if len(ps) == 1 and xs and ps[0] in (xs[axis], 1):
        return _named(reshape(g, p, [ps[0] if i == axis else 1 for i in range(len(xs))]), p)
    raise n.error(f"{what} {T.fmt(ps)} is neither per-tensor nor per-axis for input {T.fmt(xs)} (axis {axis})")


def _named(v, like):
    """A reshaped known value keeps its initializer's name (the parameter it may become)."""
    if isinstance(v, Known) and v.name is None and isinstance(like, Known):
        v.name = like.name
    return v


def _zero(g, el, like_shape=()):
    return Known(np.zeros(like_shape, T.numpy_dtype(el)))


def _output_element(n):
    """QuantizeLinear's output type without a zero point: output_dtype (opset 21) or uint8."""
    code = n.attr("output_dtype", 0) if n.opset >= 21 else 0
    if not code:
        return T.ui8
    el = _INT_NAMES.get(_onnx_name(code))
    if el not in (i8, T.ui8):
        raise n.error(f"output_dtype {_onnx_name(code)} is not supported (int8 and uint8 are)")
    return el


def _affine_inputs(g, n, x, zp_kind_of):
    block = n.attr("block_size", 0) if n.opset >= 21 else 0
    scale = _float_operand(n, n.input(1), "the scale")
    # the axis matters only for per-axis and blocked parameters (a rank-1 bias keeps axis = 1)
    per_axis = bool(block) or (len(shape(scale)) == 1 and shape(scale)[0] != 1)
    axis = axis_of(n, x, n.attr("axis", 1)) if per_axis else 0
    zp = n.input(2) if n.has(2) else None
    el = zp_kind_of(zp)
    if zp is None:
        zp = _zero(g, el, shape(scale))
    return _per_axis(g, n, scale, x, axis, block, "scale"), _per_axis(g, n, zp, x, axis, block, "zero point"), el


@translates("QuantizeLinear", 10)
def quantize_linear(g, n):
    x = _float_operand(n, n.input(0), "the input")

    def zp_kind(zp):
        return _output_element(n) if zp is None else _quant_element(n, zp, "the zero point")

    scale, zp, _ = _affine_inputs(g, n, x, zp_kind)
    # opset 19's `saturate` applies to float8 outputs only; integer outputs always saturate.
    # The division runs in the scale's type (opset 28 `precision`, which may name another)
    precision = n.attr("precision", 0) if n.opset >= 28 else 0
    if precision:
        el = element_of_onnx(precision)
        if not T.is_float(el):
            raise n.error(f"precision {_onnx_name(precision)} is not a float type")
        scale = cast(g, scale, el)
    return g.emit(Q.QuantizeOp, cast(g, x, element(scale)), scale, zp)


@translates("DequantizeLinear", 10)
def dequantize_linear(g, n):
    x = n.input(0)
    el = _quant_element(n, x, "the input", (i8, T.ui8, i32))
    scale, zp, _ = _affine_inputs(g, n, x, lambda zp: el if zp is None else _quant_element(n, zp, "the zero point",
                                                                                         (i8, T.ui8, i32)))
    if element(zp) != el:
        raise n.error(f"zero point {element(zp)} and input {el} differ")
    out_el = element_of_onnx(n.attr("output_dtype")) if n.opset >= 23 and n.attr("output_dtype", 0) else None
    if out_el is not None and not T.is_float(out_el):
        raise n.error(f"output_dtype {_onnx_name(n.attr('output_dtype'))} is not a float type")
    if out_el is not None and out_el != element(scale):
        scale = cast(g, scale, out_el)  # (q - z)·s in the output type
    if el != i32:
        x = _weight(g, x)  # an int8 weight: stored as int8, dequantized in the IR
    pair = _fused_pair(g, x, scale, zp)
    if pair is not None:
        return pair
    y = g.emit(Q.DequantizeOp, x, scale, zp)
    role = _dequantized_roles(g).get(n.proto.output[0]) if isinstance(y, Known) else None
    return g._get(n.proto.output[0], y.array, role) if role else y


def _dequantized_roles(g) -> dict[str, str]:
    """Roles of the values DequantizeLinear computes from int32 initializers (biases): they
    become float parameters named after the DequantizeLinear output (onnxruntime keeps the
    float model's name there, `conv.bias`), trainable when they feed a bias slot."""
    if not hasattr(g, "quant_roles"):
        ranks = {nd.output[0]: g.initializers[nd.input[0]].ndim for nd in g.graph.node
                 if nd.op_type == "DequantizeLinear" and nd.input[0] in g.initializers
                 and g.initializers[nd.input[0]].dtype == np.int32}
        g.quant_roles = infer_roles(g.graph, ranks)
    return g.quant_roles


def _frozen(g, v: Known) -> SSAValue:
    """A quantized weight as a frozen i8/ui8 parameter named after its initializer."""
    name = v.name or "quantized_weight"
    if name not in g.params:
        g.params[name] = ParamOp(name, v.type, "weight", False)
        g.weights[name] = np.ascontiguousarray(v.array)
    get = GetOp.of(g.params[name])
    g.block.add_op(get)
    return get.result


def _weight(g, v):
    """An integer tensor known at import (a quantized weight) as a frozen parameter, not an
    inline constant; activations pass through."""
    return _frozen(g, v) if isinstance(v, Known) and v.array.size > 1 else v


def _same(g, a, b) -> bool:
    """Whether two scale / zero-point values are equal (the same value or equal constants)."""
    if a is b:
        return True
    arrays = []
    for v in (a, b):
        if isinstance(v, Known):
            arrays.append(v.array)
        elif isinstance(v.owner, ConstantOp):
            arrays.append(v.owner.array())
        elif isinstance(v.owner, GetOp) and not g.params[v.owner.param.root_reference.data].is_trainable:
            arrays.append(g.weights[v.owner.param.root_reference.data])
        else:
            return False
    return arrays[0].dtype == arrays[1].dtype and arrays[0].shape == arrays[1].shape and \
        bool(np.array_equal(arrays[0], arrays[1]))


def _fused_pair(g, x, scale, zp):
    """DequantizeLinear(QuantizeLinear(v, s, z), s, z) → train.fake_quantize(v, s, z)."""
    q = x.owner if isinstance(x, SSAValue) else None
    if not isinstance(q, Q.QuantizeOp) or not (_same(g, q.scale, scale) and _same(g, q.zero_point, zp)):
        return None
    if element(scale) != element(q.x):
        return None
    return g.emit(Q.FakeQuantizeOp, q.x, q.scale, q.zero_point)


@translates("DynamicQuantizeLinear", 11)
def dynamic_quantize_linear(g, n):
    """scale = (max(x, 0) - min(x, 0)) / 255, z = saturate(round(-min / scale)), y = quantize(x)."""
    x = _float_operand(n, n.input(0), "the input")
    if element(x) != T.f32:
        raise n.error(f"DynamicQuantizeLinear takes float32, got {x.type}")
    axes = list(range(len(shape(x))))
    zero = Known(np.zeros((), np.float32))
    hi = g.emit(E.MaximumOp, g.emit(R.MaxOp, x, axes=axes), zero)
    lo = g.emit(E.MinimumOp, g.emit(E.NegOp, g.emit(R.MaxOp, g.emit(E.NegOp, x), axes=axes)), zero)
    scale = g.emit(E.DivOp, g.emit(E.SubOp, hi, lo), Known(np.float32(255.0)))
    zp = g.emit(Q.QuantizeOp, g.emit(E.NegOp, lo), scale, Known(np.zeros((), np.uint8)))
    return [g.emit(Q.QuantizeOp, x, scale, zp), scale, zp]


# --- integer contractions ----------------------------------------------------------------


def _zp_of(n, i, v, what, rows_axis=None):
    """An optional zero point: rank-0 as is; 1-D reshaped along `rows_axis` of v (per row of
    a matmul's lhs, per output channel of a weight)."""
    el = _quant_element(n, v, what)
    if not n.has(i):
        return _zero(None, el)
    z = n.input(i)
    if element(z) != el:
        raise n.error(f"the zero point of {what} is {element(z)}, {what} is {el}")
    zs = shape(z)
    if len(zs) == 0 or (len(zs) == 1 and zs[0] == 1):
        return reshape(n.g, z, [])
    if len(zs) == 1 and rows_axis is not None and zs[0] == shape(v)[rows_axis]:
        return reshape(n.g, z, {-2: [zs[0], 1], -1: [zs[0]], 0: [zs[0], 1, 1, 1]}[rows_axis])
    raise n.error(f"zero point {T.fmt(zs)} of {what} {T.fmt(shape(v))} is not supported (per-tensor, or per "
                  f"{'row' if rows_axis == -2 else 'column' if rows_axis == -1 else 'output channel'})")


def _matmul_integer(g, n, a, az_at, b, bz_at):
    if len(shape(a)) < 2 or len(shape(b)) < 2:
        raise n.error(f"1-D operands are not supported ({T.fmt(shape(a))} x {T.fmt(shape(b))})")
    az = _zp_of(n, az_at, a, "the lhs", -2)
    bz = _zp_of(n, bz_at, b, "the rhs", -1)
    return g.emit(Q.MatmulIntegerOp, _weight(g, a), _weight(g, b), az, bz)


@translates("MatMulInteger", 10)
def matmul_integer(g, n):
    return _matmul_integer(g, n, n.input(0), 2, n.input(1), 3)


def _conv_integer(g, n, x, xz_at, w, wz_at):
    if len(shape(x)) != 4:
        raise n.error(f"{len(shape(x)) - 2}-D integer convolution is not supported (2-D is)")
    strides, dil, lo, hi = _window(n, x, shape(w)[2:])
    xz = _zp_of(n, xz_at, x, "the input")
    wz = _zp_of(n, wz_at, w, "the weight", 0)
    return g.emit(Q.ConvIntegerOp, _weight(g, x), _weight(g, w), xz, wz, stride=strides, dilation=dil, padding=[*lo, *hi],
                  groups=n.attr("group", 1))


@translates("ConvInteger", 10)
def conv_integer(g, n):
    return _conv_integer(g, n, n.input(0), 2, n.input(1), 3)


def _requantize(g, n, acc, scales, y_scale_at, y_zp_at, channel_shape):
    """y = saturate(round(float(acc)·(∏scales / s_y)) + z_y); the multiplier in float32."""
    mult = None
    for s, shaped in scales:
        s = _float_operand(n, s, "a scale")
        s = reshape(g, s, shaped if shape(s) and shape(s) != (1,) else [])
        mult = s if mult is None else g.emit(E.MulOp, mult, s)
    ys = _float_operand(n, n.input(y_scale_at), "the output scale")
    mult = g.emit(E.DivOp, mult, reshape(g, ys, []))
    out_el = _quant_element(n, n.input(y_zp_at), "the output zero point") if n.has(y_zp_at) else T.ui8
    yz = reshape(g, n.input(y_zp_at), []) if n.has(y_zp_at) else _zero(g, out_el)
    value = g.emit(E.MulOp, cast(g, acc, element(mult)), mult)
    return g.emit(Q.QuantizeOp, value, Known(np.ones((), T.numpy_dtype(element(mult)))), yz)


def _check_scale(n, i, what, allowed_len):
    s = shape(n.input(i))
    if s and not (len(s) == 1 and s[0] in (1, allowed_len)):
        raise n.error(f"{what} {T.fmt(s)} must be per-tensor" + (f" or of length {allowed_len}" if allowed_len else ""))


@translates("QLinearMatMul", 10)
def qlinear_matmul(g, n):
    a, b = n.input(0), n.input(3)
    acc = _matmul_integer(g, n, a, 2, b, 5)
    m_rows, n_cols = shape(a)[-2], shape(b)[-1]
    _check_scale(n, 1, "the lhs scale", m_rows)
    _check_scale(n, 4, "the rhs scale", n_cols)
    return _requantize(g, n, acc, [(n.input(1), [m_rows, 1]), (n.input(4), [n_cols])], 6, 7, None)


@translates("QLinearConv", 10)
def qlinear_conv(g, n):
    x, w = n.input(0), n.input(3)
    acc = _conv_integer(g, n, x, 2, w, 5)
    cout = shape(w)[0]
    if n.has(8):
        bias = n.input(8)
        if element(bias) != i32:
            raise n.error(f"the bias must be int32, got {bias.type}")
        acc = g.emit(E.AddOp, acc, reshape(g, bias, [cout, 1, 1]))
    _check_scale(n, 1, "the input scale", 0)
    _check_scale(n, 4, "the weight scale", cout)
    return _requantize(g, n, acc, [(n.input(1), []), (n.input(4), [cout, 1, 1])], 6, 7, None)
