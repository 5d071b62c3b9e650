"""`pock-opt`: run pass pipelines on `train` IR text, like mlir-opt and xdsl-opt.

    pock-opt examples/mlp.mlir -p canonicalize,cse
    cat in.mlir | pock-opt -p 'a,b{opt=1 flag=true}' --print-ir-after-all -o out.mlir
    pock-opt --list-passes
    pock-opt invalid.mlir --split-input-file --verify-diagnostics

Input is verified after parsing and after every pass. Errors are printed as
`file:line:col: error: message`. Exit status: 0 success; 1 the errors differ from the
`expected-error` comments (--verify-diagnostics); 2 bad input (file, IR text, invalid IR,
pipeline string).

xdsl-opt's spellings are accepted too (--print-op-generic, --output-file, --print-ir-before[-all],
--print-between-passes, --disable-verify, --version), and xdsl-opt itself loads the `train`
dialect and these passes (tools/universe.py, the `xdsl.universe` entry point). Bad input of any
kind that pockengine.errors classes as such is one line and exit 2 (the boundary in main).

xDSL's `xDSLOptMain` was considered as a base: it loads every dialect of the xDSL universe,
raises tracebacks on bad input and lacks located verifier errors and expected-error checking,
so overriding it would replace most of it; this tool reuses its parts instead (Parser,
Printer, PassPipeline and the pipeline-string syntax).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2

# stock xDSL passes without docstrings; pockengine's passes describe themselves
STOCK_DESCRIPTIONS = {
    "cse": "Common subexpression elimination: merges identical side-effect-free ops.",
    "dce": "Dead code elimination: erases ops whose results are unused and that have no effects.",
}


# --emit: "mlir" (the IR after the passes) or a stage of the compile recipe (pockengine/pipeline.py):
# a train-IR stage stops -p after that pass; lower-to-kernels / memory-plan (alias kernels) print
# the kernel IR, emit (alias c) the target's sources. Other formats: name → (module, function) with
# function(module_op) -> str.
EMITTERS: dict[str, tuple[str, str]] = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", help="input .mlir file (default or '-': stdin)")
    parser.add_argument(
        "-p",
        "--passes",
        default="",
        metavar="PIPELINE",
        help="pass pipeline, e.g. 'canonicalize,cse' or 'a{opt=1 flag=true}'",
    )
    parser.add_argument(
        "-o", "--output", "--output-file", dest="output", metavar="FILE",
        help="write the IR here (atomically), not to stdout",
    )
    parser.add_argument("--generic", "--print-op-generic", dest="generic", action="store_true",
                        help="print ops in the generic MLIR form")
    parser.add_argument(
        "--emit",
        default="mlir",
        choices=_emit_choices(),
        metavar="STAGE",
        help="what to print: mlir (the IR after the passes, default), the IR after a stage of -p, "
        "lower-to-kernels or memory-plan (alias kernels: the kernel IR), emit (alias c: the target's sources)",
    )
    parser.add_argument("--print-pipeline", action="store_true",
                        help="print the -p pipeline (without -p: the compile recipe) as text -p accepts, and exit")
    parser.add_argument(
        "--print-ir-after-all", "--print-between-passes", dest="print_ir_after_all", action="store_true",
        help="dump the IR to stderr after every pass",
    )
    parser.add_argument("--print-ir-before-all", action="store_true", help="dump the IR to stderr before every pass")
    parser.add_argument("--print-ir-before", action="append", default=[], metavar="PASS",
                        help="dump the IR to stderr before this pass (repeatable)")
    parser.add_argument("--disable-verify", action="store_true",
                        help="do not verify the IR after parsing and after each pass")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--print-ir-after",
        action="append",
        default=[],
        metavar="PASS",
        help="dump the IR to stderr after this pass (repeatable)",
    )
    parser.add_argument(
        "--list-passes", action="store_true", help="list the passes with their options and exit"
    )
    parser.add_argument(
        "--split-input-file",
        action="store_true",
        help="treat each part between '// -----' lines as its own input",
    )
    parser.add_argument(
        "--verify-diagnostics",
        action="store_true",
        help="check the errors against the input's `// expected-error {{...}}` comments",
    )
    parser.add_argument("--stats", action="store_true", help="print per-function statistics to stderr")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        xdsl = version("xdsl")
    except PackageNotFoundError:
        xdsl = "not installed"
    return f"pock-opt (pockengine {__import__('pockengine').__version__}, xdsl {xdsl})"


def _emit_choices() -> list[str]:
    from pockengine.pipeline import emit_choices

    return [*emit_choices(), *EMITTERS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pock-opt",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except BrokenPipeError:  # `pock-opt ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_MISMATCH
    except Exception as e:  # the error boundary: bad input is one line and exit 2 (pockengine.errors)
        from ..errors import is_user_error, one_line

        if not is_user_error(e):
            raise
        print(f"pock-opt: error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def run(args: argparse.Namespace) -> int:
    from pockengine.passes import PipelineError
    from pockengine.pipeline import StageError, get_all_passes, parse_pipeline, print_pipeline, stop_pipeline

    from . import UserError

    if args.list_passes:
        print(list_passes())
        return EXIT_OK
    try:
        pipeline = parse_pipeline(args.passes)
        if args.print_pipeline:
            print(print_pipeline(pipeline))
            return EXIT_OK
        try:
            pipeline = stop_pipeline(pipeline, args.emit)
        except StageError as e:
            raise UserError(str(e)) from None
        available = get_all_passes()
        dump_after = {n for names in args.print_ir_after for n in names.split(",")}
        for flag, names in (("--print-ir-after", dump_after),
                            ("--print-ir-before", {n for ns in args.print_ir_before for n in ns.split(",")})):
            if unknown := sorted(names - set(available)):
                raise UserError(
                    f"{flag}: unknown pass '{unknown[0]}'; valid passes: {', '.join(sorted(available))}"
                )
        name, source = read_input(args.input)
    except (PipelineError, UserError) as e:
        print(f"pock-opt: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    chunks = split_input(source) if args.split_input_file else [source]
    outputs, diags = [], []
    for chunk in chunks:
        text, errors = process(chunk, name, pipeline, args, dump_after)
        diags += errors
        if text is not None:
            outputs.append(text)

    if args.verify_diagnostics:
        from .expected_diagnostics import check, find_expectations

        problems = check(diags, find_expectations(source), name)
        for p in problems:
            print(p, file=sys.stderr)
        write_output(args.output, "// -----\n".join(outputs))
        return EXIT_MISMATCH if problems else EXIT_OK
    if diags:
        for d in diags:
            print(d.render(source), file=sys.stderr)
        return EXIT_BAD_INPUT
    write_output(args.output, "// -----\n".join(outputs))
    return EXIT_OK


def read_input(path: str | None) -> tuple[str, str]:
    from pockengine.ir.program import read_ir  # bounded, UTF-8, no NUL bytes (/dev/zero is an error)

    from . import UserError

    if path in (None, "-"):
        return "<stdin>", read_ir("<stdin>", sys.stdin.buffer)
    try:
        return path, read_ir(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None


def split_input(source: str) -> list[str]:
    """Parts between `// -----` lines; each is padded with the newlines before it so that
    line numbers in errors stay those of the whole file."""
    parts, start = [], 0
    for m in re.finditer(r"^// -----.*$", source, flags=re.MULTILINE):
        parts.append((start, source[start : m.start()]))
        start = m.end()
    parts.append((start, source[start:]))
    return ["\n" * source.count("\n", 0, begin) + text for begin, text in parts]


def process(text: str, name: str, pipeline, args, dump_after: set[str]):
    """Parse, verify, run the passes (verifying after each); (printed IR or None, errors)."""
    from pockengine.ir.context import make_context
    from xdsl.utils.exceptions import DiagnosticException, ParseError

    from .diagnostics import Diagnostic, NestingError, parse_error_diagnostic, parse_located, verify_located

    ctx = make_context()
    try:
        module = parse_located(text, name, ctx)
    except ParseError as e:
        return None, [parse_error_diagnostic(e, ctx)]
    except NestingError as e:
        return None, [e.args[0]]
    verify = (lambda m: []) if args.disable_verify else verify_located
    dump_before = {n for names in args.print_ir_before for n in names.split(",")}
    if errors := verify(module):
        return None, errors
    for p in pipeline.passes:
        if args.print_ir_before_all or p.name in dump_before:
            print(f"// -----// IR Dump Before {p.name} //----- //", file=sys.stderr)
            print(render(module, args.generic), file=sys.stderr)
        try:
            p.apply(ctx, module)
        except DiagnosticException as e:
            return None, [Diagnostic(f"pass '{p.name}' failed: {e}")]
        if errors := verify(module):
            return None, [
                type(d)(f"{d.message} (after pass '{p.name}')", d.file, d.line, d.col) for d in errors
            ]
        if args.print_ir_after_all or p.name in dump_after:
            print(f"// -----// IR Dump After {p.name} //----- //", file=sys.stderr)
            print(render(module, args.generic), file=sys.stderr)
    if args.stats:
        print(stats_report(module), file=sys.stderr)
    from pockengine.pipeline import emit_text

    if args.emit in EMITTERS:
        import importlib

        module_name, function = EMITTERS[args.emit]
        return getattr(importlib.import_module(module_name), function)(module), []
    if (emitted := emit_text(module, args.emit, pipeline)) is not None:
        return emitted, []
    return render(module, args.generic) + "\n", []


def render(module, generic: bool = False) -> str:
    from io import StringIO

    from xdsl.printer import Printer

    out = StringIO()
    Printer(stream=out, print_generic_format=generic).print_op(module)
    return out.getvalue()


def write_output(path: str | None, text: str) -> None:
    """To stdout, or to `path` via a temporary file and a rename: never a half-written file."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from ..atomic import write_text

    write_text(path, text)  # the one atomic-output helper (pockengine.atomic)


def stats_report(module) -> str:
    """The --stats report. Extension point: once `pockengine.passes.cost` exists, its
    `report(module) -> str` (the cost report) is printed; until then, op counts per function."""
    import importlib

    try:
        cost = importlib.import_module("pockengine.passes.cost")
    except ModuleNotFoundError as e:
        if e.name != "pockengine.passes.cost":
            raise
        return op_counts(module)
    return cost.report(module)


def op_counts(module) -> str:
    from collections import Counter

    from xdsl.dialects import func

    lines = []
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp):
            continue
        counts = Counter(op.name for op in fn.walk() if op is not fn)
        lines.append(f"// @{fn.sym_name.data}: {sum(counts.values())} ops")
        lines += [f"//   {n:<28} {c:>6}" for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join(lines) or "// no functions"


def list_passes() -> str:
    """Every registered pass: name, one-line description, options with types and defaults."""
    import dataclasses
    import typing

    from pockengine.pipeline import get_all_passes

    out = []
    for name, factory in sorted(get_all_passes().items()):
        cls = factory()
        out.append(f"{name:<28} {describe(name, cls)}")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f" = {f.default!r}"
            elif f.default_factory is not dataclasses.MISSING:
                default = f" = {f.default_factory()!r}"
            else:
                default = " (required)"
            out.append(f"    {f.name}: {_type_name(hints.get(f.name, f.type))}{default}")
    return "\n".join(out)


def describe(name: str, cls) -> str:
    doc = cls.__dict__.get("__doc__") or ""
    if doc.startswith(cls.__name__ + "("):  # dataclass' generated signature, not a docstring
        doc = ""
    return first_sentence(doc) or STOCK_DESCRIPTIONS.get(name, "(no description)")


def first_sentence(doc: str) -> str:
    """The docstring's first sentence, whole even when it wraps over lines (at most its first
    paragraph): `--list-passes` never stops mid-sentence."""
    paragraph = " ".join(line.strip() for line in doc.strip().split("\n\n")[0].splitlines())
    m = re.search(r"(?<=[.!?])\s+(?=[A-Z])", paragraph)  # not inside "e.g. x"
    return (paragraph[: m.start()] if m else paragraph).strip()


def _type_name(t) -> str:
    return t.__name__ if isinstance(t, type) else str(t).replace("typing.", "")


if __name__ == "__main__":
    sys.exit(main())
