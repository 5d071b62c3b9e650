"""Pass registry: every pass is an xDSL `ModulePass`, registered by name here.

`get_all_passes()` maps each name to a factory that imports the pass lazily (xDSL's own
convention), so `pock-opt` starts fast. The same pipeline strings work from Python:

    run_pipeline(program, "canonicalize,cse,dce")
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from xdsl.passes import ModulePass, PassPipeline

from ..errors import UserError


def _canonicalize():
    from xdsl.transforms.canonicalize import CanonicalizePass

    return CanonicalizePass


def _cse():
    from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination

    return CommonSubexpressionElimination


def _dce():
    from xdsl.transforms.dead_code_elimination import DeadCodeElimination

    return DeadCodeElimination


def _autodiff():
    from .autodiff import Autodiff

    return Autodiff


def _sparse_backprop():
    from .sparse_backprop import SparseBackprop

    return SparseBackprop


def _dead_gradient_elimination():
    from .dead_gradient_elimination import DeadGradientElimination

    return DeadGradientElimination


def _fusion():
    from .fusion import Fusion

    return Fusion


def _slice_propagation():
    from .slice_propagation import SlicePropagation

    return SlicePropagation


def _operator_reordering():
    from .operator_reordering import OperatorReordering

    return OperatorReordering


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    return {
        "autodiff": _autodiff,
        "canonicalize": _canonicalize,
        "cse": _cse,
        "dce": _dce,
        "dead-gradient-elimination": _dead_gradient_elimination,
        "fusion": _fusion,
        "operator-reordering": _operator_reordering,
        "slice-propagation": _slice_propagation,
        "sparse-backprop": _sparse_backprop,
    }


def __getattr__(name: str):
    if name == "cost":  # `pockengine.passes.cost(program)`: the cost report (passes/cost.py)
        import importlib

        return importlib.import_module(f"{__name__}.cost")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PipelineError(UserError, ValueError):
    """A pipeline string is malformed, names an unknown pass or option, or gives a bad value."""


_BARE_VALUE = re.compile(r'(?<=[{\s])([A-Za-z_][\w-]*)=([^\s"{},]+)')


def _quote_bare_values(spec: str) -> str:
    """`scheme=s.pock` → `scheme="s.pock"`: xDSL only takes words and numbers unquoted, but a
    path reads naturally bare (mlir-opt accepts it). Numbers and booleans stay as they are."""

    def quote(m: re.Match) -> str:
        key, value = m.groups()
        if re.fullmatch(r"[\w-]+", value) or _is_number(value):
            return m.group(0)
        return f'{key}="{value}"'

    return _BARE_VALUE.sub(quote, spec)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_pipeline(spec: str, callback=None, available=None) -> PassPipeline:
    """Pipeline string → PassPipeline (xDSL's syntax: `a,b{opt=1 flag=true}`).

    Errors raise PipelineError naming the pass and listing the valid passes or options."""
    from xdsl.utils.arg_spec import parse_pipeline as parse_specs
    from xdsl.utils.exceptions import ArgSpecParseError

    available = available if available is not None else get_all_passes()  # pipeline.py adds the backends'
    try:
        specs = list(parse_specs(_quote_bare_values(spec)))
    except ArgSpecParseError as e:  # a BaseException in xDSL: catch it by name
        raise PipelineError(str(e)) from None
    passes = []
    for s in specs:
        if s.name not in available:
            raise PipelineError(f"unknown pass '{s.name}'; valid passes: {', '.join(sorted(available))}")
        cls = available[s.name]()
        options = [f.name for f in dataclasses.fields(cls)]
        for key in s.normalize_parameter_names().parameters:
            if key not in options:
                raise PipelineError(
                    f"pass '{s.name}' has no option '{key}'; valid options: {', '.join(options) or 'none'}"
                )
        try:
            passes.append(cls.from_spec(s))
        except (ValueError, TypeError) as e:
            raise PipelineError(f"pass '{s.name}': {e}") from None
    return PassPipeline(tuple(passes), callback)


def run_pipeline(program, spec: str, callback=None, available=None):
    """Apply a pipeline to a `Program` (or a bare ModuleOp) in place and return it."""
    from pockengine.ir.context import make_context

    module = getattr(program, "module", program)
    parse_pipeline(spec, callback, available).apply(make_context(), module)
    if hasattr(program, "weights"):
        from .sparse_backprop import fit_state_values

        fit_state_values(program)  # state sparse-backprop shrank or removed
        _materialize_state(program)
    return program


def _materialize_state(program) -> None:
    """Optimizer state a pass declared (autodiff's momentum, Adam moments, step) starts at zero."""
    import numpy as np

    from pockengine.ir import types as T

    for p in program.params():
        if p.role.data == "optimizer_state" and p.sym_name.data not in program.weights:
            program.weights[p.sym_name.data] = np.zeros(p.type.get_shape(), T.numpy_dtype(p.type.element_type))
