"""The search on Ray (issue 18), against the local pool as the reference: the same measurements
and the same scheme for the same seeds, the shared cache (resume across executors, nothing
measured twice), a worker killed mid-candidate (retried, then reported failed), a candidate that
raises (an error naming it, not a hang). One local Ray cluster (2 CPUs, loopback) per module."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "passes"))
import pockengine
import sparse_models as M
from pockengine.search import Budget, Candidate, CandidateError, Recipe, Space, contribution, measure
from pockengine.search.executor import Job, run_jobs
from pockengine.search.finetune import plan_scheme

RECIPE = Recipe(steps=10, optimizer="adam", lr=0.01)
RATIOS = (Fraction(1, 2), Fraction(1))
SEEDS = (0, 1)


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


@pytest.fixture(scope="module")
def ray_cluster():
    # a private cluster on loopback (Ray reads this when imported), stopped at the end
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    ray = pytest.importorskip("ray", reason="the Ray tests need the extra: pip install 'pockengine[ray]'")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=2**27)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def task():
    program = M.mlp(batch=8)
    train, val = make_data(48, 0), make_data(40, 1)
    base = plan_scheme(program, Space(program).scheme(), RECIPE)
    return program, train, val, Budget(memory=base.memory + 2048)


@pytest.fixture(scope="module")
def local_run(task, tmp_path_factory):
    program, train, val, budget = task
    cache = tmp_path_factory.mktemp("local-cache")
    return pockengine.search(program, train, val, budget, recipe=RECIPE, ratios=RATIOS, seeds=SEEDS, cache_dir=cache,
                             progress=False, verify=False)


@pytest.fixture(scope="module")
def ray_run(task, ray_cluster, tmp_path_factory):
    program, train, val, budget = task
    cache = tmp_path_factory.mktemp("ray-cache")
    scheme, report = pockengine.search(program, train, val, budget, recipe=RECIPE, ratios=RATIOS, seeds=SEEDS,
                                       cache_dir=cache, progress=False, verify=False, executor="ray")
    return scheme, report, cache


def test_ray_measures_and_selects_what_the_local_pool_does(local_run, ray_run):
    (_, local), (_, remote, cache) = local_run, ray_run
    assert remote.scheme_text == local.scheme_text and remote.failed == []
    assert set(remote.measurements) == set(local.measurements)
    for c, m in local.measurements.items():
        r = remote.measurements[c]
        assert (r.accuracies, r.memory, r.backward_flops) == (m.accuracies, m.memory, m.backward_flops), c.key
    docs = [json.loads(f.read_text()) for f in Path(cache).glob("*/compiler-*/*.json")]
    assert len(docs) == len(local.measurements) * len(SEEDS)
    # measured in Ray's worker processes, each fetching the shipped program and data once
    pids = {d["pid"] for d in docs}
    assert os.getpid() not in pids and sum(d["fetched_shipment"] for d in docs) <= len(pids)


def test_the_cache_is_shared_resumed_across_executors_and_never_remeasured(task, ray_run, monkeypatch):
    program, train, val, _ = task
    _, remote, cache = ray_run
    space = Space(program)
    candidates = space.candidates(list(RATIOS))
    calls = []
    real = contribution.run_jobs
    monkeypatch.setattr(contribution, "run_jobs", lambda todo, *a, **k: (calls.append(todo), real(todo, *a, **k))[1])
    again = measure(program, space, candidates, train, val, RECIPE, SEEDS, cache_dir=cache, progress=False,
                    executor="ray")
    assert calls == [] and {c: m.accuracies for c, m in again.items()} == \
        {c: m.accuracies for c, m in remote.measurements.items()}
    # an interrupted Ray search (two results lost) resumes on the local pool: only those run
    lost = [next(Path(cache).glob(f"*/compiler-*/{key}-*-s1.json")) for key in ("bias-last1", "weight-L0-r1_2")]
    for f in lost:
        f.unlink()
    again = measure(program, space, candidates, train, val, RECIPE, SEEDS, cache_dir=cache, progress=False)
    assert sorted(job.name for job in calls[0]) == ["bias-last1-s1", "weight-L0-r1_2-s1"]
    assert {c: m.accuracies for c, m in again.items()} == {c: m.accuracies for c, m in remote.measurements.items()}


def _ray_processes(title: str) -> list[int]:
    """pids of Ray workers running the task named `title` (Ray sets the process title)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if argv0 == f"ray::{title}":
            out.append(int(pid))
    return out


def test_a_killed_worker_is_retried_then_reported_failed(task, ray_cluster, local_run, tmp_path):
    program, train, val, budget = task
    retried, doomed = "pockengine-search:weight-L1-r1_1-s0", "pockengine-search:weight-L0-r1_1-s0"
    kills = {retried: 0, doomed: 0}
    limit = {retried: 1, doomed: 2}  # retries=1: one kill is survived, two are not
    stop, killed = threading.Event(), set()

    def killer():  # SIGKILL the worker while it runs the candidate (each attempt is a new process)
        while not stop.is_set():
            for title, n in kills.items():
                for pid in _ray_processes(title) if n < limit[title] else ():
                    if pid not in killed:
                        killed.add(pid)
                        os.kill(pid, signal.SIGKILL)
                        kills[title] += 1
            time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        _, report = pockengine.search(program, train, val, budget, recipe=RECIPE, ratios=(Fraction(1),), seeds=(0,),
                                      cache_dir=tmp_path, progress=False, verify=False, executor="ray", retries=1)
    finally:
        stop.set()
        thread.join()
    assert kills == limit
    assert [(f.key, f.seed, f.attempts) for f in report.failed] == [("weight-L0-r1_1", 0, 2)]
    assert "weight-L0-r1_1 (seed 0)" in report.summary() and report.to_json()["failed"][0]["candidate"] == "weight-L0-r1_1"
    victim = Candidate("weight", layer=0, ratio=Fraction(1))
    assert victim not in report.measurements and victim not in report.chosen.items()
    # the retried run measured what the local pool measured (seed 0 of the same candidate)
    survivor = Candidate("weight", layer=1, ratio=Fraction(1))
    assert report.measurements[survivor].accuracies[0] == local_run[1].measurements[survivor].accuracies[0]
    # nothing is cached for the failed run: the next search measures it again
    assert not list(tmp_path.glob("*/compiler-*/weight-L0-r1_1-*.json"))


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_a_candidate_that_raises_is_an_error_naming_it(task, ray_cluster, executor, tmp_path):
    program, train, val, _ = task
    space = Space(program)
    program.save(tmp_path / "program")
    jobs = [Job("base", 0, space.scheme()), Job("weight-L7-r1_1", 0, "default frozen\nlayer 7: full\n")]
    done = []
    start = time.monotonic()
    with pytest.raises(CandidateError, match=r"candidate weight-L7-r1_1 \(seed 0\) failed: .*layer 7") as e:
        run_jobs(jobs, program, train, val, RECIPE, lambda job, doc: done.append(job), executor=executor,
                 program_dir=str(tmp_path / "program"), progress=False)
    assert time.monotonic() - start < 60 and e.value.job.key == "weight-L7-r1_1"


def test_cli_runs_on_the_cluster_at_address(task, ray_cluster, local_run, tmp_path):
    import subprocess

    program, train, val, budget = task
    program.save(tmp_path / "model")
    np.savez(tmp_path / "d.npz", x=train[0], y=train[1], x_val=val[0], y_val=val[1])
    address = ray_cluster.get_runtime_context().gcs_address
    pockengine_cli = Path(sys.executable).with_name("pockengine")
    r = subprocess.run([str(pockengine_cli), "search", str(tmp_path / "model"), "--data", str(tmp_path / "d.npz"),
                        "--budget-memory", f"{budget.memory}B", "--layers", "1", "--bias-ks", "1", "--ratios", "1",
                        "--steps", str(RECIPE.steps), "--lr", str(RECIPE.lr), "--seeds", "0,1",
                        "-o", str(tmp_path / "s.pock"), "--cache", str(tmp_path / "cache"),
                        "--executor", "ray", "--address", address], capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert "contribution analysis: 6/6 done, 0 running, 0 failed" in r.stderr and "\r" not in r.stderr
    docs = [json.loads(f.read_text()) for f in (tmp_path / "cache").glob("*/compiler-*/*.json")]
    assert sorted((d["candidate"], d["seed"]) for d in docs) == sorted(
        (k, s) for k in ("base", "bias-last1", "weight-L1-r1_1") for s in (0, 1))
    local = {(c.key, s): a for c, m in local_run[1].measurements.items() for s, a in zip(SEEDS, m.accuracies)}
    assert all(d["accuracy"] == local[d["candidate"], d["seed"]] for d in docs)
