"""The same fine-tuning in PyTorch eager: the reference the compiled trainers are measured against.

A scheme maps onto PyTorch the usual way: frozen parameters get `requires_grad=False`, a channel
ratio keeps the gradient of the first k channels only (a hook zeroes the rest, so SGD momentum
and Adam moments of those channels stay zero and the channels do not move).

PyTorch has no memory plan, so one step is measured instead (`memory`), on the same terms as
the compiled plan (all bytes beyond weights and inputs): the peak of the bytes that PyTorch's
CPU allocator holds for tensors allocated during the step (activations, saved tensors,
gradients, temporaries; from the profiler's memory events), plus the optimizer state. The
saved-for-backward tensors (unique storages, parameters excluded) and the gradients are also
reported on their own. Allocator slack and the Python heap are not counted.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch


class allocation_peak:
    """`with allocation_peak() as p: ...` → p.bytes: the peak of tensor bytes allocated inside
    the block and still live (the profiler's CPU memory events, replayed in order); p.at_peak:
    the blocks live at that moment."""

    def __enter__(self):
        from torch.profiler import ProfilerActivity, profile

        self.bytes = 0
        self.at_peak: dict[int, int] = {}  # address → bytes of the blocks live at the peak
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        # the profiler's C++ side logs to fd 2 ("profiler_start", allocator warnings): mute it
        sys.stderr.flush()
        self._stderr = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        self._prof.__enter__()
        return self

    def __exit__(self, *exc):
        import json
        import tempfile

        try:
            self._prof.__exit__(*exc)
        finally:
            os.dup2(self._stderr, 2)
            os.close(self._stderr)
        fd, path = tempfile.mkstemp(suffix=".json")  # atomic: scratch, not an output
        os.close(fd)
        try:
            self._prof.export_chrome_trace(path)
            with open(path) as f:
                events = [e for e in json.load(f)["traceEvents"] if e.get("name") == "[memory]"]
        finally:
            os.unlink(path)
        live, now = {}, 0
        for e in sorted(events, key=lambda e: e["ts"]):
            addr, size = e["args"]["Addr"], e["args"]["Bytes"]
            if size > 0:
                live[addr] = size
                now += size
            elif addr in live:  # frees of blocks from before the block do not count
                now -= live.pop(addr)
            if now > self.bytes:
                self.bytes, self.at_peak = now, dict(live)
        return False


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
        self.memory: dict[str, int] | None = None  # measured in the second step
        self.calls = 0

    def loss_of(self, out, y):
        if self.loss == "next_token":
            return torch.nn.functional.cross_entropy(out[:, :-1].reshape(-1, out.shape[-1]), y[:, 1:].reshape(-1))
        if self.loss == "mse":
            return torch.nn.functional.mse_loss(out, y)
        return torch.nn.functional.cross_entropy(out, y)

    def step(self, x, y) -> float:
        """One training step; the second one (state and caches exist by then) also measures
        `self.memory`."""
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        self.calls += 1
        if self.calls != 2:
            return self._step(x, y).item()
        params = {t.untyped_storage().data_ptr() for t in [*self.module.parameters(), *self.module.buffers()]}
        saved: dict[int, int] = {}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in params:
                saved[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), allocation_peak() as peak:
            loss = self._step(x, y)
        grads = {p.grad.untyped_storage().data_ptr() for p in self.trained if p.grad is not None}
        state = sum(t.nbytes for s in self.opt.state.values() for t in s.values() if torch.is_tensor(t))
        split = {"saved_activations": 0, "gradients": 0, "workspace": 0}
        for addr, size in peak.at_peak.items():  # what the live blocks at the peak were
            split["saved_activations" if addr in saved else "gradients" if addr in grads else "workspace"] += size
        self.memory = {**split, "optimizer_state": state, "training_extra": peak.bytes + state,
                       "saved_for_backward": sum(saved.values())}
        return loss.item()

    def _step(self, x, y):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_of(self.module(x), y)
        loss.backward()
        self.opt.step()
        return loss

    def forward(self, x) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.as_tensor(x)).numpy()
