"""Runs the FileCheck-style IR tests: every `tests/filecheck/**/*.mlir` file, one test per
`// RUN:` line, the way lit runs xDSL's and MLIR's tests.

    // RUN: pock-opt %s -p "canonicalize,cse" | filecheck %s
    // RUN: pock-opt %s --split-input-file --verify-diagnostics

`%s` is the file, `%t` a scratch path; a line ending in `\\` continues on the next RUN line;
`not CMD` succeeds when CMD fails (as lit's `not`, for checking error output).
Commands run under bash with pipefail from the repository root, with this interpreter's bin
directory first on PATH (so `pock-opt` and `filecheck` are the installed ones). A file without
RUN lines fails: it would test nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "tests" / "filecheck"


def run_lines(path: Path) -> list[str]:
    commands, pending = [], ""
    for m in re.finditer(r"^\s*//\s*RUN:(.*)$", path.read_text(), flags=re.MULTILINE):
        part = m.group(1).strip()
        if part.endswith("\\"):
            pending += part[:-1] + " "
            continue
        commands.append(pending + part)
        pending = ""
    return commands


CASES = [(f, i) for f in sorted(ROOT.rglob("*.mlir")) for i in range(max(1, len(run_lines(f))))]


@pytest.mark.parametrize("path, index", CASES, ids=[f"{f.relative_to(ROOT)}:{i}" for f, i in CASES])
def test_run_line(path: Path, index: int, tmp_path: Path):
    commands = run_lines(path)
    assert commands, f"{path}: no // RUN: line"
    command = commands[index].replace("%s", str(path)).replace("%t", str(tmp_path / "t"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    r = subprocess.run(
        ["bash", "-o", "pipefail", "-c", 'not() { ! "$@"; }; ' + command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, f"RUN: {command}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
