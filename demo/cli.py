"""`pockengine demo`: the whole idea end to end on built-in data, in a few minutes (what `make demo` runs).

    pockengine demo                 # transfer learning on images: import, search, compile, fine-tune, compare
    pockengine demo --llm           # sparse fine-tuning of a tiny Llama on text that ships with Python
    pockengine demo --tiny          # the same pipeline on a toy configuration (seconds; for tests)

Results print as one table; figures and the searched scheme go to demo_out/ (-o to change).
Caches: demo_out/cache (the search's measurements, the Llama's pretraining) and
$POCKENGINE_CACHE or ~/.cache/pockengine (built libraries, the pretrained digits model), so a
second run skips the slow parts.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--llm", action="store_true", help="fine-tune a tiny Llama instead of the image model")
    parser.add_argument("-o", "--output", type=Path, default=Path("demo_out"), metavar="DIR",
                        help="where figures, schemes and caches go (default: demo_out)")
    parser.add_argument("--tiny", action="store_true", help="a toy configuration that runs in seconds")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="PyTorch threads for the eager baselines (default 1, like the compiled C)")


def run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        from pockengine.tools import UserError

        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if args.llm:
        from .llm import main

        return main(args.output, tiny=args.tiny, threads=args.threads)
    from pockengine.search.task import DataUnavailable
    from pockengine.tools import UserError

    from .vision import main

    try:
        return main(args.output, tiny=args.tiny, threads=args.threads)
    except DataUnavailable as e:  # the digits are not installed: say how to get them
        raise UserError(str(e)) from None
