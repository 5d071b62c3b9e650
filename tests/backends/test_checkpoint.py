"""Checkpoints: `Trainer.save` writes the model's weights under the PyTorch module's own
names (state_dict, buffers included) and the optimizer state beside them; the weights load
back into the original torch module with strict=True and equal what torch.optim trains;
`Trainer.load` and `pockengine train --resume` continue exactly where training stopped."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from pockengine import compile, from_torch
from pockengine.backends.runtime import Trainer
from safetensors.numpy import load_file


def model_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3)).eval()
    with torch.no_grad():  # non-trivial running statistics
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
    rng = np.random.default_rng(seed)
    batches = [(rng.standard_normal((4, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, 4)) for _ in range(5)]
    return model, batches


def torch_trained(model, batches, lr, momentum):
    """The same steps in PyTorch: eval-mode BatchNorm (frozen statistics), SGD with momentum."""
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum)
    for x, y in batches:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    return m, opt


def test_saved_weights_load_into_the_torch_module_strictly_and_match_torch_training(tmp_path):
    model, batches = model_and_data()
    trainer = compile(from_torch(model, (torch.from_numpy(batches[0][0]),)), loss="cross_entropy",
                      optimizer="sgd", lr=0.1, momentum=0.9)
    for x, y in batches[:3]:
        trainer.step(x, y)
    trainer.save(tmp_path / "ckpt")
    weights = load_file(str(tmp_path / "ckpt" / "weights.safetensors"))
    assert set(weights) == set(model.state_dict())  # the module's names, buffers included, nothing else
    fresh = copy.deepcopy(model)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    want, opt = torch_trained(model, batches[:3], 0.1, 0.9)
    for name, value in want.state_dict().items():
        np.testing.assert_allclose(fresh.state_dict()[name].numpy(), value.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    state = load_file(str(tmp_path / "ckpt" / "optimizer.safetensors"))
    for name, p in want.named_parameters():  # the momentum buffers are torch's too
        np.testing.assert_allclose(state[f"{name}.momentum"], opt.state[p]["momentum_buffer"].numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_trainer_load_resumes_exactly(tmp_path, optimizer):
    model, batches = model_and_data(1)
    hyper = {"momentum": 0.9} if optimizer == "sgd" else {"weight_decay": 0.01}
    trainer = compile(from_torch(model, (torch.from_numpy(batches[0][0]),)), loss="cross_entropy",
                      optimizer=optimizer, lr=0.05, **hyper)
    for x, y in batches[:2]:
        trainer.step(x, y)
    trainer.save(tmp_path / "ckpt")
    resumed = Trainer.load(tmp_path / "ckpt")
    for x, y in batches[2:]:  # the momentum / Adam moments and the step count came back too
        assert resumed.step(x, y) == trainer.step(x, y)
    for name, value in trainer.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name], value, err_msg=name)


def test_train_resume_from_the_cli(tmp_path):
    """`pockengine train -o` then `--resume`: 2 + 2 steps of the C runner end where 4 steps of
    the in-process Trainer end (the same program; batches cycle the same way)."""
    from pockengine.tools.driver import main

    model, batches = model_and_data(2)
    prog = from_torch(model, (torch.from_numpy(batches[0][0]),))
    prog.save(tmp_path / "model")
    assert main(["compile", str(tmp_path / "model"), "--lr", "0.1", "--momentum", "0.9", "-o", str(tmp_path / "p")]) == 0
    np.savez(tmp_path / "d.npz", x=np.concatenate([b[0] for b in batches[:2]]), y=np.concatenate([b[1] for b in batches[:2]]))
    train = ["train", str(tmp_path / "p"), "--data", str(tmp_path / "d.npz"), "--steps", "2"]
    assert main([*train, "-o", str(tmp_path / "two")]) == 0
    assert main([*train, "--resume", str(tmp_path / "two"), "-o", str(tmp_path / "two+two")]) == 0
    trainer = compile(prog, loss="cross_entropy", optimizer="sgd", lr=0.1, momentum=0.9)
    for x, y in batches[:2] * 2:
        trainer.step(x, y)
    resumed = load_file(str(tmp_path / "two+two" / "weights.safetensors"))
    assert set(resumed) == set(model.state_dict())
    for name, value in trainer.parameters().items():
        if name in resumed:
            np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    state = load_file(str(tmp_path / "two+two" / "optimizer.safetensors"))
    assert set(state) - {"optimizer.step"} == {f"{n}.momentum" for n, _ in model.named_parameters()}
    layout = json.loads((tmp_path / "p" / "layout.json").read_text())
    assert layout["labels"]["train_step"] == {"1": {"classes": 3, "ignore_index": -100}}
