"""Every op's C kernel (or loop nest) against the interpreter, on the random cases of
tests/ir/op_cases.py and train_cases.py: shapes, broadcasts, strides, padding, dilation,
groups, axes, dtypes. One example per op goes into one module (one function each), so a
hypothesis example costs one C compile."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pockengine import Program
from pockengine.backends.c.build import build_library
from pockengine.backends.runtime import Trainer
from pockengine.backends import get_target
from pockengine.ir.dialect import OPS
from pockengine.ir.ops import fused, state
from pockengine.backends.lower_to_kernels import lower_program
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, IntegerType, ModuleOp, TensorType
from xdsl.ir import Block, Region

sys.path.insert(0, str(Path(__file__).parent.parent / "ir"))
from op_cases import all_cases

SKIP = {state.ParamOp, state.GetOp, state.SetOp, state.SetSliceOp, *fused.OPS}  # tested by whole programs
KERNEL_OPS = [op for op in OPS if op not in SKIP]


def lowerable(t) -> bool:
    el = t.element_type if isinstance(t, TensorType) else t
    return isinstance(el, Float32Type) or (isinstance(el, IntegerType) and el.width.data in (1, 8, 32, 64))


def module_of(cases) -> ModuleOp:
    fns = []
    for i, case in enumerate(cases):
        block = Block(arg_types=case.operands)
        op = case.build(list(block.args))
        block.add_ops([op, func.ReturnOp(*op.results)])
        fns.append(func.FuncOp(f"f{i}", (case.operands, [r.type for r in op.results]), Region(block)))
    return ModuleOp(fns)


@st.composite
def one_case_per_op(draw):
    table = all_cases()
    out = []
    for op in KERNEL_OPS:
        for _ in range(20):  # draws until a case has kernel types (a filter starves on some ops)
            case = draw(table[op](op))
            if kernel_types(case):
                out.append(case)
                break
    return out


def kernel_types(case) -> bool:
    """f32, i64, i32, i8, ui8, i1 in and out (the kernel backends compute in f32)."""
    if not all(lowerable(t) for t in case.operands):
        return False
    probe = case.build(list(Block(arg_types=case.operands).args))
    return all(lowerable(r.type) for r in probe.results)


def _toolchain_missing(name):
    try:
        return get_target(name).available()
    except (ImportError, ValueError) as e:
        return str(e)


# every target's kernels through the same harness; examples per target (a Hexagon build of
# every kernel takes ~10 s of clang, and each step runs under qemu)
KERNEL_TARGETS = {"c": 3, "hexagon": 1}


TARGET_PARAMS = [pytest.param(t, marks=pytest.mark.skipif(_toolchain_missing(t) is not None,
                                                        reason=f"target {t}: {_toolchain_missing(t)}"))
                 for t in KERNEL_TARGETS]


@pytest.mark.parametrize("target", TARGET_PARAMS)
def test_every_kernel_matches_the_interpreter(target):
    run = given(cases=one_case_per_op(), seed=st.integers(0, 2**16))(lambda cases, seed: check_kernels(target, cases, seed))
    settings(max_examples=KERNEL_TARGETS[target], deadline=None, suppress_health_check=list(HealthCheck))(run)()


def check_kernels(target, cases, seed):
    assert len({c.op for c in cases}) >= len(KERNEL_OPS) - 2
    prog = Program(module_of(cases))
    tgt = get_target(target)
    kp = lower_program(prog, library=tgt.library)
    trainer = Trainer(prog, kp, tgt.load(kp))
    rng = np.random.default_rng(seed)
    for i, case in enumerate(cases):
        inputs = case.inputs(rng)
        want = prog.run(f"f{i}", *inputs)
        got = trainer.call(f"f{i}", *inputs)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            w = np.asarray(w)
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5, err_msg=f"{target}: {case.op.name} {case}")
            else:
                np.testing.assert_array_equal(g, w.astype(g.dtype), err_msg=f"{target}: {case.op.name} {case}")
    trainer.close()


def test_every_op_has_a_kernel_lowering():
    from pockengine.backends.lower_to_kernels import RULES, _load_rules

    _load_rules()
    missing = [op.name for op in OPS if op not in RULES and op is not state.ParamOp and op is not fused.YieldOp]
    assert not missing, f"no lowering rule in backends/lowering/ for {missing}"


@pytest.mark.parametrize("geometry", [
    {"k": 3, "s": 1, "p": 1, "g": "dw"}, {"k": 3, "s": 2, "p": 1, "g": "dw"}, {"k": 5, "s": 2, "p": 2, "g": "dw"}, {"k": 3, "s": 1, "p": 0, "g": "dw"},
    {"k": 1, "s": 1, "p": 0, "g": 1}, {"k": 3, "s": 2, "p": 1, "g": 1}, {"k": 3, "s": 1, "p": 2, "g": 2, "d": 2}, {"k": 7, "s": 2, "p": 3, "g": 1},
])
@pytest.mark.parametrize("size", [4, 9])
def test_conv_kernels_and_gradients(geometry, size):
    """conv2d and both its gradients on the paths the kernels pick (depthwise, pointwise,
    im2col per image, im2col batched over images) against the interpreter."""
    from pockengine.ir import types as T
    from pockengine.ir.ops import grad as G
    from pockengine.ir.ops import linalg as L

    c = 8
    groups = c if geometry["g"] == "dw" else geometry["g"]
    k, s, p, d = geometry["k"], geometry["s"], geometry["p"], geometry.get("d", 1)
    xs, ws = (3, c, size, size), (c, c // groups, k, k)
    props = {"stride": (s, s), "padding": (p, p), "dilation": (d, d), "groups": groups}
    block = Block(arg_types=[T.tensor(xs), T.tensor(ws)])
    x, w = block.args
    y = L.Conv2dOp.build(x, w, **props)
    dx = G.Conv2dBackwardInputOp.build(y.result, w, input_size=list(xs[2:]), **{**props, "padding": [p] * 4})
    dw = G.Conv2dBackwardWeightOp.build(x, y.result, kernel=[k, k], **{**props, "padding": [p] * 4})
    block.add_ops([y, dx, dw, func.ReturnOp(y.result, dx.result, dw.result)])
    fn = func.FuncOp("f", (list(block.arg_types), [y.result.type, dx.result.type, dw.result.type]), Region(block))
    prog = Program(ModuleOp([fn]))
    kp = lower_program(prog)
    trainer = Trainer(prog, kp, build_library(kp, get_target("c")))
    rng = np.random.default_rng(size)
    args = [rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)]
    for got, want in zip(trainer.call("f", *args), prog.run("f", *args)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
