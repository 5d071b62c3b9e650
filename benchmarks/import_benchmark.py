"""Import + compile time of the benchmark workloads W1..W4 and GPT-2 (issue 13), stage by stage.

    python benchmarks/import_benchmark.py                          # W1..W4 and GPT-2 4/12 layers
    python benchmarks/import_benchmark.py --workloads W4 --cache cold --decompose   # force run_decompositions()
    python benchmarks/import_benchmark.py --workloads gpt2-4 gpt2-12              # GPT-2 import only

Each workload runs in its own fresh process: what a user pays, torch.export's first-use
module load included (its own column, "torch load"). Two build caches:

- cold: an empty cache, so the C build is the first ever on this machine (the convolutions'
  kernel object, its declarations and the model itself are all compiled);
- warm: a cache that a small CNN compiled twice has left (the kernel object and the
  precompiled system headers, what any earlier model leaves and a shipped library would
  hold); the model's own code is still compiled: the next model's figure.

Columns are the import phases (torch.export, decompositions — 0 when the training IR is lowered
directly —, our lowering, canonical forms, xDSL verification) and pipeline.py's stages
(slice-propagation ... fusion, lower-to-kernels, memory-plan, emit, build; "other": the rest of
compile(), opening the library and its arena). Two tables each: wall seconds, and CPU seconds
of the process and its children (the C compiler), which a loaded machine inflates far less.
The load average (1/5/15 min) is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMPORT = ["torch load", "torch.export", "decompositions", "lowering", "canonical forms", "verification"]
PASSES = ["slice-propagation", "autodiff", "sparse-backprop", "dead-gradient-elimination", "operator-reordering",
          "fusion"]
KERNELS = ["lower-to-kernels", "memory-plan", "emit", "build", "other"]
SHORT = {"canonical forms": "canonical", "verification": "verify", "slice-propagation": "slice-prop",
         "sparse-backprop": "sparse-bp", "dead-gradient-elimination": "DGE", "operator-reordering": "reorder",
         "lower-to-kernels": "lower", "memory-plan": "plan"}
COLUMNS = ["setup", *IMPORT, "import", *PASSES, *KERNELS, "compile", "total"]


class Clock:
    """Wall and CPU seconds (this process and its finished children) since `start`."""

    @staticmethod
    def now() -> tuple[float, float]:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.perf_counter(), me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def add(self, name: str, start: tuple[float, float]) -> None:
        end = self.now()
        self.wall[name] = self.wall.get(name, 0.0) + end[0] - start[0]
        self.cpu[name] = self.cpu.get(name, 0.0) + end[1] - start[1]

    def timed(self, owner, attr: str, name) -> None:
        """Wrap owner.attr so its calls add to the stage `name` (a function of the arguments)."""
        fn = getattr(owner, attr)

        def wrapper(*a, **k):
            t = self.now()
            try:
                return fn(*a, **k)
            finally:
                self.add(name(*a) if callable(name) else name, t)

        setattr(owner, attr, wrapper)


def child(workload: str, decompose: bool, started: float) -> dict:
    clock = Clock()
    sys.path.insert(0, str(HERE))
    import workloads as W
    from pockengine import pipeline
    from pockengine.backends import lower_to_kernels, memory_plan, target
    from pockengine.backends.c import toolchain
    from pockengine.frontends import from_torch, torch_import

    clock.timed(pipeline, "run_pipeline", lambda program, spec, *a: spec.split("{")[0])
    clock.timed(pipeline, "_sparse_backprop", "sparse-backprop")
    clock.timed(lower_to_kernels, "lower_program", "lower-to-kernels")
    clock.timed(memory_plan, "plan_program", "memory-plan")
    clock.timed(target.Target, "sources", "emit")
    clock.timed(toolchain.GccToolchain, "build", "build")
    torch_import.DIRECT = not decompose
    model, inputs, _labels, loss = gpt2(int(workload[5:])) if workload.startswith("gpt2-") \
        else W.WORKLOADS[workload]()
    clock.wall["setup"], clock.cpu["setup"] = time.time() - started, Clock.now()[1]  # process start → model built
    t = Clock.now()
    import torch.export._trace  # noqa: F401  (what torch.export loads on first use: torch._dynamo, ...)
    clock.add("torch load", t)
    program = from_torch(model, inputs)
    clock.add("import", t)
    for k in IMPORT[1:]:
        clock.wall[k], clock.cpu[k] = program.import_phases.get(k, 0.0), program.import_cpu_phases.get(k, 0.0)
    if not workload.startswith("gpt2-"):  # import only: the GPT-2 figures
        c = Clock.now()
        pipeline.compile(program, loss=loss, optimizer="sgd", scheme=W.scheme(workload), lr=0.01, momentum=0.9)
        clock.add("compile", c)
        for d in (clock.wall, clock.cpu):
            d["other"] = d["compile"] - sum(d.get(k, 0.0) for k in PASSES + KERNELS[:-1])
    clock.add("total", t)
    return {"wall": clock.wall, "cpu": clock.cpu}


def gpt2(layers: int):
    """Full-size GPT-2 (124M at 12 layers), random weights, default attention and cache, ids 1×128."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ids = torch.randint(0, 50257, (1, 128))
    return GPT2LMHeadModel(GPT2Config(n_layer=layers)).eval(), (ids,), ids, "next_token"


def prime() -> None:
    """What an earlier model leaves in the build cache: a small CNN compiled twice (the kernel
    object and its declarations the first time, the precompiled headers the second)."""
    import torch
    from pockengine import compile as compile_program
    from pockengine.frontends import from_torch
    from torch import nn

    for batch in (2, 3):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10), nn.Softmax(-1), nn.Linear(10, 4)).eval()
        compile_program(from_torch(m, (torch.randn(batch, 3, 8, 8),)), loss="cross_entropy", optimizer="sgd",
                        lr=0.01)


def run_child(args: list[str], cache: Path) -> dict:
    env = {**os.environ, "POCKENGINE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--started", repr(time.time()), *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(results: dict, kind: str) -> str:
    cols = [c for c in COLUMNS if any(c in r[kind] for r in results.values())]
    lines = ["| workload | " + " | ".join(SHORT.get(c, c) for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for w, r in results.items():
        lines.append(f"| {w} | " + " | ".join(f"{r[kind][c]:.2f}" if c in r[kind] else "—" for c in cols) + " |")
    return "\n".join(lines)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=["W1", "W2", "W3", "W4", "gpt2-4", "gpt2-12"])
    ap.add_argument("--cache", choices=["cold", "warm", "both"], default="both",
                    help="the build cache each workload starts from (module docstring)")
    ap.add_argument("--decompose", action="store_true", help="always run torch's run_decompositions()")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--prime", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child or args.prime:
        import warnings

        warnings.simplefilter("ignore")  # the dropped-cache note
        if args.prime:
            prime()
            print("{}")
        else:
            print(json.dumps(child(args.child, args.decompose, args.started)))
        return 0
    print(f"{os.cpu_count()} CPUs; load average before {load()} (1/5/15 min); "
          f"{subprocess.run(['cc', '--version'], capture_output=True, text=True, check=False).stdout.splitlines()[0]}")
    caches = ["cold", "warm"] if args.cache == "both" else [args.cache]
    extra = ["--decompose"] if args.decompose else []
    with tempfile.TemporaryDirectory() as tmp:
        primed = Path(tmp) / "primed"
        if "warm" in caches:
            run_child(["--prime"], primed)
        for cache in caches:
            results = {}
            for w in args.workloads:
                if cache == "warm" and w.startswith("gpt2-"):
                    continue  # import only: no build
                folder = Path(tmp) / f"{cache}-{w}"
                if cache == "warm":
                    shutil.copytree(primed, folder)
                results[w] = run_child(["--child", w, *extra], folder)
                shutil.rmtree(folder, ignore_errors=True)
            what = "empty build cache: the first build ever" if cache == "cold" else \
                "build cache of an earlier model: the next model"
            for kind, unit in (("wall", "wall seconds"), ("cpu", "CPU seconds, process + C compiler")):
                print(f"\n{cache} ({what}); {unit}; load average now {load()}")
                print(table(results, kind))
    print("\n(setup: process start to the model built — Python, torch, transformers; not in total)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
