"""User errors: one base class for "the input is wrong", and the CLIs' error boundary.

Every error the library raises *where it understands the input* (a scheme, IR text, a weights
file, a data file, a model, a path, a hyper-parameter) derives from `UserError`. Its message
starts with where the problem is — `file:line:col`, an op or node name, a JSON path, a
parameter name — and says what was expected. The command-line tools (`pockengine`, `pock-opt`)
print such an error as one line and exit with status 2, never a traceback; a library user
catches `pockengine.errors.UserError` (or the specific subclass).

    from pockengine.errors import UserError

    class WeightsError(UserError):   # a module's own kind: weights that do not fit the program
        pass

    raise WeightsError(f"{path}: tensor 'fc.weight' has shape (3, 4), the program expects (4, 3)")

Subclasses keep their historical extra bases (`PipelineError` is still a `ValueError`,
`SparseBackpropError` still an xDSL `DiagnosticException`), so older `except` clauses hold.

Anything else that escapes is a bug in pockengine and keeps its traceback. Besides `UserError`
the boundary accepts, by design, two foreign roots that also mean "bad input": xDSL's parse and
verify errors (`ParseError`, `DiagnosticException`: the IR text is wrong) and `OSError` (a path
that is missing, a directory, not permitted, or a disk that is full) — see `is_user_error`.
This module imports nothing, so the tools can start without loading xDSL.
"""

from __future__ import annotations

import errno
import sys


class UserError(Exception):
    """Bad input from the user (a path, a name, a value, a file's contents): the message starts
    with where it is and says what was expected. The tools print it on one line and exit 2."""


EXIT_BAD_INPUT = 2


def _xdsl_error_types() -> tuple[type, ...]:
    mod = sys.modules.get("xdsl.utils.exceptions")  # only if xDSL was loaded: it raised them
    if mod is None:
        return ()
    return tuple(t for t in (getattr(mod, "ParseError", None), getattr(mod, "DiagnosticException", None)) if t)


def is_user_error(e: BaseException) -> bool:
    """True for errors that mean bad input: `UserError` (and subclasses), xDSL's parse/verify
    errors and `OSError` (paths, permissions, a full disk)."""
    return isinstance(e, (UserError, OSError, *_xdsl_error_types()))


def one_line(e: BaseException) -> str:
    """The error as one line: a parse error as `file:line:col: message`, an OSError with its
    file name, otherwise the first line of the message."""
    parse_error = getattr(sys.modules.get("xdsl.utils.exceptions"), "ParseError", None)
    if parse_error is not None and isinstance(e, parse_error):
        try:
            return f"{e.span.get_location()}: {e.msg}"
        except (AttributeError, TypeError, ValueError):  # a ParseError without a span
            return str(e.msg if hasattr(e, "msg") else e).strip().split("\n")[0]
    if isinstance(e, OSError) and not isinstance(e, UserError):
        what = e.strerror or str(e) or type(e).__name__
        if e.errno == errno.ENOSPC:
            what = "no space left on device (nothing was replaced; free some space and retry)"
        name = f"{e.filename}: " if e.filename else ""
        return f"{name}{what}"
    text = str(e).strip()
    return text.split("\n")[0] if text else type(e).__name__


__all__ = ["EXIT_BAD_INPUT", "UserError", "is_user_error", "one_line"]
