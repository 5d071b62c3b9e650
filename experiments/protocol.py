"""The protocol every experiment shares: rows × seeds, resumable, compiled and eager side by side.

An experiment module (sentiment.py, images.py, lm.py) provides a `Setup`: the data splits, the
pretrained torch model for a seed (`model(seed)`: the backbone is the same for every seed, a
new head is drawn from the seed), the loss/optimizer/hyper-parameters, the quality metric, and
the rows (name → scheme text; None is full backprop). `run` then

1. imports the seed-0 model with `pockengine.from_torch` and compiles full backprop with
   `pockengine.compile` for its planned training memory (the budgets are shares of it);
2. lets the setup build its schemes — the searched one through `pockengine.search` on the
   train/validation splits only — and writes them to OUT/schemes/;
3. for every seed and every row trains on *the same batches in the same order* (the seed picks
   the head and the order; every row of a seed sees the same list) and scores the held-out
   test split once, at the end (no early stopping); each (row, seed) is written to
   OUT/results/ as soon as it is known, so an interrupted run resumes;
4. times every scheme compiled against PyTorch eager with the same scheme, in turn on one
   batch (demo/timing.py), and measures eager's training memory the way demo/eager.py does.

Planned memory is the compiled trainer's `memory["training_extra"]`: everything beyond weights
and inputs (the arena plus optimizer state).
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_text

EAGER_FULL = "full fine-tuning, PyTorch eager"
COMPILED_FULL = "full fine-tuning, compiled"


@dataclass
class Setup:
    """What an experiment hands the protocol."""

    name: str
    model: Callable[[int], object]  # seed → torch module in eval form (pretrained backbone, seeded head)
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    batch: int
    steps: int
    loss: str  # "cross_entropy" | "next_token"
    optimizer: str
    hyper: dict
    metric: str  # "accuracy" (higher is better) | "perplexity" (lower is better)
    schemes: Callable  # (setup, program, full_memory, out_dir, log) → {row name: scheme text | None}
    eager_rows: tuple[str, ...] = (EAGER_FULL,)  # rows trained in PyTorch eager (full backprop)
    info: dict = field(default_factory=dict)

    def batches(self, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The seed's minibatches: seeded permutations, epoch after epoch, ragged tail dropped."""
        x, y = self.train
        rng = np.random.default_rng(seed)
        per_epoch = len(x) // self.batch
        out, order = [], None
        for s in range(self.steps):
            if s % per_epoch == 0:
                order = rng.permutation(len(x))
            idx = order[(s % per_epoch) * self.batch:(s % per_epoch + 1) * self.batch]
            out.append((x[idx], y[idx]))
        return out


def batched(forward, x: np.ndarray, batch: int):
    """forward over x in fixed-size batches (the compiled forward has one shape); the last one
    is padded with copies of its first row and trimmed."""
    outs = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        real = len(xb)
        if real < batch:
            xb = np.concatenate([xb, np.repeat(xb[:1], batch - real, 0)])
        outs.append(np.asarray(forward(xb))[:real])
    return np.concatenate(outs)


def accuracy(forward, data, batch: int) -> float:
    x, y = data
    return float((batched(forward, x, batch).argmax(-1) == y).mean())


def perplexity(forward, data, batch: int) -> float:
    """exp of the mean next-token negative log-likelihood over every position of `data`."""
    x, _ = data
    total, count = 0.0, 0
    for i in range(0, len(x) - batch + 1, batch):
        ids = x[i:i + batch]
        logits = np.asarray(forward(ids), np.float64)[:, :-1]
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll = -np.take_along_axis(logp, ids[:, 1:, None].astype(np.int64), -1)
        total, count = total + nll.sum(), count + nll.size
    return float(np.exp(total / count))


def quality(setup: Setup, forward, data) -> float:
    fn = accuracy if setup.metric == "accuracy" else perplexity
    return fn(forward, data, setup.batch)


def export(module, setup: Setup):
    import pockengine
    import torch

    return pockengine.from_torch(module, (torch.as_tensor(setup.val[0][: setup.batch]),))


def compiled(program, setup: Setup, scheme: str | None):
    import pockengine

    return pockengine.compile(program, loss=setup.loss, optimizer=setup.optimizer, scheme=scheme, **setup.hyper)


def eager(module, setup: Setup, scheme: str | None, program):
    from pockengine.demo.eager import EagerTrainer
    from pockengine.passes.scheme import Scheme

    updates = None if scheme is None else Scheme.parse(scheme, "<row scheme>").resolve(program)
    return EagerTrainer(copy.deepcopy(module), setup.loss, setup.optimizer, setup.hyper, updates)


def _write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1))  # pockengine.atomic: a killed run leaves no half-written result


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def run(setup: Setup, out: Path, seeds=(0, 1, 2), timing_rounds: int = 5, log=print) -> dict:
    """The experiment's rows × seeds (resumable); returns {"rows": ..., "results": [...]}."""
    import torch

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    module0 = setup.model(0)
    program0 = export(module0, setup)
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if "full_memory" not in meta:
        meta["full_memory"] = compiled(program0, setup, None).memory["training_extra"]
    full_memory = meta["full_memory"]
    log(f"[{time.time() - t0:5.0f} s] full backprop plans {full_memory / 2**20:.2f} MiB")
    rows = setup.schemes(setup, program0, full_memory, out, log)
    for name, text in rows.items():
        if text is not None:
            (out / "schemes").mkdir(parents=True, exist_ok=True)
            (out / "schemes" / f"{slug(name)}.pock").write_text(text)
    meta.update(rows=rows, info=setup.info, eager_rows=list(setup.eager_rows))
    _write_json(meta_path, meta)
    # the first seed's rows (compiled, then PyTorch eager), the timing, then the other seeds: a
    # run cut short still has one complete seed and its timing
    first = [(seeds[0], name) for name in [*rows, *setup.eager_rows]]
    rest = [(seed, name) for seed in seeds[1:] for name in rows] + \
        [(seed, name) for seed in seeds[1:] for name in setup.eager_rows]
    per_seed: dict = {}
    for seed, name in first + [("timing", None)] + rest:
        if seed == "timing":
            timing_path = out / "timing.json"
            if not timing_path.is_file() and timing_rounds:
                _write_json(timing_path, time_rows(setup, module0, program0, rows, timing_rounds, log))
            continue
        path = out / "results" / f"{slug(name)}-s{seed}.json"
        if path.is_file():
            continue
        if seed not in per_seed:
            module = setup.model(seed)
            per_seed[seed] = (module, export(module, setup), setup.batches(seed))
        module, program, data = per_seed[seed]
        scheme = None if name in setup.eager_rows else rows[name]
        start = time.time()
        if name in setup.eager_rows:
            trainer = eager(module, setup, None, program)
            engine = "eager"
        else:
            trainer = compiled(program, setup, scheme)
            engine = "compiled"
        losses, secs = [], []
        for x, y in data:
            t = time.perf_counter()
            losses.append(float(trainer.step(x, y)))
            secs.append(time.perf_counter() - t)
        q = quality(setup, trainer.forward, setup.test)
        memory = dict(trainer.memory or {})
        res = {"row": name, "seed": seed, "engine": engine, "quality": q, "metric": setup.metric,
               "memory": memory.get("training_extra", 0), "memory_breakdown": memory,
               "ms_per_step_training": 1000 * statistics.median(secs), "steps": len(data),
               "loss_first": losses[0], "loss_last10": float(np.mean(losses[-10:])),
               "losses": losses[:: max(1, len(losses) // 100)], "wall_s": time.time() - start}
        _write_json(path, res)
        log(f"[{time.time() - t0:5.0f} s] seed {seed} {name}: {setup.metric} {q:.4f}, "
            f"{res['memory'] / 2**20:.2f} MiB, {res['ms_per_step_training']:.0f} ms/step, "
            f"loss {losses[0]:.3f} → {res['loss_last10']:.3f} ({res['wall_s']:.0f} s)")
    log(f"[{time.time() - t0:5.0f} s] done")
    return collect(out)


def time_rows(setup: Setup, module, program, rows: dict, rounds: int, log) -> dict:
    """ms/step of each scheme compiled vs PyTorch eager with the same scheme, in turn on one
    batch (medians over `rounds` after a warm-up), and eager's measured training memory."""
    from pockengine.demo.timing import interleaved

    batch = setup.batches(0)[0]
    out = {}
    for name, text in rows.items():
        tr = compiled(program, setup, text)
        ea = eager(module, setup, text, program)
        ea.step(*batch)
        ea.step(*batch)  # the second step measures eager's memory
        times = interleaved({"compiled": tr.step, "eager": ea.step}, batch, rounds)
        out[name] = {"compiled_ms": 1000 * statistics.median(times["compiled"]),
                     "eager_ms": 1000 * statistics.median(times["eager"]),
                     "eager_memory": (ea.memory or {}).get("training_extra", 0),
                     "compiled_memory": tr.memory["training_extra"], "rounds": rounds}
        log(f"timing {name}: compiled {out[name]['compiled_ms']:.0f} ms, eager same scheme "
            f"{out[name]['eager_ms']:.0f} ms/step")
    return out


def collect(out: Path) -> dict:
    """The results on disk, grouped by row: {"meta", "rows": {name: {...}}, "timing"}."""
    out = Path(out)
    meta = json.loads((out / "meta.json").read_text())
    results = [json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))]
    timing = json.loads((out / "timing.json").read_text()) if (out / "timing.json").is_file() else {}
    grouped = {}
    for name in list(meta.get("eager_rows", [])) + list(meta["rows"]):
        got = sorted((r for r in results if r["row"] == name), key=lambda r: r["seed"])
        if got:
            qs = [r["quality"] for r in got]
            grouped[name] = {"seeds": [r["seed"] for r in got], "qualities": qs, "mean": float(np.mean(qs)),
                             "std": float(np.std(qs, ddof=1)) if len(qs) > 1 else float("nan"),
                             "memory": int(np.mean([r["memory"] for r in got])),
                             "engine": got[0]["engine"], "metric": got[0]["metric"],
                             "ms_training": float(np.median([r["ms_per_step_training"] for r in got])),
                             "scheme": meta["rows"].get(name)}
    return {"meta": meta, "rows": grouped, "timing": timing}
