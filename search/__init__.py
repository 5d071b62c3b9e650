"""Contribution analysis and automatic sparse-scheme search (PockEngine §3.2, after TTE).

    import pockengine
    scheme, report = pockengine.search(program, (x_train, y_train), (x_val, y_val),
                                       budget="2MB")           # or Budget(memory=..., flops=...)
    print(scheme.to_text()); report.save("search_report/")

1. contribution.py — fine-tune every candidate (the head alone; + biases of the last k layers;
   + the weight of one layer at a channel ratio) for real through the compiled C backend, with a
   short seeded recipe, on two local processes or a Ray cluster (executor.py), results cached on
   disk the moment each is known (an interrupted search resumes);
2. select.py — exact multiple-choice knapsack over the measured gains under the budget, costs
   taken from the compiler's memory plan and cost report, the answer checked by planning it;
3. report.py — the table, JSON and a figure. docs/search.md has the protocol and validation
   (`python -m pockengine.search.validate`); task.py is the digits transfer task it uses.
"""

from __future__ import annotations

import sys
import types
from fractions import Fraction

from .contribution import RATIOS, Candidate, Measured, Measurement, SearchError, Space, measure
from .executor import DEFAULT_RETRIES, EXECUTORS, CandidateError, ExecutorError, Failed, check_executor
from .finetune import Plan, Recipe, finetune, plan_scheme
from .report import Report
from .select import Budget, Choice, knapsack, select

DEFAULT_RECIPE = Recipe()  # Adam, lr 3e-3, 120 steps


def parse_size(text: str | float, what: str = "memory") -> int:
    """'2MB', '512kB', '1.5MiB', '3e6', 2000000 → an integer (bytes, or FLOPs with 'k/M/G')."""
    if isinstance(text, (int, float)):
        return int(text)
    s = str(text).strip().replace("_", "")
    units = {"gib": 2**30, "mib": 2**20, "kib": 2**10, "gb": 10**9, "mb": 10**6, "kb": 10**3, "b": 1,
             "g": 10**9, "m": 10**6, "k": 10**3}
    low = s.lower()
    for unit, scale in units.items():
        if low.endswith(unit):
            number = s[:len(s) - len(unit)].strip()
            break
    else:
        number, scale = s, 1
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"bad {what} {text!r} (write e.g. 2MB, 512kB, 1.5MiB, 3e6)") from None
    if value < 0:
        raise ValueError(f"bad {what} {text!r}: negative")
    return int(value)


def as_budget(budget) -> Budget:
    if isinstance(budget, Budget):
        return budget
    if isinstance(budget, dict):
        return Budget(**{k: parse_size(v, k) if v is not None else None for k, v in budget.items()})
    if budget is None:
        return Budget()
    return Budget(memory=parse_size(budget))


def search(program, train_data, val_data, budget=None, *, recipe: Recipe | None = None,
           ratios=RATIOS, bias_ks=None, layers=None, base: str | None = None, seeds=(0,),
           workers: int | None = None, cache_dir=None, progress: bool = True, verify: bool = True,
           executor: str = "local", address: str | None = None, retries: int = DEFAULT_RETRIES):
    """Search the sparse update scheme of `program` (a Program with @forward) that gains the
    most accuracy on `val_data` under `budget` (Budget, dict, or a memory size such as "2MB").

    `base` is scheme rules for what always trains (default: the last layer, the new head);
    `bias_ks`, `layers`, `ratios` restrict the candidates; `recipe` is the fine-tuning budget of
    each measurement. With `verify`, the chosen scheme is fine-tuned once more for the report.

    The measurements run on `executor`: "local" (the default), `workers` processes on this
    machine (default 2); "ray", tasks on the Ray cluster at `address` (default: the connected
    one, else a private one on this machine; `pip install 'pockengine[ray]'`), at most `workers`
    at a time (default: every CPU of the cluster). A run whose worker dies is retried `retries`
    times, then reported in `report.failed` and left out of the selection.
    Returns (Scheme, Report)."""
    from pockengine.passes.scheme import Scheme

    from .finetune import frozen_accuracy

    check_executor(executor, address, workers, retries)  # before any work: Ray installed, counts valid
    recipe = recipe or DEFAULT_RECIPE
    budget = as_budget(budget)
    space = Space(program, base)
    candidates = space.candidates([Fraction(r) for r in ratios], bias_ks, layers)
    measured = measure(program, space, candidates, train_data, val_data, recipe, seeds, workers,
                       cache_dir, progress, executor=executor, address=address, retries=retries)
    chosen, planned = select(space, measured, budget, lambda text: plan_scheme(program, text, recipe))
    comment = (f"searched by pockengine.search: {budget}; summed measured gain {100 * chosen.value:+.1f} points\n"
               f"planned training memory {chosen.plan.memory:,} B, backward FLOPs {chosen.plan.backward_flops:,}")
    text = space.scheme(chosen.k, chosen.weights, comment)
    report = Report(budget, {lay.index: lay.name for lay in space.layers}, frozen_accuracy(program, [val_data])[0],
                    measured, chosen, planned, text, recipe=recipe.__dict__ | {"seeds": list(seeds)},
                    backbone=[lay.index for lay in space.backbone], failed=measured.failed)
    if verify:
        report.chosen_accuracy = finetune(program, text, train_data, [val_data], recipe, seeds[0]).accuracies[0]
    return Scheme.parse(text, "<searched scheme>"), report


__all__ = ["EXECUTORS", "RATIOS", "Budget", "Candidate", "CandidateError", "Choice", "ExecutorError", "Failed",
           "Measured", "Measurement", "Plan", "Recipe", "Report", "SearchError", "Space", "finetune", "knapsack",
           "measure", "parse_size", "search", "select"]


class _CallableModule(types.ModuleType):
    """`pockengine.search(...)` calls `search` even once the subpackage `pockengine.search` is
    imported (which makes the attribute the module)."""

    def __call__(self, *args, **kwargs):
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
