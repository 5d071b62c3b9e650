"""Import + compile time of the benchmark workloads W1..W4 (issue 13), phase by phase.

    python benchmarks/import_benchmark.py                    # all of W1..W4, one fresh process each
    python benchmarks/import_benchmark.py --workloads W4 --decompose   # force run_decompositions()
    python benchmarks/import_benchmark.py --workloads gpt2-4 gpt2-12   # GPT-2 import only (issue 13)

Each workload runs in its own process (what a user pays: torch's first-trace warm-up
included) with an empty build cache, so the C build is a cold one. Prints wall seconds per
phase — torch.export, decompositions (0 when the training IR is lowered directly), our
lowering, canonical forms, verification; then the compile stages: passes (slice propagation,
autodiff, sparse backprop, DGE, reordering, fusion), lower-to-kernels + memory plan, emit,
C build — and the CPU seconds of the process and the compiler (robust to a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMPORT = ["torch.export", "decompositions", "lowering", "canonical forms", "verification"]
COMPILE = ["passes", "lower+plan", "emit", "build"]


def child(workload: str, decompose: bool) -> dict:
    sys.path.insert(0, str(HERE))
    import workloads as W
    from pockengine import pipeline
    from pockengine.backends import lower_to_kernels, memory_plan, target
    from pockengine.backends.c import toolchain
    from pockengine.frontends import from_torch, torch_import

    times: dict[str, float] = {k: 0.0 for k in COMPILE}

    def timed(owner, name, phase):
        fn = getattr(owner, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                times[phase] += time.perf_counter() - t

        setattr(owner, name, wrapper)

    timed(pipeline, "run_pipeline", "passes")
    timed(pipeline, "_sparse_backprop", "passes")
    timed(lower_to_kernels, "lower_program", "lower+plan")
    timed(memory_plan, "plan_program", "lower+plan")
    timed(target.Target, "sources", "emit")
    timed(toolchain.GccToolchain, "build", "build")
    torch_import.DIRECT = not decompose
    model, inputs, _labels, loss = gpt2(int(workload[5:])) if workload.startswith("gpt2-") \
        else W.WORKLOADS[workload]()
    cpu, t0 = _cpu(), time.perf_counter()
    program = from_torch(model, inputs)
    t1 = time.perf_counter()
    if not workload.startswith("gpt2-"):  # import only: the GPT-2 figures
        pipeline.compile(program, loss=loss, optimizer="sgd", scheme=W.scheme(workload), lr=0.01, momentum=0.9)
    t2 = time.perf_counter()
    return {**program.import_phases, **{f"{k} cpu": v for k, v in program.import_cpu_phases.items()}, **times,
            "import": t1 - t0, "compile": t2 - t1, "total": t2 - t0,
            "cpu": _cpu() - cpu}


def gpt2(layers: int):
    """Full-size GPT-2 (124M at 12 layers), random weights, default attention and cache, ids 1×128."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ids = torch.randint(0, 50257, (1, 128))
    return GPT2LMHeadModel(GPT2Config(n_layer=layers)).eval(), (ids,), ids, "next_token"


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the C compiler)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def table(results: dict, cols: list[str], head: list[str] | None = None) -> str:
    lines = ["| workload | " + " | ".join(head or cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for w, r in results.items():
        lines.append(f"| {w} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=["W1", "W2", "W3", "W4"])
    ap.add_argument("--decompose", action="store_true", help="always run torch's run_decompositions()")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import warnings

        warnings.simplefilter("ignore")  # the dropped-cache note
        print(json.dumps(child(args.child, args.decompose)))
        return 0
    results = {}
    for w in args.workloads:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "POCKENGINE_CACHE": cache, "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, __file__, "--child", w] + (["--decompose"] if args.decompose else [])
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        results[w] = json.loads(out.strip().splitlines()[-1])
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; seconds (wall; cpu = CPU time of the process and the C compiler)")
    print(table(results, [*IMPORT, "import", *COMPILE, "compile", "total", "cpu"]))
    print("\nimport phases, CPU seconds of the process:")
    print(table(results, [f"{k} cpu" for k in IMPORT], IMPORT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
