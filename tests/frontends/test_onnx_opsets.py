"""Opset-dependent forms, folding, roles and errors of the ONNX frontend, on small hand-built
graphs checked against onnxruntime (which, unlike onnx.reference, gets old opsets right)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_reference import assert_close, ort_run, outputs_of
from pockengine.frontends.onnx_importer import OnnxImportError, from_onnx

rng = np.random.default_rng(0)
F = TensorProto.FLOAT


def model(nodes, inputs: dict, opset: int, inits: dict | None = None, outputs=("y",)):
    """A graph over named input arrays; `inits` become initializers."""
    vi = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
          for k, v in inputs.items()]
    outs = [helper.make_empty_tensor_value_info(o) for o in outputs]
    g = helper.make_graph(nodes, "g", vi, outs,
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)


def check(m, feeds, rtol=1e-4):
    prog = from_onnx(m)
    prog.verify()
    ours = outputs_of(prog, feeds, m)
    for i, (o, r) in enumerate(zip(ours, ort_run(m, feeds))):
        assert_close(o, r, rtol, f"output {i}")
    return prog


def x(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


_count: dict[str, int] = {}


def node(op, ins, outs=("y",), **attrs):
    k = _count[op] = _count.get(op, -1) + 1
    return helper.make_node(op, list(ins), list(outs), name=f"{op.lower()}_{k}", **attrs)


i64 = lambda *v: np.array(v, np.int64)


# (id, opset, nodes, graph inputs, initializers)
CASES = [
    # Softmax before 13 flattens at `axis` and normalizes the whole tail; from 13 one axis
    ("softmax11_axis1", 11, [node("Softmax", ["a"], axis=1)], {"a": x(2, 3, 4)}, {}),
    ("softmax9_default", 9, [node("Softmax", ["a"])], {"a": x(2, 3, 4, 5)}, {}),
    ("softmax11_axis0", 11, [node("Softmax", ["a"], axis=0)], {"a": x(2, 3, 4)}, {}),
    ("logsoftmax11_axis1", 11, [node("LogSoftmax", ["a"], axis=1)], {"a": x(2, 3, 4)}, {}),
    ("softmax13_axis1", 13, [node("Softmax", ["a"], axis=1)], {"a": x(2, 3, 4)}, {}),
    # BatchNormalization forms (statistics as initializers)
    *[(f"batchnorm{v}", v, [node("BatchNormalization", ["a", "s", "b", "m", "v"], epsilon=1e-3, **kw)],
       {"a": x(2, 3, 4, 4)}, {"s": x(3), "b": x(3), "m": x(3), "v": np.abs(x(3)) + 0.5})
      for v, kw in ((7, {"spatial": 1}), (9, {}), (15, {}))],  # no BN-6 kernel in onnxruntime
    # Clip: attributes before 11, optional inputs from 11
    ("clip6", 6, [node("Clip", ["a"], min=-0.5, max=0.3)], {"a": x(3, 4)}, {}),
    ("clip11_min_only", 11, [node("Clip", ["a", "lo"])], {"a": x(3, 4)}, {"lo": np.float32(-0.2)}),
    ("clip11_max_only", 11, [node("Clip", ["a", "", "hi"])], {"a": x(3, 4)}, {"hi": np.float32(0.1)}),
    ("clip13_int", 13, [node("Clip", ["a", "lo", "hi"])], {"a": i64(-5, 0, 3, 9)},
     {"lo": np.int64(-1), "hi": np.int64(4)}),
    # Pad: attributes (2..10), inputs (11+), axes (18+), modes
    ("pad2_constant", 7, [node("Pad", ["a"], pads=[0, 1, 2, 0, 2, 1], value=1.5)], {"a": x(2, 3, 4)}, {}),
    ("pad2_reflect", 10, [node("Pad", ["a"], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="reflect")],
     {"a": x(1, 2, 4, 5)}, {}),
    ("pad11_edge_negative", 11, [node("Pad", ["a", "p"], mode="edge")], {"a": x(1, 2, 4, 5)},
     {"p": i64(0, 0, -1, 2, 0, 0, 2, -2)}),
    ("pad18_axes", 18, [node("Pad", ["a", "p", "c", "ax"])], {"a": x(2, 3, 4)},
     {"p": i64(1, 2, 3, 0), "c": np.float32(-2.0), "ax": i64(-1, 0)}),
    ("pad19_wrap", 19, [node("Pad", ["a", "p"], mode="wrap")], {"a": x(3, 4)}, {"p": i64(1, 2, 2, 1)}),
    # Slice: attributes before 10, then inputs with steps; ONNX clamping, negative steps
    ("slice1_attrs", 9, [node("Slice", ["a"], starts=[1, -3], ends=[1000, -1], axes=[0, 2])],
     {"a": x(3, 4, 5)}, {}),
    ("slice10_steps", 13, [node("Slice", ["a", "s", "e", "ax", "st"])], {"a": x(5, 6)},
     {"s": i64(-1, 1), "e": i64(-1000, 1000), "ax": i64(0, 1), "st": i64(-2, 2)}),
    ("slice13_reverse_all", 13, [node("Slice", ["a", "s", "e", "ax", "st"])], {"a": x(4, 3)},
     {"s": i64(2**62), "e": i64(-(2**62)), "ax": i64(0), "st": i64(-1)}),
    ("slice13_start_below", 13, [node("Slice", ["a", "s", "e", "ax", "st"])], {"a": x(4, 3)},
     {"s": i64(-10), "e": i64(-100), "ax": i64(0), "st": i64(-1)}),
    # ReduceMean: axes attribute before 18, input from 18 (empty: all, or no-op)
    ("reducemean13", 13, [node("ReduceMean", ["a"], axes=[-1, 1], keepdims=0)], {"a": x(2, 3, 4)}, {}),
    ("reducemean13_all", 13, [node("ReduceMean", ["a"])], {"a": x(2, 3, 4)}, {}),
    ("reducemean18", 18, [node("ReduceMean", ["a", "ax"])], {"a": x(2, 3, 4)}, {"ax": i64(0, 2)}),
    ("reducemean18_noop", 18, [node("ReduceMean", ["a"], noop_with_empty_axes=1)], {"a": x(2, 3)}, {}),
    ("reducesum11", 11, [node("ReduceSum", ["a"], axes=[1])], {"a": x(2, 3, 4)}, {}),
    # Squeeze / Unsqueeze: attribute before 13, input from 13
    ("squeeze11", 11, [node("Squeeze", ["a"], axes=[-1])], {"a": x(2, 1, 3, 1)}, {}),
    ("squeeze13_all", 13, [node("Squeeze", ["a"])], {"a": x(1, 3, 1, 2)}, {}),
    ("unsqueeze11", 11, [node("Unsqueeze", ["a"], axes=[0, -1])], {"a": x(2, 3)}, {}),
    ("unsqueeze13", 13, [node("Unsqueeze", ["a", "ax"])], {"a": x(2, 3)}, {"ax": i64(3, 1)}),
    # Reshape: 0 copies a dim, -1 is inferred; allowzero keeps a literal 0
    ("reshape_zero_minus1", 13, [node("Reshape", ["a", "s"])], {"a": x(2, 3, 4)}, {"s": i64(0, -1)}),
    ("reshape14_allowzero", 14, [node("Reshape", ["a", "s"], allowzero=1)], {"a": x(0, 3)},
     {"s": i64(3, 0)}),
    ("flatten11_negative", 11, [node("Flatten", ["a"], axis=-1)], {"a": x(2, 3, 4)}, {}),
    ("flatten9_axis0", 9, [node("Flatten", ["a"], axis=0)], {"a": x(2, 3)}, {}),
    # Conv: auto_pad, asymmetric pads, dilations, groups, 1-D
    *[(f"conv_{ap.lower()}", 11, [node("Conv", ["a", "w", "b"], auto_pad=ap, strides=[2, 2])],
       {"a": x(1, 4, 7, 8)}, {"w": x(6, 4, 3, 2), "b": x(6)}) for ap in ("SAME_UPPER", "SAME_LOWER", "VALID")],
    ("conv_asymmetric_pads", 11, [node("Conv", ["a", "w"], pads=[0, 1, 2, 1], dilations=[2, 1], group=2)],
     {"a": x(2, 4, 6, 6)}, {"w": x(6, 2, 3, 3)}),
    ("conv1d", 11, [node("Conv", ["a", "w", "b"], pads=[1, 2], strides=[2])], {"a": x(2, 3, 9)},
     {"w": x(5, 3, 3), "b": x(5)}),
    # pools: ceil_mode, dilations, storage_order (only affects Indices), count_include_pad
    ("maxpool12_ceil_dil", 12, [node("MaxPool", ["a"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
                                     dilations=[1, 2], ceil_mode=1, storage_order=1)], {"a": x(1, 2, 8, 9)}, {}),
    ("maxpool8_same", 8, [node("MaxPool", ["a"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
     {"a": x(1, 2, 7, 7)}, {}),
    ("maxpool10_1d", 10, [node("MaxPool", ["a"], kernel_shape=[3], strides=[2], ceil_mode=1)],
     {"a": x(2, 3, 10)}, {}),
    ("avgpool11_ceil_pad", 11, [node("AveragePool", ["a"], kernel_shape=[3, 3], strides=[2, 2],
                                     pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1)], {"a": x(1, 2, 6, 7)}, {}),
    ("avgpool7_exclude_pad", 7, [node("AveragePool", ["a"], kernel_shape=[2, 3], pads=[1, 1, 0, 1])],
     {"a": x(1, 2, 5, 5)}, {}),
    # Gemm forms
    ("gemm_transposes", 11, [node("Gemm", ["a", "w", "c"], transA=1, transB=1, alpha=0.5, beta=2.0)],
     {"a": x(4, 3)}, {"w": x(5, 4), "c": x(5)}),
    ("gemm11_no_c", 11, [node("Gemm", ["a", "w"])], {"a": x(3, 4)}, {"w": x(4, 2)}),
    ("sum8_broadcast", 8, [node("Sum", ["a", "b", "c"])], {"a": x(2, 3), "b": x(3), "c": x(2, 1)}, {}),
    ("div_int_truncates", 13, [node("Div", ["a", "b"])], {"a": i64(-7, 7, -7, 7, 0)}, {"b": i64(2, -2, -2, 2, 3)}),
    ("pow_int_exponent", 15, [node("Pow", ["a", "e"])], {"a": x(3, 4)}, {"e": np.int64(3)}),
    # gathers
    ("gather_negative_scalar", 13, [node("Gather", ["a", "i"], axis=1)], {"a": x(2, 5, 3)}, {"i": np.int64(-2)}),
    ("gather_elements_negative", 13, [node("GatherElements", ["a", "i"], axis=0)], {"a": x(3, 4)},
     {"i": i64(-1, 0, 2, 1, 0, -3, 1, 2).reshape(2, 4)}),
    ("gathernd_batch", 12, [node("GatherND", ["a", "i"], batch_dims=1)], {"a": x(2, 3, 4, 5)},
     {"i": i64(1, -1, 0, 2, 2, 3, 1, 0).reshape(2, 2, 2)}),
    ("expand_bidirectional", 13, [node("Expand", ["a", "s"])], {"a": x(3, 1)}, {"s": i64(2, 1, 4)}),
    # MatMul with 1-D operands and batch broadcasting
    ("matmul_vec_mat", 13, [node("MatMul", ["a", "b"])], {"a": x(4), "b": x(2, 4, 3)}, {}),
    ("matmul_mat_vec", 13, [node("MatMul", ["a", "b"])], {"a": x(2, 3, 4), "b": x(4)}, {}),
    ("matmul_vec_vec", 13, [node("MatMul", ["a", "b"])], {"a": x(4), "b": x(4)}, {}),
    ("matmul_batch_broadcast", 13, [node("MatMul", ["a", "b"])], {"a": x(2, 1, 3, 4), "b": x(5, 4, 2)}, {}),
    # masks, casts, constants
    ("where_isnan_and", 13, [node("IsNaN", ["a"], ["n"]), node("Not", ["n"], ["k"]), node("And", ["k", "m"], ["c"]),
                             node("Where", ["c", "a", "z"])],
     {"a": np.array([[1.0, np.nan, -2.0], [np.nan, 3.0, 0.5]], np.float32), "m": np.array([True, False, True])},
     {"z": np.float32(7.0)}),
    ("cast_float_to_int_and_bool", 13, [node("Cast", ["a"], ["i"], to=TensorProto.INT64),
                                        node("Cast", ["a"], ["b"], to=TensorProto.BOOL)],
     {"a": np.array([-2.7, -0.5, 0.0, 0.4, 3.9], np.float32)}, {}),
    ("dropout12_inference_mask", 12, [node("Dropout", ["a", "r", "t"], ["y", "mask"])], {"a": x(3, 4)},
     {"r": np.float32(0.3), "t": np.bool_(False)}),
    ("lrn_size3", 9, [node("LRN", ["a"], size=3, alpha=0.01, beta=0.6, bias=2.0)], {"a": x(2, 6, 3, 4)}, {}),
    ("layernorm17_stats_no_bias", 17, [node("LayerNormalization", ["a", "s"], ["y", "mean", "inv"], axis=1,
                                            epsilon=1e-3)], {"a": x(2, 3, 4)}, {"s": x(3, 4)}),
    ("sce_weighted_ignore", 13, [node("SoftmaxCrossEntropyLoss", ["a", "l", "w"], ["y", "logp"],
                                      ignore_index=1)],
     {"a": x(4, 3, 2)}, {"l": i64(0, 1, 2, 1, 1, 0, 2, 2).reshape(4, 2), "w": np.abs(x(3)) + 0.5}),
    ("sce_none", 13, [node("SoftmaxCrossEntropyLoss", ["a", "l"], reduction="none")], {"a": x(5, 4)},
     {"l": i64(0, 3, 2, 1, 3)}),
    ("tile_split", 13, [node("Tile", ["a", "r"], ["t"]), node("Split", ["t", "sp"], ["y", "z"], axis=1)],
     {"a": x(2, 3)}, {"r": i64(2, 3), "sp": i64(4, 5)}),
]


def _leaves(nodes):
    used = {i for n in nodes for i in n.input}
    return [o for n in nodes for o in n.output if o not in used]


@pytest.mark.parametrize("name, opset, nodes, inputs, inits", CASES, ids=[c[0] for c in CASES])
def test_opset_form_matches_onnxruntime(name, opset, nodes, inputs, inits):
    check(model(nodes, inputs, opset, inits, _leaves(nodes)), inputs)


# onnxruntime has no opset-6 Add/Mul/Gemm kernels: legacy broadcasting checked against numpy
LEGACY = [
    ("add6_axis", [node("Add", ["a", "b"], broadcast=1, axis=1)], {"a": x(2, 3, 4, 5)}, {"b": x(3, 4)},
     lambda a, b: a + b[:, :, None]),
    ("mul6_suffix", [node("Mul", ["a", "b"], broadcast=1)], {"a": x(2, 3, 4)}, {"b": x(4)}, lambda a, b: a * b),
    ("gemm6_broadcast", [node("Gemm", ["a", "w", "c"], broadcast=1, transB=1, alpha=2.0)], {"a": x(3, 4)},
     {"w": x(2, 4), "c": x(1, 2)}, lambda a, w, c: 2.0 * a @ w.T + c),
]


@pytest.mark.parametrize("name, nodes, inputs, inits, numpy_fn", LEGACY, ids=[c[0] for c in LEGACY])
def test_opset6_legacy_broadcast(name, nodes, inputs, inits, numpy_fn):
    prog = from_onnx(model(nodes, inputs, 6, inits))
    np.testing.assert_allclose(prog.run("forward", *inputs.values()), numpy_fn(*inputs.values(), *inits.values()),
                               rtol=1e-5, atol=1e-6)


# --- folding at import ----------------------------------------------------------------------------


def test_shape_chain_folds_to_one_reshape():
    """Shape → Gather → Unsqueeze → Concat → Reshape depends only on shapes: one train.reshape."""
    nodes = [node("Shape", ["a"], ["s"]), node("Gather", ["s", "i0"], ["d0"], axis=0),
             node("Unsqueeze", ["d0", "ax"], ["d0v"]), node("Concat", ["d0v", "m1"], ["shape"], axis=0),
             node("Reshape", ["a", "shape"], ["y"])]
    m = model(nodes, {"a": x(2, 3, 4)}, 13, {"i0": np.int64(0), "ax": i64(0), "m1": i64(-1)})
    prog = check(m, {"a": x(2, 3, 4)})
    body = [op.name for op in prog.functions()["forward"].body.block.ops]
    assert body == ["train.reshape", "func.return"]


def test_constant_of_shape_and_range_fold():
    nodes = [node("Shape", ["a"], ["s"]), node("ConstantOfShape", ["s"], ["ones"],
                                                value=numpy_helper.from_array(np.array([2.0], np.float32))),
             node("Range", ["r0", "r1", "r2"], ["r"]), node("Cast", ["r"], ["rf"], to=F),
             node("Mul", ["ones", "rf"], ["k"]), node("Add", ["a", "k"], ["y"])]
    m = model(nodes, {"a": x(3, 4)}, 13, {"r0": np.int64(1), "r1": np.int64(9), "r2": np.int64(2)})
    prog = check(m, {"a": x(3, 4)})
    ops = [op.name for op in prog.functions()["forward"].body.block.ops]
    assert ops == ["train.get", "train.add", "func.return"]  # the folded [3, 4] table is one buffer
    (p,) = prog.params()
    assert p.role.data == "buffer" and not p.is_trainable
    np.testing.assert_array_equal(prog.weights[p.sym_name.data], np.tile([2.0, 6.0, 10.0, 14.0], (3, 1)))


# --- parameters and roles -------------------------------------------------------------------------


def test_initializers_keep_names_and_get_roles():
    nodes = [node("Conv", ["a", "conv.w", "conv.b"], ["c"], pads=[1, 1, 1, 1]),
             node("BatchNormalization", ["c", "bn.s", "bn.b", "bn.m", "bn.v"], ["n"]),
             node("Relu", ["n"], ["r"]), node("GlobalAveragePool", ["r"], ["p"]), node("Flatten", ["p"], ["f"]),
             node("Gemm", ["f", "fc.w", "fc.b"], ["g"], transB=1), node("MatMul", ["g", "proj"], ["h"]),
             node("Add", ["h", "proj.bias"], ["y"])]
    inits = {"conv.w": x(4, 3, 3, 3), "conv.b": x(4), "bn.s": x(4), "bn.b": x(4), "bn.m": x(4),
             "bn.v": np.abs(x(4)) + 0.5, "fc.w": x(5, 4), "fc.b": x(5), "proj": x(5, 2), "proj.bias": x(2)}
    prog = check(model(nodes, {"a": x(2, 3, 6, 6)}, 13, inits), {"a": x(2, 3, 6, 6)})
    roles = {p.sym_name.data: (p.role.data, p.is_trainable) for p in prog.params()}
    assert roles == {"conv.w": ("weight", True), "conv.b": ("bias", True), "bn.s": ("norm", True),
                     "bn.b": ("norm", True), "bn.m": ("running_mean", False), "bn.v": ("running_var", False),
                     "fc.w": ("weight", True), "fc.b": ("bias", True), "proj": ("weight", True),
                     "proj.bias": ("bias", True)}
    assert "train.linear" in str(prog)  # Gemm with transB is the canonical Linear
    for name, value in inits.items():
        np.testing.assert_array_equal(prog.weights[name], value)


def test_save_and_load_keep_onnx_names(tmp_path):
    nodes = [node("MatMul", ["a", "onnx::MatMul_7"], ["h"]), node("Add", ["h", "/layer/bias"], ["y"])]
    m = model(nodes, {"a": x(2, 3)}, 13, {"onnx::MatMul_7": x(3, 4), "/layer/bias": x(4)})
    prog = from_onnx(m)
    prog.save(tmp_path / "out")
    from pockengine import Program

    back = Program.load(tmp_path / "out")
    back.verify()
    a = x(2, 3)
    np.testing.assert_array_equal(back.run("forward", a), prog.run("forward", a))
    assert sorted(back.weights) == ["/layer/bias", "onnx::MatMul_7"]


# --- errors -----------------------------------------------------------------------------------------


def test_unsupported_op_names_op_node_and_the_supported_list():
    m = model([node("Relu", ["a"], ["r"]), helper.make_node("Det", ["r"], ["y"], name="the_det")],
              {"a": x(3, 3)}, 13)
    with pytest.raises(OnnxImportError) as e:
        from_onnx(m)
    msg = str(e.value)
    assert "'Det'" in msg and "'the_det'" in msg
    from pockengine.frontends.onnx_importer import supported_ops

    assert "supported ops: Abs, Add, And, ArgMax, ArgMin, Attention, AveragePool" in msg
    assert msg.endswith(supported_ops()[-1]) and "\n" not in msg


def test_unsupported_op_writes_nothing(tmp_path):
    from pockengine.frontends import FrontendError, import_model

    m = model([helper.make_node("Det", ["a"], ["y"], name="hm")], {"a": x(3, 3)}, 13)
    onnx.save(m, tmp_path / "bad.onnx")
    with pytest.raises(FrontendError, match="Det"):
        import_model(tmp_path / "bad.onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make, fragment", [
    (lambda: model([node("Relu", ["a"])], {"a": x(2, 3)}, 5), "opset 5 is not supported"),
    (lambda: model([helper.make_node("Relu", ["a"], ["y"], domain="com.microsoft", name="r")],
                   {"a": x(2, 3)}, 13), "domain 'com.microsoft'"),
    (lambda: model([node("Conv", ["a", "w"])], {"a": x(1, 2, 3, 3, 3, 3)}, 13, {"w": x(2, 2, 1, 1, 1, 1)}),
     "4-D convolution is not supported"),
    (lambda: model([node("MaxPool", ["a"], kernel_shape=[2, 2, 2], ceil_mode=1)], {"a": x(1, 2, 5, 5, 5)}, 13),
     "3-D pooling with ceil_mode=1 is not supported"),
    (lambda: model([node("Reshape", ["a", "s"])], {"a": x(2, 3), "s": i64(3, 2)}, 13),
     r"'reshape_\d+' \(Reshape, opset 13\): input 1 \('s'\) must be known at import"),
])
def test_refusals_are_located(make, fragment):
    with pytest.raises(OnnxImportError, match=fragment):
        from_onnx(make())


def test_dynamic_dims_need_input_shapes():
    m = model([node("Relu", ["a"])], {"a": x(2, 3)}, 13)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(OnnxImportError, match="dynamic dimension 'batch'.*input_shapes"):
        from_onnx(m)
    prog = from_onnx(m, input_shapes={"a": [5, 3]})
    a = x(5, 3)
    np.testing.assert_array_equal(prog.run("forward", a), np.maximum(a, 0))


def test_external_data_is_read_from_disk(tmp_path):
    w = x(64, 64)
    m = model([node("MatMul", ["a", "w"])], {"a": x(2, 64)}, 13, {"w": w})
    onnx.save(m, tmp_path / "m.onnx", save_as_external_data=True, size_threshold=0)
    assert (tmp_path / "m.onnx").stat().st_size < w.nbytes
    prog = from_onnx(tmp_path / "m.onnx")
    np.testing.assert_array_equal(prog.weights["w"], w)
