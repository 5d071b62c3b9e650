"""`pockengine`: the driver. Each subcommand is one entry of COMMANDS.

A subcommand lives in a module that defines

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...          # the exit status

and is registered with one line below. Only the chosen subcommand's module is imported, so
`pockengine --help` and `pockengine --version` start fast. Bad input (raise
`pockengine.tools.UserError`, or a missing file, an unparsable program, ...) ends with a
one-line `pockengine <cmd>: error: ...` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

EXIT_BAD_INPUT = 2


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
}

# errors that mean "bad input", by module and class name: the modules are checked only once
# loaded, so the driver itself imports none of them
USER_ERRORS = [
    ("pockengine.tools", "UserError"),
    ("pockengine.passes", "PipelineError"),
    ("pockengine.ir.program", "ProgramError"),
    ("pockengine.passes.lower_to_kernels", "LoweringError"),
    ("xdsl.utils.exceptions", "ParseError"),
    ("builtins", "FileNotFoundError"),
    ("builtins", "IsADirectoryError"),
    ("builtins", "PermissionError"),
]


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


def is_user_error(e: BaseException) -> bool:
    for module, name in USER_ERRORS:
        mod = sys.modules.get(module)
        if mod is not None and isinstance(e, getattr(mod, name, ())):
            return True
    return False


def one_line(e: BaseException) -> str:
    parse_error = getattr(sys.modules.get("xdsl.utils.exceptions"), "ParseError", ())
    if isinstance(e, parse_error):
        loc = e.span.get_location()
        return f"{loc}: {e.msg}"
    text = str(e).strip()
    return text.split("\n")[0] if text else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
