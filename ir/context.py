"""The xDSL context pockengine parses and runs passes in."""

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.dialects.func import Func


def make_context() -> Context:
    from .dialect import Train

    ctx = Context()
    for d in (Builtin, Func, Train):
        ctx.load_dialect(d)
    return ctx
