"""VJP rules against PyTorch autograd where finite differences cannot see: ties and kinks.

Inputs are small integers (as floats), so max-pool windows, maxima and clamp bounds tie
exactly; the rules must route gradients the way PyTorch does (first maximum of a pool
window, even split for amax, half each for maximum/minimum ties, strict or inclusive bounds
as in hardtanh/clamp), plus scatter-add with repeated indices, padding_idx, ignore_index.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pockengine.ir import types as T
from pockengine.ir.interpreter import Interpreter
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import loss as Lo
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from pockengine.passes.vjp import Builder, rule_for
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region


def ints(*shape, lo=-2, hi=3, seed=0):
    return np.random.default_rng(seed).integers(lo, hi, shape).astype(np.float64)


def normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# name: (IR op from its operands, the same function in torch, inputs, which inputs are differentiated)
CASES = {
    "relu-at-0": (lambda a: E.ReluOp.build(*a), torch.relu, [ints(3, 5)], [0]),
    "relu6-at-bounds": (lambda a: E.Relu6Op.build(*a), F.relu6,
                        [np.array([[-1.0, 0.0, 3.0, 6.0, 7.0, 6.0]])], [0]),
    "clamp-at-bounds": (lambda a: E.ClampOp.build(*a, min=-1.0, max=1.0), lambda x: x.clamp(-1, 1),
                        [ints(4, 4)], [0]),
    "clamp-min-only": (lambda a: E.ClampOp.build(*a, min=0.0), lambda x: x.clamp(min=0), [ints(4, 4)], [0]),
    "abs-at-0": (lambda a: E.AbsOp.build(*a), torch.abs, [ints(3, 4)], [0]),
    "maximum-ties": (lambda a: E.MaximumOp.build(*a), torch.maximum, [ints(3, 4), ints(4, seed=1)], [0, 1]),
    "minimum-ties": (lambda a: E.MinimumOp.build(*a), torch.minimum, [ints(3, 4), ints(3, 1, seed=1)], [0, 1]),
    "amax-ties": (lambda a: R.MaxOp.build(*a, axes=[1, 2]), lambda x: x.amax((1, 2)), [ints(2, 3, 4, lo=0, hi=2)], [0]),
    "amax-keepdims": (lambda a: R.MaxOp.build(*a, axes=[0], keepdims=True), lambda x: x.amax(0, keepdim=True),
                      [ints(3, 4, lo=0, hi=2)], [0]),
    "max_pool-ties": (lambda a: L.MaxPool2dOp.build(*a, kernel=(3, 3), stride=(2, 2), padding=(1, 1)),
                      lambda x: F.max_pool2d(x, 3, 2, 1), [ints(2, 2, 7, 7, lo=0, hi=2)], [0]),
    "max_pool-dilated-ceil": (
        lambda a: L.MaxPool2dOp.build(*a, kernel=(2, 3), stride=(2, 1), padding=(1, 1), dilation=(2, 1),
                                      ceil_mode=True),
        lambda x: F.max_pool2d(x, (2, 3), (2, 1), (1, 1), dilation=(2, 1), ceil_mode=True),
        [ints(1, 2, 8, 6, lo=0, hi=3)], [0]),
    "avg_pool-ceil-include-pad": (
        lambda a: L.AvgPool2dOp.build(*a, kernel=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True),
        lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), [normal(1, 2, 6, 6)], [0]),
    "avg_pool-ceil-exclude-pad": (
        lambda a: L.AvgPool2dOp.build(*a, kernel=(3, 2), stride=(2, 2), padding=(1, 1), ceil_mode=True,
                                      count_include_pad=False),
        lambda x: F.avg_pool2d(x, (3, 2), 2, 1, ceil_mode=True, count_include_pad=False),
        [normal(1, 2, 6, 7)], [0]),
    "conv2d-grouped-dilated": (
        lambda a: L.Conv2dOp.build(*a, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
        lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
        [normal(2, 4, 7, 6), normal(6, 2, 3, 2, seed=1)], [0, 1]),
    "conv2d-depthwise": (
        lambda a: L.Conv2dOp.build(*a, stride=(2, 2), padding=(1, 1), groups=3),
        lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=3),
        [normal(1, 3, 8, 8), normal(3, 1, 3, 3, seed=1)], [0, 1]),
    "conv_transpose2d-grouped-strided": (
        lambda a: L.ConvTranspose2dOp.build(*a, stride=(2, 3), padding=(1, 0), dilation=(1, 2), output_padding=(1, 2),
                                            groups=2),
        lambda x, w: F.conv_transpose2d(x, w, stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2,
                                        dilation=(1, 2)),
        [normal(2, 4, 4, 3), normal(4, 3, 3, 2, seed=1)], [0, 1]),
    "embedding-repeats-padding_idx": (
        lambda a: S.GatherOp.build(*a, padding_idx=1),
        lambda w, i: F.embedding(i, w, padding_idx=1),
        [normal(5, 3), np.array([[1, 2, 2], [0, 1, 2]])], [0]),
    "gather_elements": (
        lambda a: S.GatherElementsOp.build(*a, axis=1),
        lambda x, i: torch.gather(x, 1, i),
        [normal(3, 4), np.array([[0, 0, 3], [1, 1, 1], [2, 3, 2]])], [0]),
    "cross_entropy-ignore-spatial": (
        lambda a: Lo.CrossEntropyOp.build(*a, ignore_index=2),
        lambda z, y: F.cross_entropy(z, y, ignore_index=2),
        [normal(2, 4, 3), np.array([[0, 2, 3], [2, 1, 1]])], [0]),
    "cross_entropy-sum": (
        lambda a: Lo.CrossEntropyOp.build(*a, reduction="sum"),
        lambda z, y: F.cross_entropy(z, y, reduction="sum"), [normal(5, 3), np.array([0, 2, 1, 1, 0])], [0]),
    "layer_norm": (lambda a: N.LayerNormOp.build(*a, axis=-2, eps=1e-3),
                   lambda x, g, b: F.layer_norm(x, (3, 4), g, b, eps=1e-3),
                   [normal(2, 3, 4), normal(3, 4, seed=1), normal(3, 4, seed=2)], [0, 1, 2]),
    "rms_norm": (lambda a: N.RmsNormOp.build(*a, eps=1e-4),
                 lambda x, g: F.rms_norm(x, (4,), g, eps=1e-4), [normal(2, 3, 4), normal(4, seed=1)], [0, 1]),
    "batch_norm-frozen": (
        lambda a: N.BatchNormOp.build(*a, eps=1e-3),
        lambda x, g, b, m, v: F.batch_norm(x, m, v, g, b, training=False, eps=1e-3),
        [normal(2, 3, 4, 4), normal(3, seed=1), normal(3, seed=2), normal(3, seed=3), normal(3, seed=4) ** 2 + 0.5],
        [0, 1, 2]),
    "gelu-tanh": (lambda a: E.GeluOp.build(*a, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"),
                  [normal(3, 5)], [0]),
    "silu": (lambda a: E.SiluOp.build(*a), F.silu, [normal(3, 5)], [0]),
    "log_softmax": (lambda a: R.LogSoftmaxOp.build(*a, axis=0), lambda x: x.log_softmax(0), [normal(3, 5)], [0]),
}


def _ir_grads(build, inputs, wanted, dy):
    types = [T.tensor(x.shape, T.f64 if x.dtype.kind == "f" else T.i64) for x in inputs]
    block = Block(arg_types=types)
    op = build(list(block.args))
    block.add_op(op)
    dy_arg = block.insert_arg(op.results[0].type, len(block.args))
    grads = rule_for(op)(Builder(block), op, [dy_arg])
    block.add_op(func.ReturnOp(*[grads[i] for i in wanted]))
    fn = func.FuncOp("vjp", (block.arg_types, [grads[i].type for i in wanted]), Region(block))
    module = ModuleOp([fn])
    module.verify()
    return Interpreter(module, {}, np.float64).call("vjp", *inputs, dy)


@pytest.mark.parametrize("name", CASES)
def test_rule_matches_torch_autograd(name):
    build, fn, inputs, wanted = CASES[name]
    ts = [torch.tensor(x, requires_grad=i in wanted) for i, x in enumerate(inputs)]
    y = fn(*ts)
    dy = normal(*y.shape, seed=9)
    y.backward(torch.tensor(dy))
    got = _ir_grads(build, inputs, wanted, dy)
    for i, g in zip(wanted, got):
        np.testing.assert_allclose(g, ts[i].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{name} operand #{i}")
