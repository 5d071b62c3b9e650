"""An experiment's table (OUT/table.md) and figure (OUT/NAME.png) from its results on disk.

The figure is the paper's: test quality against planned training memory for every compiled
scheme (mean over the seeds, the spread as error bars), the searched scheme marked, full
backprop as the reference line; PyTorch eager's full fine-tuning is drawn at its measured
memory.
"""

from __future__ import annotations

import math
from pathlib import Path

from .protocol import collect


def _q(metric: str, v: float) -> str:
    return f"{100 * v:.1f}" if metric == "accuracy" else f"{v:.3f}"


def _ms(v: float) -> str:
    return f"{v:.1f}" if v < 10 else f"{v:.0f}"


def _mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB" if n < 100 * 2**20 else f"{n / 2**20:,.0f} MiB"


def table(name: str, out: Path) -> str:
    got = collect(out)
    rows, timing, meta = got["rows"], got["timing"], got["meta"]
    full = rows.get("full fine-tuning, compiled")
    full_mem = meta["full_memory"]
    metric = next(iter(rows.values()))["metric"] if rows else "accuracy"
    unit = "test accuracy (%)" if metric == "accuracy" else "test perplexity"
    head = (f"| scheme | {unit}: mean ± std | per seed | planned training memory | of full BP | "
            f"ms/step compiled | ms/step eager, same scheme | eager memory (measured) | lr |")
    lines = [head,
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row, r in rows.items():
        per = " / ".join(_q(metric, q) for q in r["qualities"])
        std = "–" if math.isnan(r["std"]) else _q(metric, r["std"])
        t = timing.get(row, {})
        if r["engine"] == "eager":
            mem, share, cms, ems, emem = "–", "–", "–", _ms(r["ms_training"]), "see full, compiled"
        else:
            mem, share = _mib(r["memory"]), f"{r['memory'] / full_mem:.3f}"
            cms = _ms(t["compiled_ms"]) if t else f"({_ms(r['ms_training'])})"
            ems = _ms(t["eager_ms"]) if t else "–"
            emem = _mib(t["eager_memory"]) if t else "–"
        bold = "**" if row.startswith("searched") else ""
        lines.append(f"| {bold}{row}{bold} | {bold}{_q(metric, r['mean'])} ± {std}{bold} | {per} (seeds "
                     f"{','.join(map(str, r['seeds']))}) | {mem} | {share} | {cms} | {ems} | {emem} | "
                     f"{'–' if r.get('lr') is None else format(r['lr'], 'g')} |")
    searched = next((r for k, r in rows.items() if k.startswith("searched")), None)
    if full and searched:
        if metric == "accuracy":
            gap = 100 * (searched["mean"] - full["mean"])
            lines.append(f"\nsearched minus full fine-tuning (compiled): {gap:+.2f} points, at "
                         f"{searched['memory'] / full_mem:.3f} of its planned memory.")
        else:
            gap = 100 * (searched["mean"] / full["mean"] - 1)
            lines.append(f"\nsearched vs full backprop (compiled): perplexity {gap:+.2f}%, at "
                         f"{searched['memory'] / full_mem:.3f} of its planned memory.")
    if meta.get("lr_grid"):
        lines.append(f"\nlr: each row's, chosen from {{{', '.join(format(v, 'g') for v in meta['lr_grid'])}}} by validation "
                     f"{metric} after {meta.get('lr_steps')} steps of seed 0 (OUT/lr/); eager uses compiled full's.")
    return "\n".join(lines) + "\n"


def figure(name: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    got = collect(out)
    rows, timing = got["rows"], got["timing"]
    metric = next(iter(rows.values()))["metric"]
    scale = 100 if metric == "accuracy" else 1
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    full = rows.get("full fine-tuning, compiled")
    if full:
        ax.axhline(scale * full["mean"], color="tab:red", ls="--", lw=1, label=f"full BP (compiled) {_q(metric, full['mean'])}")
    markers = iter("osD^v<>ph")
    colors = iter(["tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "black"])
    for row, r in rows.items():
        std = 0 if math.isnan(r["std"]) else scale * r["std"]
        if r["engine"] == "eager":
            mem = timing.get("full fine-tuning, compiled", {}).get("eager_memory")
            if mem:
                ax.errorbar(mem / 2**20, scale * r["mean"], yerr=std, fmt="x", color="gray", capsize=3,
                            label=f"{row} (measured memory)")
            continue
        searched = row.startswith("searched")
        ax.errorbar(r["memory"] / 2**20, scale * r["mean"], yerr=std, capsize=3,
                    fmt="*" if searched else next(markers), ms=16 if searched else 7,
                    color="tab:orange" if searched else next(colors), label=row, zorder=3 if searched else 2)
    ax.set_xscale("log")
    ax.set_xlabel("planned training memory (MiB, log scale; beyond weights and inputs)")
    ax.set_ylabel("test accuracy (%)" if metric == "accuracy" else "test perplexity (lower is better)")
    seeds = max(len(r["seeds"]) for r in rows.values())
    ax.set_title(f"{name}: every scheme, mean ± std over {seeds} seed(s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(out) / f"{name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(name: str, out: Path) -> list[Path]:
    out = Path(out)
    text = table(name, out)
    meta = collect(out)["meta"]
    schemes = "\n".join(f"{k}:\n```\n{v}```" for k, v in meta["rows"].items() if k.startswith("searched"))
    (out / "table.md").write_text(text + "\n" + schemes + "\n")
    print(text)
    return [out / "table.md", figure(name, out)]
