"""`python -m pockengine.experiments NAME [-o OUT] [--seeds 0,1,2] [--tiny]`: run one experiment
(rows × seeds, resumable), then write its table (OUT/table.md) and figure (OUT/NAME.png)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXPERIMENTS = ("sentiment", "images", "lm")


def build(name: str, tiny: bool, log=print):
    from importlib import import_module

    mod = import_module(f".{name}", __package__)
    cfg = mod.Config.tiny() if tiny else mod.Config()
    return mod.setup(cfg, tiny_model=tiny) if name == "sentiment" else mod.setup(cfg, log=log)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pockengine.experiments", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=EXPERIMENTS)
    parser.add_argument("-o", "--out", type=Path, default=None, help="output directory (default experiments_out/NAME)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tiny", action="store_true", help="seconds: a toy-sized version (the tests run it)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the table and figure from OUT")
    parser.add_argument("--timing-rounds", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    out = args.out or Path("experiments_out") / args.name
    from .data import DataUnavailable
    from .report import write

    t0 = time.time()
    log = lambda msg: print(msg, flush=True)
    try:
        if not args.report_only:
            import torch

            from .protocol import run

            torch.set_num_threads(1)  # pretraining too: one thread each, as the compiled trainers run

            setup = build(args.name, args.tiny, log)
            run(setup, out, seeds, args.timing_rounds, log)
    except DataUnavailable as e:
        print(f"pockengine experiment {args.name}: {e}", file=sys.stderr)
        return 2
    paths = write(args.name, out)
    log(f"{args.name}: {', '.join(str(p) for p in paths)} ({time.time() - t0:.0f} s)")
    return 0
