"""`dead-gradient-elimination`: the pruned step updates exactly like the unpruned one, with
strictly less work, and keeps only channel slices of activations for ratio updates."""

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import BoolAttr

sys.path.insert(0, str(Path(__file__).parent))
import sparse_models as M
from pockengine.ir.ops import grad as G
from pockengine.ir.ops.shape import SliceOp
from pockengine.ir.ops.state import ConstantOp
from pockengine.passes import cost, run_pipeline
from pockengine.passes.dead_gradient_elimination import MASK_OPS, dead_gradient_elimination
from pockengine.passes.scheme import Rule, Scheme, SchemeError, Selector
from pockengine.passes.sparse_backprop import fit_state_values, sparse_backprop

SGD = "autodiff{optimizer=sgd lr=0.1 momentum=0.9}"
FIRST = {"cnn": "features.0.0.weight", "mlp": "fc1.weight"}
GLOBS = {"cnn": ["features.0", "features.1", "features.2*", "features.3.*", "classifier.*", "*.bias", "*.weight"],
         "mlp": ["fc1", "fc2.*", "fc3", "*.bias", "*.weight", "fc[12].weight"]}


@pytest.fixture(scope="module")
def models():
    out = {}
    for name in ("cnn", "mlp"):
        prog0 = getattr(M, name)()
        base = prog0.copy()
        run_pipeline(base, SGD)
        out[name] = (prog0, base, M.inputs(prog0), M.labels(prog0))
    return out


def _prune(base, scheme):
    sp = base.copy()
    decisions = sparse_backprop(sp.module, scheme)
    fit_state_values(sp)
    run_pipeline(sp, "")  # gives the shrunk state its zeros
    dg = sp.copy()
    dead_gradient_elimination(dg.module)
    dg.verify()
    return decisions, sp, dg


def _ops(prog):
    return list(prog.functions()["train_step"].body.block.ops)


@st.composite
def schemes(draw, model):
    n_layers = 5 if model == "cnn" else 3
    selector = st.one_of(
        st.sampled_from(GLOBS[model]).map(lambda g: Selector(glob=g)),
        st.integers(1, n_layers).map(lambda n: Selector(last=n)),
        st.tuples(st.integers(0, n_layers - 1), st.integers(0, 2)).map(
            lambda t: Selector(lo=t[0], hi=min(t[0] + t[1], n_layers - 1))))
    rule = st.builds(lambda sels, mode, r: Rule(tuple(sels), mode, r if mode == "ratio" else None),
                     st.lists(selector, min_size=1, max_size=2), st.sampled_from(["full", "frozen", "bias", "ratio"]),
                     st.sampled_from(["1", "3/4", "1/2", "0.3", "1/4", "0.1"]).map(Fraction))
    return Scheme(draw(st.sampled_from(["frozen", "full"])), tuple(draw(st.lists(rule, min_size=1, max_size=4))))


@pytest.mark.parametrize("model", ["cnn", "mlp"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_pruned_step_equals_unpruned_with_strictly_less_work(models, model, data):
    prog0, base, x, y = models[model]
    scheme = data.draw(schemes(model))
    try:
        decisions = scheme.resolve(base)
    except SchemeError:
        assume(False)
    _, sp, dg = _prune(base, scheme)
    sliced = {k for k, u in decisions.items() if u.mode == "ratio"}
    for _ in range(2):
        loss_sp, loss_dg = sp.run("train_step", x, y), dg.run("train_step", x, y)
        for k in sp.weights:
            if k.split(".momentum")[0] in sliced:  # the same sums over a channel slice: BLAS may block them differently
                np.testing.assert_allclose(dg.weights[k], sp.weights[k], rtol=1e-5, atol=1e-7, err_msg=k)
            else:
                np.testing.assert_array_equal(dg.weights[k], sp.weights[k], err_msg=k)
        if not sliced:
            assert loss_sp == loss_dg

    if not sliced:  # the same parameters frozen before autodiff: bit-identical updates too
        ref = prog0.copy()
        for k, u in decisions.items():
            ref.param(k).properties["trainable"] = BoolAttr.from_bool(u.mode != "frozen")
        run_pipeline(ref, SGD)
        for _ in range(2):
            ref.run("train_step", x, y)
        for k in ref.weights:
            np.testing.assert_array_equal(dg.weights[k], ref.weights[k], err_msg=k)

    before, after = cost(base)["train_step"], cost(dg)["train_step"]
    assert after.saved_bytes <= before.saved_bytes
    if any(u.mode == "frozen" for u in decisions.values()):
        assert after.compute_ops < before.compute_ops
        if not sliced:  # (ratio updates add slices)
            assert sum(after.ops.values()) < sum(before.ops.values())
    if any(u.mode != "full" for u in decisions.values()):
        assert after.total_flops < before.total_flops
        assert after.backward_flops + after.optimizer_flops < before.backward_flops + before.optimizer_flops
    if decisions[FIRST[model]].mode != "full":  # the input no longer needs saving whole
        assert after.saved_bytes < before.saved_bytes


def test_ratio_gradients_read_a_slice_made_right_after_the_activation(models):
    _, base, _, _ = models["cnn"]
    _, _, dg = _prune(base, Scheme.parse("default frozen; features.1: ratio 1/2; features.3: ratio 1/4"))
    ops = _ops(dg)
    loss = ops.index(ops[-1].operands[0].owner)
    weight_grads = [op for op in ops if isinstance(op, G.Conv2dBackwardWeightOp)]
    assert {(op.result.type.get_shape(), op.p.groups) for op in weight_grads} == {((16, 3, 1, 1), 1), ((4, 1, 3, 3), 4)}
    for op in weight_grads:
        cut = op.x.owner
        assert isinstance(cut, SliceOp) and cut.p.ends[0] == op.result.type.get_shape()[1] * op.p.groups
        assert ops.index(cut) < loss  # sliced in the forward part,
        between, prev = [], cut.prev_op  # right where the activation is produced (beside other
        while prev is not cut.x.owner:     # slices and masks moved there)
            between.append(prev)
            prev = prev.prev_op
        assert all(isinstance(op, (SliceOp, ConstantOp, *MASK_OPS)) for op in between), between
    assert not any(isinstance(op, SliceOp) and isinstance(op.x.owner, G.Conv2dBackwardWeightOp) for op in ops)
    # the full activations are no longer saved for the backward part: only their slices
    saved = cost(dg)["train_step"].saved
    assert all(not name.startswith(("train.conv2d#", "train.batch_norm#")) for name, _ in saved), saved


def test_backprop_stops_at_the_earliest_layer_that_needs_a_gradient(models):
    _, base, _, _ = models["cnn"]
    _, _, classifier_only = _prune(base, Scheme.parse("classifier.*: full"))
    names = {op.name for op in _ops(classifier_only)}
    assert not names & {"train.conv2d_backward_input", "train.conv2d_backward_weight"}

    _, _, from_features_2 = _prune(base, Scheme.parse("features.2.bias: full"))
    dx = [op for op in _ops(from_features_2) if isinstance(op, G.Conv2dBackwardInputOp)]
    assert [op.weight.owner.param.root_reference.data for op in dx] == ["features.3.0.weight"]
    assert not any(isinstance(op, G.Conv2dBackwardWeightOp) for op in _ops(from_features_2))


def test_linear_ratio_slices_the_input_features(models):
    _, base, _, _ = models["mlp"]
    _, _, dg = _prune(base, Scheme.parse("default frozen; fc2.weight: ratio 0.3"))
    (dw,) = [op for op in _ops(dg) if isinstance(op, G.LinearBackwardWeightOp)]
    assert dw.result.type.get_shape() == (8, 3) and isinstance(dw.x.owner, SliceOp)


def test_forward_only_module_is_untouched_and_the_pass_is_idempotent(models):
    prog0, base, _, _ = models["cnn"]
    fwd = prog0.copy()
    run_pipeline(fwd, "dead-gradient-elimination")
    assert str(fwd) == str(prog0)
    _, _, dg = _prune(base, Scheme.parse("default frozen; features.3: ratio 1/4; classifier.*: full"))
    once = str(dg)
    run_pipeline(dg, "dead-gradient-elimination")
    assert str(dg) == once


@pytest.mark.slow
def test_mobilenet_v2_tte_scheme_prunes_the_step():
    """MobileNetV2-w0.35 (96×96) with examples/mobilenet_tte.pock: same updates, far less work."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "frontends"))
    import models as F
    from pockengine.frontends import from_torch

    model, args = F.mobilenet_v2(batch=1, size=96)
    full = from_torch(model, args)
    run_pipeline(full, "autodiff{optimizer=sgd lr=0.05 momentum=0.9}")
    scheme = Scheme.load(Path(__file__).parents[2] / "examples" / "mobilenet_tte.pock")
    _, sp, dg = _prune(full, scheme)
    x, y = args[0].numpy(), np.array([3])
    assert sp.run("train_step", x, y) == dg.run("train_step", x, y)
    for k in sp.weights:
        np.testing.assert_allclose(dg.weights[k], sp.weights[k], rtol=1e-5, atol=1e-7, err_msg=k)
    before, after = cost(full), cost(dg)
    print("\n" + cost.compare(before, after))
    b, a = before["train_step"], after["train_step"]
    assert a.trained_tensors == 40 and a.compute_ops < 0.5 * b.compute_ops
    assert a.forward_flops < 1.02 * b.forward_flops  # the ReLU6 masks, now computed in the forward part
    assert a.backward_flops < 0.4 * b.backward_flops and a.saved_bytes < 0.05 * b.saved_bytes
