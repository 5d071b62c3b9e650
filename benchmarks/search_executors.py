"""The search on the local pool vs on Ray (issue 18): wall time, per-task overhead, and a
64-candidate run that checks scheduling and caching hold at that count.

    .venv/bin/python benchmarks/search_executors.py                 # all three parts
    .venv/bin/python benchmarks/search_executors.py --part digits   # or overhead, many

- digits: the demo's search (search/task.py's digits transfer task with the demo's candidates,
  demo/vision.py VisionConfig: layers 9..15, ratios 1/4 and 1, bias depths 4, 8, 12, 16, 120
  steps) on the local pool (2 processes) and on a local Ray cluster (2 CPUs). Each timed search
  starts from an empty measurement cache *and* an empty build cache (every candidate is
  compiled, as on a fresh node); Ray's start-up is timed apart. Both must select the same scheme.
- overhead: an empty Ray task's round trip, and what a search's task adds beyond fine-tuning
  (the tiny model, build cache warm: Ray time − local time, per task).
- many: 64 candidates of a tiny 14-layer MLP on 2 Ray workers: interrupted after 30 results,
  resumed (only the 34 missing run), then run again (none run); the most tasks in flight is
  checked against the cluster's CPUs, and every result file is written exactly once.

Prints markdown tables (and the machine's load: the numbers are only comparable within a run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a private Ray on loopback
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # that reports nothing
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "passes"))


def load() -> str:
    return "load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg())


def timed_search(program, train, val, budget, executor, workers, **kw):
    """(search wall time, Ray start-up time or None, report), from empty measurement and build
    caches (set before the workers start: they read $POCKENGINE_CACHE)."""
    import pockengine

    saved = os.environ.get("POCKENGINE_CACHE")
    with tempfile.TemporaryDirectory() as d:
        os.environ["POCKENGINE_CACHE"] = str(Path(d) / "build")
        ray, t_start = start_ray(workers) if executor == "ray" else (None, None)
        try:
            start = time.perf_counter()
            _, report = pockengine.search(program, train, val, budget, cache_dir=Path(d) / "search", progress=False,
                                          verify=False, executor=executor, workers=workers, **kw)
            return time.perf_counter() - start, t_start, report
        finally:
            if ray is not None:
                ray.shutdown()
            if saved is None:
                os.environ.pop("POCKENGINE_CACHE", None)
            else:
                os.environ["POCKENGINE_CACHE"] = saved


def start_ray(cpus: int):
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=2**28)
    return ray, time.perf_counter() - start


def digits(workers: int, rounds: int = 1) -> None:
    from dataclasses import replace

    from pockengine.demo.vision import VisionConfig
    from pockengine.search.contribution import Space
    from pockengine.search.finetune import plan, training_step
    from pockengine.search.task import digits_transfer

    cfg = VisionConfig()
    task = digits_transfer(cfg.batch)  # before the build cache moves: the task cache stays
    program, recipe = task.program, replace(cfg.recipe, steps=cfg.search_steps)
    full = plan(training_step(program, None, recipe))
    head = plan(training_step(program, Space(program).scheme(), recipe))
    budget = max(int(full.memory * cfg.budget_fraction), int(head.memory * 1.05))
    kw = {"recipe": recipe, "ratios": [Fraction(r) for r in cfg.search_ratios], "bias_ks": cfg.search_bias_ks,
          "layers": cfg.search_layers}
    rows, reports = [], {}
    for i in range(rounds):  # alternating, Ray first in odd rounds: the machine's load drifts
        for executor in (("ray", "local") if i % 2 else ("local", "ray")):
            t, t_start, reports[executor] = timed_search(program, task.train, task.val, budget, executor, workers,
                                                         **kw)
            name = "Ray, local cluster" if executor == "ray" else "local pool"
            label = f"{name} (round {i + 1}, 1-min load {os.getloadavg()[0]:.1f} after)"
            rows.append((label, workers, len(reports[executor].measurements), t,
                         "-" if t_start is None else f"{t_start:.1f} s"))
    local, remote = reports["local"], reports["ray"]
    n = len(local.measurements)
    t_local = sum(r[3] for r in rows if r[0].startswith("local"))
    t_ray = sum(r[3] for r in rows if r[0].startswith("Ray"))
    same = remote.scheme_text == local.scheme_text and all(
        remote.measurements[c].accuracies == m.accuracies for c, m in local.measurements.items())
    print(f"\n### digits (the demo's search): {n} runs, {load()}\n")
    print("| executor | workers | runs | search wall time | per run | cluster start (not included) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, w, runs, t, s in rows:
        print(f"| {name} | {w} | {runs} | {t:.1f} s | {t / runs:.2f} s | {s} |")
    print(f"\nRay / local (summed over rounds): {t_ray / t_local:.3f}; same measurements and scheme: {same}")


def tiny_program(layers: int = 14, width: int = 8):
    import sparse_models as M

    net = M.Net((8, width), seed=0)
    for i in range(layers - 1):
        net.linear(f"fc{i}", width, width, act=True)
    net.linear("head", width, 3)
    return net.program()


def tiny_data(n, seed, width=8):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, width)).astype(np.float32)
    return x, ((x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64))


def overhead(workers: int) -> None:
    import json

    import pockengine
    from pockengine.search import Recipe

    ray, _ = start_ray(workers)
    try:
        noop = ray.remote(lambda: None).options(num_cpus=1)
        ray.get([noop.remote() for _ in range(workers)])  # workers are up
        start = time.perf_counter()
        ray.get([noop.remote() for _ in range(200)])
        empty = (time.perf_counter() - start) / 200
        program, train, val = tiny_program(4), tiny_data(64, 0), tiny_data(48, 1)
        recipe = Recipe(steps=10, lr=0.01)
        kw = {"recipe": recipe, "seeds": (0, 1, 2), "workers": workers, "progress": False, "verify": False}
        with tempfile.TemporaryDirectory() as d:  # build cache warm after this
            pockengine.search(program, train, val, None, cache_dir=d, **kw)
        times, inside = {}, {}
        for executor in ("local", "ray", "local", "ray"):
            with tempfile.TemporaryDirectory() as d:
                start = time.perf_counter()
                _, report = pockengine.search(program, train, val, None, cache_dir=d, executor=executor, **kw)
                times.setdefault(executor, []).append(time.perf_counter() - start)
                docs = [json.loads(f.read_text()) for f in Path(d).glob("*/compiler-*/*.json")]
                inside.setdefault(executor, []).append(sum(doc["seconds"] for doc in docs))
        runs = len(report.measurements) * 3
    finally:
        ray.shutdown()
    local, remote = min(times["local"]), min(times["ray"])
    # what each run costs beyond its own fine-tuning: worker time not spent in measure_one
    extra = {e: min(w * workers - s for w, s in zip(times[e], inside[e])) / runs for e in times}
    print(f"\n### per-task overhead ({workers} workers), {load()}\n")
    print("| what | time |")
    print("|---|---:|")
    print(f"| empty Ray task (200 submitted at once; wall time / 200) | {1e3 * empty:.2f} ms |")
    print(f"| tiny-model search, {runs} runs, build cache warm: local pool (best of 2) | {local:.2f} s |")
    print(f"| the same on Ray (best of 2) | {remote:.2f} s |")
    print(f"| Ray − local, per run, in worker time ((Ray − local) × workers / runs) | "
          f"{1e3 * (remote - local) / runs * workers:.0f} ms |")
    for e, name in (("local", "local pool"), ("ray", "Ray")):
        print(f"| {name}: per run beyond its fine-tuning (wall × workers / runs − mean run time; includes the "
              f"search's selection) | {1e3 * extra[e]:.0f} ms |")


def many(workers: int) -> None:
    import json

    import pockengine
    from pockengine.search import Recipe, Space, contribution, executor

    program, train, val = tiny_program(14), tiny_data(64, 0), tiny_data(48, 1)
    space = Space(program)
    cands = space.candidates(bias_ks=range(1, 12))
    assert len(cands) == 64, len(cands)
    recipe = Recipe(steps=10, lr=0.01)
    writes: dict[str, int] = {}
    real_write, real_slots = contribution._write_atomic, executor._RayRun._slots
    in_flight = {"max": 0}

    class Interrupt(Exception):
        pass

    def counting_write(path, doc, stop_after=None):
        writes[path.name] = writes.get(path.name, 0) + 1
        real_write(path, doc)
        if stop_after is not None and sum(writes.values()) >= stop_after:
            raise Interrupt

    def slots(self):
        n = real_slots(self)
        in_flight["max"] = max(in_flight["max"], n)
        return n

    saved = os.environ.get("POCKENGINE_CACHE")
    build = tempfile.TemporaryDirectory()
    os.environ["POCKENGINE_CACHE"] = build.name  # an empty build cache, before the workers start
    ray, _ = start_ray(workers)
    executor._RayRun._slots = slots
    kw = {"recipe": recipe, "bias_ks": range(1, 12), "progress": False, "verify": False, "executor": "ray"}
    rows = []
    try:
        with tempfile.TemporaryDirectory() as d:
            contribution._write_atomic = lambda p, doc: counting_write(p, doc, stop_after=30)
            start = time.perf_counter()
            try:
                pockengine.search(program, train, val, None, cache_dir=d, **kw)
            except Interrupt:
                pass
            rows.append(("interrupted after 30 results", sum(writes.values()), time.perf_counter() - start))
            contribution._write_atomic = counting_write
            for what in ("resumed", "run again (all cached)"):
                before = sum(writes.values())
                start = time.perf_counter()
                _, report = pockengine.search(program, train, val, None, cache_dir=d, **kw)
                rows.append((what, sum(writes.values()) - before, time.perf_counter() - start))
            files = list(Path(d).glob("*/compiler-*/*.json"))
            docs = [json.loads(f.read_text()) for f in files]
    finally:
        contribution._write_atomic, executor._RayRun._slots = real_write, real_slots
        ray.shutdown()
        build.cleanup()
        if saved is None:
            os.environ.pop("POCKENGINE_CACHE", None)
        else:
            os.environ["POCKENGINE_CACHE"] = saved
    pids = {doc["pid"] for doc in docs}
    edges = sorted([(doc["started_at"], 1) for doc in docs] + [(doc["started_at"] + doc["seconds"], -1) for doc in docs])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    print(f"\n### 64 candidates of a 14-layer MLP on {workers} Ray workers, {load()}\n")
    print("| phase | runs measured | wall time |")
    print("|---|---:|---:|")
    for what, n, t in rows:
        print(f"| {what} | {n} | {t:.1f} s |")
    once = all(v == 1 for v in writes.values())
    print(f"\nresult files: {len(files)}; each written once: {once}; measurements: {len(report.measurements)}; "
          f"tasks in flight (the driver's limit): {in_flight['max']}; most runs at once (from the workers' "
          f"clocks): {most} (cluster CPUs {workers}); worker processes: {len(pids)}; failed: {len(report.failed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("digits", "overhead", "many", "all"), default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="digits: rounds of (local, Ray), alternating order")
    args = parser.parse_args()
    for part in ("overhead", "many", "digits"):
        if args.part in (part, "all"):
            globals()[part](args.workers, *([args.rounds] if part == "digits" else []))


if __name__ == "__main__":
    main()
