"""Verifier and parser errors name the op and the offending shapes or attribute; parse errors
carry file:line:col. (tests/filecheck/ir/invalid.mlir checks the same through pock-opt.)"""

from __future__ import annotations

import numpy as np
import pytest
from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import loss as Lo
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.state import ConstantOp
from pockengine.ir.program import parse_module
from xdsl.utils.exceptions import ParseError, VerifyException
from xdsl.utils.test_value import create_ssa_value


def v(shape, el=T.f32):
    return create_ssa_value(T.tensor(shape, el))


BAD_BUILDS = [
    (L.Conv2dOp, [(1, 3, 8, 8), (4, 2, 3, 3)], {}, "input channels 3, weight 4x2x3x3 and groups 1 disagree"),
    (L.Conv2dOp, [(1, 6, 8, 8), (4, 3, 3, 3)], {"groups": 4}, "input channels 6, weight 4x3x3x3 and groups 4"),
    (L.Conv2dOp, [(1, 3, 8), (4, 3, 3, 3)], {}, "expects NCHW input and OIHW weight, got 1x3x8 and 4x3x3x3"),
    (L.Conv2dOp, [(1, 3, 2, 2), (4, 3, 3, 3)], {"dilation": (2, 2)}, "window 3 (dilation 2) larger than padded"),
    (L.Conv2dOp, [(1, 3, 8, 8), (4, 3, 3, 3)], {"padding": (1, 2, 3)}, "padding needs 1, 2 or 4 values"),
    (L.MatmulOp, [(2, 3), (4, 5)], {}, "contraction dims differ: 2x3 x 4x5"),
    (L.MatmulOp, [(2, 2, 3), (3, 3, 5)], {}, "shapes 2, 3 do not broadcast"),
    (L.MatmulOp, [(3,), (3, 2)], {}, "operands need rank >= 2, got 3 and 3x2"),
    (L.LinearOp, [(8, 16), (4, 15)], {}, "input 8x16 does not fit weight 4x15"),
    (L.MaxPool2dOp, [(1, 1, 4, 4)], {"kernel": (5, 5)}, "window 5 (dilation 1) larger than padded input 4"),
    (L.AvgPool2dOp, [(1, 1, 4, 4)], {"kernel": (2, 2), "padding": (2, 0)}, "must be smaller than the kernel"),
    (L.PadOp, [(2, 3)], {"pads": (0, 0, 0)}, "pads needs 4 values for rank 2, got 3"),
    (L.PadOp, [(2, 3)], {"pads": (0, -2, 0, -2)}, "negative padding [0, -2, 0, -2] removes more than 2x3"),
    (E.AddOp, [(2, 3), (4,)], {}, "shapes 2x3, 4 do not broadcast"),
    (S.ReshapeOp, [(2, 3)], {"shape": (4, 2)}, "cannot reshape 2x3 to [4, 2]"),
    (S.TransposeOp, [(2, 3)], {"perm": (1, 1)}, "perm [1, 1] is not a permutation of rank 2"),
    (S.BroadcastOp, [(3,)], {"shape": (2, 4)}, "shapes 3, 2x4 do not broadcast"),
    (S.BroadcastOp, [(2, 1)], {"shape": (2,)}, "cannot broadcast 2x1 to 2"),
    (S.ConcatOp, [(4, 3), (4, 2)], {"axis": 0}, "shapes 4x3, 4x2 differ off axis 0"),
    (S.GatherElementsOp, [(3, 4), ((3, 5), T.i64)], {"axis": 0}, "indices 3x5 do not fit input 3x4 off axis 0"),
    (R.SumOp, [(2, 3)], {"axes": (0, -2)}, "repeated axis in [0, -2]"),
    (R.MeanOp, [(2, 3)], {"axes": (3,)}, "axis 3 out of range for rank 2"),
    (R.SoftmaxOp, [(2, 3)], {"axis": -3}, "axis -3 out of range for rank 2"),
    (N.BatchNormOp, [(2, 8, 4, 4), (4,), (8,), (8,), (8,)], {}, "gamma must be [8], got 4"),
    (N.BatchNormOp, [(8,), (8,), (8,), (8,), (8,)], {}, "expects [N, C, ...] input, got 8"),
    (N.RmsNormOp, [(2, 8), (2, 8)], {"axis": -1}, "affine parameter 2x8 must be 8"),
    (Lo.CrossEntropyOp, [(4, 10), ((4, 2), T.i64)], {}, "logits 4x10 and labels 4x2 do not fit"),
    (Lo.CrossEntropyOp, [(4, 10), (4,)], {}, "labels must be integers, got tensor<4xf32>"),
    (Lo.MseOp, [(4,), (4, 1)], {}, "prediction tensor<4xf32> and target tensor<4x1xf32> differ"),
]


@pytest.mark.parametrize("op, operands, props, message", BAD_BUILDS,
                         ids=[f"{c[0].name}-{i}" for i, c in enumerate(BAD_BUILDS)])
def test_build_errors_name_op_and_shapes(op, operands, props, message):
    values = [v(*o) if isinstance(o[0], tuple) else v(o) for o in operands]
    with pytest.raises(VerifyException) as e:
        op.build(*values, **props)
    assert str(e.value).startswith(op.name + ": ")
    assert message in str(e.value)


@pytest.mark.parametrize("op, el, kind", [
    (E.SqrtOp, T.i64, "a float"), (E.NegOp, T.i1, "a numeric (non-i1)"), (E.OrOp, T.f32, "an integer or i1"),
    (E.LogicalNotOp, T.i64, "an i1"), (R.AnyOp, T.f32, "an i1"), (R.CumsumOp, T.i1, "a numeric (non-i1)"),
])
def test_element_type_rules(op, el, kind):
    x = v((2,), el)
    args = [x, x] if issubclass(op, E.BinaryOp) else [x]
    props = {"axes": [0]} if op is R.AnyOp else {}
    with pytest.raises(VerifyException) as e:
        op.build(*args, **props)
    assert str(e.value) == f"{op.name}: expects {kind} tensor, got tensor<2x{el}>"


def test_stored_result_type_is_checked_against_inference():
    x, w = v((1, 3, 8, 8)), v((4, 3, 3, 3))
    op = L.Conv2dOp.create(operands=[x, w], result_types=[T.tensor((1, 4, 8, 8))])
    with pytest.raises(VerifyException) as e:
        op.verify()
    assert str(e.value) == ("train.conv2d: result types (tensor<1x4x8x8xf32>) do not match the inferred "
                            "(tensor<1x4x6x6xf32>) for operands (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>)")


def test_unknown_and_bad_properties():
    x = v((2, 3))
    with pytest.raises(VerifyException, match=r"train.sum: unknown property 'axis' \(known: axes, keepdims\)"):
        R.SumOp.build(x, axis=0)
    with pytest.raises(VerifyException, match=r"train.sum: bad value 'x' for property 'keepdims'"):
        R.SumOp.build(x, axes=[0], keepdims="x")


def test_numpy_scalars_are_property_values():
    x = v((2, 3, 4))
    op = R.SumOp.build(x, axes=np.array([0, 2]), keepdims=np.bool_(True))
    assert op.p.axes == (0, 2) and op.p.keepdims is True
    assert L.PadOp.build(x, pads=[0] * 6, value=np.float32(1.5)).p.value == 1.5
    assert S.ConcatOp.build(x, x, axis=np.int64(1)).result.type == T.tensor((2, 6, 4))


def parse_error(text: str) -> str:
    with pytest.raises(ParseError) as e:
        parse_module(text, "model.mlir")
    return str(e.value)


def test_parse_errors_carry_line_and_column():
    text = "builtin.module {\n  func.func @f(%x : tensor<4xf32>) {\n    %y = train.relu %x, : tensor<4xf32>\n  }\n}\n"
    assert parse_error(text).startswith("model.mlir:3:25")
    text = ("func.func @f(%x : tensor<1x3x8x8xf32>, %w : tensor<4x3x3x3xf32>) {\n"
            "  %y = train.conv2d %x, %w {stride = [1.5]} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>\n"
            "  func.return\n}\n")
    msg = parse_error(text)
    assert msg.startswith("model.mlir:2:")
    assert "train.conv2d: bad value [1.5" in msg and "for property 'stride' (expects a list of integers)" in msg


def test_misspelt_property_is_an_error_and_other_keys_are_discardable_attributes():
    text = ("func.func @f(%x : tensor<2x3xf32>) {{\n  %y = train.sum %x {{{}}} : (tensor<2x3xf32>) -> tensor<3xf32>\n"
            "  func.return\n}}\n")
    assert "did you mean 'axes'?" in parse_error(text.format("axis = [0]"))
    module = parse_module(text.format('axes = [0], note = "kept"'))
    op = next(o for o in module.walk() if isinstance(o, R.SumOp))
    assert op.attributes["note"].data == "kept" and op.p.axes == (0,)
    assert 'note = "kept"' in str(module)


@pytest.mark.parametrize("el", [T.f32, T.f64])
def test_non_finite_and_hex_float_constants_parse_to_their_bit_patterns(el):
    """xDSL prints inf/nan and floats without a short decimal form as bit patterns; they must
    read back as the same floats (ir/xdsl_fixes.py)."""
    values = np.array([np.inf, -np.inf, np.nan, 16777216.0, -0.0, 1.5], dtype=T.numpy_dtype(el))
    const = ConstantOp.from_array(values, el)
    text = "%c = " + str(const).split(" = ", 1)[1]
    assert "0x" in text
    module = parse_module("builtin.module {\n  " + text + "\n}\n")
    back = next(iter(module.body.block.ops)).array()
    np.testing.assert_array_equal(back, values)
    assert np.signbit(back[4])
    splat = parse_module("builtin.module {\n  %c = train.constant dense<0xFF800000> : tensor<2xf32>\n}\n")
    np.testing.assert_array_equal(next(iter(splat.body.block.ops)).array(), [-np.inf, -np.inf])
