"""The README's shell walk-through runs as written (issue 12: no example `model.py:factory`
shipped, and `train`/`search` read different .npz layouts). Each command of the README block is
run in a fresh directory, with only the sizes made tiny (search's candidates and steps, train's
steps)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = {  # appended to each command: the README's sizes are for a user, these for a test
    "search": ["--steps", "2", "--ratios", "1", "--bias-ks", "1", "--layers", "3", "--workers", "1",
               "--no-progress"],
    "train": ["--steps", "5"],
}


def readme_walkthrough() -> list[list[str]]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("python examples/model.py"))
    cmds = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        words = shlex.split(line, comments=True)
        if words and words[:2] != ["pockengine", "demo"]:
            cmds.append(words)
    return cmds


def test_the_walkthrough_is_the_documented_sequence():
    cmds = readme_walkthrough()
    assert [c[:2] for c in cmds] == [["python", "examples/model.py"], ["pockengine", "import"],
                                     ["pockengine", "search"], ["pockengine", "compile"], ["pockengine", "train"]]
    data = {c[c.index("--data") + 1] for c in cmds if "--data" in c}
    assert data == {"d.npz"}, "train and search read the same file: one format"


def test_readme_shell_walkthrough_runs_as_written(tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples")  # the commands name examples/ from the repo root
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # the usual build cache
    outputs = []
    for cmd in readme_walkthrough():
        argv = [sys.executable if cmd[0] == "python" else str(BIN / cmd[0]), *cmd[1:]]
        argv += TINY.get(cmd[1], []) + (["--cache", str(tmp_path / "measured")] if cmd[1] == "search" else [])
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, f"{shlex.join(cmd)}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
        outputs.append(r)
    with np.load(tmp_path / "d.npz") as d:
        assert {"x", "y", "x_val", "y_val"} <= set(d.files)
    assert (tmp_path / "scheme.pock").read_text().startswith("#")
    assert (tmp_path / "build" / "layout.json").is_file()
    assert {p.name for p in (tmp_path / "finetuned").iterdir()} >= {"model.mlir", "weights.safetensors"}
    train = outputs[-1]
    losses = [float(line.split()[-1]) for line in train.stdout.splitlines() if line.startswith("step ")]
    assert len(losses) == 5 and all(np.isfinite(losses))
    # the timing line comes after the step lines (stdout is flushed before it is written)
    assert train.stderr.strip().endswith("ms/step")


@pytest.mark.parametrize("ref", ["examples/model.py:factory"])
def test_the_example_factory_returns_module_and_args(ref):
    from pockengine.frontends import _call_factory

    module, args = _call_factory(str(REPO / ref))
    assert isinstance(args, tuple) and tuple(args[0].shape) == (16, 1, 8, 8)
    assert tuple(module(*args).shape) == (16, 4)
