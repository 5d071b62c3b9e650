"""The `train` dialect: every op of ir/ops/ in one xDSL Dialect."""

from xdsl.ir import Dialect

from .ops import elementwise, fused, grad, linalg, loss, norm, optim, quant, reduce, shape, state

OPS = [*state.OPS, *elementwise.OPS, *linalg.OPS, *shape.OPS, *reduce.OPS, *norm.OPS, *loss.OPS,
       *grad.OPS, *optim.OPS, *fused.OPS, *quant.OPS]

Train = Dialect("train", OPS, [])
