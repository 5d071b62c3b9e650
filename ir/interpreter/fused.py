"""train.fused runs the ops of its region, exactly as they would run unfused."""

from __future__ import annotations

from ..ops.fused import FusedOp, YieldOp
from . import IMPLS, InterpretError, impl


@impl(FusedOp)
def run_fused(interp, op, *inputs):
    env = dict(zip(op.block.args, inputs))
    for inner in op.block.ops:
        if isinstance(inner, YieldOp):
            return tuple(env[v] for v in inner.operands)
        fn = IMPLS.get(type(inner))
        if fn is None:
            raise InterpretError(f"{inner.name} (in train.fused): no interpreter implementation")
        outs = fn(interp, inner, *[env[v] for v in inner.operands])
        outs = outs if isinstance(outs, tuple) else (outs,)
        for r, v in zip(inner.results, outs):
            env[r] = interp.as_float(v)
    raise InterpretError("train.fused without train.yield")
