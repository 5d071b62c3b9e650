"""NaN in, NaN out: the C kernels against the interpreter (numpy's IEEE semantics) on inputs
holding NaN, ±inf and values on both sides of every breakpoint (0, relu6's 6, clamp bounds,
ties of maximum/minimum), for every op with a kernel; then whole training steps on NaN data,
and Trainer.step making a non-finite loss visible.

A select written `x > 0 ? x : 0` maps NaN to 0 and a max written `v > m ? v : m` never takes
a NaN: each such form, in the scalar table of the renderer or in a kernel (pooling,
reductions, the losses), fails the first test."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pockengine import Program
from pockengine.backends import get_target
from pockengine.backends.c.build import build_library
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.backends.runtime import Trainer
from pockengine.ir.interpreter import InterpretError
from pockengine.ir.ops import elementwise as E

sys.path.insert(0, str(Path(__file__).parent.parent / "ir"))
sys.path.insert(0, str(Path(__file__).parent))
from op_cases import all_cases
from test_kernels import KERNEL_OPS, TARGET_PARAMS, kernel_types, module_of

SPECIAL = np.array([np.nan, np.inf, -np.inf], np.float32)
# both sides of every breakpoint of the piecewise ops: 0 (relu, abs), 6 (relu6), ±1 (hardtanh-like
# clamps), signed zeros, tiny and large magnitudes; clamp bounds are drawn around these
GRID = np.concatenate([np.arange(-8, 8.25, 0.25), [-0.0, 1e-30, -1e-30, 5.999, 6.001, -100.0, 100.0]]).astype(np.float32)


def poisoned(a: np.ndarray, rng) -> np.ndarray:
    """`a` with its elements from GRID (most), kept (some) or NaN/±inf (about one in six)."""
    if a.dtype.kind != "f" or a.size == 0:
        return a
    out = a.copy().reshape(-1)
    pick = rng.random(out.size)
    grid = pick < 0.6
    out[grid] = rng.choice(GRID, int(grid.sum()))
    special = pick > 0.83
    out[special] = rng.choice(SPECIAL, int(special.sum()))
    if out.size >= 2 and not special.any():
        out[rng.integers(out.size)] = np.nan
    return out.reshape(a.shape).astype(a.dtype)


def assert_ieee_equal(got: np.ndarray, want: np.ndarray, what: str) -> None:
    want = np.asarray(want)
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=what)
        return
    got = np.asarray(got, np.float64)
    want = want.astype(np.float64)
    bad = np.isnan(got) != np.isnan(want)
    assert not bad.any(), (f"{what}: NaN where the interpreter has none or the reverse at {np.argwhere(bad)[:5].tolist()}: "
                           f"C {got[bad][:5]}, interpreter {want[bad][:5]}")
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isinf(got) & ~finite, np.isinf(want), err_msg=f"{what}: inf pattern")
    np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)], err_msg=f"{what}: inf signs")
    scale = max(1.0, float(np.abs(want[finite]).max())) if finite.any() else 1.0
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-3, atol=1e-4 * scale, err_msg=what)


def one_case_per_op(draw):
    table = all_cases()
    out = []
    for op in KERNEL_OPS:
        if op not in table:  # an op whose cases are still to come (tests/ir/test_roundtrip.py says so)
            continue
        for _ in range(20):
            case = draw(table[op](op))
            if kernel_types(case):
                out.append(case)
                break
    return out


# integer casts of NaN/inf are undefined in C and arbitrary in numpy: not a semantics to match
UNDEFINED = {"train.cast"}
# Every operand of every op is poisoned: the C convolutions multiply padding (0 · NaN = NaN), as
# the interpreter and PyTorch on an explicitly padded input do; test_convolutions_multiply_padding_by_nan_like_torch
# aims a NaN at the taps that meet only padding. (An empty set: kept for an op that may need it.)
FIRST_OPERAND_ONLY: set[str] = set()


# no shrinking: one example is a module of every op (one compile); the message lists every op that differs
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(cases=st.composite(one_case_per_op)(), seed=st.integers(0, 2**16))
def test_every_kernel_propagates_nan_like_the_interpreter(cases, seed):
    prog = Program(module_of(cases))
    kp = lower_program(prog)
    trainer = Trainer(prog, kp, build_library(kp, get_target("c")))
    rng = np.random.default_rng(seed)
    failures = []
    for i, case in enumerate(cases):
        if case.op.name in UNDEFINED:
            continue
        inputs = case.inputs(rng)
        inputs = [poisoned(a, rng) if k == 0 or case.op.name not in FIRST_OPERAND_ONLY else a
                  for k, a in enumerate(inputs)]
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = prog.run(f"f{i}", *inputs)
        except InterpretError:  # the interpreter refuses the input (an optimizer step count of -inf)
            continue
        got = trainer.call(f"f{i}", *inputs)
        for g, w in zip(got, want if isinstance(want, tuple) else (want,)):
            try:
                assert_ieee_equal(g, w, f"{case.op.name} ({', '.join(map(str, case.operands))}) {case.props}")
            except AssertionError as e:
                failures.append(" ".join(str(e).split())[:600])
    assert not failures, "\n".join(failures)


PIECEWISE = [E.ReluOp, E.Relu6Op, E.AbsOp]


@pytest.mark.parametrize("target", TARGET_PARAMS)
def test_piecewise_ops_on_every_breakpoint(target):
    """relu, relu6, abs, clamp, maximum, minimum on a grid that crosses each knee, with NaN
    and ±inf, as one compiled module against the interpreter (and torch for the activations),
    on each target (clang's Hexagon backend turns `x < 0 ? 0 : x` into sfmax, which drops NaN)."""
    import torch
    from pockengine.ir import types as T
    from xdsl.dialects import func
    from xdsl.dialects.builtin import ModuleOp
    from xdsl.ir import Block, Region

    x = np.concatenate([GRID, SPECIAL, np.linspace(5.5, 6.5, 9, dtype=np.float32)]).astype(np.float32)
    y = np.roll(x, 7)
    y[::5] = x[::5]  # ties
    t = T.tensor(x.shape)
    fns = []
    builds = [(cls.__name__, lambda a, cls=cls: cls.build(a[0]), 1) for cls in PIECEWISE]
    builds += [("clamp", lambda a: E.ClampOp.build(a[0], min=-1.0, max=6.0), 1),
               ("clamp_lo", lambda a: E.ClampOp.build(a[0], min=0.0, max=float("inf")), 1),
               ("maximum", lambda a: E.MaximumOp.build(a[0], a[1]), 2),
               ("minimum", lambda a: E.MinimumOp.build(a[0], a[1]), 2)]
    for name, build, n in builds:
        block = Block(arg_types=[t] * n)
        op = build(list(block.args))
        block.add_ops([op, func.ReturnOp(op.results[0])])
        fns.append(func.FuncOp(name, ([t] * n, [t]), Region(block)))
    prog = Program(ModuleOp(fns))
    tgt = get_target(target)
    kp = lower_program(prog, library=tgt.library)
    trainer = Trainer(prog, kp, tgt.load(kp))
    torch_ref = {"ReluOp": torch.relu, "Relu6Op": torch.nn.functional.relu6, "AbsOp": torch.abs,
                 "clamp": lambda v: torch.clamp(v, -1, 6), "clamp_lo": lambda v: torch.clamp(v, min=0),
                 "maximum": torch.maximum, "minimum": torch.minimum}
    for name, _, n in builds:
        args = [x, y][:n]
        got = trainer.call(name, *args)[0]
        assert_ieee_equal(got, prog.run(name, *args), f"{name} vs the interpreter")
        assert_ieee_equal(got, torch_ref[name](*map(torch.from_numpy, args)).numpy(), f"{name} vs torch")


def test_nan_data_gives_nan_loss_logits_and_weights_like_torch_and_step_says_so():
    """The issue's case: all-NaN inputs through conv, ReLU, max-pool, ReLU6, linear and the
    loss. The compiled step, the interpreter and PyTorch all give NaN; step() warns, or
    raises with on_nonfinite="raise"."""
    import torch
    from pockengine import compile, from_torch
    from pockengine.backends.runtime import NonFiniteLossError, NonFiniteLossWarning
    from pockengine.pipeline import Recipe, run

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU6(),
                                torch.nn.Linear(8, 4)).eval()
    x = np.full((4, 1, 4, 4), np.nan, np.float32)
    y = np.array([0, 1, 2, 3])
    prog = from_torch(model, (torch.randn(4, 1, 4, 4),))
    trainer = compile(prog, loss="cross_entropy", optimizer="sgd", lr=0.1)
    ref = run(prog, Recipe("cross_entropy", "sgd", hyper={"lr": 0.1}), "autodiff").program
    assert np.isnan(model(torch.from_numpy(x)).detach().numpy()).all()
    assert np.isnan(trainer.forward(x)).all() and np.isnan(ref.run("forward", x)).all()
    with pytest.warns(NonFiniteLossWarning, match=r"step 1: the loss is nan"):
        loss = trainer.step(x, y)
    with np.errstate(all="ignore"):
        assert np.isnan(loss) and np.isnan(float(ref.run("train_step", x, y)))
    for name, value in trainer.parameters().items():  # the weights the gradient reaches, as the interpreter
        assert_ieee_equal(value, ref.weights[name], name)
    trainer.on_nonfinite = "raise"
    with pytest.raises(NonFiniteLossError, match="step 2: the loss is nan"):
        trainer.step(np.zeros_like(x), y)  # finite data, NaN weights
    trainer.on_nonfinite = "ignore"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.step(x, y)


# (channels in, out, groups, kernel, stride, padding (t, l, b, r), dilation, plane): the implicit-GEMM
# path (run codes, masked gathers, the 1×1 GEMM), depthwise on its SIMD phase-split path (stride 1
# and 2, planes over and under 64 outputs: four channels at once) and on padded planes (5×5, stride 3,
# dilation); each with a NaN on a corner tap that meets only padding at the border
CONV_GEOMETRIES = [(4, 8, 1, 3, 1, (1, 1, 1, 1), 1, 9), (4, 8, 1, 3, 2, (1, 1, 1, 1), 1, 9),
                   (3, 5, 1, 3, 1, (2, 0, 1, 2), 2, 7), (8, 8, 8, 3, 1, (1, 1, 1, 1), 1, 12),
                   (8, 8, 8, 3, 2, (1, 1, 1, 1), 1, 12), (8, 8, 8, 3, 1, (1, 1, 1, 1), 1, 4),
                   (8, 8, 8, 5, 1, (2, 2, 2, 2), 1, 9), (8, 8, 8, 3, 3, (1, 1, 1, 1), 1, 9),
                   (8, 8, 8, 3, 1, (2, 2, 2, 2), 2, 9), (6, 6, 3, 3, 1, (1, 1, 1, 1), 1, 8)]


def test_convolutions_multiply_padding_by_nan_like_torch():
    """Padding is zeros that are multiplied (0 · NaN = NaN, IEEE and torch on an explicitly padded
    input): a NaN or inf weight tap meeting only padding still makes the border outputs NaN, and a
    NaN in dy meeting only padding of x still makes its weight-gradient entry NaN. Every C
    convolution kernel (forward, dx, dw; implicit GEMM and depthwise) against autograd through
    F.pad + F.conv2d and against the interpreter."""
    import torch
    import torch.nn.functional as F
    from pockengine.ir import types as T
    from pockengine.ir.ops import grad as G
    from pockengine.ir.ops import linalg as L
    from op_cases import Case

    cases, refs = [], []
    rng = np.random.default_rng(0)
    for k, (ci, co, g, ks, s, pad, d, hw) in enumerate(CONV_GEOMETRIES):
        x = rng.standard_normal((2, ci, hw, hw)).astype(np.float32)
        w = rng.standard_normal((co, ci // g, ks, ks)).astype(np.float32)
        corner = [(0, 0), (0, -1), (-1, 0), (-1, -1)][k % 4]
        w[0, 0, corner[0], corner[1]] = np.nan
        w[-1, -1, corner[1], corner[0]] = np.inf
        xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
        y = F.conv2d(F.pad(xt, (pad[1], pad[3], pad[0], pad[2])), wt, stride=s, dilation=d, groups=g)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dy[0, 0, corner[0], corner[1]] = np.nan  # a dy corner that reads only padding through some taps
        y.backward(torch.from_numpy(np.nan_to_num(dy, nan=1.0)))  # dx against a finite dy: the weight's NaN
        dx_want = xt.grad.numpy().copy()
        wt2 = torch.from_numpy(np.nan_to_num(w, nan=0.5, posinf=2.0)).requires_grad_()
        y2 = F.conv2d(F.pad(torch.from_numpy(x), (pad[1], pad[3], pad[0], pad[2])), wt2, stride=s, dilation=d,
                      groups=g)
        y2.backward(torch.from_numpy(dy))  # dw against a NaN dy
        props = {"stride": (s, s), "padding": pad, "dilation": (d, d), "groups": g}
        xs, ws, ys = T.tensor(x.shape), T.tensor(w.shape), T.tensor(tuple(y.shape))
        cases += [Case(L.Conv2dOp, [xs, ws], props),
                  Case(G.Conv2dBackwardInputOp, [ys, ws], {**props, "input_size": (hw, hw)}),
                  Case(G.Conv2dBackwardWeightOp, [xs, ys], {**props, "kernel": (ks, ks)})]
        refs += [((x, w), y.detach().numpy()), ((np.nan_to_num(dy, nan=1.0), w), dx_want),
                 ((x, dy), wt2.grad.numpy())]
    prog = Program(module_of(cases))
    kp = lower_program(prog)
    trainer = Trainer(prog, kp, build_library(kp, get_target("c")))
    for i, ((args, want), case) in enumerate(zip(refs, cases)):
        what = f"{case.op.name} {CONV_GEOMETRIES[i // 3]}"
        got = trainer.call(f"f{i}", *args)[0]
        with np.errstate(all="ignore"):
            assert_ieee_equal(got, prog.run(f"f{i}", *args), f"{what} vs the interpreter")
        assert_ieee_equal(got, want, f"{what} vs torch")
        assert np.isnan(want).any() and not np.isnan(want).all(), what  # the case has a border to get wrong
