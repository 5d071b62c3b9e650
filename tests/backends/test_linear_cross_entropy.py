"""The fused vocabulary head (fusion's linear_cross_entropy group; the chunked kernel of
backends/c/kernels/linear_cross_entropy.c) and recompute_in_backward: the fused program
equals the unfused one under the interpreter, the compiled step equals the interpreter, and
the logits (and their gradient) get no buffer."""

import numpy as np
import pytest
import sparse_models as M
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pockengine.backends.lowering import loss as head_lowering
from pockengine.backends.c.build import build_library
from pockengine.backends.runtime import Trainer
from pockengine.backends import get_target
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import norm as N
from pockengine.ir.ops.fused import FusedOp
from pockengine.passes import run_pipeline
from pockengine.backends.lower_to_kernels import lower_program

SCHEMES = {"full": None, "frozen head": "default frozen; norm.*: full", "head only": "default frozen; lm_head.*: full"}
OPTIMIZERS = {"momentum": "optimizer=sgd lr=0.1 momentum=0.9", "plain": "optimizer=sgd lr=0.1",
              "momentum+wd": "optimizer=sgd lr=0.1 momentum=0.9 dampening=0.1 weight_decay=0.01",
              "adamw": "optimizer=adamw lr=0.01 weight_decay=0.1"}


def lm(batch=2, seq=5, dim=8, vocab=40, bias=False, seq_axis=True, gated=False, seed=0):
    """A Llama-like tail: a layer (tanh, or a SwiGLU MLP), an RMSNorm, the vocabulary head.
    With seq_axis the input is [batch, seq, dim] (a next_token head), else [batch, dim]."""
    n = M.Net((batch, seq, dim) if seq_axis else (batch, dim), seed)
    if gated:
        up, gate = (n.op(L.LinearOp.build(n.x, n.param(f"mlp.{p}.weight", (2 * dim, dim)))) for p in ("up", "gate"))
        h = n.op(E.MulOp.build(n.op(E.SiluOp.build(gate)), up))
        h = n.op(L.LinearOp.build(h, n.param("mlp.down.weight", (dim, 2 * dim))))
    else:
        h = n.op(E.TanhOp.build(n.op(L.LinearOp.build(n.x, n.param("fc.weight", (dim, dim))))))
    g = n.param("norm.weight", (dim,), "norm", 1 + 0.1 * n.rng.standard_normal(dim))
    z = n.op(L.LinearOp.build(n.op(N.RmsNormOp.build(h, g)), n.param("lm_head.weight", (vocab, dim))))
    if bias:
        z = n.op(E.AddOp.build(z, n.param("lm_head.bias", (vocab,), "bias", 0.1 * n.rng.standard_normal(vocab))))
    n.x = z
    return n.program()


def train_step(prog, optimizer, scheme, loss):
    p = prog.copy()
    spec = f"autodiff{{loss={loss} {optimizer}}}"
    if scheme:
        spec += f',sparse-backprop{{scheme="{scheme}"}},dead-gradient-elimination'
    run_pipeline(p, spec + ",operator-reordering")
    return p


def heads(prog):
    return [op for fn in prog.functions().values() for op in fn.body.block.ops
            if isinstance(op, FusedOp) and op.group_kind == "linear_cross_entropy"]


def batches(prog, steps, seed=0, ignore=True):
    fn = prog.functions()["forward"]
    shape = tuple(fn.function_type.inputs.data[0].get_shape())
    vocab = fn.function_type.outputs.data[0].get_shape()[-1]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(steps):
        y = rng.integers(0, vocab, shape[:-1]).astype(np.int64)
        if ignore and i % 3 == 1:
            y.reshape(-1)[0] = -100  # an ignored label
        out.append((rng.standard_normal(shape).astype(np.float32), y))
    return out


def fused(step, head_bytes=0):
    p = step.copy()
    run_pipeline(p, f"fusion{{head_bytes={head_bytes}}}")
    p.verify()
    return p


def assert_same(ref, opt, data, tol=1e-5):
    for x, y in data:
        np.testing.assert_allclose(opt.run("train_step", x, y), ref.run("train_step", x, y), rtol=tol, atol=tol)
    for k, v in ref.weights.items():
        np.testing.assert_allclose(opt.weights[k], v, rtol=tol, atol=tol, err_msg=k)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.integers(1, 3), seq=st.integers(2, 6), dim=st.integers(2, 6), vocab=st.integers(3, 30),
       bias=st.booleans(), seq_axis=st.booleans(), scheme=st.sampled_from(sorted(SCHEMES)),
       optimizer=st.sampled_from(sorted(OPTIMIZERS)), seed=st.integers(0, 100))
def test_fused_head_equals_unfused_under_the_interpreter(batch, seq, dim, vocab, bias, seq_axis, scheme, optimizer,
                                                         seed):
    prog = lm(batch, seq, dim, vocab, bias, seq_axis, seed=seed)
    ref = train_step(prog, OPTIMIZERS[optimizer], SCHEMES[scheme], "next_token" if seq_axis else "cross_entropy")
    opt = fused(ref)
    assert len(heads(opt)) == 1
    assert_same(ref, opt, batches(prog, 2, seed))
    x = batches(prog, 1, seed)[0][0]
    np.testing.assert_allclose(opt.run("forward", x), ref.run("forward", x), rtol=1e-6)


def test_small_heads_are_left_alone():
    step = train_step(lm(), OPTIMIZERS["momentum"], None, "next_token")
    assert not heads(fused(step, head_bytes=1 << 20))
    assert not heads(fused(step, head_bytes=-1))
    assert heads(fused(step, head_bytes=2 * 5 * 40 * 4))


def compiled(prog, rows, vocab_block, monkeypatch):
    monkeypatch.setattr(head_lowering, "CHUNK_BYTES", rows * 4 * prog.functions()["forward"].function_type.outputs
                        .data[0].get_shape()[-1])
    monkeypatch.setattr(head_lowering, "VOCAB_BLOCK", vocab_block)
    kp = lower_program(prog)
    return Trainer(prog.copy(), kp, build_library(kp, get_target("c")))


def assert_trains_like_interpreter(ref, trainer, data, tol=1e-4):
    for i, (x, y) in enumerate(data):
        got, want = trainer.step(x, y), float(ref.run("train_step", x, y))
        assert got == pytest.approx(want, rel=tol, abs=tol), f"loss of step {i}"
    params = trainer.parameters()
    for name, want in ref.weights.items():
        np.testing.assert_allclose(params[name], want, rtol=tol, atol=tol, err_msg=name)


CASES = [(bias, scheme, opt) for bias in (False, True)
         for scheme, opt in [("full", "momentum"), ("full", "plain"), ("frozen head", "momentum"),
                             ("head only", "momentum"), ("head only", "plain")]]


@pytest.mark.parametrize("bias,scheme,optimizer", CASES + [(True, "full", "momentum+wd"), (False, "full", "adamw")])
def test_compiled_head_trains_like_the_interpreter(bias, scheme, optimizer, monkeypatch):
    """20 steps of a Llama-like head (2×7 rows, vocabulary 45): chunks of 3 rows and GEMM
    blocks of 16 vocabulary rows, neither dividing its count."""
    prog = lm(batch=2, seq=7, dim=8, vocab=45, bias=bias, gated=True)
    ref = train_step(prog, OPTIMIZERS[optimizer], SCHEMES[scheme], "next_token")
    opt = fused(ref)
    assert len(heads(opt)) == 1
    trainer = compiled(opt, 3, 16, monkeypatch)
    assert any(getattr(s, "op", "") == "linear_cross_entropy" for s in trainer.kernels.functions["train_step"].steps)
    assert_trains_like_interpreter(ref, trainer, batches(prog, 20))
    x = batches(prog, 1, seed=9)[0][0]
    np.testing.assert_allclose(trainer.forward(x), ref.run("forward", x), rtol=1e-4, atol=1e-4)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 9), vocab_block=st.integers(1, 40), vocab=st.integers(3, 40), seq_axis=st.booleans(),
       bias=st.booleans())
def test_compiled_head_any_chunking(rows, vocab_block, vocab, seq_axis, bias):
    prog = lm(batch=3, seq=3, dim=5, vocab=vocab, bias=bias, seq_axis=seq_axis)
    ref = train_step(prog, OPTIMIZERS["momentum"], None, "next_token" if seq_axis else "cross_entropy")
    with pytest.MonkeyPatch.context() as mp:
        trainer = compiled(fused(ref), rows, vocab_block, mp)
    assert_trains_like_interpreter(ref, trainer, batches(prog, 3))


def test_no_buffer_holds_the_logits(monkeypatch):
    """Next-token loss over [4, 32, 1024] logits (512 KiB) in chunks of 16 rows: no arena
    storage comes near the logits' size, and the arena shrinks by at least half of them."""
    prog = lm(batch=4, seq=32, dim=16, vocab=1024)
    step = train_step(prog, OPTIMIZERS["momentum"], SCHEMES["full"], "next_token")
    monkeypatch.setattr(head_lowering, "CHUNK_BYTES", 16 * 1024 * 4)
    kp_plain, kp_head = lower_program(fused(step, head_bytes=-1)), lower_program(fused(step))
    logits = 4 * 32 * 1024 * 4
    arena = [s.nbytes for s in kp_head.functions["train_step"].storages() if s.region == "arena"]
    assert max(arena) < logits // 2
    assert kp_head.arena_bytes <= kp_plain.arena_bytes - logits // 2


def test_recompute_in_backward_frees_the_gate():
    """silu(gate) is read by the backward of the gated product; gate and up are kept anyway,
    so silu(gate) is recomputed there and its buffer dies in the forward."""
    prog = lm(batch=4, seq=64, dim=64, vocab=64, gated=True)
    step = train_step(prog, OPTIMIZERS["momentum"], None, "next_token")
    keep, again = step.copy(), step.copy()
    run_pipeline(keep, "fusion{recompute=false}")
    run_pipeline(again, "fusion")
    assert_same(keep, again, batches(prog, 2))
    kept = lower_program(keep).memory["functions"]["train_step"]["lower_bound"]
    recomputed = lower_program(again).memory["functions"]["train_step"]["lower_bound"]
    assert recomputed <= kept - 4 * 64 * 128 * 4  # one [4, 64, 128] buffer less


@pytest.mark.slow
def test_hf_llama_head_trains_like_the_interpreter(monkeypatch):
    """The tiny HF Llama as the frontend exports it (next_token: logits[:, :-1], labels
    shifted, the slice's backward a pad) with W4's kind of scheme (lm_head, the last MLP and
    the norms trained), its head fused and run in chunks of 5 rows."""
    from test_models import SCHEMES as MODEL_SCHEMES
    from test_models import assert_losses_match, model_inputs

    prog, inputs, labels, loss = model_inputs("llama_tiny")
    run_pipeline(prog, f"autodiff{{loss={loss} {OPTIMIZERS['momentum']}}},"
                       f'sparse-backprop{{scheme="{MODEL_SCHEMES["llama_tiny"]}"}},dead-gradient-elimination')
    opt = prog.copy()
    run_pipeline(opt, "operator-reordering,fusion{head_bytes=0}")
    assert len(heads(opt)) == 1
    trainer = compiled(opt, 5, 96, monkeypatch)
    assert_losses_match(trainer, prog, inputs, labels)
    params = trainer.parameters()
    for k, v in prog.weights.items():
        np.testing.assert_allclose(params[k], v, rtol=1e-4, atol=1e-4, err_msg=k)
