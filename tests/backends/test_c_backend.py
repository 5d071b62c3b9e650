"""The compiled C training step against the numpy interpreter (the oracle): 20 steps of the
same batches give the same losses and parameters within 1e-4, full and sparse schemes, SGD
with momentum and AdamW, with and without operator-reordering and fusion."""

import numpy as np
import programs as P
import pytest
from pockengine.backends.c.build import build_library
from pockengine.backends.runtime import Trainer
from pockengine.pipeline import compile
from pockengine.backends import get_target
from pockengine.passes import run_pipeline
from pockengine.backends.lower_to_kernels import LoweringError, lower_program

STEPS = 20


def assert_trains_like_interpreter(prog, spec, steps=STEPS, passes="operator-reordering,fusion", tol=1e-4):
    ref = P.trained(prog, spec)
    opt = ref.copy()
    if passes:
        run_pipeline(opt, passes)
    kp = lower_program(opt)
    trainer = Trainer(opt.copy(), kp, build_library(kp, get_target("c")))
    for i, (x, y) in enumerate(P.batches(prog, steps)):
        got, want = trainer.step(x, y), float(ref.run("train_step", x, y))
        assert got == pytest.approx(want, rel=tol, abs=tol), f"loss of step {i}"
    params = trainer.parameters()
    for name, want in ref.weights.items():
        np.testing.assert_allclose(params[name], want, rtol=tol, atol=tol, err_msg=name)
    x = P.batches(prog, 1, seed=9)[0][0]
    np.testing.assert_allclose(trainer.forward(x), ref.run("forward", x), rtol=tol, atol=tol)
    return trainer


@pytest.mark.parametrize("spec", [P.SGD, P.ADAMW, "autodiff{optimizer=sgd lr=0.1 weight_decay=0.01}",
                                  "autodiff{optimizer=sgd lr=0.05 momentum=0.9 nesterov=true weight_decay=0.001}"],
                         ids=["sgd-momentum", "adamw", "sgd", "nesterov"])
def test_mlp_optimizers(spec):
    assert_trains_like_interpreter(P.mlp(), spec)


@pytest.mark.parametrize("passes", ["", "operator-reordering,fusion"], ids=["plain", "optimized"])
def test_cnn_full(passes):
    assert_trains_like_interpreter(P.cnn(), P.SGD, passes=passes)


def test_cnn_sparse_scheme():
    t = assert_trains_like_interpreter(P.cnn(), f'{P.SGD},sparse-backprop{{scheme="{P.CNN_SCHEME}"}},'
                                                 "dead-gradient-elimination")
    assert t.memory["optimizer_state"] < assert_memory_of(P.cnn(), P.SGD)["optimizer_state"]


def test_mlp_sparse_scheme_adam():
    assert_trains_like_interpreter(P.mlp(), f'{P.ADAMW},sparse-backprop{{scheme="{P.MLP_SCHEME}"}},'
                                            "dead-gradient-elimination")


def test_attention_block():
    assert_trains_like_interpreter(P.attention(), P.SGD)


def assert_memory_of(prog, spec):
    kp = lower_program(P.trained(prog, spec))
    from pockengine.backends.memory_plan import memory_summary

    return memory_summary(kp)


def test_compile_api_runs_autodiff_and_saves(tmp_path):
    prog = P.mlp()
    trainer = compile(prog, loss="cross_entropy", optimizer="sgd", lr=0.05, momentum=0.9)
    ref = P.trained(prog, P.SGD)
    x, y = P.batches(prog, 1)[0]
    assert trainer.step(x, y) == pytest.approx(float(ref.run("train_step", x, y)), rel=1e-5)
    mem = trainer.memory
    assert {"weights", "optimizer_state", "saved_activations", "gradients", "workspace", "arena"} <= set(mem)
    assert mem["arena"] >= mem["lower_bound"] > 0
    trainer.save(tmp_path / "trained")
    from pockengine import Program

    back = Program.load(tmp_path / "trained")
    for k, v in trainer.parameters().items():
        np.testing.assert_array_equal(back.weights[k], v)
    # the saved program compiles again (it has a train_step) and continues from the same state
    again = compile(back)
    x2, y2 = P.batches(prog, 2)[1]
    assert again.step(x2, y2) == pytest.approx(trainer.step(x2, y2), rel=1e-6)


def test_compile_takes_a_scheme_object_or_its_text():
    from pockengine.pipeline import training_pipeline, training_program
    from pockengine.passes.scheme import Scheme

    prog, hyper = P.mlp(), {"loss": "cross_entropy", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}
    scheme = Scheme.parse(P.MLP_SCHEME)
    by_object, by_text = compile(prog, scheme=scheme, **hyper), compile(prog, scheme=P.MLP_SCHEME, **hyper)
    assert str(by_object.program.module) == str(by_text.program.module)
    assert by_object.memory == by_text.memory
    ref = P.trained(prog, f'{P.SGD},sparse-backprop{{scheme="{P.MLP_SCHEME}"}},dead-gradient-elimination')
    for x, y in P.batches(prog, 3):
        want = float(ref.run("train_step", x, y))
        assert by_object.step(x, y) == pytest.approx(want, rel=1e-5)
        assert by_text.step(x, y) == pytest.approx(want, rel=1e-5)
    # the pipeline string of a Scheme object carries its text (here one with a quoted name,
    # which goes through a scheme file), not the dataclass repr
    quoted = Scheme.parse('default frozen; "fc3.bias": full; fc2: ratio 1/3')
    spec = training_pipeline("cross_entropy", "sgd", quoted, lr=0.05, momentum=0.9)
    assert str(run_pipeline(prog.copy(), spec).module) == \
        str(training_program(prog, "cross_entropy", "sgd", quoted, lr=0.05, momentum=0.9).module)


def test_library_is_cached_by_content():
    prog = P.trained(P.mlp(), P.SGD)
    kp = lower_program(prog)
    a = build_library(kp, get_target("c"))
    b = build_library(lower_program(prog), get_target("c"))
    assert a == b


def test_wrong_input_shape_is_a_clear_error():
    trainer = compile(P.mlp(), loss="cross_entropy", optimizer="sgd")
    with pytest.raises(ValueError, match="compiled for"):
        trainer.step(np.zeros((3, 6), np.float32), np.zeros(3, np.int64))


def test_unsupported_op_names_the_op():
    from pockengine import Program

    prog = Program.parse("""builtin.module {
      func.func @forward(%x : tensor<4xf64>) -> tensor<4xf64> {
        %y = train.exp %x : tensor<4xf64>
        func.return %y : tensor<4xf64>
      }
    }""")
    with pytest.raises(LoweringError, match=r"@forward: argument 0: .*f32.*f64"):
        lower_program(prog)
