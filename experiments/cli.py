"""`python -m pockengine.experiments NAME [-o OUT] [--seeds 0,1,2] [--tiny]` (the same as
`pockengine experiment NAME ...`): run one experiment (rows × seeds, resumable; several
processes may share one OUT, each job is done once), then write its table (OUT/table.md) and
figure (OUT/NAME.png). A missing data source exits 2 with the command that installs it."""

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=EXPERIMENTS)
    parser.add_argument("-o", "--out", type=Path, default=None, help="output directory (default experiments_out/NAME)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tiny", action="store_true", help="seconds: a toy-sized version (the tests run it)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the table and figure from OUT")
    parser.add_argument("--timing-rounds", type=int, default=5)


def run(args: argparse.Namespace) -> int:
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        print(f"pockengine experiment: error: --seeds: expected comma-separated integers, got {args.seeds!r}",
              file=sys.stderr)
        return 2
    out = args.out or Path("experiments_out") / args.name
    from .data import DataUnavailable
    from .report import write

    t0 = time.time()
    log = lambda msg: print(msg, flush=True)
    try:
        if not args.report_only:
            import torch

            from .protocol import run as run_rows

            torch.set_num_threads(1)  # pretraining too: one thread each, as the compiled trainers run

            setup = build(args.name, args.tiny, log)
            run_rows(setup, out, seeds, args.timing_rounds, log)
    except DataUnavailable as e:
        print(f"pockengine experiment {args.name}: {e}", file=sys.stderr)
        return 2
    if args.report_only and not (out / "meta.json").is_file():
        print(f"pockengine experiment {args.name}: {out}: no results to report (run it first)", file=sys.stderr)
        return 2
    paths = write(args.name, out)
    log(f"{args.name}: {', '.join(str(p) for p in paths)} ({time.time() - t0:.0f} s)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pockengine.experiments", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
