"""Step timing. The machine's clock drifts by tens of percent within minutes (and other jobs
share it), so the demo's ms/step come from rounds in which every trainer takes one step in
turn, and only ratios within the same rounds are compared."""

from __future__ import annotations

import statistics
import time


def timed_steps(step, batches, bar=None, evaluate=None, every: int = 0):
    """Run `step(x, y)` over batches; (losses, seconds per step). With `evaluate` and `every`,
    also (losses, seconds, [(step number, evaluate()), ...]) at step 0, every `every` steps and
    the end; evaluation time is not counted in the step times."""
    losses, times, evals = [], [], []
    batches = list(batches)
    for i, (x, y) in enumerate(batches):
        if evaluate is not None and every and i % every == 0:
            evals.append((i, evaluate()))
        t = time.perf_counter()
        losses.append(step(x, y))
        times.append(time.perf_counter() - t)
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    if evaluate is None:
        return losses, times
    evals.append((len(batches), evaluate()))
    return losses, times, evals


def interleaved(steps: dict, batch, rounds: int, bar=None) -> dict[str, list[float]]:
    """Seconds per step of each `steps[name](x, y)`, run in turn on the same batch for `rounds`
    rounds after one warm-up round (the trainers keep training: call this after evaluating)."""
    x, y = batch
    for step in steps.values():
        step(x, y)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t = time.perf_counter()
            step(x, y)
            times[name].append(time.perf_counter() - t)
        if bar is not None:
            bar.update()
    return times


def time_in_turn(steps, steppers: dict, results: list, batch, rounds: int) -> None:
    """The demo's timing step: `interleaved` rounds of `steppers` under a progress step of
    `steps` (demo/steps.py); each result's `seconds` becomes its trainer's step times."""
    with steps.step(f"time the {len(steppers)} steps in turn ({rounds} rounds)", total=rounds, unit="round") as bar:
        times = interleaved(steppers, batch, rounds, bar)
        for res in results:
            res.seconds = times[res.name]
        bar.result = ", ".join(f"{r.name} {r.ms_per_step:.1f}" for r in results) + " ms/step"


def median_ms(seconds: list[float]) -> float:
    return 1000 * statistics.median(seconds)
