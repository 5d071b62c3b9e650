"""Selection: the best combination of measured candidates under a memory (and FLOP) budget.

The choice is a multiple-choice knapsack: one bias depth k (or none), and for each layer one
weight ratio (or none); its value is the sum of the measured gains (PockEngine's additivity
assumption), its cost the planned memory and backward FLOPs. `knapsack` solves it exactly by
dynamic programming over discretized costs (a few hundred cells per budget; each item's cost
is rounded *up*, so a DP solution never exceeds the proxy budget).

The proxy cost of a candidate is its marginal cost over the base, measured on the compiler's
plan of the candidate alone. Plans are not additive (the arena reuses memory; a bias chain and
a weight in it share the backward), so the sum is only a proxy: `select` solves the DP at a
ladder of proxy budgets, plans each distinct solution with the compiler, and keeps the most
valuable one whose *real* plan fits the budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .contribution import Candidate, Measurement, Space
from .finetune import Plan


@dataclass(frozen=True)
class Budget:
    memory: int | None = None  # planned training bytes (arena + optimizer state)
    flops: int | None = None  # backward FLOPs per step

    def fits(self, plan: Plan) -> bool:
        return (self.memory is None or plan.memory <= self.memory) and \
            (self.flops is None or plan.backward_flops <= self.flops)

    def __str__(self) -> str:
        parts = [f"memory ≤ {fmt_bytes(self.memory)}" if self.memory is not None else "",
                 f"backward FLOPs ≤ {fmt_count(self.flops)}" if self.flops is not None else ""]
        return ", ".join(p for p in parts if p) or "unlimited"


@dataclass
class Choice:
    k: int = 0
    weights: dict[int, Fraction] = field(default_factory=dict)
    value: float = 0.0  # the summed measured gains
    plan: Plan | None = None  # the compiler's plan of the combined scheme

    def items(self) -> list[Candidate]:
        out = [Candidate("bias", k=self.k)] if self.k else []
        return out + [Candidate("weight", layer=i, ratio=r) for i, r in sorted(self.weights.items())]


def knapsack(groups: list[list[tuple[float, tuple[float, ...]]]], capacity: tuple[float, ...],
             cells: int = 400) -> tuple[list[int], float]:
    """Exact multiple-choice knapsack on discretized costs: from each group pick at most one
    (value, costs) item, maximizing the value with every cost ≤ its capacity. Returns the
    picked index per group (-1: none) and the value."""
    dims = len(capacity)
    size = tuple(cells + 1 for _ in range(dims))
    unit = [c / cells if c > 0 else 1.0 for c in capacity]

    def cells_of(costs):
        out = []
        for c, u, cap in zip(costs, unit, capacity):
            n = 0 if c <= 0 else math.ceil(c / u - 1e-9)
            out.append(n if cap > 0 or c <= 0 else cells + 1)
        return out

    best = np.zeros(size)  # best value with costs ≤ (cell indices)
    picks = []
    for items in groups:
        new = best.copy()
        pick = np.full(size, -1, np.int32)
        for j, (value, costs) in enumerate(items):
            need = cells_of(costs)
            if value <= 0 or any(n > cells for n in need):
                continue
            shifted = np.full(size, -np.inf)
            dst = tuple(slice(n, None) for n in need)
            src = tuple(slice(0, cells + 1 - n) for n in need)
            shifted[dst] = best[src] + value
            better = shifted > new
            new[better] = shifted[better]
            pick[better] = j
        best = new
        picks.append((pick, [cells_of(c) for _, c in items]))
    at = [cells] * dims
    chosen = [-1] * len(groups)
    for g in range(len(groups) - 1, -1, -1):
        pick, needs = picks[g]
        j = int(pick[tuple(at)])
        chosen[g] = j
        if j >= 0:
            at = [a - n for a, n in zip(at, needs[j])]
    return chosen, float(best[(cells,) * dims])


def select(space: Space, measured: dict[Candidate, Measurement], budget: Budget,
           plan_of: Callable[[str], Plan], scales=(1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0)
           ) -> tuple[Choice, list[Choice]]:
    """The best choice whose real plan (`plan_of(scheme text)`) fits `budget`, and every
    choice that was planned on the way."""
    base = measured[Candidate("base")]
    dims = [d for d in ("memory", "flops") if getattr(budget, d) is not None]
    base_cost = {"memory": base.memory, "flops": base.backward_flops}
    capacity = tuple(getattr(budget, d) - base_cost[d] for d in dims)
    base_choice = Choice(plan=plan_of(space.scheme()))
    if not budget.fits(base_choice.plan):
        raise ValueError(f"the budget ({budget}) is below what training the base alone needs "
                         f"({fmt_bytes(base_choice.plan.memory)}, {fmt_count(base_choice.plan.backward_flops)} "
                         f"backward FLOPs)")

    def marginal(m: Measurement) -> tuple[float, ...]:
        cost = {"memory": m.memory, "flops": m.backward_flops}
        return tuple(max(cost[d] - base_cost[d], 0) for d in dims)

    bias = sorted((m for c, m in measured.items() if c.kind == "bias"), key=lambda m: m.candidate.k)
    layers: dict[int, list[Measurement]] = {}
    for c, m in measured.items():
        if c.kind == "weight":
            layers.setdefault(c.layer, []).append(m)
    groups_m = [bias, *(sorted(ms, key=lambda m: m.candidate.ratio) for _, ms in sorted(layers.items()))]
    groups = [[(m.gain, marginal(m)) for m in g] for g in groups_m]

    tried: dict[tuple, Choice] = {}
    best = base_choice
    for s in scales:
        if not dims:  # no budget at all: every positive gain
            picked = [max(range(len(g)), key=lambda j: g[j][0], default=-1) for g in groups]
            picked = [j if j >= 0 and g[j][0] > 0 else -1 for j, g in zip(picked, groups)]
        else:
            picked, _ = knapsack(groups, tuple(c * s for c in capacity))
        choice = Choice()
        for g, j in zip(groups_m, picked):
            if j < 0:
                continue
            c = g[j].candidate
            choice.value += g[j].gain
            if c.kind == "bias":
                choice.k = c.k
            else:
                choice.weights[c.layer] = c.ratio
        key = (choice.k, tuple(sorted(choice.weights.items())))
        if key in tried or not (choice.k or choice.weights):
            continue
        choice.plan = plan_of(space.scheme(choice.k, choice.weights))
        tried[key] = choice
        if budget.fits(choice.plan) and choice.value > best.value:
            best = choice
        if not dims:
            break
    return best, list(tried.values())


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def fmt_count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)
