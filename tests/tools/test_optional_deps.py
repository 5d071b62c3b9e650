"""Core commands need only the core dependencies; optional parts name the extra to install
(issue 12: `pockengine search` failed with ModuleNotFoundError for tqdm even with --no-progress).
Core: xdsl, numpy, lark, safetensors (pyproject's dependencies). Optional: tqdm (the demo's
bars: without it the demo prints its result lines only), matplotlib (figures: the `plot` extra)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_the_plot_extra_exists_and_core_needs_neither():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("matplotlib") for d in meta["optional-dependencies"]["plot"])
    core = " ".join(meta["dependencies"])
    assert "tqdm" not in core and "matplotlib" not in core


def test_demo_steps_work_without_tqdm():
    r = _run("import sys; sys.modules['tqdm'] = None\n"
             "from pockengine.demo.steps import Steps\n"
             "import io; out = io.StringIO(); s = Steps(1, out=out)\n"
             "with s.step('work', total=3) as bar:\n"
             "    bar.update(); bar.set_postfix(loss=1.0); bar.set_postfix_str('x'); bar.result = 'done'\n"
             "print(out.getvalue().strip())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[1/1] work ... done")


def test_demo_figures_without_matplotlib_name_the_extra(tmp_path):
    r = _run("import sys; sys.modules['matplotlib'] = None\n"
             "from pathlib import Path\n"
             "from pockengine.demo.report import Result, figures\n"
             "from pockengine.errors import UserError\n"
             "try:\n"
             f"    figures([Result('a', [1.0, 0.5], [0.1, 0.1], 0.5)], Path({str(tmp_path)!r}), 't')\n"
             "except UserError as e:\n"
             "    print(e)\n")
    assert r.returncode == 0, r.stderr
    assert "pip install 'pockengine[plot]'" in r.stdout


def test_loss_figures_get_whole_step_ticks(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pockengine.demo import report

    seen = []
    real_close = plt.close

    def keep(fig=None):  # look at the axes before the figure is closed
        if fig is not None and hasattr(fig, "axes"):
            seen.append([getattr(ax.xaxis.get_major_locator(), "_integer", False) for ax in fig.axes])
        real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    report.figures([report.Result("a", [1.0, 0.5, 0.4], [0.1] * 3, 0.5)], tmp_path, "t")
    assert seen and seen[0] == [True]  # the loss plot's step axis: integer ticks only
