"""Training-step benchmark (issue 5): pockengine's compiled C against PyTorch, one thread.

    python benchmarks/train_benchmark.py                      # all of W1..W4, prints the table
    python benchmarks/train_benchmark.py --workloads W1 --rounds 5 --no-torch-compile
    python benchmarks/train_benchmark.py --workloads W2 --profile   # where the C step's time goes
    python benchmarks/train_benchmark.py --workloads W2,W6 --threads 1,2   # threads (issue 19); W6: GPT-2-style
    python benchmarks/train_benchmark.py --threads 1,2        # issue 19's table: W1..W4 and W6 at 1 and 2 threads

Per workload, in one process and interleaved round by round (the machine's clock drifts by
tens of percent within minutes, so only ratios within a round are trusted): compiled sparse
scheme, its ratio-1/4 variant, compiled full backprop, PyTorch eager full backprop, PyTorch
eager with the same scheme (requires_grad freezing, gradient masks for channel ratios) and
torch.compile with the same scheme. Medians of the rounds. Then planned training memory
(arena + optimizer state) against PyTorch's peak RSS delta of full backprop (measured in a
child process), and the achieved GFLOP/s on the FLOPs each step performs (pockengine's cost
report) against the measured single-thread sgemm rate.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
import torch.nn.functional as F
import workloads as W

SGD = {"lr": 0.01, "momentum": 0.9}


def torch_loss(out, y, kind):
    if kind == "next_token":
        return F.cross_entropy(out[:, :-1].reshape(-1, out.shape[-1]), y[:, 1:].reshape(-1))
    return F.cross_entropy(out, y)


class TorchRun:
    """A PyTorch training step with SGD-momentum on the parameters a scheme trains."""

    def __init__(self, build, decisions=None, compiled=False, optimizer=("sgd", SGD)):
        self.model, self.inputs, self.labels, self.kind = build()
        masks = {}
        params = []
        for name, p in self.model.named_parameters():
            d = decisions.get(name) if decisions is not None else None
            if decisions is not None and (d is None or d.mode == "frozen"):
                p.requires_grad_(False)
                continue
            params.append(p)
            if d is not None and d.mode == "ratio":
                m = torch.zeros_like(p)
                m.narrow(d.axis, 0, d.channels).fill_(1)
                masks[name] = m
                p.register_hook(lambda g, m=m: g * m)
        self.opt = (torch.optim.AdamW if optimizer[0] == "adamw" else torch.optim.SGD)(params, **optimizer[1])
        self.fn = torch.compile(self.model) if compiled else self.model

    def step(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = torch_loss(self.fn(*self.inputs), self.labels, self.kind)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


class OursRun:
    def __init__(self, program, kind, scheme_text, labels, inputs, profile=False, optimizer=("sgd", SGD), threads=1):
        from pockengine.passes import cost
        from pockengine.pipeline import compile as pk_compile
        from pockengine.pipeline import training_program

        t0 = time.perf_counter()
        self.trainer = pk_compile(program, loss=kind, optimizer=optimizer[0], scheme=scheme_text, profile=profile,
                                  threads=threads, **optimizer[1])
        self.compile_s = time.perf_counter() - t0
        plain = training_program(program, kind, optimizer[0], scheme_text, **optimizer[1])
        self.flops = cost(plain).functions["train_step"].total_flops
        self.args = [*(a.numpy() for a in inputs), labels.numpy()]

    def step(self) -> float:
        return self.trainer.step(*self.args)


def sgemm_rate(n=1024, reps=5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def rss_child(workload: str) -> None:
    """Peak RSS delta of PyTorch full backprop (run in a fresh process by `torch_rss`): the
    peak resident set during 3 training steps minus the resident set before them."""
    import resource

    torch.set_num_threads(1)
    run = TorchRun(W.WORKLOADS[workload])
    before = _status("VmRSS")
    try:  # reset the kernel's peak (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    for _ in range(3):
        run.step()
    peak = _status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rss_delta": peak - before}))


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def torch_rss(workload: str) -> int | None:
    res = subprocess.run([sys.executable, __file__, "--rss-child", workload], capture_output=True, text=True,
                         check=False)
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])["rss_delta"]
    except (IndexError, ValueError, KeyError):
        return None


def bench(workload: str, rounds: int, use_compile: bool, profile: bool, threads=(1,)) -> dict:
    from pockengine.frontends import from_torch
    from pockengine.passes.scheme import Scheme

    build = W.WORKLOADS[workload]
    model, inputs, labels, kind = build()
    program = from_torch(model, inputs)
    opt = W.OPTIMIZERS.get(workload, ("sgd", SGD))
    built = max(threads)  # one build per scheme; with several counts, each step sets its own (device.set_threads)
    runs: dict[str, object] = {}
    info: dict[str, object] = {}
    for label, text in (("ours sparse", W.scheme(workload)), ("ours sparse r1/4", W.scheme(workload, True)),
                        ("ours full", None)):
        r = OursRun(program, kind, text, labels, inputs, profile=profile and label == "ours sparse", optimizer=opt,
                    threads=built)
        runs[label] = r
        info[label] = {"compile_s": r.compile_s, "flops": r.flops, "memory": r.trainer.memory}
    decisions = Scheme.parse(W.scheme(workload)).resolve(program)
    runs["eager full"] = TorchRun(build, optimizer=opt)
    runs["eager scheme"] = TorchRun(build, decisions, optimizer=opt)
    if use_compile:
        try:
            runs["compile scheme"] = TorchRun(build, decisions, compiled=True, optimizer=opt)
            runs["compile scheme"].step()
        except Exception as e:  # noqa: BLE001  (inductor needs a working C++ toolchain; report, go on)
            print(f"  torch.compile unavailable: {str(e).splitlines()[0][:100]}", file=sys.stderr)
            runs.pop("compile scheme")
    for r in runs.values():  # warm up
        r.step()
    times: dict[str, list[float]] = {k if len(threads) == 1 else f"{k} {t}t": [] for k in runs for t in threads}
    sgemm: list[float] = []
    load0 = os.getloadavg()[0]  # the machine's load (other processes' threads take the cores)
    gc.collect()
    gc.disable()  # as timeit does: a full collection over the compiled programs' IR took ~10% of W2's rounds
    for _ in range(rounds):
        for t in threads:  # interleaved: every run at every thread count in each round
            torch.set_num_threads(t)
            for k, r in runs.items():
                if isinstance(r, OursRun) and len(threads) > 1:
                    r.trainer.device.set_threads(t)
                times[k if len(threads) == 1 else f"{k} {t}t"].append(_timed(r.step))
        torch.set_num_threads(threads[0])
        sgemm.append(sgemm_rate(reps=2))  # in every round: the clock drifts with the load
    gc.enable()
    out = {"times_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()}, "info": info,
           "sgemm": statistics.median(sgemm), "threads": list(threads), "load": (load0, os.getloadavg()[0])}
    if profile:
        prof = runs["ours sparse"].trainer.profile()
        agg: dict[str, float] = {}
        for fn, _, what, ms in prof:
            if fn == "train_step":
                key = what.split(":")[0]
                agg[key] = agg.get(key, 0.0) + ms / (rounds + 1)
        out["profile"] = dict(sorted(agg.items(), key=lambda kv: -kv[1])[:10])
    return out


def table(results: dict) -> str:
    lines = ["single-thread sgemm (torch, 1024³) is measured in every round of each workload (median shown)", ""]
    head = ["workload", "ours sparse", "r1/4", "ours full", "eager full", "eager scheme", "compile scheme",
            "full/sparse", "eager-scheme/sparse", "GFLOP/s sparse (% sgemm)", "GFLOP/s full", "planned MB",
            "torch RSS MB", "ratio", "sgemm GFLOP/s"]
    lines.append(" | ".join(head))
    for w, r in results.items():
        t, info, sgemm = r["times_ms"], r["info"], r["sgemm"]
        gs = info["ours sparse"]["flops"] / t["ours sparse"] / 1e6
        gf = info["ours full"]["flops"] / t["ours full"] / 1e6
        planned = info["ours sparse"]["memory"]["training_extra"] / 2**20
        rss = r.get("rss")
        cells = [f"{w} {W.NAMES[w]}", *(f"{t[k]:.1f}" if k in t else "n/a" for k in
                                        ("ours sparse", "ours sparse r1/4", "ours full", "eager full", "eager scheme",
                                         "compile scheme")),
                 f"{t['eager full'] / t['ours sparse']:.2f}x", f"{t['eager scheme'] / t['ours sparse']:.2f}x",
                 f"{gs:.1f} ({100 * gs / sgemm:.0f}%)", f"{gf:.1f}", f"{planned:.1f}",
                 f"{rss / 2**20:.0f}" if rss else "n/a", f"1/{rss / 2**20 / planned:.1f}" if rss else "n/a", f"{sgemm:.1f}"]
        lines.append(" | ".join(cells))
    lines.append("\ntimes: ms per training step, medians of interleaved rounds; planned MB = arena + optimizer "
                 "state of the compiled sparse step")
    return "\n".join(lines)


def threads_table(results: dict) -> str:
    """`--threads 1,2`: ms/step of every run at each thread count (interleaved in each round),
    the compiled step's speed-up over its first thread count, and the ratios to PyTorch there."""
    runs = ("ours sparse", "ours sparse r1/4", "ours full", "eager full", "eager scheme", "compile scheme")
    head = ["workload", "threads", *runs, "sparse speed-up", "full speed-up", "eager-scheme/sparse",
            "compile-scheme/sparse", "eager-full/full", "load (1-min, before/after)"]
    lines = [" | ".join(head)]
    for w, r in results.items():
        t, ts = r["times_ms"], r["threads"]
        get = lambda k, n: t.get(f"{k} {n}t")
        ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "n/a"
        for n in ts:
            cells = [f"{w} {W.NAMES[w]}", str(n), *(f"{get(k, n):.1f}" if get(k, n) else "n/a" for k in runs),
                     ratio(get("ours sparse", ts[0]), get("ours sparse", n)), ratio(get("ours full", ts[0]), get("ours full", n)),
                     ratio(get("eager scheme", n), get("ours sparse", n)), ratio(get("compile scheme", n), get("ours sparse", n)),
                     ratio(get("eager full", n), get("ours full", n)), "%.2f / %.2f" % r["load"]]
            lines.append(" | ".join(cells))
    lines.append("\ntimes: ms per training step, medians of rounds; in each round every run at every thread "
                 "count (torch.set_num_threads, the compiled Trainer's device.set_threads on one OpenMP build)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", help="default W1,W2,W3,W4; with several --threads counts also W6")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-torch-compile", action="store_true")
    ap.add_argument("--profile", action="store_true", help="time each step of the compiled sparse run")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--threads", default="1", help="thread counts, e.g. 1,2 (issue 19): every run at each, interleaved")
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return 0
    try:
        threads = tuple(int(n) for n in args.threads.split(","))
        assert threads and min(threads) >= 1
    except (ValueError, AssertionError):
        ap.error(f"--threads {args.threads!r}: expected thread counts such as 1,2")
    if args.workloads is None:
        args.workloads = "W1,W2,W3,W4" + (",W6" if len(threads) > 1 else "")
    torch.set_num_threads(threads[0])
    np.random.seed(0)
    results = {}
    for w in args.workloads.split(","):
        print(f"{w}: compiling and timing ...", file=sys.stderr)
        results[w] = bench(w, args.rounds, not args.no_torch_compile, args.profile, threads)
        results[w]["rss"] = torch_rss(w)
        if args.profile:
            print(f"  profile of ours sparse (ms/step): {results[w]['profile']}", file=sys.stderr)
    print(table(results) if len(threads) == 1 else threads_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
