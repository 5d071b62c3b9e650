"""The VJP registry: one gradient rule per forward op class of the `train` dialect.

A rule has a fixed signature and returns one gradient (or None) per operand:

    @vjp(E.MulOp)
    def mul(b, op, grads_out):
        \"\"\"z = x * y  →  dx = dz·y, dy = dz·x (each summed back to its operand's shape)\"\"\"
        dz = grads_out[0]
        return [b.sum_to(b.mul(dz, op.rhs), op.lhs), b.sum_to(b.mul(dz, op.lhs), op.rhs)]

`b` is a `Builder`: `b.<op>(*operands, **props)` appends `train.<op>` at the end of the
backward code and returns its result, `b.const(v, like)` makes a scalar of `like`'s element
type, `b.sum_to(g, like)` un-broadcasts. The rules live in files named like the op families
(passes/vjp/linalg.py ↔ ir/ops/linalg.py). Rules may emit gradients nobody asked for (an
input's gradient, a norm's dγ): autodiff deletes what stays unused, so rules stay short.
Backward-only ops (ir/ops/grad.py) and optimizer ops have no rules: no second order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pockengine.ir import types as T
from pockengine.ir.dialect import OPS
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import fused, grad, optim, state
from pockengine.ir.ops import quant as Q
from pockengine.ir.ops import reduce as R
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue

from ...errors import UserError

Rule = Callable[["Builder", Operation, list[SSAValue | None]], list[SSAValue | None]]
RULES: dict[type[Operation], Rule] = {}

# ops without a rule: masks, comparisons and state access (no float gradient flows through
# them), gradient and optimizer ops (no second order) and fusion groups (made after autodiff).
# Met on a gradient path anyway, they stop autodiff with MissingRuleError.
NON_DIFFERENTIABLE: frozenset[type[Operation]] = frozenset([
    E.LogicalNotOp, E.AndOp, E.OrOp, E.EqOp, E.NeOp, E.LtOp, E.LeOp, E.GtOp, E.GeOp, R.AnyOp,
    *state.OPS, *grad.OPS, *optim.OPS, *fused.OPS, ModuleOp,
    Q.QuantizeOp, Q.FakeQuantizeBackwardOp, Q.MatmulIntegerOp, Q.ConvIntegerOp,  # integer results
])


class MissingRuleError(UserError):
    """An op on the path from a trained parameter to the loss has no gradient rule."""


def vjp(*op_types: type[Operation]):
    """Register the decorated function as the rule of each op class."""

    def register(fn: Rule) -> Rule:
        for t in op_types:
            assert t not in RULES, f"two gradient rules for {t.name}"
            RULES[t] = fn
        return fn

    return register


def rules() -> dict[type[Operation], Rule]:
    from . import elementwise, linalg, loss, norm, quant, reduce, shape  # noqa: F401

    return RULES


def rule_for(op: Operation, where: str = "") -> Rule:
    rule = rules().get(type(op))
    if rule is None:
        raise MissingRuleError(f"no gradient rule for {op.name}{where}:\n  {op}\n"
                               f"(add one with @vjp({type(op).__name__}) in passes/vjp/)")
    return rule


_BY_NAME = {op.name.removeprefix("train."): op for op in OPS}


class Builder:
    """Appends ops to the end of a block (or before `before`) and remembers them (`created`)."""

    def __init__(self, block: Block, before: Operation | None = None):
        self.block, self.before = block, before
        self.created: list[Operation] = []
        self._consts: dict[tuple, SSAValue] = {}

    def emit(self, cls: type[Operation], *operands: SSAValue, **props) -> SSAValue | tuple[SSAValue, ...]:
        op = cls.build(*operands, **props)
        self.insert(op)
        return op.results[0] if len(op.results) == 1 else tuple(op.results)

    def insert(self, op: Operation) -> Operation:
        if self.before is None:
            self.block.add_op(op)
        else:
            self.block.insert_op_before(op, self.before)
        self.created.append(op)
        return op

    def __getattr__(self, name: str):
        cls = _BY_NAME.get(name.removesuffix("_"))  # b.and_ for train.and
        if cls is None:
            raise AttributeError(f"no op train.{name}")
        return lambda *operands, **props: self.emit(cls, *operands, **props)

    def const(self, value: float, like: SSAValue) -> SSAValue:
        """A rank-0 constant with `like`'s element type (binary ops broadcast it)."""
        el = T.element(like)
        key = (float(value), el)
        if key not in self._consts:
            self._consts[key] = self.insert(state.ConstantOp.scalar(value, el)).results[0]
        return self._consts[key]

    def scale(self, g: SSAValue, factor: float) -> SSAValue:
        return g if factor == 1 else self.mul(g, self.const(factor, g))

    def sum_to(self, g: SSAValue, like: SSAValue | Sequence[int]) -> SSAValue:
        """Un-broadcast: sum `g` over the dims numpy broadcasting added or stretched."""
        want = tuple(T.shape(like)) if isinstance(like, SSAValue) else tuple(like)
        have = T.shape(g)
        if have == want:
            return g
        lead = len(have) - len(want)
        axes = [*range(lead), *(lead + i for i, d in enumerate(want) if d == 1 and have[lead + i] != 1)]
        s = self.sum(g, axes=axes) if axes else g
        return s if T.shape(s) == want else self.reshape(s, shape=list(want))

    def expand(self, g: SSAValue, axes: Sequence[int], keepdims: bool, like: SSAValue) -> SSAValue:
        """Broadcast a reduction's gradient back over the reduced axes of `like`."""
        shape = T.shape(like)
        kept = T.reduced(shape, axes, True)
        if not keepdims and kept != T.shape(g):
            g = self.reshape(g, shape=list(kept))
        return g if kept == shape else self.broadcast(g, shape=list(shape))


def count(shape: Sequence[int], axes: Sequence[int]) -> int:
    """Number of elements a reduction over `axes` averages."""
    return math.prod(shape[a] for a in T.norm_axes(axes, len(shape)))
