"""Canonicalization patterns (stock `canonicalize` pass) preserve semantics: interpret before
and after on random inputs. Folding reuses the interpreter's table, so results are bit-equal."""

from __future__ import annotations

import itertools

import numpy as np
import op_cases as C
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import examples
from pockengine.ir import types as T
from pockengine.ir.interpreter import Interpreter
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.state import ConstantOp
from pockengine.passes import run_pipeline
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, f64
from xdsl.ir import Block, Region

SETTINGS = settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def constant_module(case, arrays) -> ModuleOp:
    """func @f() { %c_i = train.constant <arrays[i]>; %y = <op>(%c...); return %y }"""
    block = Block()
    consts = [ConstantOp.from_array(a, t.element_type) for a, t in zip(arrays, case.operands)]
    block.add_ops(consts)
    op = case.build([c.result for c in consts])
    block.add_ops([op, func.ReturnOp(*op.results)])
    return ModuleOp([func.FuncOp("f", ([], [r.type for r in op.results]), Region(block))])


def ops_in(module, kind):
    return [o for o in module.walk() if isinstance(o, kind)]


def precision(types):
    return np.float64 if any(getattr(t, "element_type", None) == f64 for t in types) else np.float32


@pytest.mark.parametrize("op", E.OPS, ids=lambda op: op.name)
@SETTINGS
@given(data=st.data())
def test_constant_folding_matches_the_interpreter(op, data):
    case = data.draw(C.cases(op))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    module = constant_module(case, case.inputs(rng))
    module.verify()
    dtype = precision([*case.operands, *module.body.block.last_op.function_type.outputs.data])
    with np.errstate(all="ignore"):
        before = Interpreter(module, {}, dtype).call("f")
        run_pipeline(module, "canonicalize")
        module.verify()
        after = Interpreter(module, {}, dtype).call("f")
    cast_to_bf16 = op is E.CastOp and case.props["to"] == "bf16"  # no bf16 constants in numpy
    assert bool(ops_in(module, op)) == cast_to_bf16
    for b, a in zip(before, after, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n, folds", [(16, True), (64, False)])
def test_folding_stops_where_constants_would_grow(n, folds):
    """An outer sum of two n-vectors: 256 elements fold, 4096 from 128 stay an add."""
    case = C.Case(E.AddOp, [T.tensor((n, 1)), T.tensor((1, n))])
    module = constant_module(case, [np.ones((n, 1), np.float32), np.ones((1, n), np.float32)])
    run_pipeline(module, "canonicalize")
    assert bool(ops_in(module, E.AddOp)) != folds


MOVES = st.sampled_from(["reshape", "transpose", "broadcast"])


@st.composite
def move_chain(draw):
    """A random shape, then 1-5 reshapes / transposes / broadcasts (some of them no-ops)."""
    s = draw(C.shapes(0, 3))
    el = draw(st.sampled_from(C.ANY))
    steps, cur = [], s
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(MOVES)
        if kind == "reshape":
            cur = cur if draw(st.booleans()) else draw(C.factorization(int(np.prod(cur))))
            steps.append(("reshape", cur))
        elif kind == "transpose":
            perm = draw(st.permutations(range(len(cur))))
            cur = tuple(cur[p] for p in perm)
            steps.append(("transpose", perm))
        else:
            lead = draw(st.lists(st.integers(1, 3), max_size=1))
            cur = (*lead, *(d if d != 1 else draw(st.integers(1, 3)) for d in cur))
            steps.append(("broadcast", cur))
    return T.tensor(s, el), steps


def build_move(kind, v, arg):
    if kind == "reshape":
        return S.ReshapeOp.build(v, arg)
    if kind == "transpose":
        return S.TransposeOp.build(v, perm=arg)
    return S.BroadcastOp.build(v, shape=arg)


def run_chain(t, steps, x):
    """Interpret the chain before and after canonicalize; returns both and the module after."""
    block = Block(arg_types=[t])
    v = block.args[0]
    for kind, arg in steps:
        op = build_move(kind, v, arg)
        block.add_op(op)
        v = op.result
    block.add_op(func.ReturnOp(v))
    module = ModuleOp([func.FuncOp("f", ([t], [v.type]), Region(block))])
    before = Interpreter(module, {}, np.float64).call("f", x)[0]
    run_pipeline(module, "canonicalize")
    module.verify()
    return before, Interpreter(module, {}, np.float64).call("f", x)[0], module


@settings(SETTINGS, max_examples=examples(60))
@given(chain=move_chain(), seed=st.integers(0, 2**32 - 1))
def test_shape_patterns_preserve_semantics(chain, seed):
    t, steps = chain
    x = np.asarray(C.random_array(t, np.random.default_rng(seed)))
    before, after, module = run_chain(t, steps, x)
    np.testing.assert_array_equal(after, before)
    for op in ops_in(module, (S.ReshapeOp, S.TransposeOp, S.BroadcastOp)):
        assert type(op.x.owner) is not type(op), f"uncomposed chain: {op}"
        assert op.x.type != op.result.type or isinstance(op, S.TransposeOp), f"no-op left: {op}"
        if isinstance(op, S.TransposeOp):
            assert list(op.p.perm) != list(range(len(op.p.perm))), f"identity transpose left: {op}"


def test_every_pair_of_rank3_transposes_composes_correctly():
    t = T.tensor((2, 3, 4), T.f64)
    x = np.arange(24.0).reshape(2, 3, 4)
    for p1, p2 in itertools.product(itertools.permutations(range(3)), repeat=2):
        before, after, module = run_chain(t, [("transpose", p1), ("transpose", p2)], x)
        np.testing.assert_array_equal(after, before)
        assert len(ops_in(module, S.TransposeOp)) <= 1
