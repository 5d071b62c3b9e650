"""A toy-sized run of each experiment through the whole protocol (search, compiled rows, PyTorch
eager, timing, table and figure): compiled and eager full fine-tuning must agree step for step,
the searched scheme must fit its budget, each row's lr must be the grid's best on validation,
two processes sharing one output directory must do each job once, and a rerun must redo nothing.

Each run is the command itself in a fresh process (`python -m pockengine.experiments NAME --tiny`):
it sets one torch thread before any torch work, so the search's worker pool does not fork a
process whose OpenMP threads already run (a forked child of such a process can hang).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pockengine.experiments import data, protocol

REPO = Path(__file__).resolve().parents[2]


def _setup(name):
    from importlib import import_module

    mod = import_module(f"pockengine.experiments.{name}")
    try:
        if name == "sentiment":
            return mod.setup(mod.Config.tiny(), tiny_model=True)
        return mod.setup(mod.Config.tiny(), log=lambda m: None)
    except data.DataUnavailable as e:
        pytest.skip(str(e))


def _start(name, out):
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-m", "pockengine.experiments", name, "--tiny", "--seeds", "0",
                             "--timing-rounds", "1", "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO.parent)


def _wait(proc) -> str:
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def _command(name, out) -> str:
    return _wait(_start(name, out))


@pytest.mark.parametrize("name", ["sentiment", "images", "lm"])
def test_tiny_experiment(name, tmp_path):
    _setup(name)  # skips when the data are not installed
    if name == "lm":  # two processes share the directory: each job is done by one of them
        procs = [_start(name, tmp_path) for _ in range(2)]
        logs = "".join(_wait(p) for p in procs)
        meta = json.loads((tmp_path / "meta.json").read_text())
        for row in [*meta["rows"], protocol.EAGER_FULL]:
            assert logs.count(f"seed 0 {row} (lr") == 1, logs
        for row in meta["rows"]:
            for lr in meta["lr_grid"]:
                assert logs.count(f"lr {lr:g} {row}: validation") == 1, logs
    else:
        _command(name, tmp_path)
    got = protocol.collect(tmp_path)
    rows = got["rows"]
    assert set(rows) == set(got["meta"]["rows"]) | {protocol.EAGER_FULL}
    assert all(r["seeds"] == [0] for r in rows.values())
    # the compiled full step and PyTorch eager train the same model on the same batches
    res = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    c, e = res[protocol.slug(protocol.COMPILED_FULL) + "-s0"], res[protocol.slug(protocol.EAGER_FULL) + "-s0"]
    assert c["loss_first"] == pytest.approx(e["loss_first"], rel=1e-4)
    assert c["loss_last10"] == pytest.approx(e["loss_last10"], rel=2e-3)
    assert c["quality"] == pytest.approx(e["quality"], rel=2e-2)
    searched = next(r for k, r in rows.items() if k.startswith("searched"))
    assert 0 < searched["memory"] <= got["meta"]["info"]["budget"] < got["meta"]["full_memory"]
    assert set(got["timing"]) == set(got["meta"]["rows"])
    # each compiled row's lr is the grid's best on validation (ties: the smaller); eager uses full's
    lrs, grid = got["meta"]["lr"], got["meta"]["lr_grid"]
    for row in got["meta"]["rows"]:
        val = {lr: json.loads((tmp_path / "lr" / f"{protocol.slug(row)}-lr{lr:g}.json").read_text())["val"]
               for lr in grid}
        best = (max if searched["metric"] == "accuracy" else min)(val.values())
        assert lrs[row] == min(lr for lr, v in val.items() if v == best)
        assert rows[row]["lr"] == lrs[row]
    assert rows[protocol.EAGER_FULL]["lr"] == lrs[protocol.COMPILED_FULL]
    assert not list(tmp_path.rglob("*.claim"))
    if name == "lm":  # resumable: nothing is redone
        stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*.json")}
        _command(name, tmp_path)
        assert {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*.json")} == stamps
    text = (tmp_path / "table.md").read_text()
    assert all(row in text for row in rows) and (tmp_path / f"{name}.png").stat().st_size > 10_000
