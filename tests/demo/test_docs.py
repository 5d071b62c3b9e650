"""The researcher docs keep their promises: the generated pass reference is current, and the
tutorial's scripts, the README's quick start and the commands in docs/experiments.md run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_passes_md_is_generated_from_the_current_registry():
    res = subprocess.run([sys.executable, str(DOCS / "gen_passes.py"), "--check"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    from pockengine.pipeline import get_all_passes  # passes/ and the backend passes

    text = (DOCS / "passes.md").read_text()
    assert all(f"\n## {name}\n" in text for name in get_all_passes())


def test_tutorial_pipeline_script_and_new_pass_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = python_blocks(DOCS / "tutorial.md")
    assert len(blocks) == 2
    for code in blocks:  # part 2 continues part 1's script
        exec(compile(code, "tutorial.md", "exec"), namespace)  # noqa: S102 (the docs are the test)
    out = capsys.readouterr().out
    passes = re.findall(r"^after (\S+)\s+@train_step: +(\d+) ops, +([\d,]+) backward FLOPs", out, flags=re.MULTILINE)
    assert [p[0] for p in passes] == ["autodiff", "sparse-backprop", "dead-gradient-elimination",
                                      "operator-reordering", "fusion"]
    flops = {name: int(f.replace(",", "")) for name, _, f in passes}
    assert flops["dead-gradient-elimination"] < flops["sparse-backprop"] / 10  # the pruning the text shows
    assert sorted(p.name for p in (tmp_path / "tutorial_ir").iterdir()) == sorted(f"{p[0]}.mlir" for p in passes)
    steps = re.findall(r"^step \d: C (\S+)  interpreter (\S+)$", out, flags=re.MULTILINE)
    assert len(steps) == 3 and all(abs(float(c) - float(i)) < 1e-4 for c, i in steps)
    assert "updated: [" in out

    # the tutorial's pock-opt command, on the files the script wrote
    (cmd,) = [line.strip() for line in (DOCS / "tutorial.md").read_text().splitlines()
              if line.startswith("    pock-opt ")]
    from pockengine.tools.pock_opt import main

    argv = shlex.split(cmd)[1:]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "func.func @train_step" in captured.out and "@train_step:" in captured.err


def test_readme_quick_start_trains_in_c(tmp_path, monkeypatch, capsys):
    readme = REPO / "README.md"
    (code,) = [c for c in python_blocks(readme) if "pockengine.compile(" in c]
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 (the docs are the test)
    out = capsys.readouterr().out
    losses = [float(v) for v in re.findall(r"^step \d: loss (\S+)$", out, flags=re.MULTILINE)]
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert "'training_extra'" in out and (tmp_path / "finetuned" / "weights.safetensors").is_file()


def _documented_commands() -> list[list[str]]:
    cmds = []
    for doc in (DOCS / "experiments.md", REPO / "README.md"):
        for line in doc.read_text().splitlines():
            text = line.strip().split("  #")[0].strip()
            if line.startswith("    ") and text.startswith(("pockengine ", "python -m pockengine", "python benchmarks/")):
                cmds.append(shlex.split(text))
    return cmds


@pytest.mark.parametrize("argv", _documented_commands(), ids=lambda a: " ".join(a[:3]))
def test_documented_commands_exist_and_parse(argv):
    """Every `pockengine ...`, `python -m pockengine...` and `python benchmarks/...` line in the
    docs names a real command whose options parse (the commands take minutes; this checks the
    wiring)."""
    from pockengine.tools.driver import COMMANDS, build_parser

    if argv[0] == "python":  # a module or script: its argument parser answers --help
        target = ["-m", argv[2]] if argv[1] == "-m" else [argv[1]]
        res = subprocess.run([sys.executable, *target, "--help"], capture_output=True, text=True, cwd=REPO, check=False)
        assert res.returncode == 0, res.stderr
        return
    sub = argv[1]
    assert sub in COMMANDS, f"`pockengine {sub}` is not a command ({', '.join(COMMANDS)})"
    args = [a for a in argv[1:] if a != "[--llm]"]
    parsed = build_parser(args).parse_args(args)
    assert parsed.command == sub
