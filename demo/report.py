"""The demo's closing table and figures (matplotlib, Agg: no display needed).

Each run is a `Result`: its name, losses per step, seconds per step, a quality number
(accuracy or held-out loss) and its training memory by category.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# memory categories drawn as stacked bars, in this order; anything else is "other"
CATEGORIES = ("saved_activations", "gradients", "optimizer_state", "workspace")
LABELS = {"saved_activations": "saved activations", "gradients": "gradients",
          "optimizer_state": "optimizer state", "workspace": "other temporaries, workspace"}


@dataclass
class Result:
    name: str
    losses: list[float]
    seconds: list[float]
    quality: float  # accuracy (fraction) or a held-out loss
    memory: dict[str, int] = field(default_factory=dict)  # bytes; "training_extra" is the total
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out metric) along the way

    @property
    def ms_per_step(self) -> float:
        # the median: the first steps pay for caches and the machine is shared
        return 1000 * statistics.median(self.seconds) if self.seconds else float("nan")

    def breakdown(self) -> dict[str, int]:
        """Training memory by category, summing to `training_extra` (planned: the arena's slack
        over the categories at its peak counts as workspace)."""
        parts = {c: int(self.memory.get(c, 0)) for c in CATEGORIES}
        parts["workspace"] += int(self.memory.get("activations", 0))
        rest = int(self.memory.get("training_extra", 0)) - sum(parts.values())
        parts["workspace"] += max(rest, 0)
        return parts


def kib(n: float) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 10 * 2**20 else f"{n / 2**20:,.1f} MiB"


def table(results: list[Result], quality: str = "accuracy", baseline: str | None = None) -> str:
    """A fixed-width table; speed-up and memory ratio against `baseline` (a result name)."""
    base = next((r for r in results if r.name == baseline), None)
    head = ["", quality, "ms/step", "training memory"] + (["speed-up", "memory"] if base else [])
    rows = []
    for r in results:
        q = f"{100 * r.quality:.1f}%" if quality == "accuracy" else f"{r.quality:.3f}"
        row = [r.name, q, f"{r.ms_per_step:.2f}", kib(r.memory.get("training_extra", 0))]
        if base:
            row += [f"{base.ms_per_step / r.ms_per_step:.1f}x",
                    f"{r.memory.get('training_extra', 0) / max(base.memory.get('training_extra', 1), 1):.2f}x"]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    line = "-" * len(fmt(head))
    return "\n".join([fmt(head), line, *(fmt(r) for r in rows)])


def smooth(values: list[float]) -> np.ndarray:
    """Running mean over the last ~5% of the steps (at least 1): batch noise hides the trend."""
    v = np.asarray(values, np.float64)
    w = max(1, len(v) // 20)
    c = np.cumsum(np.concatenate([[0.0], v]))
    i = np.arange(1, len(v) + 1)
    return (c[i] - c[np.maximum(i - w, 0)]) / (i - np.maximum(i - w, 0))


def figures(results: list[Result], out_dir: Path, title: str, prefix: str = "",
            eval_label: str = "held-out loss") -> list[Path]:
    """`{prefix}loss.png` (loss per step, one line per run; beside it the held-out metric of runs
    that measured one along the way) and `{prefix}memory.png` (stacked bars of training memory
    by category)."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        from pockengine.errors import UserError

        raise UserError("the demo's figures need matplotlib, which is not installed: "
                        "pip install 'pockengine[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{prefix}loss.png", out_dir / f"{prefix}memory.png"]

    with_evals = any(r.evals for r in results)
    fig, axes = plt.subplots(1, 2 if with_evals else 1, figsize=(12 if with_evals else 7, 4), squeeze=False)
    ax = axes[0][0]
    for r in results:
        steps = np.arange(1, len(r.losses) + 1)
        style = "--" if r.name.startswith("PyTorch") else "-"  # dashed over solid: equal runs show
        (line,) = ax.plot(steps, r.losses, style, linewidth=0.8, alpha=0.35)
        ax.plot(steps, smooth(r.losses), style, color=line.get_color(), label=r.name, linewidth=1.6)
        if r.evals:
            axes[0][1].plot(*zip(*r.evals), style + "o", color=line.get_color(), label=r.name, markersize=3)
    ax.set(xlabel="fine-tuning step", ylabel="training loss (faint: per step; solid: running mean)",
           title=f"{title}: training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    for a in axes[0]:  # steps are whole numbers: no 2.5-step ticks on short runs
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    if with_evals:
        axes[0][1].set(xlabel="fine-tuning step", ylabel=eval_label, title=f"{title}: {eval_label}")
        axes[0][1].grid(alpha=0.3)
        axes[0][1].legend()
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r.name for r in results]
    bottom = [0.0] * len(results)
    for cat in CATEGORIES:
        vals = [r.breakdown()[cat] / 1024 for r in results]
        ax.bar(names, vals, bottom=bottom, label=LABELS[cat])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(ylabel="KiB beyond weights and inputs", title=f"{title}: training memory")
    ax.legend()
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths
