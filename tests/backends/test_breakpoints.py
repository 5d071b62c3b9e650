"""C kernels against the interpreter on the inputs a bug hides from (issue 12: a relu6 clamping
at 5 survived because activations never reached 5; a softmax without its max subtraction
survived because logits stayed within a few σ):

- every piecewise elementwise op on values below, at, between and beyond each of its knees;
- the row kernels (softmax, log_softmax and their backward; cross-entropy) on rows shifted by
  ±100 and ±1000 and spread over ±100, where exp overflows unless the row max is subtracted."""

import numpy as np
import pytest
from pockengine import Program
from pockengine.backends import get_target
from pockengine.backends.c.build import build_library
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.backends.runtime import Trainer
from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import reduce as R
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region


def program(arg_types, build) -> Program:
    block = Block(arg_types=arg_types)
    ops, results = build(list(block.args))
    block.add_ops([*ops, func.ReturnOp(*results)])
    return Program(ModuleOp([func.FuncOp("f", (arg_types, [r.type for r in results]), Region(block))]))


def run_both(prog, *args):
    kp = lower_program(prog)
    trainer = Trainer(prog, kp, build_library(kp, get_target("c")))
    got = trainer.call("f", *args)
    want = prog.run("f", *args, dtype=np.float64)
    return got, (want if isinstance(want, tuple) else (want,))


# every knee of the piecewise ops below, each approached from both sides, plus far values
KNEES = [0.0, 6.0, -1.5, 2.0, 0.25, -3.0, 3.0]
EPS = [-1.0, -0.25, -1e-3, 0.0, 1e-3, 0.25, 1.0]
VALUES = sorted({np.float32(k + e) for k in KNEES for e in EPS} | {np.float32(v) for v in (-50, -8, 8, 50)})

PIECEWISE = {  # name → (builder, numpy reference); the reference only checks the test's premise
    "relu": (lambda a: E.ReluOp.build(a), lambda x: np.maximum(x, 0)),
    "relu6": (lambda a: E.Relu6Op.build(a), lambda x: np.clip(x, 0, 6)),
    "clamp[-1.5,2]": (lambda a: E.ClampOp.build(a, min=-1.5, max=2.0), lambda x: np.clip(x, -1.5, 2)),
    "clamp[0.25,)": (lambda a: E.ClampOp.build(a, min=0.25), lambda x: np.maximum(x, 0.25)),
    "clamp(,3]": (lambda a: E.ClampOp.build(a, max=3.0), lambda x: np.minimum(x, 3)),
    "clamp[0,6]": (lambda a: E.ClampOp.build(a, min=0.0, max=6.0), lambda x: np.clip(x, 0, 6)),
    "abs": (lambda a: E.AbsOp.build(a), np.abs),
}


@pytest.fixture(scope="module")
def piecewise_results():
    x = np.array([VALUES], np.float32)
    names = sorted(PIECEWISE)

    def build(a):
        ops = [PIECEWISE[n][0](a[0]) for n in names]
        return ops, [op.results[0] for op in ops]

    got, want = run_both(program([T.tensor(x.shape)], build), x)
    return x, dict(zip(names, got)), dict(zip(names, want))


@pytest.mark.parametrize("name", sorted(PIECEWISE))
def test_piecewise_ops_at_every_knee(piecewise_results, name):
    x, got, want = piecewise_results
    np.testing.assert_allclose(want[name], PIECEWISE[name][1](x.astype(np.float64)), rtol=0, atol=0)
    np.testing.assert_array_equal(got[name], want[name].astype(np.float32), err_msg=name)
    # the inputs reach beyond every knee of this op: a knee moved by any amount is seen
    assert (x > 6.5).any() and (x < -3.5).any()


def test_gradients_of_the_piecewise_ops_at_their_knees():
    """The masks the VJPs of relu6/clamp build (compare ops + where) on the same values,
    strictly inside, exactly at, and outside each knee."""
    x = np.array([VALUES], np.float32)
    dy = np.linspace(-1, 1, x.size, dtype=np.float32).reshape(x.shape)

    def build(a):
        ops, outs = [], []
        for lo, hi in ((0.0, 6.0), (-1.5, 2.0), (-3.0, 3.0)):
            c_lo = E.GtOp.build(a[0], _const(ops, lo))
            c_hi = E.LtOp.build(a[0], _const(ops, hi))
            both = E.AndOp.build(c_lo.result, c_hi.result)
            zero = E.SubOp.build(a[1], a[1])
            w = E.WhereOp.build(both.result, a[1], zero.result)
            ops += [c_lo, c_hi, both, zero, w]
            outs.append(w.result)
        ge = E.GeOp.build(a[0], _const(ops, 6.0))
        le = E.LeOp.build(a[0], _const(ops, 0.0))
        ops += [ge, le]
        return ops, outs + [ge.result, le.result]

    got, want = run_both(program([T.tensor(x.shape)] * 2, build), x, dy)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w).astype(np.asarray(g).dtype))


def _const(ops, value: float):
    from pockengine.ir.ops.state import ConstantOp

    c = ConstantOp.scalar(value)
    ops.append(c)
    return c.results[0]


@pytest.mark.parametrize("shift", [100.0, -100.0, 1000.0, -1000.0])
def test_row_kernels_on_large_shifted_rows(shift):
    rng = np.random.default_rng(int(abs(shift)))
    x = (shift + rng.standard_normal((5, 37)) * 30).astype(np.float32)
    x[1] = shift + np.linspace(-100, 100, 37, dtype=np.float32)  # one row spread over ±100
    x[2, 5] = shift + 200  # one dominant logit
    dy = rng.standard_normal(x.shape).astype(np.float32)
    labels = rng.integers(0, 37, 5).astype(np.int64)

    def build(a):
        sm = R.SoftmaxOp.build(a[0], axis=-1)
        lsm = R.LogSoftmaxOp.build(a[0], axis=-1)
        d_sm = G.SoftmaxBackwardOp.build(sm.result, a[1], axis=-1)
        d_lsm = G.LogSoftmaxBackwardOp.build(lsm.result, a[1], axis=-1)
        ops = [sm, lsm, d_sm, d_lsm]
        return ops, [op.result for op in ops]

    got, want = run_both(program([T.tensor(x.shape)] * 2, build), x, dy)
    for g, w in zip(got, want):
        assert np.isfinite(g).all(), "overflow: the row max is not subtracted"
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[3], want[3], rtol=1e-4, atol=1e-5)
    assert abs(float(got[0][2, 5]) - 1.0) < 1e-6  # the dominant logit takes the whole row

    from pockengine.ir.ops import loss as Lo

    def build_ce(a):
        ops = []
        ce = Lo.CrossEntropyOp.build(a[0], a[1])
        d = G.CrossEntropyBackwardOp.build(a[0], a[1], _const(ops, 1.0))
        return [*ops, ce, d], [ce.result, d.result]

    got, want = run_both(program([T.tensor(x.shape), T.tensor((5,), T.i64)], build_ce), x, labels)
    assert np.isfinite(got[0]).all() and np.isfinite(got[1]).all()
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-6)

