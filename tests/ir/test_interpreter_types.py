"""The interpreter agrees with shape inference: for every op, on random valid inputs, each
result has the inferred shape and the element type's dtype (floats in the interpreter's
precision), in float32 and float64 mode; train.set / train.set_slice write what they should."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import cases, examples
from pockengine.ir import types as T
from pockengine.ir.dialect import OPS
from pockengine.ir.interpreter import Interpreter
from pockengine.ir.ops.state import SetOp, SetSliceOp
from test_roundtrip import NOT_RUN_ALONE

INTERPRETED = [op for op in OPS if op not in NOT_RUN_ALONE]  # those run through train.get / train.fused


def expected_dtype(t, float_dtype):
    return np.dtype(float_dtype) if T.is_float(t) else T.numpy_dtype(t.element_type)


@pytest.mark.parametrize("op", INTERPRETED, ids=lambda op: op.name)
@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), float_dtype=st.sampled_from([np.float32, np.float64]))
def test_results_match_inferred_types(op, data, float_dtype):
    case = data.draw(cases(op))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    module = case.module()
    weights = case.weights(rng)
    before = {k: v.copy() for k, v in weights.items()}
    args = case.inputs(rng)
    interp = Interpreter(module, weights, float_dtype)
    with np.errstate(all="ignore"):
        outs = interp.call("f", *args)
    fn = module.body.block.last_op
    target = next(o for o in fn.walk() if isinstance(o, op))
    assert len(outs) == len(target.results)
    for out, res in zip(outs, target.results):
        assert out.shape == T.shape(res.type), f"{op.name}: shape {out.shape} vs inferred {res.type}"
        assert out.dtype == expected_dtype(res.type, float_dtype), f"{op.name}: dtype {out.dtype} for {res.type}"
    # stored values went through the interpreter's precision
    stored = [a.astype(float_dtype) if a.dtype.kind == "f" else a for a in args]
    if op is SetOp:
        name = case.params[0][0]
        np.testing.assert_array_equal(weights[name], stored[0].astype(weights[name].dtype))
    if op is SetSliceOp:
        name = case.params[0][0]
        ax, start, n = target.slice_axis, target.slice_start, args[0].shape[target.slice_axis]
        inside = [slice(None)] * args[0].ndim
        inside[ax] = slice(start, start + n)
        np.testing.assert_array_equal(weights[name][tuple(inside)], stored[0].astype(weights[name].dtype))
        rest = before[name].copy()
        rest[tuple(inside)] = weights[name][tuple(inside)]
        np.testing.assert_array_equal(weights[name], rest)
