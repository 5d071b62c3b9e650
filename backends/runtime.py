"""Trainer: a compiled program driven through its target's Device.

    trainer = pockengine.compile(program, loss="cross_entropy", optimizer="sgd", lr=0.05,
                                 momentum=0.9, scheme="scheme.pock", target="c")
    loss = trainer.step(x, labels)        # one training step on the device; returns the loss
    logits = trainer.forward(x)           # the eval function
    trainer.parameters()                  # name → array (weights and optimizer state)
    trainer.save("trained/")              # a Program directory, written atomically
    trainer.memory                        # planned bytes by category

The Trainer owns no device memory: the parameter blob and the arena live in the Device
(backends/target.py) — this process's memory for the C targets, another process's, a
GPU's or an emulator's for others — and the Trainer copies inputs in and outputs and
parameters out through it. The recipe that makes one is pockengine/pipeline.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .kernel_ir import NUMPY, KernelProgram
from .project import blob_bytes, pack_params, param_views
from .target import BuildError, Device, cache_dir  # noqa: F401  (the runtime's API)


class Trainer:
    """A compiled program on a Device. `device` is an opened Device (Target.load/open) or,
    for the in-process C targets, the path of a built library."""

    def __init__(self, program, kp: KernelProgram, device: Device | Path, profiled: bool = False):
        if not isinstance(device, Device):  # a built libmodel.so of the host target
            from . import get_target

            device = get_target("c").open(kp, Path(device))
        self.program, self.kernels, self.device, self.profiled = program, kp, device, profiled
        self.library = getattr(device, "library", None)
        device.write_params(pack_params(kp, program.weights))

    # --- running ----------------------------------------------------------------------
    def call(self, function: str, *arrays) -> list[np.ndarray]:
        kf = self.kernels.functions.get(function)
        if kf is None:
            raise KeyError(f"no function @{function}; compiled: {', '.join(self.kernels.functions)}")
        if len(arrays) != len(kf.inputs):
            raise TypeError(f"@{function} takes {len(kf.inputs)} inputs, got {len(arrays)}")
        ins = []
        for i, (a, v) in enumerate(zip(arrays, kf.inputs)):
            a = np.asarray(a, dtype=NUMPY[v.dtype], order="C")
            if a.shape != v.shape:
                raise ValueError(f"@{function} input {i}: shape {a.shape}, the program was compiled for {v.shape}")
            ins.append(a)
        return self.device.run(function, ins)

    def step(self, *inputs) -> float:
        """One training step (forward, loss, backward, updates); returns the loss."""
        return float(self.call("train_step", *inputs)[0])

    def forward(self, *inputs):
        outs = self.call("forward", *inputs)
        return outs[0] if len(outs) == 1 else tuple(outs)

    # --- state ------------------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """Every parameter and state tensor, as copies."""
        self.device.sync()
        return {k: v.copy() for k, v in param_views(self.kernels, self.device.read_params()).items()}

    def load_parameters(self, weights: dict[str, np.ndarray]) -> None:
        self.device.write_params(pack_params(self.kernels, {**self.parameters(), **weights}))

    def save(self, directory) -> None:
        """The program with its current weights, as a Program directory (atomic)."""
        prog = self.program.copy()
        prog.weights = self.parameters()
        prog.save(directory)

    @property
    def memory(self) -> dict[str, int]:
        from .memory_plan import memory_summary

        fn = "train_step" if "train_step" in self.kernels.functions else next(iter(self.kernels.functions))
        return memory_summary(self.kernels, fn)

    def profile(self) -> list[tuple[str, int, str, float]]:
        """(function, step, what, milliseconds summed over calls) per step; needs a library
        built with profile=True."""
        if not self.profiled:
            raise RuntimeError("compile with profile=True to time the steps")
        ms = self.device.profile()
        out, k = [], 0
        for name, f in self.kernels.functions.items():
            for i, step in enumerate(f.steps):
                what = f"{step.name}" if hasattr(step, "op") else "map"
                out.append((name, i, f"{what}: {step.origin}", float(ms[k])))
                k += 1
        return out

    @property
    def blob_bytes(self) -> int:
        return blob_bytes(self.kernels)

    def close(self) -> None:
        self.device.close()
