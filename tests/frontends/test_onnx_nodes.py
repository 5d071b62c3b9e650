"""Node tests the onnx wheel ships, against onnxruntime and against their stored outputs.

- onnx.backend.test.case.node: the reference cases for each op of the frontend's list
  (generated at the op's latest version; beyond opset 23 they are re-stamped to 23,
  which onnx.checker must accept). Function ops also come `_expanded` into other ops.
- backend/test/data/pytorch-converted and pytorch-operator: models exported by PyTorch
  (mostly opset 6) with input/output .pb files.

Cases outside the frontend's scope must be refused with a located OnnxImportError; the
REFUSED table says which and why. Cases using ops outside the frontend are counted, not run.
"""

from __future__ import annotations

import importlib
from functools import cache

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_reference import DATA, assert_close, import_static, ort_run, outputs_of
from pockengine.frontends.onnx_importer import OnnxImportError, supported_ops

LISTED = [
    "Add", "And", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape",
    "Conv", "Div", "Dropout", "Erf", "Expand", "Flatten", "Gather", "GatherElements", "GatherND", "Gemm",
    "GlobalAveragePool", "Identity", "IsNaN", "LayerNormalization", "LRN", "MatMul", "MaxPool", "Mul", "Neg",
    "Pad", "Pow", "Range", "Reciprocal", "ReduceMean", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax",
    "SoftmaxCrossEntropyLoss", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Transpose", "Unsqueeze", "Where",
]
MODULE = {"And": "and_", "BatchNormalization": "batch_normalization", "Range": "rangeop",
          "SoftmaxCrossEntropyLoss": "softmax_cross_entropy_loss"}
SLOW_MODULES = {"AveragePool", "MaxPool"}  # their case generators run 3-D reference pools (~10 s)
NEWEST = 28
TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
         onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.BOOL,
         onnx.TensorProto.INT8, onnx.TensorProto.UINT8}  # 8-bit: quantized models (onnx_quant_ops.py)
WINDOW_OPS = {"Conv", "MaxPool", "AveragePool"}


def _tensor_types(model) -> set[int]:
    types = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    types |= {a.i for n in model.graph.node for a in n.attribute if n.op_type == "Cast" and a.name == "to"}
    return types


# (predicate on (case name, model), fragment of the expected error, why it is out of scope)
REFUSED = [
    (lambda name, m: not _tensor_types(m) <= TYPES, "element type|only tensors are supported",
     "element types beyond f16/f32/f64/i32/i64/i8/u8/bool (int16, uint16+, int4, bf16, float8) and sequences"),
    (lambda name, m: any(n.op_type in WINDOW_OPS for n in m.graph.node)
     and len(m.graph.input[0].type.tensor_type.shape.dim) == 5 and _3d_refused(m), "3-D|dilations",
     "3-D pooling with ceil_mode, or averaging with padding excluded from the count"),
    (lambda name, m: "training" in name and "zero_ratio" not in name, "training",
     "training-mode BatchNormalization/Dropout (Dropout with ratio 0 is the identity and runs)"),
    (lambda name, m: "argmax" in name, "Indices", "MaxPool's Indices output"),
    (lambda name, m: "averagepool" in name and "dilations" in name, "dilations", "AveragePool-19 dilations"),
]


def _3d_refused(m) -> bool:
    for n in m.graph.node:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        if a.get("ceil_mode"):
            return True
        pads = a.get("pads") or []
        padded = any(pads) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID")
        if n.op_type == "AveragePool" and not a.get("count_include_pad") and padded:
            return True
    return False


def refusal(name: str, model):
    for pred, fragment, why in REFUSED:
        if pred(name, model):
            return fragment, why
    return None


def _arrays(values):
    return [numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v) for v in values]


def check_case(name, model, inputs, expected) -> str:
    """'passed', 'refused', 'unsupported ops' or 'newer opset'; raises AssertionError on a mismatch."""
    if not {n.op_type for n in model.graph.node} <= set(supported_ops()):
        return "unsupported ops"
    if model.opset_import[0].version > NEWEST:
        model.opset_import[0].version = NEWEST
        for out in model.graph.output:  # let inference at this opset decide the shapes
            for i, d in enumerate(out.type.tensor_type.shape.dim):
                d.dim_param = f"d{i}"
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
            return "newer opset"
    feeds = {v.name: a for v, a in zip(model.graph.input, _arrays(inputs))}
    why = refusal(name, model)
    if why:
        with pytest.raises(OnnxImportError, match=why[0]):
            import_static(model, feeds)
        return "refused"
    prog, model, feeds = import_static(model, feeds)
    prog.verify()
    ours = outputs_of(prog, feeds, model)
    try:
        ref = ort_run(model, feeds)
    except Exception:  # noqa: BLE001  onnxruntime lacks a kernel: the stored outputs still judge
        ref = None
    for i, (o, e) in enumerate(zip(ours, _arrays(expected))):
        rtol = 1e-3 if e.dtype == np.float16 else 1e-4
        o = o.astype(e.dtype) if o.dtype.kind == e.dtype.kind else o
        if ref is not None:
            assert_close(o, ref[i], rtol, f"{name} output {i} vs onnxruntime")
        assert_close(o, e, 1e-3, f"{name} output {i} vs stored output")
    return "passed"


@cache
def node_cases(op: str):
    import onnx.backend.test.case.node as cases

    before = len(cases._NodeTestCases)
    importlib.import_module(f"onnx.backend.test.case.node.{MODULE.get(op, op.lower())}")
    return cases._NodeTestCases[before:]


@pytest.mark.parametrize("op", [pytest.param(op, marks=pytest.mark.slow) if op in SLOW_MODULES else op
                                for op in LISTED])
def test_backend_node_cases(op):
    outcomes = {}
    for case in node_cases(op):
        m = onnx.ModelProto()
        m.CopyFrom(case.model)
        (inputs, expected), = case.data_sets
        outcomes.setdefault(check_case(case.name, m, inputs, expected), []).append(case.name)
    assert outcomes.get("passed"), f"no {op} case ran: {outcomes}"
    print(op, {k: len(v) for k, v in outcomes.items()})


# --- the PyTorch-exported node models -----------------------------------------------------------

SHIPPED = sorted(p for sub in ("pytorch-converted", "pytorch-operator") for p in (DATA / sub).iterdir())


@pytest.mark.parametrize("case_dir", SHIPPED, ids=lambda p: p.name)
def test_pytorch_exported_node_models(case_dir):
    model = onnx.load(case_dir / "model.onnx")
    data = case_dir / "test_data_set_0"
    inputs = [onnx.load_tensor(p) for p in sorted(data.glob("input_*.pb"))]
    expected = [onnx.load_tensor(p) for p in sorted(data.glob("output_*.pb"))]
    outcome = check_case(case_dir.name, model, inputs, expected)
    if outcome == "unsupported ops":
        ops = sorted({n.op_type for n in model.graph.node} - set(supported_ops()))
        assert not set(ops) & set(LISTED)
        pytest.skip(f"uses ops outside the frontend: {', '.join(ops)}")


def test_every_listed_op_is_translated():
    assert not set(LISTED) - set(supported_ops())
