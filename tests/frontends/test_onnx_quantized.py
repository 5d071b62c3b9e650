"""Quantized ONNX models (frontends/onnx_quant_ops.py) against onnxruntime, and fine-tuning of
their float parts against PyTorch.

- Models: a small CNN and a transformer-style MLP block exported from torch, quantized by
  onnxruntime.quantization in the QDQ format (quantize_static, per-channel weights for the
  CNN), the QOperator format (QLinearConv / QLinearMatMul) and dynamically (quantize_dynamic:
  DynamicQuantizeLinear, MatMulInteger, ConvInteger). Imported outputs must equal onnxruntime's.
- Single nodes (QuantizeLinear per-tensor/per-axis/blocked, DequantizeLinear,
  DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv): integer
  outputs bit-exact against onnxruntime, on the interpreter and on the C target, with K
  large enough that the C kernels' float32 accumulation is cut into exact chunks.
- Fine-tuning: SGD steps of the QDQ models' float parameters, interpreted and compiled to C,
  against a PyTorch evaluation of the same ONNX graph whose Q→DQ pairs are
  torch.fake_quantize_per_tensor_affine (PyTorch's own straight-through gradient).
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
from onnx import TensorProto as P
from onnx import helper as h
from onnx import numpy_helper
from pockengine import from_onnx
from pockengine.frontends.onnx_importer import OnnxImportError
from pockengine.passes import run_pipeline


def ort_run(model, feeds):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def node_model(node, inputs, outputs, inits, opset=21):
    g = h.make_graph([node], "g", [h.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                     [h.make_tensor_value_info(n, t, None) for n, t in outputs],
                     [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    return m


# --- whole models from onnxruntime.quantization ------------------------------------------------


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2)
        self.fc = torch.nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.c2(torch.relu(self.c1(x)))).flatten(1))


class Block(torch.nn.Module):
    """A transformer MLP block on [B, T, D] (Linear on 3-D inputs exports as MatMul + Add)."""

    def __init__(self):
        super().__init__()
        self.up, self.ln, self.down = torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 16)

    def forward(self, x):
        return x + self.down(torch.nn.functional.gelu(self.ln(self.up(x))))


SHAPES = {"cnn": (4, 3, 8, 8), "block": (2, 3, 16)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, xs):
            self.it = iter([{"x": x} for x in xs])

        def get_next(self):
            return next(self.it, None)

    d = tmp_path_factory.mktemp("quantized")
    torch.manual_seed(0)
    out = {}
    for name, module in (("cnn", CNN()), ("block", Block())):
        s = SHAPES[name]
        path = str(d / f"{name}.onnx")
        torch.onnx.export(module.eval(), (torch.randn(*s),), path, input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False)
        cal = [np.random.default_rng(i).standard_normal(s).astype(np.float32) for i in range(4)]
        for fmt, qf in (("qdq", QuantFormat.QDQ), ("qop", QuantFormat.QOperator)):
            out[name, fmt] = str(d / f"{name}_{fmt}.onnx")
            quantize_static(path, out[name, fmt], Reader(cal), quant_format=qf, per_channel=name == "cnn",
                            op_types_to_quantize=["Conv", "MatMul", "Relu"] if fmt == "qop" else None)
        out[name, "dyn"] = str(d / f"{name}_dyn.onnx")
        quantize_dynamic(path, out[name, "dyn"], weight_type=QuantType.QInt8)
    return out


EXPECTED_OPS = {"qdq": {"QuantizeLinear", "DequantizeLinear"}, "qop": {"QuantizeLinear", "DequantizeLinear"},
                "dyn": {"DynamicQuantizeLinear", "MatMulInteger"}}


@pytest.mark.parametrize("fmt", ["qdq", "qop", "dyn"])
@pytest.mark.parametrize("name", ["cnn", "block"])
def test_quantized_model_matches_onnxruntime(models, name, fmt):
    path = models[name, fmt]
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert EXPECTED_OPS[fmt] <= ops
    if fmt == "qop":
        assert ("QLinearConv" if name == "cnn" else "QLinearMatMul") in ops
    if fmt == "dyn" and name == "cnn":
        assert "ConvInteger" in ops
    prog = from_onnx(path)
    prog.verify()
    for seed in range(3):
        x = (np.random.default_rng(100 + seed).standard_normal(SHAPES[name]) * (1 + seed)).astype(np.float32)
        (want,) = ort_run(onnx.load(path), {"x": x})
        got = prog.run("forward", x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_quantized_weights_are_frozen_int8_and_biases_train(models):
    prog = from_onnx(models["cnn", "qdq"])
    decls = {p.sym_name.data: p for p in prog.params()}
    ints = [p for p in decls.values() if str(p.type.element_type) == "i8"]
    assert len(ints) == 3 and not any(p.is_trainable for p in ints)  # c1, c2, fc weights
    assert all(prog.weights[p.sym_name.data].dtype == np.int8 for p in ints)
    trainable = [n for n, p in decls.items() if p.is_trainable]
    assert len(trainable) == 3 and all("bias" in n for n in trainable)
    text = str(prog.module)
    assert "train.fake_quantize" in text and "train.dequantize" in text


# --- single nodes, bit-exact, interpreter and C -----------------------------------------------


def _rand_int(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


def node_cases():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2, 6, 5)) * 40).astype(np.float32)
    x.flat[:6] = [0.5, 1.5, 2.5, -0.5, -2.5, np.nan]  # ties to even, NaN
    yield "quantize_per_axis", node_model(
        h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1), [("x", P.FLOAT, x.shape)], [("y", P.INT8)],
        {"s": np.linspace(0.2, 1.3, 6).astype(np.float32), "z": np.arange(-3, 3).astype(np.int8)}), {"x": x}
    yield "quantize_blocked", node_model(
        h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=4), [("x", P.FLOAT, x.shape)],
        [("y", P.UINT8)], {"s": np.array([[[0.5] * 5, [0.25] * 5]] * 2, np.float32),
                           "z": np.full((2, 2, 5), 128, np.uint8)}), {"x": x}
    q = _rand_int(rng, np.uint8, (3, 4))
    yield "dequantize_per_axis", node_model(
        h.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=0), [("q", P.UINT8, q.shape)], [("y", P.FLOAT)],
        {"s": np.array([0.1, 0.02, 3.0], np.float32), "z": np.array([0, 128, 255], np.uint8)}), {"q": q}
    d = (rng.standard_normal((5, 7)) * 3).astype(np.float32)
    yield "dynamic_quantize", node_model(
        h.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"]), [("x", P.FLOAT, d.shape)],
        [("y", P.UINT8), ("s", P.FLOAT), ("z", P.UINT8)], {}, opset=11), {"x": d}
    m, k, n = 6, 700, 5  # K·255·255 > 2^24: the C matmul is cut into exact chunks
    a, b = _rand_int(rng, np.uint8, (2, m, k)), _rand_int(rng, np.int8, (k, n))
    yield "matmul_integer", node_model(
        h.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"]), [("a", P.UINT8, a.shape), ("b", P.INT8, b.shape)],
        [("y", P.INT32)], {"az": np.array(3, np.uint8), "bz": np.arange(n).astype(np.int8) - 2}), {"a": a, "b": b}
    xi, wi = _rand_int(rng, np.uint8, (2, 40, 6, 6)), _rand_int(rng, np.int8, (4, 40, 3, 3))
    yield "conv_integer", node_model(
        h.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], pads=[1, 1, 1, 1], strides=[2, 1]),
        [("x", P.UINT8, xi.shape), ("w", P.INT8, wi.shape)], [("y", P.INT32)],
        {"xz": np.array(120, np.uint8), "wz": np.array(3, np.int8)}), {"x": xi, "w": wi}  # ORT: per-tensor w_zp only
    yield "qlinear_matmul", node_model(
        h.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"]),
        [("a", P.UINT8, a.shape)], [("y", P.UINT8)],
        {"as": np.float32(0.0173), "az": np.uint8(131), "b": b, "bs": np.float32(0.0041), "bz": np.int8(3),
         "ys": np.float32(0.37), "yz": np.uint8(120)}), {"a": a}
    bias = rng.integers(-5000, 5000, 4).astype(np.int32)
    yield "qlinear_conv", node_model(
        h.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "B"], ["y"], pads=[1, 1, 1, 1]),
        [("x", P.UINT8, xi.shape)], [("y", P.UINT8)],
        {"xs": np.float32(0.02), "xz": np.uint8(120), "w": wi, "ws": np.array([0.01, 0.02, 0.005, 0.03], np.float32),
         "wz": np.zeros(4, np.int8), "ys": np.float32(0.9), "yz": np.uint8(100), "B": bias}), {"x": xi}


CASES = list(node_cases())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_node_matches_onnxruntime_exactly(case):
    _, model, feeds = case
    want = ort_run(model, feeds)
    prog = from_onnx(model)
    got = prog.run("forward", *feeds.values())
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_nodes_on_the_c_target_equal_the_interpreter():
    """Every node case in one compile each (forward-only): integer results bit-exact."""
    import pockengine

    for name, model, feeds in CASES:
        prog = from_onnx(model)
        want = prog.run("forward", *feeds.values())
        got = pockengine.compile(prog, threads=1).forward(*feeds.values())
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_array_equal(g, w, err_msg=name)


# --- fine-tuning the float parts against PyTorch -----------------------------------------------


def torch_eval(model, x, leaves: dict):
    """The ONNX graph in PyTorch: Q→DQ pairs are torch.fake_quantize_per_tensor_affine (its
    straight-through gradient), weight DQs constants; a DQ output named in `leaves` (a folded
    bias) takes that tensor instead. Returns (output, {DQ output: its value})."""
    import torch.nn.functional as F

    g = model.graph
    env = {t.name: torch.tensor(numpy_helper.to_array(t)) for t in g.initializer}
    env["x"] = torch.tensor(x)
    values = {}
    quantized = {}
    for nd in g.node:
        a = {at.name: h.get_attribute_value(at) for at in nd.attribute}
        i = [env.get(n) for n in nd.input]
        if nd.op_type == "QuantizeLinear":
            quantized[nd.output[0]] = (i[0], float(i[1]), int(i[2]), i[2].dtype)
            continue
        if nd.op_type == "DequantizeLinear" and nd.input[0] in quantized:
            v, s, z, dt = quantized[nd.input[0]]
            lo, hi = (0, 255) if dt == torch.uint8 else (-128, 127)
            out = torch.fake_quantize_per_tensor_affine(v, s, z, lo, hi)
        elif nd.op_type == "DequantizeLinear":
            s, z = i[1], i[2].to(torch.int64) if len(i) > 2 else torch.zeros((), dtype=torch.int64)
            if s.ndim == 1 and i[0].ndim > 1:
                shape = [1] * i[0].ndim
                shape[a.get("axis", 1)] = -1
                s, z = s.reshape(shape), z.reshape(shape)
            out = values[nd.output[0]] = ((i[0].to(torch.int64) - z).to(torch.float32) * s).detach()
            out = leaves.get(nd.output[0], out)
        elif nd.op_type == "Conv":
            p = a.get("pads", [0, 0, 0, 0])
            out = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", [1, 1]), p[:2], 1, a.get("group", 1))
        elif nd.op_type == "Gemm":
            out = i[0] @ (i[1].T if a.get("transB") else i[1]) + i[2]
        else:
            out = _simple(nd.op_type, i, a)
        env[nd.output[0]] = out
    return env[g.output[0].name], values


def _simple(op_type, i, a):
    import torch.nn.functional as F

    if op_type == "Relu":
        return torch.relu(i[0])
    if op_type == "Flatten":
        return i[0].flatten(a.get("axis", 1))
    if op_type == "Constant":
        return torch.tensor(numpy_helper.to_array(a["value"]))
    if op_type == "LayerNormalization":
        return F.layer_norm(i[0], i[1].shape, i[1], i[2], a.get("epsilon", 1e-5))
    if op_type == "Erf":
        return torch.erf(i[0])
    return {"MatMul": torch.matmul, "Add": torch.add, "Mul": torch.mul, "Div": torch.div}[op_type](i[0], i[1])


@pytest.mark.parametrize("name", ["cnn", "block"])
def test_sgd_steps_of_the_float_parts_match_torch_fake_quant(models, name):
    import pockengine

    path = models[name, "qdq"]
    model = onnx.load(path)
    prog = from_onnx(path)
    trainable = {p.sym_name.data for p in prog.params() if p.is_trainable}
    assert trainable and all(prog.weights[t].dtype == np.float32 for t in trainable)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SHAPES[name]).astype(np.float32)
    y = (rng.standard_normal(SHAPES[name]).astype(np.float32) if name == "block"
         else rng.integers(0, 5, SHAPES[name][0]))
    loss = "mse" if name == "block" else "cross_entropy"
    lr, steps = 0.05, 3

    # PyTorch: the same graph, fake-quant modules' gradient, plain SGD on the same leaves
    _, values = torch_eval(model, x, {})
    params = {k: values[k] for k in trainable}  # the float parameters are the dequantized biases
    assert set(params) == trainable
    for _ in range(steps):
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        out, _ = torch_eval(model, x, leaves)
        ell = (torch.nn.functional.mse_loss(out, torch.tensor(y)) if loss == "mse"
               else torch.nn.functional.cross_entropy(out, torch.tensor(y)))
        ell.backward()
        params = {k: (v - lr * v.grad).detach() for k, v in leaves.items()}

    compiled = pockengine.compile(prog.copy(), loss=loss, optimizer="sgd", lr=lr, threads=1)
    interp = prog.copy()
    run_pipeline(interp, f"autodiff{{loss={loss} optimizer=sgd lr={lr}}}")
    for _ in range(steps):
        compiled.step(x, y)
        interp.run("train_step", x, y)
    c_params = compiled.parameters()
    for k in trainable:
        ref = params[k].numpy()
        tol = 1e-5 * max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(interp.weights[k], ref, rtol=1e-4, atol=tol, err_msg=f"interpreter {k}")
        np.testing.assert_allclose(c_params[k], ref, rtol=1e-4, atol=tol, err_msg=f"C {k}")
        assert not np.array_equal(ref, prog.weights[k]), f"{k} did not move"


# --- refusals ----------------------------------------------------------------------------------


def _refusal(node, inputs, outputs, inits, opset=21):
    with pytest.raises(OnnxImportError) as e:
        from_onnx(node_model(node, inputs, outputs, inits, opset))
    msg = str(e.value)
    assert "\n" not in msg and f"node {node.name!r}" in msg, msg
    return msg


@pytest.mark.parametrize("zp_type, zp", [(P.FLOAT8E4M3FN, 0.0), (P.INT4, 1), (P.INT16, 3), (P.UINT16, 3)])
def test_unsupported_quantized_types_are_located_one_line_errors(zp_type, zp):
    node = h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q0")
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", P.FLOAT, [4])], [h.make_tensor_value_info("y", zp_type, None)],
                     [numpy_helper.from_array(np.float32(0.5), "s"), h.make_tensor("z", zp_type, [], [zp])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 21)])
    m.ir_version = 10
    with pytest.raises(OnnxImportError) as e:
        from_onnx(m)
    msg = str(e.value)
    assert "\n" not in msg and "'q0'" in msg and ("int8" in msg or "element type" in msg), msg


def test_refusals_name_the_node():
    assert "output_dtype INT16" in _refusal(
        h.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q1", output_dtype=P.INT16),
        [("x", P.FLOAT, [4])], [("y", P.INT16)], {"s": np.float32(0.5)})
    assert "per-tensor" in _refusal(
        h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q2", axis=0),
        [("x", P.FLOAT, [4, 3])], [("y", P.UINT8)], {"s": np.ones(5, np.float32), "z": np.zeros(5, np.uint8)})
    assert "1-D" in _refusal(
        h.make_node("MatMulInteger", ["a", "b"], ["y"], name="mm"), [("a", P.UINT8, [4]), ("b", P.UINT8, [4, 2])],
        [("y", P.INT32)], {})


@pytest.mark.parametrize("fmt", ["qop", "dyn"])
def test_training_steps_of_integer_formats_on_c_equal_the_interpreter(models, fmt):
    """QOperator (QLinearConv, then a float Gemm) and dynamic (ConvInteger/MatMulInteger) CNNs:
    the float ops after the integer contractions train; C and the interpreter agree."""
    import pockengine

    prog = from_onnx(models["cnn", fmt])
    trainable = {p.sym_name.data for p in prog.params() if p.is_trainable}
    assert trainable
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal(SHAPES["cnn"]).astype(np.float32), rng.integers(0, 5, SHAPES["cnn"][0])
    compiled = pockengine.compile(prog.copy(), loss="cross_entropy", optimizer="sgd", lr=0.1, threads=1)
    interp = prog.copy()
    run_pipeline(interp, "autodiff{loss=cross_entropy optimizer=sgd lr=0.1}")
    for _ in range(2):
        loss_c = compiled.step(x, y)
        loss_i = float(interp.run("train_step", x, y))
        assert loss_c == pytest.approx(loss_i, rel=1e-5)
    got = compiled.parameters()
    for k in trainable:
        np.testing.assert_allclose(got[k], interp.weights[k], rtol=1e-5, atol=1e-6, err_msg=k)
        assert not np.array_equal(interp.weights[k], prog.weights[k]), f"{k} did not move"
