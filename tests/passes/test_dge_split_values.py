"""`dead-gradient-elimination` on values split into same-shaped pieces (issue 12): the pruned
step equals the unpruned one when a projection's output is cut by chunk/split into slices of
equal shape but different bounds (GLU, SwiGLU, rotate_half, a fused qkv projection)."""

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent))
import split_models as S
from pockengine import from_torch
from pockengine.ir.ops.shape import SliceOp
from pockengine.passes import run_pipeline
from pockengine.passes.dead_gradient_elimination import dead_gradient_elimination
from pockengine.passes.scheme import Scheme
from pockengine.passes.sparse_backprop import fit_state_values, sparse_backprop

SGD = "autodiff{optimizer=sgd lr=0.1 momentum=0.9}"
CASES = [(m, i) for m in S.SCHEMES for i in range(len(S.SCHEMES[m]))]


@pytest.fixture(scope="module")
def programs():
    out = {}
    for name in S.MODELS:
        module, x, y = S.build(name)
        prog = from_torch(module, (x,))
        run_pipeline(prog, SGD)
        out[name] = (prog, x.numpy(), y.numpy())
    return out


def test_the_models_split_one_value_into_same_shaped_slices(programs):
    for name, (prog, _, _) in programs.items():
        fwd = [op for op in prog.functions()["train_step"].walk() if isinstance(op, SliceOp)]
        by_source = {}
        for op in fwd:
            by_source.setdefault(op.operands[0], []).append(op)
        assert any(len({s.result.type for s in group}) == 1 and len(group) >= 2 for group in by_source.values()), name


@pytest.mark.parametrize("model, index", CASES, ids=[f"{m}-{i}" for m, i in CASES])
def test_pruned_step_equals_unpruned_on_split_values(programs, model, index):
    base, x, y = programs[model]
    sp = base.copy()
    sparse_backprop(sp.module, Scheme.parse(S.SCHEMES[model][index], "<scheme>"))
    fit_state_values(sp)
    run_pipeline(sp, "")
    dg = sp.copy()
    dead_gradient_elimination(dg.module)
    dg.verify()
    for step in range(3):
        loss_sp, loss_dg = sp.run("train_step", x, y), dg.run("train_step", x, y)
        np.testing.assert_allclose(loss_dg, loss_sp, rtol=1e-6, atol=1e-7, err_msg=f"loss, step {step}")
        for k in sp.weights:
            np.testing.assert_allclose(dg.weights[k], sp.weights[k], rtol=1e-5, atol=1e-6, err_msg=f"{k}, step {step}")
    # and the pruning did something: fewer ops than the step it came from
    count = lambda p: sum(1 for _ in p.functions()["train_step"].walk())
    assert count(dg) < count(sp)
