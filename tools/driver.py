"""`pockengine`: the driver. Each subcommand is one entry of COMMANDS.

A subcommand lives in a module that defines

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...          # the exit status

and is registered with one line below. Only the chosen subcommand's module is imported, so
`pockengine --help` and `pockengine --version` start fast. Bad input (raise
`pockengine.errors.UserError` or a subclass; xDSL's parse/verify errors and OSError count too)
ends with a one-line `pockengine <cmd>: error: ...` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

# "bad input" is one base class, pockengine.errors.UserError (plus xDSL's parse/verify errors and
# OSError): errors.is_user_error. That module imports nothing, so the driver stays light.
from ..errors import EXIT_BAD_INPUT, is_user_error, one_line


@dataclass(frozen=True)
class Command:
    module: str  # defines add_arguments(parser) and run(args) -> int
    help: str

    def load(self):
        return importlib.import_module(self.module)


COMMANDS: dict[str, Command] = {
    "opt": Command("pockengine.tools.pock_opt", "run pass pipelines on IR text (the same as pock-opt)"),
    "import": Command("pockengine.tools.import_model", "import a PyTorch (module.py:factory) or ONNX model"),
    "search": Command("pockengine.search.cli", "measure layer contributions and search a sparse scheme under a budget"),
    "demo": Command("pockengine.demo.cli", "the end-to-end demo: import, search, compile, fine-tune vs PyTorch"),
    "compile": Command("pockengine.backends.cli", "compile a model's training step into a C project (c, arm64)"),
    "train": Command("pockengine.backends.cli", "build a compiled C project and train it on arrays from .npz"),
    "experiment": Command("pockengine.experiments.cli", "run a learning-quality experiment (sentiment, images, lm)"),
}

def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    from pockengine import __version__

    try:
        xdsl = dist_version("xdsl")
    except PackageNotFoundError:
        xdsl = "not installed"
    return f"pockengine {__version__} (xdsl {xdsl}, python {sys.version.split()[0]})"


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pockengine", description="A compiler for on-device training (PockEngine) on xDSL."
    )
    parser.add_argument("--version", action="version", version=version())
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        sub = subs.add_parser(name, help=cmd.help, description=cmd.help)
        if name in argv:  # only the chosen command's module is imported
            cmd.load().add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return COMMANDS[args.command].load().run(args)
    except Exception as e:
        if not is_user_error(e):
            raise
        print(f"pockengine {args.command}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
