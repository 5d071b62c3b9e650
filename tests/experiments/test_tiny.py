"""A toy-sized run of each experiment through the whole protocol (search, compiled rows, PyTorch
eager, timing, table and figure): compiled and eager full fine-tuning must agree step for step,
the searched scheme must fit its budget, and a second run must resume without redoing work."""

from __future__ import annotations

import json

import pytest
from pockengine.experiments import data, protocol, report


def _setup(name):
    from importlib import import_module

    mod = import_module(f"pockengine.experiments.{name}")
    try:
        if name == "sentiment":
            return mod.setup(mod.Config.tiny(), tiny_model=True)
        return mod.setup(mod.Config.tiny(), log=lambda m: None)
    except data.DataUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", ["sentiment", "images", "lm"])
def test_tiny_experiment(name, tmp_path):
    setup = _setup(name)
    got = protocol.run(setup, tmp_path, seeds=(0,), timing_rounds=1, log=lambda m: None)
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
    assert 0 < searched["memory"] <= setup.info["budget"] < got["meta"]["full_memory"]
    assert set(got["timing"]) == set(got["meta"]["rows"])
    # resumable: nothing is redone
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*.json")}
    protocol.run(setup, tmp_path, seeds=(0,), timing_rounds=1, log=lambda m: None)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "results").glob("*.json")} == stamps
    table, figure = report.write(name, tmp_path)
    text = table.read_text()
    assert all(row in text for row in rows) and figure.stat().st_size > 10_000
