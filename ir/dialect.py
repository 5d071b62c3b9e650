"""The `train` dialect: every op of ir/ops/ in one xDSL Dialect."""

from xdsl.ir import Dialect

from .ops import elementwise, linalg, loss, norm, reduce, shape, state

OPS = [*state.OPS, *elementwise.OPS, *linalg.OPS, *shape.OPS, *reduce.OPS, *norm.OPS, *loss.OPS]

Train = Dialect("train", OPS, [])
