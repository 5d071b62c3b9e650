"""operator-reordering and fusion keep the meaning of the program (the interpreter gives the
same losses and updates before and after, on fixed models and on random programs), and do
what they promise: updates right after their gradients, fewer loop nests, lower peaks."""

import numpy as np
import programs as P
import pytest
from hypothesis import HealthCheck, given, settings
from pockengine.ir.ops.fused import FusedOp
from pockengine.ir.ops.optim import SgdOp
from pockengine.ir.ops.state import GetOp, SetOp
from pockengine.pipeline import run_pipeline  # passes/ and the backend passes (memory-plan)
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.passes.operator_reordering import peak

PIPELINES = ["operator-reordering", "fusion", "fusion{updates=false}", "operator-reordering,fusion"]


def same_training(prog, spec, passes, steps=3, tol=1e-6):
    ref = P.trained(prog, spec)
    opt = ref.copy()
    run_pipeline(opt, passes)
    opt.verify()
    for x, y in P.batches(prog, steps):
        a, b = ref.run("train_step", x, y), opt.run("train_step", x, y)
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    for k, v in ref.weights.items():
        np.testing.assert_allclose(opt.weights[k], v, rtol=tol, atol=tol, err_msg=k)
    x = P.batches(prog, 1)[0][0]
    np.testing.assert_allclose(opt.run("forward", x), ref.run("forward", x), rtol=tol, atol=tol)
    return ref, opt


@pytest.mark.parametrize("passes", PIPELINES)
@pytest.mark.parametrize("model", ["mlp", "cnn", "attention"])
def test_passes_keep_semantics(model, passes):
    same_training(getattr(P, model)(), P.SGD, passes)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=P.random_programs())
def test_passes_keep_semantics_on_random_programs(prog):
    for spec in (P.SGD, P.ADAMW):
        same_training(prog, spec, "operator-reordering,fusion", steps=2, tol=1e-5)


def body(prog):
    return list(prog.functions()["train_step"].body.block.ops)


def test_reordering_applies_each_update_right_after_its_gradient():
    """An update runs once its gradient is complete and nothing else reads the old weight
    (the input gradient through that layer does): then, at once."""
    ref, opt = same_training(P.cnn(), P.SGD, "operator-reordering")
    ops = body(opt)
    for i, op in enumerate(ops):
        if not isinstance(op, SgdOp):
            continue
        name = op.operands[0].owner.param.root_reference.data
        readers = [j for j, o in enumerate(ops) if j != i and any(
            isinstance(v.owner, GetOp) and v.owner.param.root_reference.data == name for v in o.operands)]
        ready = max([ops.index(op.operands[1].owner), *readers])
        between = ops[ready + 1:i]
        assert all(o.name in ("train.get", "train.set", "train.constant", "train.sgd") for o in between), \
            [o.name for o in between]
    assert peak(body(opt)) < peak(body(ref))


def test_reordering_lowers_the_planned_arena():
    ref, opt = same_training(P.attention(), P.SGD, "operator-reordering")
    before = lower_program(ref).memory["functions"]["train_step"]
    after = lower_program(opt).memory["functions"]["train_step"]
    assert after["lower_bound"] < before["lower_bound"]


def test_fusion_groups_elementwise_chains_and_gradient_updates():
    ref, opt = same_training(P.cnn(), P.SGD, "fusion")
    fused = [op for op in body(opt) if isinstance(op, FusedOp)]
    kinds = [op.group_kind for op in fused]
    assert "update" in kinds and "elementwise" in kinds
    steps = lambda p: len(lower_program(p).functions["train_step"].steps)
    assert steps(opt) < steps(ref)
    # an updated weight gets no gradient buffer: its GEMM accumulates into the momentum
    kf = lower_program(opt).functions["train_step"]
    calls = [s for s in kf.steps if getattr(s, "op", "") == "conv2d_backward_weight"]
    assert calls and all(c.writes[0].storage.resolve().region == "params" for c in calls)


def test_fused_ir_prints_and_parses():
    _, opt = same_training(P.mlp(), P.SGD, "fusion")
    from pockengine import Program

    text = str(opt)
    assert "train.fused(" in text and "train.yield" in text
    back = Program.parse(text, opt.weights)
    back.verify()
    assert str(back) == text


def test_pock_opt_shows_memory_plan():
    prog = P.trained(P.mlp(), P.SGD)
    run_pipeline(prog, "operator-reordering,fusion,memory-plan")
    text = str(prog)
    assert "pock.memory" in text and 'mem = "arena[' in text and "params[@" in text


def test_sets_still_in_place_after_passes():
    opt = P.trained(P.mlp(), P.SGD)
    run_pipeline(opt, "operator-reordering,fusion")
    rep = lower_program(opt).memory["functions"]["train_step"]
    n_sets = sum(isinstance(o, SetOp) for o in opt.functions()["train_step"].walk())
    assert rep["inplace_updates"] == n_sets


def test_slice_propagation_computes_only_the_kept_rows():
    from pockengine.passes import cost

    prog = P.attention(seq=6, cls=True)
    sliced = prog.copy()
    run_pipeline(sliced, "slice-propagation")
    sliced.verify()
    x = P.batches(prog, 1)[0][0]
    np.testing.assert_allclose(sliced.run("forward", x), prog.run("forward", x), rtol=1e-6, atol=1e-6)
    before, after = (cost(p).functions["forward"].forward_flops for p in (prog, sliced))
    assert after < 0.7 * before
    # the training step derived from the smaller forward trains identically
    a, b = P.trained(prog, P.SGD), P.trained(sliced, P.SGD)
    for xb, yb in P.batches(prog, 3):
        np.testing.assert_allclose(b.run("train_step", xb, yb), a.run("train_step", xb, yb), rtol=1e-5)
    for k, v in a.weights.items():
        np.testing.assert_allclose(b.weights[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_a_slice_is_compacted_in_place():
    """next_token's logits[:, :-1] reshaped for the loss: the rows are compacted inside the
    logits buffer instead of into a second one (the logits die there)."""
    from pockengine import Program

    prog = Program.parse("""builtin.module {
      func.func @f(%x : tensor<2x5x3xf32>) -> tensor<f32> {
        %e = train.exp %x : tensor<2x5x3xf32>
        %s = train.slice %e {axes = [1], starts = [0], ends = [4], steps = [1]} : (tensor<2x5x3xf32>) -> tensor<2x4x3xf32>
        %r = train.reshape %s {shape = [8, 3]} : (tensor<2x4x3xf32>) -> tensor<8x3xf32>
        %t = train.tanh %r : tensor<8x3xf32>
        %m = train.sum %t {axes = [0, 1]} : (tensor<8x3xf32>) -> tensor<f32>
        func.return %m : tensor<f32>
      }
    }""")
    kp = lower_program(prog)
    rep = kp.memory["functions"]["f"]
    assert rep["lower_bound"] <= 2 * 128  # one 120-byte buffer (+ the 96-byte tanh reuses it)
    from pockengine.backends.c.build import build_library
    from pockengine.backends.runtime import Trainer
    from pockengine.backends import get_target

    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    got = Trainer(prog, kp, build_library(kp, get_target("c"))).call("f", x)[0]
    np.testing.assert_allclose(got, prog.run("f", x), rtol=1e-5)


def test_a_pad_expands_in_place():
    """The padded gradient of a sliced tensor (next_token's logits) is spread out backwards
    inside the gradient's own buffer, and only the border is filled."""
    from pockengine import Program
    from pockengine.backends.c.build import build_library
    from pockengine.backends.runtime import Trainer
    from pockengine.backends import get_target

    prog = Program.parse("""builtin.module {
      func.func @f(%x : tensor<2x4x3xf32>) -> tensor<f32> {
        %e = train.exp %x : tensor<2x4x3xf32>
        %p = train.pad %e {pads = [0, 1, 0, 0, 2, 0]} : (tensor<2x4x3xf32>) -> tensor<2x7x3xf32>
        %t = train.tanh %p : tensor<2x7x3xf32>
        %w = train.mul %t, %t : tensor<2x7x3xf32>
        %m = train.sum %w {axes = [0, 1, 2]} : (tensor<2x7x3xf32>) -> tensor<f32>
        func.return %m : tensor<f32>
      }
    }""")
    kp = lower_program(prog)
    assert any(getattr(s, "reverse", False) for s in kp.functions["f"].steps)
    assert kp.memory["functions"]["f"]["lower_bound"] <= 192  # one 168-byte buffer
    x = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(np.float32)
    got = Trainer(prog, kp, build_library(kp, get_target("c"))).call("f", x)[0]
    np.testing.assert_allclose(got, prog.run("f", x), rtol=1e-5)
