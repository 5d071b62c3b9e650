"""Selection: the knapsack against brute force, `select` against exhaustive enumeration."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pockengine.search import Budget, Candidate, Measurement, Plan, knapsack, parse_size, select


def brute_force(groups, capacity):
    best = 0.0
    for picks in itertools.product(*[range(-1, len(g)) for g in groups]):
        cost = [0.0] * len(capacity)
        value = 0.0
        for g, j in zip(groups, picks):
            if j >= 0:
                value += g[j][0]
                cost = [c + d for c, d in zip(cost, g[j][1])]
        # the same float tolerance as the selector's feasibility check (a cost of 2e-16 is noise)
        if all(c <= cap + 1e-9 for c, cap in zip(cost, capacity)):
            best = max(best, value)
    return best


items = st.tuples(st.floats(-1, 5, allow_nan=False), st.integers(0, 12))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(items, min_size=1, max_size=4), min_size=1, max_size=4), st.integers(0, 30))
def test_knapsack_is_exact_on_integer_costs(groups_1d, cap):
    groups = [[(v, (float(c),)) for v, c in g] for g in groups_1d]
    picks, value = knapsack(groups, (float(cap),), cells=max(cap, 1))  # one cell per unit: exact
    assert value == pytest.approx(brute_force(groups, (cap,)))
    # the picks realize the value and respect the capacity
    got = sum(groups[g][j][0] for g, j in enumerate(picks) if j >= 0)
    used = sum(groups[g][j][1][0] for g, j in enumerate(picks) if j >= 0)
    assert got == pytest.approx(value) and used <= cap


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 10), st.floats(0, 10)), min_size=1, max_size=3),
                min_size=1, max_size=4), st.floats(1, 20), st.floats(1, 20))
def test_knapsack_two_budgets_is_feasible_and_near_optimal(raw, cap_m, cap_f):
    groups = [[(v, (m, f)) for v, m, f in g] for g in raw]
    picks, value = knapsack(groups, (cap_m, cap_f), cells=200)
    used = [sum(groups[g][j][1][d] for g, j in enumerate(picks) if j >= 0) for d in (0, 1)]
    assert used[0] <= cap_m + 1e-9 and used[1] <= cap_f + 1e-9  # costs round up: never over
    assert value <= brute_force(groups, (cap_m, cap_f)) + 1e-9
    # rounding costs up loses at most what a slightly smaller budget would
    assert value >= brute_force(groups, (cap_m * 0.97 - 0.2, cap_f * 0.97 - 0.2)) - 1e-9


class FakeSpace:
    """What `select` needs of a Space: scheme text for a choice (parsed back by the fake plan)."""

    def scheme(self, k=0, weights=None, comment=""):
        return repr((k, sorted((weights or {}).items())))


def fake_measurements(rng):
    def m(c, gain, mem, flops):
        return Measurement(c, 0.5 + gain, 100 + mem, 1000 + flops, gain=gain, saved_bytes=mem)

    out = {Candidate("base"): m(Candidate("base"), 0.0, 0, 0)}
    for k in (1, 2, 3):
        c = Candidate("bias", k=k)
        out[c] = m(c, rng.uniform(0, 0.05) * k, 10 * k, 100 * k)
    for layer in (4, 5, 6):
        for r in (Fraction(1, 4), Fraction(1)):
            c = Candidate("weight", layer=layer, ratio=r)
            out[c] = m(c, rng.uniform(-0.01, 0.08) * (1 + (r == 1)), int(rng.integers(5, 40) * (1 + 2 * (r == 1))),
                       int(rng.integers(50, 400)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_select_finds_the_best_feasible_combination_when_plans_are_additive(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    measured = fake_measurements(rng)
    base = measured[Candidate("base")]

    def plan_of(text):  # the "compiler": exactly additive marginal costs
        k, weights = eval(text)
        items = ([Candidate("bias", k=k)] if k else []) + [Candidate("weight", layer=i, ratio=r) for i, r in weights]
        mem = base.memory + sum(measured[c].memory - base.memory for c in items)
        fl = base.backward_flops + sum(measured[c].backward_flops - base.backward_flops for c in items)
        return Plan(mem, fl)

    budget = Budget(memory=base.memory + int(rng.integers(20, 90)), flops=base.backward_flops + 600)
    chosen, planned = select(FakeSpace(), measured, budget, plan_of)
    assert budget.fits(chosen.plan) and planned
    # exhaustive: every bias depth × every ratio (or none) per layer
    best = 0.0
    options = [[None, Fraction(1, 4), Fraction(1)]] * 3
    for k in (0, 1, 2, 3):
        for rs in itertools.product(*options):
            weights = [(layer, r) for layer, r in zip((4, 5, 6), rs) if r is not None]
            items = ([Candidate("bias", k=k)] if k else []) + [Candidate("weight", layer=i, ratio=r) for i, r in weights]
            if budget.fits(plan_of(repr((k, weights)))):
                best = max(best, sum(max(measured[c].gain, 0) for c in items))
    assert chosen.value == pytest.approx(best, abs=1e-9)


def test_select_refuses_a_budget_below_the_base():
    measured = fake_measurements(__import__("numpy").random.default_rng(0))
    with pytest.raises(ValueError, match="below what training the base alone needs"):
        select(FakeSpace(), measured, Budget(memory=50), lambda text: Plan(100, 1000))


def test_select_finds_a_fitting_choice_when_the_proxy_overestimates():
    """Real plans share memory (here: cost = the largest item's instead of the sum): rungs of
    the ladder above 1× and the greedy fill use the headroom the proxy would waste."""
    import numpy as np

    measured = fake_measurements(np.random.default_rng(2))
    base = measured[Candidate("base")]

    def plan_of(text):
        k, weights = eval(text)
        items = ([Candidate("bias", k=k)] if k else []) + [Candidate("weight", layer=i, ratio=r) for i, r in weights]
        return Plan(base.memory + max([measured[c].memory - base.memory for c in items], default=0), 1000)

    budget = Budget(memory=base.memory + 40)
    chosen, _ = select(FakeSpace(), measured, budget, plan_of)
    fitting = [c for c, m in measured.items() if c.kind != "base" and m.memory - base.memory <= 40 and m.gain > 0]
    best_per_group = {}
    for c in fitting:
        group = "bias" if c.kind == "bias" else c.layer
        best_per_group[group] = max(best_per_group.get(group, 0), measured[c].gain)
    assert budget.fits(chosen.plan) and chosen.value == pytest.approx(sum(best_per_group.values()))


def test_select_uses_the_compilers_plan_not_the_proxy():
    """When the real plan of the proxy-optimal pick is over budget, the pick is not taken."""
    measured = fake_measurements(__import__("numpy").random.default_rng(1))
    budget = Budget(memory=160)

    def plan_of(text):  # everything but the base costs far more than its marginal proxy
        k, weights = eval(text)
        return Plan(100 if not (k or weights) else 10_000, 1000)

    chosen, planned = select(FakeSpace(), measured, budget, plan_of)
    assert chosen.k == 0 and not chosen.weights and chosen.value == 0
    assert planned and all(not budget.fits(c.plan) for c in planned)


@pytest.mark.parametrize("text, value", [("2MB", 2_000_000), ("512kB", 512_000), ("1.5MiB", 1_572_864),
                                         ("3e6", 3_000_000), ("50M", 50_000_000), ("1.2G", 1_200_000_000),
                                         (" 100 B ", 100), (4096, 4096)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["two MB", "MB", "-1MB", "1.2.3"])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(ValueError, match="bad memory"):
        parse_size(text)
