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
import os
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
    # each compiled row's learning rate is chosen from this grid on the *validation* split
    # (seed 0's head and batches, the first `lr_steps` steps); empty: hyper["lr"] for every row.
    # The eager rows use the lr chosen for compiled full fine-tuning (the same training).
    lr_grid: tuple[float, ...] = ()
    lr_steps: int | None = None

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


def _hyper(setup: Setup, lr: float | None) -> dict:
    return setup.hyper if lr is None else {**setup.hyper, "lr": lr}


def compiled(program, setup: Setup, scheme: str | None, lr: float | None = None):
    import pockengine

    # one thread, as PyTorch eager runs here (torch.set_num_threads(1)): the same work for both,
    # and no OpenMP team spinning on a machine whose cores are taken
    return pockengine.compile(program, loss=setup.loss, optimizer=setup.optimizer, scheme=scheme, threads=1,
                              **_hyper(setup, lr))


def eager(module, setup: Setup, scheme: str | None, program, lr: float | None = None):
    from pockengine.demo.eager import EagerTrainer
    from pockengine.passes.scheme import Scheme

    updates = None if scheme is None else Scheme.parse(scheme, "<row scheme>").resolve(program)
    return EagerTrainer(copy.deepcopy(module), setup.loss, setup.optimizer, _hyper(setup, lr), updates)


def _write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1))  # pockengine.atomic: a killed run leaves no half-written result


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _claim(path: Path) -> bool:
    """Claim the job whose result is `path` (PATH.claim holds the pid): several processes can
    run one experiment directory together, each job done once; a dead process's claim is taken over."""
    claim = path.with_name(path.name + ".claim")
    claim.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(claim.read_text() or -1)
        except (OSError, ValueError):
            pid = -1
        if pid == -1 or _alive(pid):  # -1: being written this instant
            return False
        claim.unlink(missing_ok=True)
        return _claim(path)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _do_all(jobs, poll: float = 5.0) -> None:
    """Run each (result path, fn) whose result is missing and unclaimed (fn() → JSON object),
    then wait for the ones other processes hold."""
    pending = list(jobs)
    while pending:
        waiting = []
        for path, fn in pending:
            if path.is_file():
                continue
            if not _claim(path):
                waiting.append((path, fn))
                continue
            try:
                if not path.is_file():
                    _write_json(path, fn())
            finally:
                path.with_name(path.name + ".claim").unlink(missing_ok=True)
        if waiting and len(waiting) == len(pending):
            time.sleep(poll)
        pending = waiting


def train(trainer, data) -> tuple[list[float], list[float]]:
    losses, secs = [], []
    for x, y in data:
        t = time.perf_counter()
        losses.append(float(trainer.step(x, y)))
        secs.append(time.perf_counter() - t)
    return losses, secs


def choose_lrs(setup: Setup, program0, rows: dict, out: Path, log, t0: float) -> dict:
    """{row: lr}: each compiled row's lr from `setup.lr_grid`, by validation quality after
    `setup.lr_steps` steps of seed 0 (the test split is not read); OUT/lr/ keeps every run."""
    if not setup.lr_grid:
        return {name: setup.hyper.get("lr") for name in [*rows, *setup.eager_rows]}
    data = setup.batches(0)[: setup.lr_steps or setup.steps]

    def job(name, text, lr):
        def fn():
            trainer = compiled(program0, setup, text, lr)
            losses, _ = train(trainer, data)
            q = quality(setup, trainer.forward, setup.val)
            log(f"[{time.time() - t0:5.0f} s] lr {lr:g} {name}: validation {setup.metric} {q:.4f} "
                f"after {len(data)} steps, loss {losses[0]:.3f} → {np.mean(losses[-10:]):.3f}")
            return {"row": name, "lr": lr, "val": q, "steps": len(data), "loss_first": losses[0],
                    "loss_last10": float(np.mean(losses[-10:]))}
        return out / "lr" / f"{slug(name)}-lr{lr:g}.json", fn

    jobs = {(name, lr): job(name, text, lr) for name, text in rows.items() for lr in setup.lr_grid}
    _do_all(jobs.values())
    better = max if setup.metric == "accuracy" else min
    chosen = {}
    for name in rows:
        vals = {lr: json.loads(jobs[name, lr][0].read_text())["val"] for lr in setup.lr_grid}
        chosen[name] = better(vals, key=lambda lr: (vals[lr], -lr))  # ties: the smaller lr
        log(f"lr for {name}: {chosen[name]:g} (validation {', '.join(f'{lr:g}: {v:.4f}' for lr, v in vals.items())})")
    for name in setup.eager_rows:
        chosen[name] = chosen.get(COMPILED_FULL, setup.hyper.get("lr"))
    return chosen


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
    config = json.dumps(setup.info.get("config"), sort_keys=True, default=str)
    if meta.get("rows") and meta.get("config") == config:  # resumed: the search's schemes are known
        rows = meta["rows"]
        setup.info.update({k: v for k, v in meta.get("info", {}).items() if k not in setup.info})
    else:
        rows = setup.schemes(setup, program0, full_memory, out, log)
    meta["config"] = config
    for name, text in rows.items():
        if text is not None:
            (out / "schemes").mkdir(parents=True, exist_ok=True)
            (out / "schemes" / f"{slug(name)}.pock").write_text(text)
    meta.update(rows=rows, info=setup.info, eager_rows=list(setup.eager_rows))
    _write_json(meta_path, meta)
    lrs = choose_lrs(setup, program0, rows, out, log, t0)
    meta.update(lr=lrs, lr_grid=list(setup.lr_grid), lr_steps=setup.lr_steps)
    _write_json(meta_path, meta)
    # the first seed's rows (compiled, then PyTorch eager), the timing, then the other seeds: a
    # run cut short still has one complete seed and its timing
    first = [(seeds[0], name) for name in [*rows, *setup.eager_rows]]
    rest = [(seed, name) for seed in seeds[1:] for name in rows] + \
        [(seed, name) for seed in seeds[1:] for name in setup.eager_rows]
    per_seed: dict = {}

    def row_job(seed, name):
        def fn():
            if seed not in per_seed:
                per_seed.clear()  # one seed's models at a time
                module = setup.model(seed)
                per_seed[seed] = (module, export(module, setup), setup.batches(seed))
            module, program, data = per_seed[seed]
            start = time.time()
            if name in setup.eager_rows:
                trainer, engine = eager(module, setup, None, program, lrs[name]), "eager"
            else:
                trainer, engine = compiled(program, setup, rows[name], lrs[name]), "compiled"
            losses, secs = train(trainer, data)
            q = quality(setup, trainer.forward, setup.test)
            memory = dict(trainer.memory or {})
            res = {"row": name, "seed": seed, "engine": engine, "quality": q, "metric": setup.metric,
                   "lr": lrs[name], "memory": memory.get("training_extra", 0), "memory_breakdown": memory,
                   "ms_per_step_training": 1000 * statistics.median(secs), "steps": len(data),
                   "loss_first": losses[0], "loss_last10": float(np.mean(losses[-10:])),
                   "losses": losses[:: max(1, len(losses) // 100)], "wall_s": time.time() - start}
            log(f"[{time.time() - t0:5.0f} s] seed {seed} {name} (lr {lrs[name]:g}): {setup.metric} {q:.4f}, "
                f"{res['memory'] / 2**20:.2f} MiB, {res['ms_per_step_training']:.0f} ms/step, "
                f"loss {losses[0]:.3f} → {res['loss_last10']:.3f} ({res['wall_s']:.0f} s)")
            return res
        return out / "results" / f"{slug(name)}-s{seed}.json", fn

    jobs = [row_job(seed, name) for seed, name in first]
    if timing_rounds:
        jobs.append((out / "timing.json", lambda: time_rows(setup, module0, program0, rows, timing_rounds, log)))
    _do_all(jobs + [row_job(seed, name) for seed, name in rest])
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
                             "engine": got[0]["engine"], "metric": got[0]["metric"], "lr": got[0].get("lr"),
                             "ms_training": float(np.median([r["ms_per_step_training"] for r in got])),
                             "scheme": meta["rows"].get(name)}
    return {"meta": meta, "rows": grouped, "timing": timing}
