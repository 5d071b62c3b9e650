"""The numpy reference interpreter: the oracle every pass and backend is checked against.

One implementation per op, registered with `@impl(OpClass)` in the file named like the op's
family (ir/ops/linalg.py ↔ ir/interpreter/linalg.py). An implementation takes the op and its
operand arrays and returns one array (or a tuple for several results). Float math runs in the
interpreter's dtype: float32 by default, float64 on request (gradient checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from ...errors import UserError

IMPLS: dict[type[Operation], Callable[..., Any]] = {}


class InterpretError(UserError):
    """An op could not be run: names the op and what went wrong."""


def impl(*op_types: type[Operation]):
    def register(fn):
        for t in op_types:
            IMPLS[t] = fn
        return fn

    return register


def _load_impls() -> None:
    from . import elementwise, fused, grad, linalg, loss, norm, optim, quant, reduce, shape, state  # noqa: F401


class Interpreter:
    """Runs functions of a module on numpy arrays; `weights` is read by train.get and
    written by train.set (the dict is updated in place)."""

    def __init__(self, module: ModuleOp, weights: Mapping[str, np.ndarray] | None = None,
                 dtype: type | np.dtype = np.float32):
        _load_impls()
        self.module = module
        self.weights: dict[str, np.ndarray] = weights if weights is not None else {}
        self.float = np.dtype(dtype)
        self.functions = {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}

    def as_float(self, a: np.ndarray) -> np.ndarray:
        """Floats in the interpreter's precision; integers and masks unchanged."""
        a = np.asarray(a)
        return a.astype(self.float) if a.dtype.kind == "f" and a.dtype != self.float else a

    def call(self, name: str, *args: np.ndarray) -> list[np.ndarray]:
        fn = self.functions.get(name)
        if fn is None:
            raise InterpretError(f"no function @{name}; the module has: {', '.join(self.functions) or 'none'}")
        block = fn.body.block
        if len(args) != len(block.args):
            raise InterpretError(f"@{name} takes {len(block.args)} arguments, got {len(args)}")
        env: dict[SSAValue, np.ndarray] = {}
        for arg, value in zip(block.args, args):
            env[arg] = self.as_float(value)
        for op in block.ops:
            if isinstance(op, func.ReturnOp):
                return [env[v] for v in op.operands]
            ins = [env[v] for v in op.operands]
            if isinstance(op, func.CallOp):
                outs = self.call(op.callee.root_reference.data, *ins)
            else:
                fn_impl = IMPLS.get(type(op))
                if fn_impl is None:
                    raise InterpretError(f"{op.name}: no interpreter implementation")
                try:
                    outs = fn_impl(self, op, *ins)
                except InterpretError:
                    raise
                except Exception as e:  # numpy errors: say which op
                    raise InterpretError(f"{op.name} in @{name}: {e}") from e
            outs = outs if isinstance(outs, tuple) else (outs,)
            for res, val in zip(op.results, outs):
                env[res] = self.as_float(val)
        return []
