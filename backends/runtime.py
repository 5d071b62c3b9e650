"""Trainer: a compiled program driven through its target's Device.

    trainer = pockengine.compile(program, loss="cross_entropy", optimizer="sgd", lr=0.05,
                                 momentum=0.9, scheme="scheme.pock", target="c")
    loss = trainer.step(x, labels)        # one training step on the device; returns the loss
    logits = trainer.forward(x)           # the eval function
    trainer.parameters()                  # name → array (weights and optimizer state)
    trainer.save("trained/")              # a checkpoint: model.mlir, weights.safetensors (the
                                          # model's state_dict names), optimizer.safetensors
    trainer = Trainer.load("trained/")    # ... and back, to resume training
    trainer.memory                        # planned bytes by category

Inputs are checked before they reach the device (backends/inputs.py): the compiled shape (the
batch size is fixed), integer labels within the class count. A step whose loss is NaN or
inf warns (NonFiniteLossWarning); `trainer.on_nonfinite = "raise"` makes it an error
(NonFiniteLossError), "ignore" silences it — as `torch.autograd.detect_anomaly` or a
GradScaler's skipped steps tell a PyTorch user.

The Trainer owns no device memory: the parameter blob and the arena live in the Device
(backends/target.py) — this process's memory for the C targets, another process's, a
GPU's or an emulator's for others — and the Trainer copies inputs in and outputs and
parameters out through it. The recipe that makes one is pockengine/pipeline.py.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from .inputs import InputError, check_input, label_inputs
from .kernel_ir import KernelProgram
from .project import blob_bytes, pack_params, param_views
from .target import BuildError, Device, cache_dir  # noqa: F401  (the runtime's API)


class NonFiniteLossWarning(RuntimeWarning):
    """A training step returned a NaN or infinite loss."""


class NonFiniteLossError(FloatingPointError):
    """A training step returned a NaN or infinite loss (trainer.on_nonfinite = "raise")."""


class NotTrainableError(UserError, KeyError):
    """The Trainer has no such function (a forward-only one has no @train_step)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


NONFINITE_ACTIONS = ("warn", "raise", "ignore")


class Trainer:
    """A compiled program on a Device. `device` is an opened Device (Target.load/open) or,
    for the in-process C targets, the path of a built library. Compiled without a loss it
    is forward-only: `forward` works, `step` says how to compile for training."""

    on_nonfinite: str = "warn"  # what step() does with a NaN/inf loss: warn | raise | ignore

    def __init__(self, program, kp: KernelProgram, device: Device | Path, profiled: bool = False):
        if not isinstance(device, Device):  # a built libmodel.so of the host target
            from . import get_target

            device = get_target("c").open(kp, Path(device))
        self.program, self.kernels, self.device, self.profiled = program, kp, device, profiled
        self.library = getattr(device, "library", None)
        device.write_params(pack_params(kp, program.weights))
        self.labels = label_inputs(kp)  # function -> {input index: LabelSpec}
        self.steps_done = 0

    # --- running ----------------------------------------------------------------------
    def call(self, function: str, *arrays) -> list[np.ndarray]:
        kf = self.kernels.functions.get(function)
        if kf is None:
            hint = ""
            if function == "train_step":
                hint = ("; this Trainer is forward-only (compiled without a loss): compile with "
                        "pockengine.compile(program, loss=\"cross_entropy\", optimizer=\"sgd\", lr=...) to train")
            raise NotTrainableError(f"no function @{function}; compiled: {', '.join(self.kernels.functions)}{hint}")
        if len(arrays) != len(kf.inputs):
            raise InputError(f"@{function} takes {len(kf.inputs)} inputs, got {len(arrays)}")
        labels = self.labels.get(function, {})
        ins = [check_input(self.kernels, function, i, a, labels=labels) for i, a in enumerate(arrays)]
        return self.device.run(function, ins)

    def step(self, *inputs) -> float:
        """One training step (forward, loss, backward, updates); returns the loss. A NaN or
        inf loss warns, raises or passes silently as `on_nonfinite` says."""
        loss = float(self.call("train_step", *inputs)[0])
        self.steps_done += 1
        if not math.isfinite(loss) and self.on_nonfinite != "ignore":
            if self.on_nonfinite not in NONFINITE_ACTIONS:
                raise ValueError(f"on_nonfinite must be one of {', '.join(NONFINITE_ACTIONS)}, got {self.on_nonfinite!r}")
            msg = (f"step {self.steps_done}: the loss is {loss}: a NaN or inf reached the loss (from the inputs, "
                   f"the weights or a diverging learning rate); the weights may be non-finite from here on")
            if self.on_nonfinite == "raise":
                raise NonFiniteLossError(msg)
            warnings.warn(msg + " (trainer.on_nonfinite = \"raise\" makes this an error)", NonFiniteLossWarning,
                          stacklevel=2)
        return loss

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
        """A checkpoint, as a Program directory (atomic): model.mlir (the compiled training
        program), weights.safetensors (the model's weights and buffers under its own names:
        `module.load_state_dict(safetensors.torch.load_file(...), strict=True)` takes it) and
        optimizer.safetensors (momentum / Adam moments, the step count). `Trainer.load` and
        `pockengine train --resume` continue from it."""
        prog = self.program.copy()
        shapes = {p.sym_name.data: tuple(p.type.get_shape()) for p in prog.params()}
        current = {k: v.reshape(shapes.get(k, v.shape)) for k, v in self.parameters().items()}  # scalars: ()
        prog.weights = {**self.program.weights, **current}  # buffers no step uses stay as they were
        prog.save(directory)

    @classmethod
    def load(cls, directory, target: str = "c", openmp: bool = False, threads: int | None = None) -> Trainer:
        """A Trainer continuing from a checkpoint that `save` wrote (weights and optimizer
        state); the program is rebuilt as it was compiled (the build cache makes it quick)."""
        from ..ir.program import Program
        from ..pipeline import compile

        prog = Program.load(directory)
        if "train_step" not in prog.functions():
            raise NotTrainableError(f"{directory}: the program has no @train_step; it is a model, not a training "
                                    f"checkpoint: compile it with pockengine.compile(program, loss=...)")
        return compile(prog, target=target, optimize=False, openmp=openmp, threads=threads)

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
