"""The same fine-tuning in PyTorch eager: the reference the compiled trainers are measured against.

A scheme maps onto PyTorch the usual way: frozen parameters get `requires_grad=False`, a channel
ratio keeps the gradient of the first k channels only (a hook zeroes the rest, so SGD momentum
and Adam moments of those channels stay zero and the channels do not move).

PyTorch has no memory plan; the first step measures (`memory`) what a training step holds beyond weights
and inputs: the tensors autograd saves for backward (unique storages, parameters excluded), the
gradients and the optimizer state. It is a lower bound on the eager peak (the allocator and
transient buffers come on top), so the comparison favours PyTorch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch


def apply_scheme(module: torch.nn.Module, updates: dict | None) -> list[torch.nn.Parameter]:
    """Freeze or mask `module`'s parameters as `updates` (Scheme.resolve: name → Update) says;
    None trains everything. Returns the parameters that train."""
    named = dict(module.named_parameters())
    if updates is not None and (unknown := sorted(set(updates) - set(named))):
        raise KeyError(f"scheme names parameters the PyTorch model lacks: {unknown[:5]}")
    trained = []
    for name, p in named.items():
        u = None if updates is None else updates.get(name)
        mode = "full" if updates is None else (u.mode if u is not None else "frozen")
        p.requires_grad_(mode != "frozen")
        if mode == "frozen":
            continue
        trained.append(p)
        if mode == "ratio":
            mask = torch.zeros_like(p)
            mask.narrow(u.axis, 0, u.channels).fill_(1.0)
            p.register_hook(lambda g, mask=mask: g * mask)
    return trained


def make_optimizer(params, optimizer: str, hyper: dict) -> torch.optim.Optimizer:
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=hyper["lr"], momentum=hyper.get("momentum", 0.0),
                               weight_decay=hyper.get("weight_decay", 0.0))
    if optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=hyper["lr"], betas=(hyper.get("beta1", 0.9), hyper.get("beta2", 0.999)),
                   eps=hyper.get("eps", 1e-8), weight_decay=hyper.get("weight_decay", 0.0))
    raise ValueError(f"unknown optimizer {optimizer!r}")


@dataclass
class EagerTrainer:
    """`step(x, y) -> loss` in PyTorch eager, with the loss the compiled step uses."""

    module: torch.nn.Module
    loss: str
    optimizer: str
    hyper: dict
    updates: dict | None = None  # None: full backprop
    trained: list = field(init=False)

    def __post_init__(self):
        self.module.eval()  # frozen BatchNorm statistics, as in the compiled step
        self.trained = apply_scheme(self.module, self.updates)
        self.opt = make_optimizer(self.trained, self.optimizer, self.hyper)
        self.memory: dict[str, int] | None = None  # measured in the first step

    def loss_of(self, out, y):
        if self.loss == "next_token":
            return torch.nn.functional.cross_entropy(out[:, :-1].reshape(-1, out.shape[-1]), y[:, 1:].reshape(-1))
        if self.loss == "mse":
            return torch.nn.functional.mse_loss(out, y)
        return torch.nn.functional.cross_entropy(out, y)

    def step(self, x, y) -> float:
        """One training step; the first one also measures `self.memory`."""
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        self.opt.zero_grad(set_to_none=True)
        if self.memory is not None:
            loss = self.loss_of(self.module(x), y)
            loss.backward()
            self.opt.step()
            return loss.item()
        weights = {t.untyped_storage().data_ptr() for t in [*self.module.parameters(), *self.module.buffers()]}
        saved: dict[int, int] = {}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in weights:
                saved[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self.loss_of(self.module(x), y)
        loss.backward()
        grads = sum(p.grad.nbytes for p in self.trained if p.grad is not None)
        self.opt.step()
        state = sum(t.nbytes for s in self.opt.state.values() for t in s.values() if torch.is_tensor(t))
        act = sum(saved.values())
        self.memory = {"saved_activations": act, "gradients": grads, "optimizer_state": state,
                       "training_extra": act + grads + state}
        return loss.item()

    def forward(self, x) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.as_tensor(x)).numpy()


def timed_steps(step, batches, bar=None) -> tuple[list[float], list[float]]:
    """Run `step(x, y)` over batches; (losses, seconds per step)."""
    losses, times = [], []
    for x, y in batches:
        t = time.perf_counter()
        losses.append(step(x, y))
        times.append(time.perf_counter() - t)
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    return losses, times
