"""Selection: the best combination of measured candidates under a memory (and FLOP) budget.

The choice is a multiple-choice knapsack: one bias depth k (or none), and for each layer one
weight ratio (or none); its value is the sum of the measured gains (PockEngine's additivity
assumption), its cost the planned memory and backward FLOPs. `knapsack` solves it exactly by
dynamic programming over discretized costs (a few hundred cells per budget; each item's cost
is rounded *up*, so a DP solution never exceeds the proxy budget).

The proxy cost of a candidate is its marginal cost over the base: for memory, the saved
activations and optimizer state of its pruned program (cost report); for FLOPs, its backward
FLOPs. Plans are not additive (the arena reuses memory, candidates share the backward), so the
proxy only steers: `select` solves the DP at a ladder of proxy budgets, plans every distinct
answer with the compiler, bisects between the largest budget that fit and the next, tries a few
greedy additions, and keeps the most valuable choice whose *real* plan fits the budget.
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


LADDER = tuple(2 ** (i / 2) for i in range(-6, 7))  # proxy budgets from 1/8× to 8× the real headroom


def select(space: Space, measured: dict[Candidate, Measurement], budget: Budget,
           plan_of: Callable[[str], Plan], ladder=LADDER, refine: int = 4, fill: int = 12
           ) -> tuple[Choice, list[Choice]]:
    """The best choice whose real plan (`plan_of(scheme text)`) fits `budget`, and every
    choice that was planned on the way.

    Proxy costs, marginal over the base: memory = the cost report's saved activations plus
    optimizer state (a sum over candidates over-counts what they share, the arena's reuse
    under-counts nothing the peak needs beyond them); FLOPs = backward FLOPs. The DP runs at each
    rung of `ladder` × the real headroom, `refine` bisection steps follow between the largest
    rung that fit and the next, then up to `fill` greedy additions, each checked by the compiler."""
    base = measured[Candidate("base")]
    base_choice = Choice(plan=plan_of(space.scheme()))
    if not budget.fits(base_choice.plan):
        raise ValueError(f"the budget ({budget}) is below what training the base alone needs "
                         f"({fmt_bytes(base_choice.plan.memory)}, {fmt_count(base_choice.plan.backward_flops)} "
                         f"backward FLOPs)")
    dims = [d for d in ("memory", "flops") if getattr(budget, d) is not None]
    headroom = {"memory": (budget.memory or 0) - base_choice.plan.memory,
                "flops": (budget.flops or 0) - base_choice.plan.backward_flops}

    def marginal(m: Measurement) -> tuple[float, ...]:
        cost = {"memory": m.saved_bytes + m.state_bytes - base.saved_bytes - base.state_bytes,
                "flops": m.backward_flops - base.backward_flops}
        return tuple(max(cost[d], 0) for d in dims)

    bias = sorted((m for c, m in measured.items() if c.kind == "bias"), key=lambda m: m.candidate.k)
    layers: dict[int, list[Measurement]] = {}
    for c, m in measured.items():
        if c.kind == "weight":
            layers.setdefault(c.layer, []).append(m)
    groups_m = [bias, *(sorted(ms, key=lambda m: m.candidate.ratio) for _, ms in sorted(layers.items()))]
    groups = [[(m.gain, marginal(m)) for m in g] for g in groups_m]

    tried: dict[tuple, Choice] = {}
    best = base_choice

    def check(picked: list[int]) -> Choice | None:
        nonlocal best
        choice = Choice()
        for g, j in zip(groups_m, picked):
            if j >= 0:
                c = g[j].candidate
                choice.value += g[j].gain
                if c.kind == "bias":
                    choice.k = c.k
                else:
                    choice.weights[c.layer] = c.ratio
        key = (choice.k, tuple(sorted(choice.weights.items())))
        if not key[0] and not key[1]:
            return base_choice
        if key not in tried:
            choice.plan = plan_of(space.scheme(choice.k, choice.weights))
            tried[key] = choice
            if budget.fits(choice.plan) and choice.value > best.value:
                best = choice
        return tried[key]

    if not dims:  # no budget: every positive gain
        check([max(range(len(g)), key=lambda j: g[j][0]) if any(v > 0 for v, _ in g) else -1 for g in groups])
        return best, list(tried.values())

    solve = lambda s: knapsack(groups, tuple(max(headroom[d], 0) * s for d in dims))[0]
    fits = {s: budget.fits(check(solve(s)).plan) for s in ladder}
    ok = max((s for s, f in fits.items() if f), default=None)
    bad = min((s for s, f in fits.items() if not f and (ok is None or s > ok)), default=None)
    for _ in range(refine if ok is not None and bad is not None else 0):
        mid = math.sqrt(ok * bad)
        if budget.fits(check(solve(mid)).plan):
            ok = mid
        else:
            bad = mid
    # greedy: the best remaining single candidates, one at a time, kept when the plan still fits
    picked = [next((j for j, m in enumerate(g) if m.candidate in best.items()), -1) for g in groups_m]
    extra = sorted(((m.gain, gi, j) for gi, g in enumerate(groups_m) if picked[gi] < 0
                    for j, m in enumerate(g) if m.gain > 0), reverse=True)
    for _, gi, j in extra[:fill]:
        if picked[gi] >= 0:
            continue
        trial = list(picked)
        trial[gi] = j
        if budget.fits(check(trial).plan):
            picked = trial
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
