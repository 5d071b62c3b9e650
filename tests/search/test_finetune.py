"""Fine-tuning through the compiled backend equals PyTorch training with the same scheme, and
the costs a search reads from the Trainer equal what the compiler plans without building."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "passes"))
import sparse_models as M
from pockengine.search import Recipe
from pockengine.search.finetune import batches, finetune, plan_scheme, training_step


def torch_finetune(program, forward, train, recipe, seed, trained: dict[str, tuple[int, int] | None]):
    """PyTorch reference: `trained` maps a parameter to None (all of it) or (axis, k): only the
    first k channels on `axis` receive gradient. Everything else has requires_grad=False."""
    import torch

    w = {k: torch.tensor(v) for k, v in program.weights.items()}
    params = []
    for name, cut in trained.items():
        w[name].requires_grad_(True)
        params.append(w[name])
        if cut is not None:
            axis, k = cut
            mask = torch.zeros_like(w[name])
            mask.narrow(axis, 0, k).fill_(1)
            w[name].register_hook(lambda g, m=mask: g * m)
    opt = torch.optim.Adam(params, lr=recipe.lr)
    x, y = train
    batch = program.functions()["forward"].body.block.args[0].type.get_shape()[0]
    for idx in batches(len(x), batch, recipe.steps, seed):
        loss = torch.nn.functional.cross_entropy(forward(w, torch.tensor(x[idx])), torch.tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in w.items()}


def data(shape, classes, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = (np.abs(x.reshape(n, -1)[:, :classes]).argmax(1)).astype(np.int64)  # learnable
    return x, y


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_compiled_finetuning_equals_pytorch_with_the_same_scheme(model, tmp_path):
    import torch

    if model == "mlp":
        program, forward, shape, classes = M.mlp(batch=8), M.torch_mlp, (6,), 3
        scheme = "default frozen\nfc1.bias: full\nfc2: ratio 1/2\nfc3: full\n"
        trained = {"fc1.bias": None, "fc2.weight": (1, 5), "fc3.weight": None, "fc3.bias": None}
    else:
        program, forward, shape, classes = M.cnn(batch=4), M.torch_cnn, (3, 8, 8), 5
        scheme = "default frozen\nlayers 2..3: bias\nlayer 1: ratio 1/4\nclassifier: full\n"
        trained = {"features.2.bias": None, "features.3.1.bias": None, "features.1.0.weight": (0, 2),
                   "classifier.weight": None, "classifier.bias": None}
    train, test = data(shape, classes, 40, 0), data(shape, classes, 30, 1)
    recipe = Recipe(steps=12, optimizer="adam", lr=0.01)
    run = finetune(program, scheme, train, [test, train], recipe, seed=3)
    expect = torch_finetune(program, forward, train, recipe, 3, trained)

    step = training_step(program, scheme, recipe)
    from pockengine.pipeline import compile as compile_program

    trainer = compile_program(step)
    for idx in batches(len(train[0]), 4 if model == "cnn" else 8, recipe.steps, 3):
        trainer.step(train[0][idx], train[1][idx])
    got = trainer.parameters()
    for name, value in expect.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    changed = [n for n in program.weights if not np.array_equal(program.weights[n], expect[n])]
    assert sorted(changed) == sorted(trained)  # the reference trained exactly the scheme's tensors
    with torch.no_grad():
        w = {k: torch.tensor(v) for k, v in expect.items()}
        for (x, y), acc in zip([test, train], run.accuracies):
            ref = float((forward(w, torch.tensor(x)).argmax(1).numpy() == y).mean())
            assert acc == pytest.approx(ref, abs=1.5 / len(y))  # at most one near-tie flips


def test_costs_from_the_trainer_equal_the_plan_without_building():
    program = M.cnn(batch=4)
    recipe = Recipe(steps=1)
    train = data((3, 8, 8), 5, 8, 0)
    for scheme in (None, "default frozen\nlayer 3: bias\nclassifier: full\n",
                   "default frozen\nlayer 2: ratio 1/2\nclassifier: full\n"):
        run = finetune(program, scheme, train, [train], recipe)
        planned = plan_scheme(program, scheme, recipe)
        assert (run.memory, run.backward_flops) == (planned.memory, planned.backward_flops)
        assert run.memory == planned.breakdown["arena"] + planned.breakdown["optimizer_state"]
    full, head = plan_scheme(program, None, recipe), plan_scheme(program, "classifier: full", recipe)
    assert head.memory < full.memory and head.backward_flops < full.backward_flops


def test_batches_cycle_through_seeded_permutations():
    got = list(batches(10, 3, 7, seed=5))
    assert all(len(b) == 3 for b in got)
    for epoch in (got[0:3], got[3:6]):
        flat = np.concatenate(epoch)
        assert len(set(flat)) == 9  # no repeats within an epoch; the ragged tail is dropped
    assert [b.tolist() for b in got] == [b.tolist() for b in batches(10, 3, 7, seed=5)]
    assert not all(np.array_equal(a, b) for a, b in zip(got, batches(10, 3, 7, seed=6)))
    with pytest.raises(ValueError, match="fewer than the batch size"):
        list(batches(2, 3, 1, seed=0))
