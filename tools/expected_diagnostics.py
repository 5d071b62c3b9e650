"""`--verify-diagnostics`: check the errors an input produces against the ones it expects.

Expectations are comments in the input, spelled as for mlir-opt:

    %y = train.linear %x, %w : (...) -> ...  // expected-error {{does not fit weight}}
    // expected-error @+1 {{unknown op 'train.foo'}}
    %z = train.foo %y : tensor<2xf32>

`{{...}}` is a substring of the message; `@+N` / `@-N` move the expected line by N;
`@unknown` matches an error that has no location. Every error produced must be expected
and every expectation must be produced. With `--split-input-file` one file holds many
cases separated by `// -----` lines; line numbers stay those of the whole file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .diagnostics import Diagnostic

_EXPECT = re.compile(r"//.*?(expected-error)\s*(@(?:[+-]\d+|unknown))?\s*\{\{(.*?)\}\}")


@dataclass
class Expectation:
    text: str
    line: int | None  # the line the error must be reported at; None for @unknown
    comment_line: int
    comment_col: int
    met: bool = False


def find_expectations(source: str) -> list[Expectation]:
    found = []
    for number, line in enumerate(source.split("\n"), start=1):
        for m in _EXPECT.finditer(line):
            at = m.group(2)
            target = None if at == "@unknown" else number + (int(at[1:]) if at else 0)
            found.append(Expectation(m.group(3), target, number, m.start(1) + 1))
    return found


def check(diags: list[Diagnostic], expected: list[Expectation], filename: str) -> list[str]:
    """The mismatches between produced and expected errors, as located messages (empty: all good)."""
    problems = []
    for d in diags:
        line = d.line if d.file is not None else None
        match = next((e for e in expected if not e.met and e.line == line and e.text in d.message), None)
        if match is None:
            where = f"{d.file}:{d.line}:{d.col}: " if d.file is not None else ""
            problems.append(f"{where}error: unexpected error: {d.message}")
        else:
            match.met = True
    for e in expected:
        if not e.met:
            target = "without a location" if e.line is None else f"at line {e.line}"
            problems.append(
                f'{filename}:{e.comment_line}:{e.comment_col}: error: expected error "{e.text}" '
                f"{target} was not produced"
            )
    return problems
