"""`pockengine search MODEL --data D.npz --budget-memory 2MB [--budget-flops 50M] -o scheme.pock`

MODEL is a program directory (`pockengine import ... -o DIR` writes one); D.npz holds
`x_train`, `y_train`, `x_val`, `y_val` (`python -m pockengine.search.task OUT` writes the
digits task in this form). Prints the report; writes the scheme, and with `--report DIR` the
table, JSON and figure. `--executor ray [--address ADDR]` runs the candidates on a Ray cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATA_KEYS = ("x_train", "y_train", "x_val", "y_val")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a program directory (model.mlir + weights.safetensors)")
    parser.add_argument("--data", required=True, metavar="D.npz",
                        help="an .npz with arrays x, y (training samples and labels) and x_val, y_val (the "
                             "held-out split), one row per sample; x_train/y_train are accepted for x/y")
    parser.add_argument("--budget-memory", metavar="SIZE", help="planned training memory, e.g. 2MB, 512kB, 1.5MiB")
    parser.add_argument("--budget-flops", metavar="N", help="backward FLOPs per step, e.g. 50M, 1.2G")
    parser.add_argument("-o", "--output", required=True, metavar="scheme.pock", help="where to write the scheme")
    parser.add_argument("--report", metavar="DIR", help="write report.md, report.json and search.png here")
    parser.add_argument("--base", help="scheme rules for what always trains (default: the last layer, full)")
    parser.add_argument("--ratios", default="1/8,1/4,1/2,1", help="channel ratios to measure (default %(default)s)")
    parser.add_argument("--bias-ks", help="bias depths k to measure, e.g. 2,4,8 (default: every depth)")
    parser.add_argument("--layers", help="layer indices whose weights are candidates, e.g. 9..15 or 3,5 (default: all)")
    parser.add_argument("--steps", type=int, default=120, help="fine-tuning steps per candidate (default %(default)s)")
    parser.add_argument("--optimizer", default="adam", choices=("sgd", "adam", "adamw"))
    parser.add_argument("--lr", type=float, default=3e-3, help="learning rate (default %(default)s)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default %(default)s)")
    parser.add_argument("--seeds", default="0", help="seeds to average each measurement over, e.g. 0,1")
    parser.add_argument("--executor", default="local", choices=("local", "ray"),
                        help="where the candidates are fine-tuned: this machine's processes, or a Ray cluster "
                             "(needs pip install 'pockengine[ray]'; docs/search.md) (default %(default)s)")
    parser.add_argument("--address", metavar="ADDR",
                        help="with --executor ray: the cluster (auto, HOST:6379 or ray://HOST:10001; default: "
                             "$RAY_ADDRESS, else the cluster `ray start` started here, else a private one)")
    parser.add_argument("--workers", type=int, help="runs at a time (default: 2 local processes; with --executor "
                                                    "ray, every CPU of the cluster)")
    parser.add_argument("--retries", type=int, default=2,
                        help="times a run is retried when its worker dies, before it is reported failed "
                             "(default %(default)s)")
    parser.add_argument("--cache", metavar="DIR", help="measurement cache (default: $POCKENGINE_CACHE/search)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _ints(text: str | None, what: str) -> list[int] | None:
    from pockengine.tools import UserError

    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("..")
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise UserError(f"--{what}: expected integers like 2,4,8 or 9..15, got {text!r}") from None
    return out


def _data(path: str):
    from pockengine.data import splits  # the one .npz format of `train` and `search` (data.py)

    return splits(path)


def run(args: argparse.Namespace) -> int:
    from fractions import Fraction

    from pockengine.ir.program import Program
    from pockengine.passes.scheme import SchemeError
    from pockengine.tools import UserError

    from . import Budget, CandidateError, Recipe, parse_size, search
    from .executor import check_executor
    from .report import MissingExtra

    if not Path(args.model).is_dir():
        raise UserError(f"{args.model}: not a program directory (import a model first: "
                        f"`pockengine import MODEL -o DIR`)")
    try:
        budget = Budget(parse_size(args.budget_memory, "memory") if args.budget_memory else None,
                        parse_size(args.budget_flops, "FLOPs") if args.budget_flops else None)
        ratios = [Fraction(r.strip()) for r in args.ratios.split(",")]
    except (ValueError, ZeroDivisionError) as e:
        raise UserError(str(e)) from None
    if not all(0 < r <= 1 for r in ratios):
        raise UserError(f"--ratios: every ratio must be in (0, 1], got {args.ratios}")
    if args.steps < 1 or (args.workers is not None and args.workers < 1) or args.retries < 0:
        raise UserError("--steps and --workers must be at least 1, --retries at least 0")
    if args.address and args.executor != "ray":
        raise UserError("--address is for --executor ray")
    check_executor(args.executor, args.address, args.workers, args.retries)  # Ray installed? before the work
    train, val = _data(args.data)
    program = Program.load(args.model)
    recipe = Recipe(steps=args.steps, optimizer=args.optimizer, lr=args.lr,
                    momentum=args.momentum if args.optimizer == "sgd" else 0.9)
    try:
        _, report = search(program, train, val, budget, recipe=recipe, ratios=ratios,
                                bias_ks=_ints(args.bias_ks, "bias-ks"), layers=_ints(args.layers, "layers"),
                                base=args.base, seeds=tuple(_ints(args.seeds, "seeds") or [0]),
                                workers=args.workers, cache_dir=args.cache, progress=not args.no_progress,
                                executor=args.executor, address=args.address, retries=args.retries)
    except SchemeError as e:
        raise UserError(f"--base: {e}") from None
    except CandidateError as e:  # not bad input: a compiler failure, named; what was measured is cached
        print(f"pockengine search: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        raise UserError(str(e)) from None
    Path(args.output).write_text(report.scheme_text)
    if args.report:
        try:
            report.save(args.report)
        except MissingExtra as e:  # report.md and report.json are written; only the figure is missing
            print(f"pockengine search: warning: {e}", file=sys.stderr)
    print(report.summary())
    print(f"scheme written to {args.output}" + (f"; report in {args.report}" if args.report else ""))
    return 0
