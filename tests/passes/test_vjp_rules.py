"""Every VJP rule against central finite differences in float64.

Instances of each op come from the shared hypothesis generators (tests/ir/op_cases.py:
shapes, strides, padding, groups, axes, broadcasts), turned to float64. For a random output
gradient dy the rule's operand gradients must equal the central differences of
L(x) = Σ dy·f(x) — per element for small operands, along random directions for large ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f64
from xdsl.ir import Block, Region

sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
from op_cases import CASES
from pockengine.ir import types as T
from pockengine.ir.dialect import OPS
from pockengine.ir.interpreter import Interpreter
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import quant as Q
from pockengine.ir.ops import shape as S
from pockengine.passes.vjp import NON_DIFFERENTIABLE, Builder, MissingRuleError, rule_for, rules

RULES = rules()
EPS = 1e-6

# kinks of piecewise ops: inputs closer than this to one are moved away, so differences are smooth
_KINKS = {E.ReluOp: lambda p: [0.0], E.Relu6Op: lambda p: [0.0, 6.0], E.AbsOp: lambda p: [0.0],
          E.ClampOp: lambda p: [p.min, p.max]}


def test_every_differentiable_op_has_a_rule():
    missing = [op.name for op in OPS if op not in RULES and op not in NON_DIFFERENTIABLE]
    assert not missing, f"add a gradient rule in passes/vjp/ for {missing} (or list it as non-differentiable)"


def test_every_rule_has_a_generator():
    assert not [op.name for op in RULES if op not in CASES]


def test_missing_rule_is_a_located_error():
    case_op = E.EqOp.build(*[Block(arg_types=[T.tensor((2,))] * 2).args[i] for i in (0, 1)])
    with pytest.raises(MissingRuleError, match=r"train.eq \(op 3 of @f\)"):
        rule_for(case_op, " (op 3 of @f)")


def _as_f64(t: TensorType) -> TensorType:
    return T.tensor(T.shape(t), f64) if T.is_float(t) else t


def _function(name, arg_types, body) -> func.FuncOp:
    block = Block(arg_types=arg_types)
    results = body(block)
    block.add_op(func.ReturnOp(*results))
    return func.FuncOp(name, (arg_types, [r.type for r in results]), Region(block))


def _modules(case, types):
    """@f(operands) -> y and @vjp(operands, dy) -> the gradients of the float operands."""
    fwd_op = []

    def forward(block):
        fwd_op.append(case.build(list(block.args)))
        block.add_op(fwd_op[-1])
        return list(fwd_op[-1].results)

    f = _function("f", types, forward)
    out_type = fwd_op[0].results[0].type
    wanted = [i for i, t in enumerate(types) if T.is_float(t)]

    def backward(block):
        op = case.build(list(block.args[:-1]))
        block.add_op(op)
        grads = rule_for(op)(Builder(block), op, [block.args[-1]])
        assert len(grads) == len(types)
        for i in wanted:
            assert grads[i] is not None, f"no gradient for float operand #{i}"
            assert grads[i].type == types[i], f"gradient #{i} is {grads[i].type}, operand is {types[i]}"
        return [grads[i] for i in wanted]

    vjp = _function("vjp", [*types, out_type], backward)
    module = ModuleOp([f, vjp])
    module.verify()
    return module, out_type, wanted


@pytest.mark.parametrize("op", sorted(RULES, key=lambda o: o.name), ids=lambda op: op.name)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_rule_matches_finite_differences(op, data):
    if op in (Q.FakeQuantizeOp, Q.DequantizeOp):  # the STE is no derivative: tests/passes/test_vjp_quant.py
        pytest.skip("checked against torch and finite differences in test_vjp_quant.py")
    case = data.draw(CASES[op](op))
    if op is E.CastOp:
        assume(case.props.get("to") == "f64")  # narrower casts round away what differences measure
    if op is S.GatherOp:  # padding_idx withholds a row's gradient on purpose (test_vjp_torch.py)
        case.props["padding_idx"] = -1
    case.operands = [_as_f64(t) for t in case.operands]
    assume(T.is_float(case.operands[1 if op is E.WhereOp else 0]))
    module, out_type, wanted = _modules(case, case.operands)
    assume(wanted and T.is_float(out_type))

    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    xs = case.inputs(rng)
    built = case.build([Block(arg_types=case.operands).args[i] for i in range(len(xs))])
    for i, kinks in ([(0, _KINKS[op](built.p))] if op in _KINKS else []):
        for k in kinks:
            xs[i] = np.where(np.abs(xs[i] - k) < 1e-3, xs[i] + 3e-3, xs[i])
    interp = Interpreter(module, {}, np.float64)

    def f(arrays):
        return np.asarray(interp.call("f", *arrays)[0], np.float64)

    y0 = f(xs)
    finite = np.isfinite(y0)  # padding with -inf: those outputs do not depend on x
    dy = np.where(finite, rng.standard_normal(T.shape(out_type)), 0.0)

    def loss(arrays):
        return float((np.where(finite, f(arrays), 0.0) * dy).sum())

    grads = interp.call("vjp", *xs, dy)
    for i, g in zip(wanted, grads):
        x = xs[i]
        directions = ([np.eye(x.size)[k].reshape(x.shape) for k in range(x.size)] if x.size <= 48
                      else [rng.standard_normal(x.shape) for _ in range(6)])
        for v in directions:
            plus = [a + EPS * v if j == i else a for j, a in enumerate(xs)]
            minus = [a - EPS * v if j == i else a for j, a in enumerate(xs)]
            numeric = (loss(plus) - loss(minus)) / (2 * EPS)
            analytic = float((np.asarray(g) * v).sum())
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-6), (
                f"{op.name} operand #{i} along {v.ravel()[:6]}...: rule {analytic}, differences {numeric}\n"
                f"{module}")
