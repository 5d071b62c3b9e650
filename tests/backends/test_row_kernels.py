"""The row kernels (softmax, log_softmax and their backward, layer_norm, rms_norm and their
backward and gamma gradients) and the loop nests with special forms (tiled transposes, float
selects through bits) against the float64 interpreter, on odd sizes, strided axes, masked
(-inf) entries, rows whose mean dwarfs their spread, in-place outputs and NaN."""

import numpy as np
import pytest
from pockengine import Program
from pockengine.backends.c.build import build_library
from pockengine.backends.runtime import Trainer
from pockengine.backends import get_target
from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from pockengine.backends.lower_to_kernels import lower_program
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region


def program(arg_types, build) -> Program:
    """One function f(args) whose body `build(args)` gives (ops, results)."""
    block = Block(arg_types=arg_types)
    ops, results = build(list(block.args))
    block.add_ops([*ops, func.ReturnOp(*results)])
    return Program(ModuleOp([func.FuncOp("f", (arg_types, [r.type for r in results]), Region(block))]))


def compiled(prog: Program) -> tuple[Trainer, str]:
    kp = lower_program(prog)
    target = get_target("c")
    return Trainer(prog, kp, build_library(kp, target)), target.sources(kp)["model.c"]


def check(prog, args, rtol=1e-5, atol=1e-6, dtype=np.float64):
    trainer, source = compiled(prog)
    got = trainer.call("f", *args)
    want = prog.run("f", *args, dtype=dtype)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=rtol, atol=atol)
    return source


SHAPES_AXES = [((3, 37), -1), ((2, 129, 5), 1), ((4, 1), -1), ((1, 3, 300), -1), ((6, 7, 2), 0)]


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_softmax_and_backward(shape, axis):
    """softmax and log_softmax with their gradients; a third of the inputs masked to -inf
    (never a whole row), the softmax gradient written over dy in place."""
    rng = np.random.default_rng(len(shape) + axis)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    mask = rng.random(shape) < 0.33
    first = [slice(None)] * len(shape)
    first[axis] = 0
    mask[tuple(first)] = False
    x[mask] = -np.inf
    dy = rng.standard_normal(shape).astype(np.float32)

    def build(a):
        sm = R.SoftmaxOp.build(a[0], axis=axis)
        lsm = R.LogSoftmaxOp.build(a[0], axis=axis)
        d_sm = G.SoftmaxBackwardOp.build(sm.result, a[1], axis=axis)
        d_lsm = G.LogSoftmaxBackwardOp.build(lsm.result, a[1], axis=axis)
        return [sm, lsm, d_sm, d_lsm], [sm.result, lsm.result, d_sm.result, d_lsm.result]

    prog = program([T.tensor(shape)] * 2, build)
    trainer, _ = compiled(prog)
    got = trainer.call("f", x, dy)
    want = prog.run("f", x, dy, dtype=np.float64)
    np.testing.assert_allclose(got[0], want[0], rtol=2e-6, atol=1e-7)
    assert (got[0][mask] == 0).all() and np.isneginf(got[1][mask]).all()
    np.testing.assert_allclose(got[1][~mask], want[1][~mask], rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[3], want[3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows,n", [(5, 1), (3, 7), (11, 37), (2, 300), (64, 256)])
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_norms_and_gradients(rows, n, offset):
    """layer_norm, rms_norm, their input and gamma gradients; `offset` puts each row's mean
    far above its spread (a one-pass variance without a shift would cancel)."""
    rng = np.random.default_rng(rows * n)
    x = (offset + rng.standard_normal((rows, n)) * (0.1 if offset else 1)).astype(np.float32)
    g, b = (1 + 0.3 * rng.standard_normal(n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    dy = rng.standard_normal((rows, n)).astype(np.float32)
    eps = 1e-5

    def build(a):
        x_, g_, b_, dy_ = a
        ops = [N.LayerNormOp.build(x_, g_, b_, eps=eps), N.RmsNormOp.build(x_, g_, eps=eps),
               G.LayerNormBackwardOp.build(x_, g_, dy_, eps=eps), G.LayerNormBackwardGammaOp.build(x_, dy_, eps=eps),
               G.RmsNormBackwardOp.build(x_, g_, dy_, eps=eps), G.RmsNormBackwardGammaOp.build(x_, dy_, eps=eps)]
        return ops, [op.result for op in ops]

    prog = program([T.tensor((rows, n)), T.tensor((n,)), T.tensor((n,)), T.tensor((rows, n))], build)
    # float32 numpy loses ~1e-3 on the offset rows; the kernels keep the mean as hi + lo
    check(prog, [x, g, b, dy], rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("shape,perm", [((3, 37, 19), (0, 2, 1)), ((17, 33), (1, 0)), ((2, 3, 40, 5), (0, 2, 3, 1))])
def test_transposing_maps_run_in_tiles(shape, perm):
    """A transposed operand (stride on the last loop dim, contiguous on the one before) walks
    tiles of 16 columns; odd sizes leave partial tiles."""
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    out_shape = tuple(shape[p] for p in perm)
    y = rng.standard_normal(out_shape).astype(np.float32)

    def build(a):
        t = S.TransposeOp.build(a[0], perm=list(perm))
        m = E.MulOp.build(t.result, a[1])
        return [t, m], [m.result]

    source = check(program([T.tensor(shape), T.tensor(out_shape)], build), [x, y], rtol=0, atol=0, dtype=np.float32)
    assert "+= 16)" in source


def test_float_selects_through_bits():
    """where with a row mask broadcast along the inner loop and clamp with both bounds render
    as pk_selectf (float selects against constants do not vectorize); NaN stays NaN."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 35)).astype(np.float32) * 3
    x[0, :3] = [np.nan, np.inf, -np.inf]
    keep = rng.random((9, 1)) < 0.5

    def build(a):
        zero = E.SubOp.build(a[0], a[0])  # 0 (NaN where x is not finite), a computed operand
        w = E.WhereOp.build(a[1], a[0], zero.result)
        c = E.ClampOp.build(a[0], min=-1.5, max=2.0)
        lo = E.ClampOp.build(a[0], min=0.25)
        return [zero, w, c, lo], [w.result, c.result, lo.result]

    prog = program([T.tensor((9, 35)), T.tensor((9, 1), T.i1)], build)
    trainer, source = compiled(prog)
    got = trainer.call("f", x, keep)
    with np.errstate(invalid="ignore"):
        want = [np.where(keep, x, x - x), np.clip(x, -1.5, 2.0), np.maximum(x, 0.25)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w.astype(np.float32))
    assert np.isnan(got[1][0, 0]) and np.isnan(got[2][0, 0])
    assert source.count("pk_selectf(") >= 3
