"""Fine-tuning through the compiled backend, and what the compiler plans for a scheme.

    recipe = Recipe(steps=120, optimizer="adam", lr=3e-3)
    step = training_step(program, scheme, recipe)    # autodiff → sparse-backprop → DGE
    plan(step)                                       # Plan: planned bytes and FLOPs of that step
    run = finetune(program, scheme, train, [val], recipe, seed=0)   # compiled, trained, evaluated
    run.accuracies, run.memory, run.backward_flops

Costs are the compiler's own: `plan` lowers the pruned step exactly as
`pockengine.compile` does and reads the memory plan (`training_extra`: the arena plus optimizer
state, i.e. all planned bytes beyond weights and inputs) and the cost report of the pruned
program (backward FLOPs). `finetune` reads the same numbers from the compiled Trainer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Recipe:
    """A fixed fine-tuning budget: `steps` minibatches of the program's batch size, drawn from
    a seeded permutation of the training set, epoch after epoch."""

    steps: int = 120
    optimizer: str = "adam"  # "sgd" (with momentum) | "adam" | "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss: str = "cross_entropy"

    def hyper(self) -> dict[str, float]:
        """autodiff's hyper-parameters for this recipe."""
        opts = {"lr": float(self.lr)}
        if self.optimizer == "sgd":
            opts["momentum"] = float(self.momentum)
        if self.weight_decay:
            opts["weight_decay"] = float(self.weight_decay)
        return opts

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Plan:
    memory: int  # planned training bytes beyond weights and inputs (arena + optimizer state)
    backward_flops: int
    breakdown: dict[str, int] = field(default_factory=dict)  # memory_summary's categories
    trained_elements: int = 0
    saved_bytes: int = 0  # cost report: activations the forward keeps for the backward
    state_bytes: int = 0  # cost report: optimizer state


@dataclass
class Run:
    accuracies: list[float]  # one per evaluation set
    losses: list[float]
    plan: Plan

    @property
    def memory(self) -> int:
        return self.plan.memory

    @property
    def backward_flops(self) -> int:
        return self.plan.backward_flops


def training_step(program, scheme, recipe: Recipe):
    """A copy of `program` with @train_step: full backprop when `scheme` is None, else pruned
    to the scheme (a `Scheme` object or scheme text), as `pockengine.compile` derives it."""
    from ..pipeline import training_program

    return training_program(program, recipe.loss, recipe.optimizer, scheme, **recipe.hyper())


def optimized(step_program):
    """The step as `pockengine.compile` has it before lowering (the recipe up to fusion)."""
    from ..pipeline import run

    return run(step_program, stop="fusion").program


def _plan(step_program, summary: dict[str, int]) -> Plan:
    from pockengine.passes.cost import cost

    report = cost(step_program)
    c = report["train_step"]
    return Plan(summary["training_extra"], c.backward_flops, dict(summary), c.trained_elements, c.saved_bytes,
                report.state_bytes)


def plan(step_program) -> Plan:
    """What the compiler plans for a training step, without building it."""
    from ..backends.memory_plan import memory_summary
    from ..pipeline import run

    return _plan(step_program, memory_summary(run(step_program, stop="memory-plan").kernels, "train_step"))


def plan_scheme(program, scheme, recipe: Recipe) -> Plan:
    return plan(training_step(program, scheme, recipe))


def batches(n: int, batch: int, steps: int, seed: int):
    """Index arrays of `steps` minibatches: seeded permutations, the ragged tail dropped."""
    rng = np.random.default_rng(seed)
    per_epoch = n // batch
    if per_epoch == 0:
        raise ValueError(f"{n} training examples are fewer than the batch size {batch}")
    order: np.ndarray = np.empty(0, np.int64)
    for s in range(steps):
        i = s % per_epoch
        if i == 0:
            order = rng.permutation(n)
        yield order[i * batch:(i + 1) * batch]


def input_batch(program) -> int:
    from pockengine.ir import types as T

    fn = program.functions()["forward"]
    return T.shape(fn.body.block.args[0])[0]


def evaluate(trainer, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """Top-1 accuracy of the compiled @forward (the last partial batch is zero-padded)."""
    correct = 0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        real = len(xb)
        if real < batch:
            xb = np.concatenate([xb, np.zeros((batch - real, *x.shape[1:]), x.dtype)])
        logits = trainer.forward(xb)
        correct += int((np.argmax(logits[:real], axis=-1) == y[i:i + real]).sum())
    return correct / max(len(x), 1)


def finetune(program, scheme, train, evals, recipe: Recipe, seed: int = 0) -> Run:
    """Compile the step for `scheme` (None: full backprop), train `recipe.steps` steps on
    `train` = (x, y) and return the accuracy on each (x, y) of `evals`."""
    from ..pipeline import compile as compile_program

    step = training_step(program, scheme, recipe)
    # one thread: each candidate is one task of the pool / cluster (one CPU each), and the
    # measurement is the same on every machine whatever its core count
    trainer = compile_program(step, threads=1)
    batch = input_batch(program)
    x, y = train
    losses = [trainer.step(x[idx], y[idx]) for idx in batches(len(x), batch, recipe.steps, seed)]
    if not all(np.isfinite(losses)):
        losses = [float(v) if np.isfinite(v) else float("nan") for v in losses]
    accs = [evaluate(trainer, ex, ey, batch) for ex, ey in evals]
    return Run(accs, losses, _plan(step, trainer.memory))


def frozen_accuracy(program, evals) -> list[float]:
    """Accuracy of the program as given (no training), through the compiled forward."""
    from ..pipeline import compile as compile_program

    trainer = compile_program(program)
    batch = input_batch(program)
    return [evaluate(trainer, ex, ey, batch) for ex, ey in evals]
