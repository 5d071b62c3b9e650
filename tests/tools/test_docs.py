"""The docs keep their promises: the README opens with the two commands, and the code in the
README, docs/design.md and examples/pipeline.py runs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    lines = [line.strip() for line in README.splitlines() if line.strip()]
    assert lines[0] == "# pockengine"
    assert lines[1].startswith("make demo") and lines[2].startswith("make test")


def test_readme_pipeline_example_runs_and_prints_the_ir_after_each_pass(monkeypatch, capsys):
    # the README's pass-pipeline example (its quick start is tested in tests/demo/test_docs.py)
    (code,) = [c for c in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL) if "run_pipeline(" in c]
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(REPO)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "// after canonicalize\nbuiltin.module" in out and "// after cse\nbuiltin.module" in out
    assert out.rstrip().endswith("(8, 4)")


def test_design_doc_dialect_example_parses_verifies_and_runs():
    import numpy as np
    from pockengine import Program

    design = (REPO / "docs" / "design.md").read_text()
    example = re.findall(r"```mlir\n(.*?)```", design, flags=re.DOTALL)[0]
    program = Program.parse(example, name="design.md")
    program.weights = {
        p.sym_name.data: np.full(p.type.get_shape(), 0.1, np.float32) for p in program.params()
    }
    program.verify()
    y = program.run("forward", np.ones((4, 3, 16, 16), np.float32))
    # conv of ones (0.1 x 27 taps, fewer at the padded border) → relu6 → mean → linear: all finite, positive
    assert y.shape == (4, 10) and np.all(np.isfinite(y)) and np.all(y > 0.1)


def test_the_pipeline_example_keeps_the_numbers_and_prints_each_pass(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr("sys.argv", ["pipeline.py"])
    runpy.run_path(str(REPO / "examples" / "pipeline.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("// ===== after")] == [
        "// ===== after canonicalize",
        "// ===== after cse",
        "// ===== after dce",
    ]
    assert out.rstrip().endswith("max |difference| = 0.00e+00")
