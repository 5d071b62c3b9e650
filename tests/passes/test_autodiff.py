"""The `autodiff` pass: the derived training step against PyTorch (autograd + torch.optim).

Parameters after 3 steps must equal PyTorch's within rtol 1e-4 (float32), for SGD with
momentum (plain, dampened, Nesterov, weight decay), Adam and AdamW, on an MLP written in IR
and on small CNNs imported with `from_torch`. BatchNorm runs with frozen statistics (eval
mode), the usual fine-tuning setting.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pockengine import Program
from pockengine.ir.ops.state import ParamOp
from pockengine.passes import PipelineError, run_pipeline
from torch import nn

ROOT = Path(__file__).parents[2]
STEPS = 3

OPTIMIZERS = {
    "sgd-momentum": ("optimizer=sgd lr=0.1 momentum=0.9",
                     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    "sgd-nesterov-wd": ("optimizer=sgd lr=0.05 momentum=0.8 nesterov=true weight_decay=0.01",
                        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    "sgd-dampening": ("optimizer=sgd lr=0.1 momentum=0.5 dampening=0.3",
                      lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, dampening=0.3)),
    "sgd-plain": ("optimizer=sgd lr=0.2 weight_decay=0.1",
                  lambda ps: torch.optim.SGD(ps, lr=0.2, weight_decay=0.1)),
    "adam": ("optimizer=adam lr=0.01 beta1=0.8 weight_decay=0.01",
             lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.999), weight_decay=0.01)),
    "adamw": ("optimizer=adamw lr=0.01 weight_decay=0.1 eps=1e-6",
              lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, eps=1e-6)),
}


def torch_steps(model: nn.Module, batches, make_opt, loss_fn=F.cross_entropy) -> dict[str, np.ndarray]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_opt(params)
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(*x), y).backward()
        opt.step()
    return {k: v.detach().numpy() for k, v in model.named_parameters()}


def pock_steps(program: Program, batches, spec: str) -> list[float]:
    run_pipeline(program, f"autodiff{{{spec}}}")
    program.verify()
    return [float(program.run("train_step", *[a.numpy() for a in x], y.numpy())) for x, y in batches]


def assert_same_params(program: Program, expected: dict[str, np.ndarray]) -> None:
    trained = program.trainable()
    assert trained
    for name in trained:
        np.testing.assert_allclose(program.weights[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)


def batches_for(x_shape, classes, seed=0, n=STEPS, label_shape=None):
    g = torch.Generator().manual_seed(seed)
    return [((torch.randn(x_shape, generator=g),),
             torch.randint(0, classes, label_shape or x_shape[:1], generator=g)) for _ in range(n)]


# --- the MLP of examples/mlp.mlir, against the same network in torch.nn.functional ------------


class MlpRef(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.p = nn.ParameterDict({k.replace(".", "_"): nn.Parameter(torch.tensor(v)) for k, v in w.items()})

    @staticmethod
    def names(params):
        return {k.removeprefix("p.").replace("_", "."): v for k, v in params.items()}

    def forward(self, x):
        p = self.p
        return F.linear(F.relu(F.linear(x, p["fc1_weight"], p["fc1_bias"])), p["fc2_weight"], p["fc2_bias"])


def mlp_program(seed=0) -> Program:
    prog = Program.parse((ROOT / "examples" / "mlp.mlir").read_text())
    rng = np.random.default_rng(seed)
    for p in prog.params():
        shape = p.type.get_shape()
        prog.weights[p.sym_name.data] = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    return prog


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_mlp_matches_torch(opt):
    spec, make_opt = OPTIMIZERS[opt]
    prog = mlp_program()
    ref = MlpRef(prog.weights)
    batches = batches_for((8, 16), 4)
    pock_steps(prog, batches, f"loss=cross_entropy {spec}")
    assert_same_params(prog, MlpRef.names(torch_steps(ref, batches, make_opt)))


def test_mse_loss_matches_torch():
    prog = mlp_program(1)
    ref = MlpRef(prog.weights)
    g = torch.Generator().manual_seed(3)
    batches = [((torch.randn(8, 16, generator=g),), torch.randn(8, 4, generator=g)) for _ in range(STEPS)]
    spec, make_opt = OPTIMIZERS["sgd-momentum"]
    losses = pock_steps(prog, batches, f"loss=mse {spec}")
    assert_same_params(prog, MlpRef.names(torch_steps(ref, batches, make_opt, F.mse_loss)))
    assert losses[-1] < losses[0]


# --- small CNNs through the torch frontend ----------------------------------------------------


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 1), nn.MaxPool2d(2), nn.Conv2d(12, 12, 3, 1, 1, groups=3), nn.GELU(),
        nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))


def _eval_with_stats(model: nn.Module, seed=0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial frozen statistics and affine parameters
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(1 + 0.2 * torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return model.eval()


@lru_cache(maxsize=1)
def imported_cnn():
    from pockengine.frontends import from_torch

    torch.manual_seed(0)
    model = _eval_with_stats(small_cnn())
    batches = batches_for((2, 3, 16, 16), 5)
    return model, batches, from_torch(model, batches[0][0])


@pytest.mark.parametrize("opt", ["sgd-momentum", "adamw"])
def test_cnn_matches_torch(opt):
    spec, make_opt = OPTIMIZERS[opt]
    model, batches, prog = imported_cnn()
    model, prog = copy.deepcopy(model), prog.copy()
    pock_steps(prog, batches, f"loss=cross_entropy {spec}")
    assert_same_params(prog, torch_steps(model, batches, make_opt))
    # frozen statistics stay as they were
    np.testing.assert_array_equal(prog.weights["1.running_var"], model.state_dict()["1.running_var"].numpy())


def test_batch_statistics_match_torch_train_mode():
    """batch_norm=batch: BatchNorm as in model.train() — batch statistics, running-stat updates."""
    from pockengine.frontends import from_torch

    torch.manual_seed(1)
    model = _eval_with_stats(nn.Sequential(
        nn.Conv2d(3, 6, 3, 1, 1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3, 2, 1, groups=3),
        nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(6 * 4 * 4, 3)))
    batches = batches_for((4, 3, 8, 8), 3)
    prog = from_torch(model, batches[0][0])
    spec, make_opt = OPTIMIZERS["sgd-momentum"]
    run_pipeline(prog, "autodiff{batch_norm=batch bn_momentum=0.1 " + spec + "}")
    for x, y in batches:
        prog.run("train_step", x[0].numpy(), y.numpy())
    model.train()
    want = torch_steps(model, batches, make_opt)
    assert_same_params(prog, want)
    for name, stat in model.state_dict().items():
        if "running" in name:
            np.testing.assert_allclose(prog.weights[name], stat.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    assert not np.allclose(prog.weights["1.running_var"], 1)  # the statistics did move


class TinyLM(nn.Module):
    """Embedding → LayerNorm → causal attention-free mixing → tied-free LM head."""

    def __init__(self, vocab=11, dim=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, ids):
        h = self.norm(self.emb(ids))
        h = h + F.silu(self.mix(h)).softmax(-1) * h
        return self.head(h)


def test_next_token_loss_matches_hf_causal_lm_loss():
    from pockengine.frontends import from_torch

    torch.manual_seed(0)
    model = TinyLM()
    g = torch.Generator().manual_seed(1)
    ids = [torch.randint(0, 11, (2, 6), generator=g) for _ in range(STEPS)]
    batches = [((i,), i) for i in ids]
    prog = from_torch(model, batches[0][0])
    spec, make_opt = OPTIMIZERS["adamw"]
    losses = pock_steps(prog, batches, f"loss=next_token {spec}")

    def hf_loss(logits, labels):  # transformers' ForCausalLMLoss: pad labels, shift left by one
        shifted = F.pad(labels, (0, 1), value=-100)[..., 1:]
        return F.cross_entropy(logits.flatten(0, 1).float(), shifted.flatten(), ignore_index=-100)

    with torch.no_grad():
        first = hf_loss(model(ids[0]), ids[0]).item()
    assert losses[0] == pytest.approx(first, rel=1e-5)
    assert_same_params(prog, torch_steps(model, batches, make_opt, hf_loss))


def test_the_docs_example_is_what_autodiff_prints():
    import re

    before, after = re.findall(r"```mlir\n(.*?)```", (ROOT / "docs" / "training-ir.md").read_text(), re.DOTALL)[:2]
    prog = Program.parse(before)
    run_pipeline(prog, "autodiff{loss=cross_entropy optimizer=sgd lr=0.1 momentum=0.9}")
    assert str(prog.module).strip() == after.strip()


# --- structure of the step ---------------------------------------------------------------------


def test_train_step_structure_and_state():
    prog = mlp_program()
    before = str(prog.functions()["forward"])
    run_pipeline(prog, "autodiff{loss=cross_entropy optimizer=adamw lr=0.001}")
    fns = prog.functions()
    assert str(fns["forward"]) == before  # forward stays the evaluation function
    step = fns["train_step"]
    assert [str(t) for t in step.function_type.inputs.data] == ["tensor<8x16xf32>", "tensor<8xi64>"]
    assert [str(t) for t in step.function_type.outputs.data] == ["tensor<f32>"]
    names = [op.name for op in step.body.block.ops]
    assert names.count("train.adam") == 4
    # updates in declaration order, each followed by the writes of the parameter and its moments
    sets = [op.param.root_reference.data for op in step.body.block.ops if op.name == "train.set"]
    assert sets == ["optimizer.step"] + [s for p in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
                                         for s in (p, f"{p}.exp_avg", f"{p}.exp_avg_sq")]
    state = [p for p in prog.params() if p.role.data == "optimizer_state"]
    assert all(not p.is_trainable for p in state) and len(state) == 9
    assert all(not prog.weights[p.sym_name.data].any() for p in state)  # zeros
    # no gradient of the input x: nothing on the path from x alone is differentiated
    assert not any(op.name == "train.matmul" and op.results[0].type == step.body.block.args[0].type
                   for op in step.body.block.ops)
    prog.run("train_step", np.zeros((8, 16), np.float32), np.zeros(8, np.int64))
    assert prog.weights["optimizer.step"] == 1


def test_frozen_and_unused_parameters_get_no_update():
    prog = mlp_program()
    prog.module.body.block.insert_op_before(
        ParamOp("unused", prog.param("fc1.bias").type), prog.param("fc1.weight"))
    prog.weights["unused"] = np.ones(32, np.float32)
    prog.param("fc2.weight").properties["trainable"] = ParamOp("x", prog.param("fc1.bias").type, "weight",
                                                               False).trainable
    before = {k: v.copy() for k, v in prog.weights.items()}
    run_pipeline(prog, "autodiff{optimizer=sgd momentum=0.9 lr=0.1}")
    text = str(prog.functions()["train_step"])
    assert "train.set @unused" not in text and "train.set @fc2.weight," not in text
    assert "linear_backward_weight %h" not in text  # no weight gradient for frozen fc2
    assert {p.sym_name.data for p in prog.params() if p.role.data == "optimizer_state"} == {
        "optimizer.step", "fc1.weight.momentum", "fc1.bias.momentum", "fc2.bias.momentum"}
    x, y = np.ones((8, 16), np.float32), np.zeros(8, np.int64)
    prog.run("train_step", x, y)
    assert (prog.weights["fc2.weight"] == before["fc2.weight"]).all()
    assert (prog.weights["unused"] == 1).all()
    assert not (prog.weights["fc1.weight"] == before["fc1.weight"]).all()


@pytest.mark.parametrize("spec, message", [
    ("autodiff{loss=hinge}", "loss must be one of cross_entropy, mse, next_token"),
    ("autodiff{optimizer=lion}", "optimizer must be one of sgd, adam, adamw"),
    ("autodiff{forward=main}", "no @main function"),
    ("autodiff{loss=next_token}", r"next_token needs logits \[B, T, V\], got 8x4"),
])
def test_bad_options_are_clear_errors(spec, message):
    from xdsl.utils.exceptions import PassFailedException

    with pytest.raises((PassFailedException, PipelineError), match=message):
        run_pipeline(mlp_program(), spec)


def test_running_twice_is_refused():
    from xdsl.utils.exceptions import PassFailedException

    prog = mlp_program()
    run_pipeline(prog, "autodiff")
    with pytest.raises(PassFailedException, match="already has @train_step"):
        run_pipeline(prog, "autodiff")


def test_missing_rule_names_the_op(monkeypatch):
    from pockengine.ir.ops.elementwise import ReluOp
    from pockengine.passes.vjp import RULES, rules
    from xdsl.utils.exceptions import PassFailedException

    rules()
    monkeypatch.delitem(RULES, ReluOp)
    with pytest.raises(PassFailedException, match=r"no gradient rule for train.relu \(op \d+ of @train_step\)"):
        run_pipeline(mlp_program(), "autodiff")
