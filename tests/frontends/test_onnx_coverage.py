"""The ONNX coverage sweep (benchmarks/onnx_coverage.py) as a test, so a regression fails CI.

Every generated node case of the installed onnx and every shipped pytorch-converted /
pytorch-operator model is imported and run for real (about 20 s here, plus 20 s the first time
to generate and cache the node cases); the floors are the figures measured with onnx 1.23.2.
Nothing may be `wrong` (an output differing from the stored output or onnxruntime) or `crash`
(a traceback, or a refusal that is not a one-line error naming its node).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import onnx_coverage as cov

# set: (cases passed with onnx 1.23.2, fraction for any onnx version)
FLOORS = {"node-float": (1147, 0.80), "node-other": (83, 0.15), "pytorch-converted": (82, 0.95),
          "pytorch-operator": (35, 1.0)}
# the int8/uint8 quantization cases (frontends/onnx_quant_ops.py): each must pass
QUANTIZED = ["test_convinteger_without_padding", "test_convinteger_with_padding", "test_dequantizelinear",
             "test_dequantizelinear_axis", "test_dequantizelinear_blocked", "test_dynamicquantizelinear",
             "test_dynamicquantizelinear_max_adjusted", "test_dynamicquantizelinear_min_adjusted",
             "test_matmulinteger", "test_qlinearconv", "test_quantizelinear", "test_quantizelinear_axis",
             "test_quantizelinear_blocked_asymmetric",
             *(f"test_qlinearmatmul_{d}_{t}_{f}" for d in ("2D", "3D") for t in ("uint8", "int8")
               for f in ("float32", "float16"))]


@pytest.fixture(scope="module")
def results():
    return cov.sweep()


def test_no_wrong_number_and_no_crash(results):
    bad = [(k, name, o, d) for k, rows in results.items() for name, o, d in rows if o in ("wrong", "crash")]
    assert not bad, "\n".join(f"{k} {name}: {o}: {d}" for k, name, o, d in bad)


@pytest.mark.parametrize("key", FLOORS)
def test_coverage_floor(results, key):
    rows = results[key]
    passed = sum(o == "passed" for _, o, _ in rows)
    count, fraction = FLOORS[key]
    print(cov.table({key: rows}, top=10))
    assert rows and passed / len(rows) >= fraction, f"{key}: {passed}/{len(rows)} passed"
    if onnx.__version__ == "1.23.2":
        assert passed >= count, f"{key}: {passed} cases pass, {count} did"


def test_quantized_node_cases_pass(results):
    outcome = {name: o for rows in results.values() for name, o, _ in rows}
    if onnx.__version__ != "1.23.2":
        pytest.skip("the case names are those of onnx 1.23.2")
    assert not [n for n in QUANTIZED if outcome.get(n) != "passed"]


def _relu_case(expected):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 28)], ir_version=10)
    return "relu", m.SerializeToString(), [np.array([-1.0, 0.5, 2.0], np.float32)], [expected]


def test_the_sweep_sees_a_wrong_number():
    assert cov.run_case(*_relu_case(np.array([0.0, 0.5, 2.0], np.float32)))[0] == "passed"
    outcome, detail = cov.run_case(*_relu_case(np.array([0.0, 0.5, 2.5], np.float32)))
    assert outcome == "wrong" and "max error" in detail


def test_refusals_must_be_located():
    assert cov.located("node #3 (unnamed; outputs 'y') (Resize, opset 19): Resize mode 'cubic' is not supported")
    assert cov.located("graph input 'x': element type INT8 is not supported (float, ... are)")
    assert not cov.located("element type INT8 is not supported")
    assert not cov.located("node 'a' (Relu, opset 13): first line\nsecond line")
