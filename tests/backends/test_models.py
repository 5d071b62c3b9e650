"""Real architectures through the whole pipeline (torch import → autodiff → [sparse-backprop →
DGE] → operator-reordering → fusion → C): 20 compiled training steps equal the interpreter's
within 1e-4, for a MobileNetV2, a ResNet-18, a BERT encoder and the tiny HF Llama, with full
backprop and with a sparse scheme."""

import sys
from pathlib import Path

import numpy as np
import pytest
from pockengine.backends.c.build import build_library
from pockengine.backends.runtime import Trainer
from pockengine.backends import get_target
from pockengine.passes import run_pipeline
from pockengine.backends.lower_to_kernels import lower_program

sys.path.insert(0, str(Path(__file__).parent.parent / "frontends"))
torch = pytest.importorskip("torch")

SGD = "optimizer=sgd lr=0.01 momentum=0.9"
# the sparse schemes of the benchmark, scaled to these small models
SCHEMES = {
    "mobilenet_v2": "default frozen; last 26 layers: bias; features.16.conv.0: full; features.17.conv.0: ratio 1/4;"
                    " classifier.*: full",
    "resnet18": "default frozen; layer3.*: bias; layer4.*: bias; layer4.1.conv1: full; layer4.1.conv2: full; fc.*: full",
    "bert_tiny": "default frozen; bert.encoder.layer.1.*: bias; bert.encoder.layer.1.intermediate.*: full;"
                 " bert.encoder.layer.1.output.dense.*: full; bert.pooler.*: full; classifier.*: full",
    "llama_tiny": "default frozen; model.layers.1.*norm*: full; model.norm.*: full; model.layers.1.mlp.*: full;"
                  " lm_head.*: full",
}
SIZES = {"mobilenet_v2": {"batch": 2, "size": 32}, "resnet18": {"batch": 1, "size": 32},
         "bert_tiny": {"batch": 2, "seq": 16}, "llama_tiny": {"batch": 2, "seq": 16}}


def model_inputs(name):
    import models as MM
    from pockengine.frontends import from_torch

    module, args = getattr(MM, name)(**SIZES[name])
    prog = from_torch(module, args)
    inputs = [a.numpy() for a in args]
    rng = np.random.default_rng(0)
    if name == "llama_tiny":
        labels = [rng.integers(0, 1000, inputs[0].shape) for _ in range(3)]
        return prog, inputs, labels, "next_token"
    classes = 3 if name == "bert_tiny" else 1000
    return prog, inputs, [rng.integers(0, classes, inputs[0].shape[0]) for _ in range(3)], "cross_entropy"


def assert_losses_match(trainer, prog, inputs, labels, steps=20):
    """The compiled step's loss equals the interpreter's @train_step for `steps` steps,
    cycling through the label batches (both programs keep training as they go)."""
    for step in range(steps):
        y = labels[step % len(labels)]
        got, want = trainer.step(*inputs, y), float(prog.run("train_step", *inputs, y))
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5), f"step {step}"


def assert_close_but_for_kinks(got, want, name):
    """Within 1e-4, except that a ReLU whose input is within rounding of 0 may fall on the
    other side in another summation order: the gradient element behind it then differs (in
    ResNet-18's full step, 3 of 147,456 momentum elements after 20 steps). At most 1 in 10^4
    elements may do so; a systematic difference would touch far more."""
    bad = ~np.isclose(got, want, rtol=1e-4, atol=1e-4)
    assert bad.sum() <= max(1, bad.size // 10_000), f"{name}: {bad.sum()} of {bad.size} elements differ"


@pytest.mark.slow
@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize("name", list(SIZES))
def test_model_trains_like_interpreter(name, sparse):
    prog, inputs, labels, loss = model_inputs(name)
    spec = f"autodiff{{loss={loss} {SGD}}}"
    if sparse:
        spec += f',sparse-backprop{{scheme="{SCHEMES[name]}"}},dead-gradient-elimination'
    run_pipeline(prog, spec)
    opt = prog.copy()
    run_pipeline(opt, "operator-reordering,fusion")
    kp = lower_program(opt)
    trainer = Trainer(opt.copy(), kp, build_library(kp, get_target("c")))
    assert_losses_match(trainer, prog, inputs, labels)
    params = trainer.parameters()
    for k, v in prog.weights.items():
        assert_close_but_for_kinks(params[k], v, k)
    mem = trainer.memory
    assert mem["arena"] >= mem["lower_bound"]
