"""Located errors for the command-line tools: `file:line:col: error: message`.

Ops parsed from text record where they were written as their `location` (a `loc("f":3:5)`
attribute, as in MLIR), so an error that the verifier or a pass finds later still points at
the line the user wrote. Printing shows locations only when asked for debug info.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr, UnknownLoc
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

# verification stops after this many errors in one input
MAX_ERRORS = 20


@dataclass(frozen=True)
class Diagnostic:
    message: str
    file: str | None = None
    line: int = 0
    col: int = 0

    def render(self, source: str | None = None) -> str:
        """`file:line:col: error: message`, then the source line with a caret when known."""
        if self.file is None:
            return f"error: {self.message}"
        head = f"{self.file}:{self.line}:{self.col}: error: {self.message}"
        lines = source.split("\n") if source is not None else []
        if not 0 < self.line <= len(lines):
            return head
        text = lines[self.line - 1].rstrip("\r")
        return f"{head}\n{text}\n{' ' * (self.col - 1)}^"


class LocatingParser(Parser):
    """xDSL's parser, plus a source location on every op that has none written."""

    def __init__(self, ctx: Context, text: str, name: str = "<input>"):
        super().__init__(ctx, text, name)
        self._text, self._name = text, name
        # ops start in increasing order, so line numbers are counted incrementally (linear time)
        self._seen_pos, self._seen_line, self._line_start = 0, 1, 0

    def parse_operation(self) -> Operation:
        start = self._current_token.span.start
        op = super().parse_operation()
        if isinstance(op.location, UnknownLoc):
            line, col = self._line_col(start)
            op.location = FileLineColLoc(StringAttr(self._name), IntAttr(line), IntAttr(col))
        return op

    def _line_col(self, pos: int) -> tuple[int, int]:
        if pos >= self._seen_pos:
            newlines = self._text.count("\n", self._seen_pos, pos)
            if newlines:
                self._seen_line += newlines
                self._line_start = self._text.rfind("\n", 0, pos) + 1
            self._seen_pos = pos
            return self._seen_line, pos - self._line_start + 1
        line_start = self._text.rfind("\n", 0, pos) + 1  # not expected; stay correct anyway
        return self._text.count("\n", 0, pos) + 1, pos - line_start + 1


def parse_located(text: str, name: str, ctx: Context) -> ModuleOp:
    """Parse IR text into a module whose ops carry their source locations.

    Raises ParseError; `parse_error_diagnostic` turns it into a Diagnostic. Text nested too
    deeply for the parser's recursion is a located ParseError too."""
    try:
        return LocatingParser(ctx, text, name).parse_module()
    except RecursionError:
        from pockengine.ir.program import deep_nesting, nesting_message

        line, col, depth = deep_nesting(text)
        raise NestingError(Diagnostic(nesting_message(depth), name, line, col)) from None


class NestingError(Exception):
    """IR nested too deeply to parse: `.args[0]` is the located Diagnostic."""


def parse_error_diagnostic(e: ParseError, ctx: Context | None = None) -> Diagnostic:
    loc = e.span.get_location()
    text, msg = e.span.input.content, e.msg.strip()
    undefined = re.fullmatch(r"values used but not defined: \[(%[^\],]+).*\]", msg)
    if undefined and isinstance(text, str):  # xDSL reports these at the end: point at the first use
        use = re.search(re.escape(undefined.group(1)) + r"(?![\w.$-])", text)
        if use:
            line = text.count("\n", 0, use.start()) + 1
            return Diagnostic(msg, loc.file, line, use.start() - text.rfind("\n", 0, use.start()))
    msg = _explain_parse_error(msg, ctx)
    if isinstance(text, str) and not text[e.span.start :].strip():
        msg = f"unexpected end of input ({msg})" if msg else "unexpected end of input"
    return Diagnostic(msg, loc.file, loc.line, loc.col)


def _explain_parse_error(msg: str, ctx: Context | None) -> str:
    """Name the valid ops when the text uses an unknown one (xDSL says only 'not registered')."""
    prefix, suffix = "Operation ", " is not registered"
    if ctx is None or not (msg.startswith(prefix) and msg.endswith(suffix)):
        return msg
    name = msg[len(prefix) : -len(suffix)]
    dialect = name.split(".", 1)[0]
    known = sorted(op.name.split(".", 1)[1] for op in ctx.loaded_ops if op.name.split(".", 1)[0] == dialect)
    if not known:
        dialects = ", ".join(sorted(d.name for d in ctx.loaded_dialects))
        return f"unknown op '{name}': no dialect '{dialect}' (known dialects: {dialects})"
    close = difflib.get_close_matches(name.split(".", 1)[-1], known, n=3)
    hint = f"; did you mean {' or '.join(f'{dialect}.{c}' for c in close)}?" if close else ""
    return f"unknown op '{name}'{hint} (the {dialect} dialect has: {', '.join(known)})"


def op_diagnostic(op: Operation, message: str) -> Diagnostic:
    """An error about `op`, at its source location when it has one, naming the op."""
    if not message.startswith(op.name):
        message = f"'{op.name}' op {message}"
    loc = op.location
    if isinstance(loc, FileLineColLoc):
        return Diagnostic(message, loc.filename.data, loc.line.data, loc.column.data)
    return Diagnostic(message)


def verify_located(module: ModuleOp) -> list[Diagnostic]:
    """Verify every op on its own and return one located error per failing op (empty: valid).

    Unlike `module.verify()`, which stops at the first failure and reports it without a
    location, this names each failing op with the place it was written."""
    diags: list[Diagnostic] = []
    for op in module.walk():
        try:
            op.verify(verify_nested_ops=False)
        except VerifyException as e:
            diags.append(op_diagnostic(op, str(e)))
            if len(diags) >= MAX_ERRORS:
                break
    return diags
