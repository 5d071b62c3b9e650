"""The search end to end on a tiny model and budget: measurements through the compiled backend,
the disk cache (resume), the selection under the compiler's plan, the report and the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "passes"))
import pockengine
import sparse_models as M
from pockengine.passes.scheme import Scheme
from pockengine.search import Budget, Candidate, Recipe, Space, contribution, measure
from pockengine.search.finetune import finetune, plan_scheme

RECIPE = Recipe(steps=10, optimizer="adam", lr=0.01)
POCKENGINE = Path(sys.executable).with_name("pockengine")


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    program = M.mlp(batch=8)
    train, val = make_data(48, 0), make_data(40, 1)
    cache = tmp_path_factory.mktemp("search-cache")
    base = plan_scheme(program, Space(program).scheme(), RECIPE)
    budget = Budget(memory=base.memory + 2048)
    scheme, report = pockengine.search(program, train, val, budget, recipe=RECIPE, ratios=(Fraction(1, 2), 1),
                                       cache_dir=cache, progress=False)
    return SimpleNamespace(program=program, train=train, val=val, cache=cache, budget=budget, scheme=scheme,
                           report=report)


def test_measurements_are_real_fine_tuning_runs(setup):
    program, train, val, report = setup.program, setup.train, setup.val, setup.report
    ms = report.measurements
    # mlp: fc1, fc2 form the backbone; fc3 is the head (the base)
    assert sorted(c.key for c in ms) == ["base", "bias-last1", "bias-last2", "weight-L0-r1_1", "weight-L0-r1_2",
                                         "weight-L1-r1_1", "weight-L1-r1_2"]
    space = Space(program)
    for c in (Candidate("base"), Candidate("weight", layer=1, ratio=Fraction(1, 2))):
        again = finetune(program, space.candidate_scheme(c), train, [val], RECIPE, seed=0)
        assert ms[c].accuracy == again.accuracies[0]  # same seeded run, in this process
        assert (ms[c].memory, ms[c].backward_flops) == (again.memory, again.backward_flops)
    base = ms[Candidate("base")]
    for m in ms.values():
        assert m.gain == pytest.approx(m.accuracy - base.accuracy)
        planned = plan_scheme(program, space.candidate_scheme(m.candidate), RECIPE)
        assert (m.memory, m.backward_flops) == (planned.memory, planned.backward_flops)
    # deeper updates plan more backward work than the head alone
    assert ms[Candidate("weight", layer=0, ratio=Fraction(1))].backward_flops > base.backward_flops


def test_the_chosen_scheme_fits_the_budget_by_the_compilers_plan(setup):
    program, budget, scheme, report = setup.program, setup.budget, setup.scheme, setup.report
    assert isinstance(scheme, Scheme) and scheme.to_text().startswith("default frozen")
    replanned = plan_scheme(program, report.scheme_text, RECIPE)
    assert replanned.memory == report.chosen.plan.memory and budget.fits(replanned)
    best_single = max(m.gain for m in report.measurements.values())
    assert report.chosen.value >= min(best_single, 0) - 1e-12
    assert report.chosen.value == pytest.approx(sum(report.measurements[c].gain for c in report.chosen.items()))
    assert report.chosen_accuracy is not None and 0 <= report.chosen_accuracy <= 1


def test_an_interrupted_search_resumes_from_the_cache(setup, monkeypatch):
    program, train, val, cache, report = setup.program, setup.train, setup.val, setup.cache, setup.report
    space = Space(program)
    cands = space.candidates([Fraction(1, 2), Fraction(1)])
    calls = []
    real = contribution.run_jobs
    monkeypatch.setattr(contribution, "run_jobs", lambda todo, *a, **k: (calls.append(todo), real(todo, *a, **k))[1])
    again = measure(program, space, cands, train, val, RECIPE, cache_dir=cache, progress=False)
    assert calls == [] and {c: m.accuracy for c, m in again.items()} == \
        {c: m.accuracy for c, m in report.measurements.items()}
    # lose one result (an interruption): only that one runs again, to the same number
    victim = next(Path(cache).glob("*/compiler-*/weight-L1-r1_2-*.json"))
    victim.unlink()
    again = measure(program, space, cands, train, val, RECIPE, cache_dir=cache, workers=1, progress=False)
    assert [[job.key for job in todo] for todo in calls] == [["weight-L1-r1_2"]]
    c = Candidate("weight", layer=1, ratio=Fraction(1, 2))
    assert again[c].accuracy == report.measurements[c].accuracy and victim.is_file()


def test_report_table_json_and_figure(setup, tmp_path):
    report = setup.report
    out = report.save(tmp_path / "r")
    table = (out / "report.md").read_text()
    assert table.count("\n| ") >= len(report.measurements) + 1 and "(chosen)" in table
    doc = json.loads((out / "report.json").read_text())
    assert len(doc["measurements"]) == len(report.measurements) and doc["scheme"] == report.scheme_text
    png = (out / "search.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_the_figure_has_one_y_axis_per_plot_and_no_legend_over_a_point(setup):
    import matplotlib.pyplot as plt

    fig = setup.report.build_figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    assert len(axes) == 3 and len({tuple(ax.get_position().bounds) for ax in axes}) == 3  # no twinx
    legends = [ax.get_legend().get_window_extent(renderer) for ax in axes if ax.get_legend()]
    assert len(legends) == 3
    points = []  # every drawn point, in display coordinates
    for ax in axes:
        for coll in ax.collections:
            points += list(ax.transData.transform(coll.get_offsets()))
        for line in ax.lines:
            points += list(line.get_transform().transform(line.get_xydata()))
        assert not any(legend.overlaps(ax.get_window_extent(renderer)) for legend in legends)
    chosen = [c for ax in axes for c in ax.collections if c.get_label().startswith("chosen")]
    assert len(chosen) == 2 and points
    assert not any(legend.contains(x, y) for legend in legends for x, y in points)
    plt.close(fig)


def run_cli(*args):
    return subprocess.run([str(POCKENGINE), "search", *map(str, args)], capture_output=True, text=True, timeout=600,
                          check=False)


def test_cli_writes_the_scheme_and_reuses_the_cache(setup, tmp_path):
    program, train, val, cache, budget, report = (setup.program, setup.train, setup.val, setup.cache, setup.budget,
                                                  setup.report)
    program.save(tmp_path / "model")
    np.savez(tmp_path / "d.npz", x_train=train[0], y_train=train[1], x_val=val[0], y_val=val[1])
    r = run_cli(tmp_path / "model", "--data", tmp_path / "d.npz", "--budget-memory", f"{budget.memory}B",
                "--ratios", "1/2,1", "--steps", RECIPE.steps, "--optimizer", "adam", "--lr", RECIPE.lr,
                "-o", tmp_path / "s.pock", "--report", tmp_path / "rep", "--cache", cache, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.pock").read_text() == report.scheme_text
    assert (tmp_path / "rep" / "search.png").is_file() and "chosen:" in r.stdout


def test_cli_needs_neither_tqdm_nor_matplotlib_and_logs_no_carriage_returns(setup, tmp_path):
    """Without the optional packages the search runs (its progress needs neither); the figure
    is skipped with a warning naming the extra, and a log (stderr not a terminal) gets lines."""
    program, train, val, cache, budget = setup.program, setup.train, setup.val, setup.cache, setup.budget
    program.save(tmp_path / "model")
    np.savez(tmp_path / "d.npz", x=train[0], y=train[1], x_val=val[0], y_val=val[1])
    code = ("import sys; sys.modules['tqdm'] = sys.modules['matplotlib'] = None; "
            "from pockengine.tools.driver import main; sys.exit(main(sys.argv[1:]))")
    victims = list(Path(cache).glob("*/compiler-*/bias-last1-*.json"))
    for victim in victims:
        victim.unlink()  # a run to measure: the progress line has something to say
    r = subprocess.run([sys.executable, "-c", code, "search", str(tmp_path / "model"), "--data", str(tmp_path / "d.npz"),
                        "--budget-memory", f"{budget.memory}B", "--ratios", "1/2,1", "--steps", str(RECIPE.steps),
                        "--lr", str(RECIPE.lr), "-o", str(tmp_path / "s.pock"), "--report", str(tmp_path / "rep"),
                        "--cache", str(cache), "--workers", "1"], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.pock").read_text() == setup.report.scheme_text
    assert list(Path(cache).glob(f"*/compiler-*/{victims[0].name}"))  # measured again
    assert (tmp_path / "rep" / "report.md").is_file() and not (tmp_path / "rep" / "search.png").exists()
    assert "search.png needs matplotlib" in r.stderr and "pip install 'pockengine[" in r.stderr
    assert "\r" not in r.stderr
    assert re.search(r"^contribution analysis: (\d+)/\1 done, 0 running, 0 failed, .* s/run", r.stderr, re.MULTILINE)


def test_cli_executor_ray_without_ray_names_the_extra(setup, tmp_path):
    setup.program.save(tmp_path / "model")
    code = ("import sys; sys.modules['ray'] = None; "
            "from pockengine.tools.driver import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "search", str(tmp_path / "model"), "--data", "d.npz",
                        "-o", str(tmp_path / "s.pock"), "--executor", "ray"], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("pockengine search: error: executor 'ray' needs Ray, which is not installed: "
                                "pip install 'pockengine[ray]'")


@pytest.mark.parametrize("args, message", [
    (["missing_dir", "--data", "d.npz", "-o", "s.pock"], "not a program directory"),
    (["MODEL", "--data", "nope.npz", "-o", "s.pock"], "nope.npz: no such data file"),
    (["MODEL", "--data", "bad.npz", "-o", "s.pock"], "missing arrays x_val, y_val"),
    (["MODEL", "--data", "d.npz", "--budget-memory", "lots", "-o", "s.pock"], "bad memory 'lots'"),
    (["MODEL", "--data", "d.npz", "--ratios", "3/2", "-o", "s.pock"], "must be in (0, 1]"),
    (["MODEL", "--data", "d.npz", "--budget-memory", "10B", "-o", "s.pock"], "below what training the base"),
    (["MODEL", "--data", "d.npz", "--base", "nothing_here: full", "-o", "s.pock"], "matches no parameter"),
])
def test_cli_bad_input_is_one_line_and_exit_2(setup, tmp_path, args, message):
    program, train, val, cache = setup.program, setup.train, setup.val, setup.cache
    program.save(tmp_path / "MODEL")
    np.savez(tmp_path / "d.npz", x_train=train[0], y_train=train[1], x_val=val[0], y_val=val[1])
    np.savez(tmp_path / "bad.npz", x_train=train[0], y_train=train[1])
    args = [str(tmp_path / a) if a in ("MODEL", "d.npz", "bad.npz", "nope.npz", "missing_dir") else a for a in args]
    r = run_cli(*args, "--cache", cache, "--no-progress", "--steps", RECIPE.steps, "--lr", RECIPE.lr,
                "--ratios" if "--ratios" not in args else "--seeds", "1/2,1" if "--ratios" not in args else "0")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_pockengine_search_is_callable_from_the_root():
    import pockengine.search as module

    assert callable(pockengine.search) and callable(module) and pockengine.search is module


def _forked_children() -> list[int]:
    """This process's forked children (the pool's workers share its command line)."""
    me, mine = os.getpid(), Path("/proc/self/cmdline").read_bytes()
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == me and Path(f"/proc/{pid}/cmdline").read_bytes() == mine:
                out.append(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    return out


def test_a_killed_local_worker_is_retried(setup, tmp_path):
    """The local pool breaks when a worker dies: the jobs it ran are charged an attempt and the
    pool starts again; the search completes with the same numbers."""
    program, train, val, report = setup.program, setup.train, setup.val, setup.report
    space = Space(program)
    killed, stop = [], threading.Event()

    def killer():
        while not stop.is_set() and not killed:
            for pid in _forked_children():
                time.sleep(0.1)  # mid-candidate (or still loading: retried the same way)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:  # it finished first: kill the next worker
                    continue
                killed.append(pid)
                break
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        again = measure(program, space, space.candidates([Fraction(1, 2), Fraction(1)]), train, val, RECIPE,
                        cache_dir=tmp_path, workers=1, progress=False)
    finally:
        stop.set()
        thread.join()
    assert len(killed) == 1 and again.failed == []
    assert {c: m.accuracy for c, m in again.items()} == {c: m.accuracy for c, m in report.measurements.items()}


def _build_in_child(cache: str, barrier, out) -> None:
    os.environ["POCKENGINE_CACHE"] = cache
    program, train = M.mlp(batch=8), make_data(48, 0)
    scheme = Space(program).scheme(weights={1: Fraction(1)})
    barrier.wait()  # both processes build the same key at the same moment
    run = finetune(program, scheme, train, [train], RECIPE, seed=0)
    out.put((run.losses, run.accuracies))


def test_workers_on_one_machine_share_the_build_cache_safely(tmp_path):
    """What two search workers (local or Ray) on one node do at a search's start: build the same
    library into an empty cache at once. Both get a whole library and the same numbers; one
    cache entry is kept and no temporary folder is left behind."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(str(tmp_path), barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0] == results[1] and all(np.isfinite(results[0][0]))
    libraries = list(tmp_path.glob("*/libmodel.so"))
    assert len(libraries) == 1 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
