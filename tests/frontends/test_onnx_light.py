"""The real architectures the onnx wheel ships (backend/test/data/light, opset 9,
1x3x224x224), with seeded random weights, against onnxruntime.

Their own weights are ConstantOfShape(0.02), so the shipped outputs are ≈0.001 everywhere
and catch almost nothing; random weights (and comparing the logits before the final
Softmax) do. Timings on 2 cores: squeezenet ~3 s, the rest 10-60 s each (slow group).
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_reference import LIGHT, assert_close, ort_run, randomized_light
from pockengine.frontends.onnx_importer import from_onnx

SLOW = ["shufflenet", "inception_v1", "inception_v2", "resnet50", "densenet121", "bvlc_alexnet",
        "zfnet512", "vgg19"]


def check_light(name: str, tmp_path) -> None:
    path, model = randomized_light(name, tmp_path)
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    start = time.perf_counter()
    prog = from_onnx(path)
    imported = time.perf_counter() - start
    ours = prog.run("forward", x)
    ours = list(ours) if isinstance(ours, tuple) else [ours]
    inits = {t.name for t in model.graph.initializer}
    data = next(v.name for v in model.graph.input if v.name not in inits)
    ref = ort_run(path, {data: x})
    errs = [assert_close(o, r, 1e-4, f"{name} output {i}") for i, (o, r) in enumerate(zip(ours, ref))]
    scale = float(np.abs(ref[-1]).max())
    print(f"{name}: import {imported:.2f} s, max error {max(errs):.2e} on logits of scale {scale:.3g}")
    # every random weight is a parameter under its ONNX name, with the role of its slot
    params = {p.sym_name.data: p for p in prog.params()}
    for node in model.graph.node:
        if node.op_type == "Conv":
            assert params[node.input[1]].role.data == "weight" and params[node.input[1]].is_trainable
        if node.op_type == "BatchNormalization":
            roles = [params[v].role.data for v in node.input[1:]]
            assert roles == ["norm", "norm", "running_mean", "running_var"]
            assert not params[node.input[3]].is_trainable


def test_squeezenet_random_weights(tmp_path):
    check_light("squeezenet", tmp_path)
    from_onnx(LIGHT / "light_squeezenet.onnx").verify()


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_light_model_random_weights(name, tmp_path):
    check_light(name, tmp_path)


def test_shipped_squeezenet_and_its_output():
    """The unmodified model: ConstantOfShape weights fold into parameters named after them."""
    model = onnx.load(LIGHT / "light_squeezenet.onnx")
    prog = from_onnx(model)
    n = 3 * 224 * 224
    x = (np.arange(n, dtype=np.float32) / n).reshape(1, 3, 224, 224)  # the shipped runner's input
    expected = numpy_helper.to_array(onnx.load_tensor(LIGHT / "light_squeezenet_output_0.pb"))
    np.testing.assert_allclose(prog.run("forward", x), expected, rtol=1e-4, atol=1e-7)
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert all(prog.param(c.input[1]).role.data == "weight" for c in convs)
    assert all(prog.param(c.input[2]).role.data == "bias" for c in convs)
    assert len(prog.params()) == 2 * len(convs)
    assert "ConstantOfShape" not in str(prog)
