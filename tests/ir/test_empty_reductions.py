"""A reduction over an empty axis gives the identity, as ONNX specifies (checked against
onnxruntime): sum 0, max -inf; any is false; a mean over nothing is NaN, as in PyTorch (0/0).
Softmax over an empty axis is empty. None of them is an error (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
from pockengine import Program


def _run(op: str, shape, axes, el="f32", out_el=None):
    out_el = out_el or el
    kept = [d for i, d in enumerate(shape) if i not in axes]
    t_in = f"tensor<{'x'.join(map(str, shape))}x{el}>"
    t_out = f"tensor<{'x'.join(map(str, kept))}x{out_el}>" if kept else f"tensor<{out_el}>"
    text = f"""func.func @forward(%x: {t_in}) -> {t_out} {{
  %y = train.{op} %x {{axes = [{', '.join(map(str, axes))}]}} : ({t_in}) -> {t_out}
  func.return %y : {t_out}
}}"""
    prog = Program.parse(text)
    prog.module.verify()
    dtype = {"f32": np.float32, "i64": np.int64, "i1": np.bool_}[el]
    return prog.run("forward", np.zeros(shape, dtype))


def _onnxruntime(op: str, shape, axes):
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    init = helper.make_tensor("axes", TensorProto.INT64, [len(axes)], list(axes))
    graph = helper.make_graph([helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)], "g", [x], [y], [init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.zeros(shape, np.float32)})[0]


@pytest.mark.parametrize("op, onnx_op", [("sum", "ReduceSum"), ("max", "ReduceMax")])
@pytest.mark.parametrize("shape, axes", [((3, 0), [1]), ((0, 4), [0]), ((2, 0, 3), [1]), ((2, 0, 3), [1, 2])])
def test_empty_reduction_is_the_identity_of_onnx(op, onnx_op, shape, axes):
    got = _run(op, shape, axes)
    want = _onnxruntime(onnx_op, shape, axes)
    assert got.shape == want.shape and np.array_equal(got, want)


def test_empty_mean_is_nan_like_pytorch():
    torch = pytest.importorskip("torch")
    got = _run("mean", (3, 0), [1])
    want = torch.zeros(3, 0).mean(dim=1).numpy()
    assert got.shape == want.shape == (3,) and np.isnan(got).all() and np.isnan(want).all()


def test_empty_integer_max_and_any():
    assert _run("max", (2, 0), [1], "i64").tolist() == [np.iinfo(np.int64).min] * 2
    assert _run("any", (2, 0), [1], "i1").tolist() == [False, False]


def test_nan_still_propagates_through_max():
    prog = Program.parse("""func.func @forward(%x: tensor<1x3xf32>) -> tensor<1xf32> {
  %y = train.max %x {axes = [1]} : (tensor<1x3xf32>) -> tensor<1xf32>
  func.return %y : tensor<1xf32>
}""")
    assert np.isnan(prog.run("forward", np.array([[1.0, np.nan, 5.0]], np.float32))).all()


def test_softmax_over_an_empty_axis_is_empty():
    prog = Program.parse("""func.func @forward(%x: tensor<2x0xf32>) -> tensor<2x0xf32> {
  %y = train.softmax %x {axis = 1} : tensor<2x0xf32>
  func.return %y : tensor<2x0xf32>
}""")
    assert prog.run("forward", np.zeros((2, 0), np.float32)).shape == (2, 0)
