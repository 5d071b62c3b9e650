"""ONNX import errors say what is wrong (issue 12): an empty file is not "opset None", a model
in another domain names the domains it imports, an unnamed node is named by its index and its
outputs instead of `node ''`."""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper
from pockengine import from_onnx
from pockengine.frontends import FrontendError


def _model(nodes, opsets):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=opsets)


def test_empty_file(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(FrontendError, match="m.onnx: empty file, not an ONNX model"):
        from_onnx(str(tmp_path / "m.onnx"))
    with pytest.raises(FrontendError, match="an empty ONNX model") as e:
        from_onnx(onnx.ModelProto())
    assert "None" not in str(e.value)


def test_only_another_domain():
    m = _model([helper.make_node("Relu", ["x"], ["y"], domain="com.microsoft")], [helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(FrontendError, match="no default-domain .ai.onnx. opset.*'com.microsoft' version 1") as e:
        from_onnx(m)
    assert "None" not in str(e.value)


def test_unnamed_nodes_are_named_by_index_and_outputs():
    m = _model([helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Frobnicate", ["t"], ["y"])],
               [helper.make_opsetid("", 17)])
    with pytest.raises(FrontendError, match=r"node #1 \(unnamed; outputs 'y'\)") as e:
        from_onnx(m)
    assert "node ''" not in str(e.value)
    m = _model([helper.make_node("Softmax", ["x"], ["y"], axis=7)], [helper.make_opsetid("", 17)])
    with pytest.raises(FrontendError, match=r"node #0 \(unnamed; outputs 'y'\) \(Softmax, opset 17\)"):
        from_onnx(m)
    named = _model([helper.make_node("Frobnicate", ["x"], ["y"], name="frob1")], [helper.make_opsetid("", 17)])
    with pytest.raises(FrontendError, match="in node 'frob1'"):
        from_onnx(named)
