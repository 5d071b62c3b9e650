"""The search report: what was measured, what was chosen, as a table, JSON and a figure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .contribution import Candidate, Measurement, ratio_text
from .select import Budget, Choice, fmt_bytes, fmt_count

PLOT_EXTRA = "pip install 'pockengine[plot]'"


class MissingExtra(UserError):
    """An optional part needs a package that is not installed; the message names the extra."""


@dataclass
class Report:
    budget: Budget
    layer_names: dict[int, str]
    frozen_accuracy: float  # the program as given, no training
    measurements: dict[Candidate, Measurement]
    chosen: Choice
    planned: list[Choice] = field(default_factory=list)  # every combination the compiler planned
    scheme_text: str = ""
    chosen_accuracy: float | None = None  # the chosen scheme fine-tuned for real (validation data)
    recipe: dict = field(default_factory=dict)
    backbone: list[int] = field(default_factory=list)  # layer indices a bias depth k counts back over
    failed: list = field(default_factory=list)  # executor.Failed: runs given up on, left out of the selection

    @property
    def base(self) -> Measurement:
        return self.measurements[Candidate("base")]

    def describe(self, c: Candidate) -> str:
        if c.kind == "bias":
            return f"biases of the last {c.k} backbone layers"
        if c.kind == "weight":
            return f"layer {c.layer} ({self.layer_names.get(c.layer, '?')}) weight, ratio {ratio_text(c.ratio)}"
        return "base (head only)"

    # --- text ---------------------------------------------------------------------------
    def table(self) -> str:
        """Markdown: every candidate's measured accuracy, gain and compiler-planned costs."""
        rows = ["| candidate | val accuracy | gain (points) | planned memory | backward FLOPs |",
                "|---|---:|---:|---:|---:|"]
        chosen = set(self.chosen.items())
        order = sorted(self.measurements.values(),
                       key=lambda m: ({"base": 0, "bias": 1, "weight": 2}[m.candidate.kind], m.candidate))
        for m in order:
            mark = " **(chosen)**" if m.candidate in chosen else ""
            rows.append(f"| {self.describe(m.candidate)}{mark} | {100 * m.accuracy:.1f}% | "
                        f"{100 * m.gain:+.1f} | {fmt_bytes(m.memory)} | {fmt_count(m.backward_flops)} |")
        return "\n".join(rows)

    def summary(self) -> str:
        c = self.chosen
        weights = ", ".join(f"layer {i} @ {ratio_text(r)}" for i, r in sorted(c.weights.items())) or "none"
        parts = [f"budget: {self.budget}",
                 f"frozen model: {100 * self.frozen_accuracy:.1f}%   base (head only): {100 * self.base.accuracy:.1f}%",
                 f"chosen: bias of the last {c.k} backbone layers; weights {weights}",
                 (f"  summed measured gain {100 * c.value:+.1f} points; planned memory {fmt_bytes(c.plan.memory)}, "
                 f"backward FLOPs {fmt_count(c.plan.backward_flops)}")]
        if self.chosen_accuracy is not None:
            parts.append(f"  fine-tuned for real: {100 * self.chosen_accuracy:.1f}% on the validation data")
        if self.failed:
            parts.append(f"failed, not measured (left out of the selection): {len(self.failed)} run(s)")
            parts += [f"  {f}" for f in self.failed]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.summary() + "\n\n" + self.table()

    def to_json(self) -> dict:
        def m_doc(m: Measurement) -> dict:
            return {"candidate": m.candidate.key, "accuracy": m.accuracy, "accuracies": list(m.accuracies),
                    "gain": m.gain, "memory": m.memory, "backward_flops": m.backward_flops}

        def c_doc(c: Choice) -> dict:
            return {"bias_last_k": c.k, "weights": {str(i): ratio_text(r) for i, r in sorted(c.weights.items())},
                    "value": c.value, "memory": c.plan.memory if c.plan else None,
                    "backward_flops": c.plan.backward_flops if c.plan else None}

        return {"budget": {"memory": self.budget.memory, "flops": self.budget.flops},
                "frozen_accuracy": self.frozen_accuracy, "recipe": self.recipe,
                "measurements": [m_doc(m) for m in self.measurements.values()],
                "chosen": c_doc(self.chosen) | {"accuracy": self.chosen_accuracy},
                "planned": [c_doc(c) for c in self.planned], "scheme": self.scheme_text,
                "failed": [{"candidate": f.key, "seed": f.seed, "attempts": f.attempts, "reason": f.reason}
                           for f in self.failed],
                "layers": {str(i): n for i, n in self.layer_names.items()}}

    def save(self, directory, figure: bool = True) -> Path:
        """report.md, report.json and (with `figure`) search.png in `directory`. The text files
        are written first: without matplotlib they are there when `figure` raises MissingExtra."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "report.md").write_text(f"```\n{self.summary()}\n```\n\n{self.table()}\n\n```\n{self.scheme_text}```\n")
        (d / "report.json").write_text(json.dumps(self.to_json(), indent=1))
        if figure:
            self.figure(d / "search.png")
        return d

    # --- figure -----------------------------------------------------------------------------
    def figure(self, path) -> None:
        """search.png: see `build_figure`. Needs matplotlib (MissingExtra names the extra)."""
        fig = self.build_figure()
        import matplotlib.pyplot as plt

        fig.savefig(path, dpi=110)
        plt.close(fig)

    def build_figure(self):
        """Three panels, one y-axis each, every legend below its panel (never over a point):
        the contribution per layer (weight gains by ratio, bias gains by depth); validation
        accuracy vs planned memory of every candidate, the budget and the chosen scheme
        (fine-tuned); the summed measured gain vs planned memory of each combination the
        compiler planned, the budget and the chosen one."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise MissingExtra(f"search.png needs matplotlib, which is not installed: {PLOT_EXTRA}") from None

        fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 5), layout="constrained")
        below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.14), "ncol": 2, "fontsize": 7, "frameon": False}
        weights = [m for m in self.measurements.values() if m.candidate.kind == "weight"]
        ratios = sorted({m.candidate.ratio for m in weights})
        layers = sorted({m.candidate.layer for m in weights})
        width = 0.8 / max(len(ratios), 1)
        for j, r in enumerate(ratios):
            xs = [layers.index(m.candidate.layer) + (j - (len(ratios) - 1) / 2) * width
                  for m in weights if m.candidate.ratio == r]
            ys = [100 * m.gain for m in weights if m.candidate.ratio == r]
            ax1.bar(xs, ys, width, label=f"weight, ratio {ratio_text(r)}")
        bias = sorted((m for m in self.measurements.values() if m.candidate.kind == "bias"),
                      key=lambda m: m.candidate.k)
        if bias and layers:
            # bias of the last k layers, drawn at the first layer it reaches
            first = [min(range(len(layers)), key=lambda i: abs(layers[i] - self._first_bias_layer(m.candidate.k)))
                     for m in bias]
            ax1.plot(first, [100 * m.gain for m in bias], "k.-", label="biases of layers x.. (the last k)")
        ax1.axhline(0, color="grey", lw=0.5)
        ax1.set_xticks(range(len(layers)), [str(i) for i in layers])
        ax1.set_xlabel("layer")
        ax1.set_ylabel("accuracy gain over the base (points)")
        ax1.set_title("contribution per layer (measured)")

        # memory in MB, or kB for small models
        sizes = [m.memory for m in self.measurements.values()] + [self.budget.memory or 0]
        scale, unit = (1e6, "MB") if max(sizes, default=0) >= 1e6 else (1e3, "kB")
        kinds = {"base": ("s", "black"), "bias": ("^", "tab:green"), "weight": ("o", "tab:blue")}
        for kind, (marker, color) in kinds.items():
            ms = [m for m in self.measurements.values() if m.candidate.kind == kind]
            if ms:
                ax2.scatter([m.memory / scale for m in ms], [100 * m.accuracy for m in ms], marker=marker, c=color,
                            s=18, label=f"candidate: {kind}", alpha=0.8)
        chosen = self.chosen.plan
        if chosen is not None and self.chosen_accuracy is not None:
            ax2.scatter([chosen.memory / scale], [100 * self.chosen_accuracy], marker="*", c="red", s=180, zorder=5,
                        label="chosen scheme (fine-tuned)")
        ax2.set_xlabel(f"planned training memory ({unit})")
        ax2.set_ylabel("validation accuracy (%)")
        ax2.set_title("candidates and the chosen scheme")

        planned = [c for c in self.planned if c.plan is not None]
        if planned:
            ax3.scatter([c.plan.memory / scale for c in planned], [100 * c.value for c in planned], marker="x",
                        c="tab:orange", s=20, label="combination planned by the compiler")
        if chosen is not None:
            ax3.scatter([chosen.memory / scale], [100 * self.chosen.value], marker="*", c="red", s=180, zorder=5,
                        label="chosen")
        ax3.set_xlabel(f"planned training memory ({unit})")
        ax3.set_ylabel("summed measured gain (points)")
        ax3.set_title("combinations the selection planned")
        for ax in (ax2, ax3):
            if self.budget.memory is not None:
                ax.axvline(self.budget.memory / scale, color="red", ls="--", lw=1, label="memory budget")
        for ax in (ax1, ax2, ax3):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(**below)
        return fig

    def _first_bias_layer(self, k: int) -> int:
        return self.backbone[-k] if 0 < k <= len(self.backbone) else 0
