"""The search's validation on real data: `python -m pockengine.search.validate [OUT_DIR]`.

Protocol (docs/search.md): the digits transfer task (task.py). The budget is 1/4 of the planned
training memory of full backprop. The search measures contributions on train/val with the
short recipe (seed 0) and picks a scheme. Then, for seeds 0, 1, 2 (head initialization and
batch order), every scheme is fine-tuned for real with the longer recipe and scored on the
held-out test split:

- full backprop; the base (head only);
- the searched scheme;
- "last k layers fully": the largest k whose planned memory fits the budget (+ the head);
- a random scheme: the same selection (knapsack, the compiler's check) with the measured gains
  replaced by seeded random numbers — one per seed — so it spends the budget as the search does.

Writes OUT_DIR/validation.md (the table and the checks), validation.json and the search report
(OUT_DIR/search/report.md, search.png); exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .contribution import Space, _ranges
from .finetune import Recipe, finetune, plan_scheme
from .select import Budget, fmt_bytes, fmt_count, select

SEARCH_RECIPE = Recipe(steps=120, optimizer="adam", lr=3e-3)
FINAL_RECIPE = Recipe(steps=300, optimizer="adam", lr=3e-3)
SEEDS = (0, 1, 2)


@dataclass
class Row:
    name: str
    scheme: str | None  # None: full backprop
    memory: int = 0
    backward_flops: int = 0
    accuracies: list[float] | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies)) if self.accuracies else float("nan")


_TASK: dict = {}


def _finetune_job(scheme: str | None, seed: int, recipe: Recipe, batch: int) -> tuple[float, int, int]:
    from .task import digits_transfer

    if "task" not in _TASK:
        _TASK["task"] = digits_transfer(batch)
    task = _TASK["task"]
    run = finetune(task.program_for_seed(seed), scheme, task.train, [task.test], recipe, seed)
    return run.accuracies[0], run.memory, run.backward_flops


def last_k_full(space: Space, budget: Budget, plan_of) -> tuple[str, int]:
    """The largest k such that training the last k backbone layers fully (+ base) fits."""
    n = len(space.backbone)
    for k in range(n, 0, -1):
        text = f"default frozen\n{_ranges(space.bias_layers(k))}: full\n{space.base}\n"
        if budget.fits(plan_of(text)):
            return f"# the last {k} backbone layers, fully\n" + text, k
    return space.scheme(), 0


def random_scheme(space: Space, measured, budget: Budget, plan_of, seed: int) -> str:
    rng = np.random.default_rng(10_000 + seed)
    shuffled = {c: replace(m, gain=float(rng.uniform(0.01, 1.0))) if c.kind != "base" else m
                for c, m in measured.items()}
    choice, _ = select(space, shuffled, budget, plan_of)
    return space.scheme(choice.k, choice.weights, f"random scheme (seed {seed}) under the same budget")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pockengine.search.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="search_validation", help="output directory (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log = lambda msg: print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)

    from . import search
    from .task import digits_transfer

    task = digits_transfer(args.batch, log=log)
    log(f"task ready: pretrained on digits 0-4 to {100 * task.pretrain_accuracy:.1f}% (train accuracy)")
    program = task.program_for_seed(0)
    plan_of = lambda text: plan_scheme(program, text, FINAL_RECIPE)
    full_plan = plan_scheme(program, None, FINAL_RECIPE)
    budget = Budget(memory=full_plan.memory // 4)
    log(f"full backprop plans {fmt_bytes(full_plan.memory)}; budget {budget}")

    _, report = search(program, task.train, task.val, budget, recipe=SEARCH_RECIPE,
                            workers=args.workers, cache_dir=None, progress=not args.no_progress)
    report.save(out / "search")
    log("search done:\n" + report.summary())
    space = Space(program)
    lastk_text, k = last_k_full(space, budget, plan_of)
    rows = [Row("full backprop", None), Row("head only (base)", space.scheme()),
            Row("searched scheme", report.scheme_text), Row(f"last {k} layers fully", lastk_text)]
    randoms = [random_scheme(space, report.measurements, budget, plan_of, s) for s in SEEDS]
    rows.append(Row("random scheme (one per seed)", None))
    jobs = [(i, row.scheme, s) for i, row in enumerate(rows[:-1]) for s in SEEDS]
    jobs += [(len(rows) - 1, randoms[j], s) for j, s in enumerate(SEEDS)]
    log(f"fine-tuning {len(jobs)} runs ({FINAL_RECIPE.steps} steps each) on {args.workers} workers")
    import multiprocessing

    results: dict[tuple[int, int], tuple[float, int, int]] = {}
    with ProcessPoolExecutor(args.workers, multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_finetune_job, text, s, FINAL_RECIPE, args.batch): (i, s) for i, text, s in jobs}
        for fut, key in futures.items():
            results[key] = fut.result()
    for i, row in enumerate(rows):
        got = [results[(i, s)] for s in SEEDS]
        row.accuracies = [g[0] for g in got]
        row.memory = int(np.mean([g[1] for g in got]))
        row.backward_flops = int(np.mean([g[2] for g in got]))
    text, ok = render(rows, budget, full_plan.memory)
    (out / "validation.md").write_text(text + "\n\nsearched scheme:\n```\n" + report.scheme_text + "```\n")
    (out / "validation.json").write_text(json.dumps(
        {"budget": budget.memory, "full_memory": full_plan.memory, "rows": [asdict(r) for r in rows],
         "random_schemes": randoms, "search_recipe": asdict(SEARCH_RECIPE), "final_recipe": asdict(FINAL_RECIPE),
         "seconds": time.time() - t0}, indent=1))
    print(text)
    log(f"done; written to {out}")
    return 0 if ok else 1


def render(rows: list[Row], budget: Budget, full_memory: int) -> tuple[str, bool]:
    head = "| scheme | planned training memory | of full | backward FLOPs | test accuracy, seeds 0/1/2 | mean |"
    lines = [head, "|---|---:|---:|---:|---|---:|"]
    for r in rows:
        accs = " / ".join(f"{100 * a:.1f}" for a in r.accuracies)
        lines.append(f"| {r.name} | {fmt_bytes(r.memory)} | {r.memory / full_memory:.2f} | "
                     f"{fmt_count(r.backward_flops)} | {accs} | **{100 * r.mean:.1f}%** |")
    full, _, searched, lastk, rand = rows
    checks = [
        (f"searched within 1 point of full backprop ({100 * searched.mean:.1f}% vs {100 * full.mean:.1f}%)",
         searched.mean >= full.mean - 0.01),
        (f"searched plans ≤ 1/4 of full backprop's memory ({fmt_bytes(searched.memory)} ≤ {fmt_bytes(budget.memory)})",
         searched.memory <= full_memory / 4),
        (f"searched beats last-k-fully at the same budget ({100 * searched.mean:.1f}% vs {100 * lastk.mean:.1f}%)",
         searched.mean > lastk.mean),
        (f"searched beats a random scheme at the same budget ({100 * searched.mean:.1f}% vs {100 * rand.mean:.1f}%)",
         searched.mean > rand.mean),
    ]
    lines.append("")
    lines += [f"- [{'x' if ok else ' '}] {what}" for what, ok in checks]
    return "\n".join(lines), all(ok for _, ok in checks)


if __name__ == "__main__":
    sys.exit(main())
