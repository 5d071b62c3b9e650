"""Pass registry: every pass is an xDSL `ModulePass`, registered by name here.

`get_all_passes()` maps each name to a factory that imports the pass lazily (xDSL's own
convention), so `pock-opt` starts fast. The same pipeline strings work from Python:

    run_pipeline(program, "canonicalize,cse,dce")
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass, PassPipeline


def _canonicalize():
    from xdsl.transforms.canonicalize import CanonicalizePass

    return CanonicalizePass


def _cse():
    from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination

    return CommonSubexpressionElimination


def _dce():
    from xdsl.transforms.dead_code_elimination import DeadCodeElimination

    return DeadCodeElimination


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    return {
        "canonicalize": _canonicalize,
        "cse": _cse,
        "dce": _dce,
    }


def parse_pipeline(spec: str, callback=None) -> PassPipeline:
    """Pipeline string → PassPipeline; unknown names/options raise with the valid ones listed."""
    return PassPipeline.parse_spec(get_all_passes(), spec, callback)


def run_pipeline(program, spec: str, callback=None):
    """Apply a pipeline to a `Program` (or a bare ModuleOp) in place and return it."""
    from pockengine.ir.context import make_context

    module = getattr(program, "module", program)
    parse_pipeline(spec, callback).apply(make_context(), module)
    return program
