"""Small hand-built models for the scheme / sparse-backprop / DGE / cost tests.

`cnn()` is a MobileNet-like stack (conv-BN-ReLU6, depthwise, pointwise with a bias, pointwise
with BN, global pool, classifier); `mlp()` is three linear layers. Both are built with the
op builders, so they exercise the same IR the frontends produce, and come with seeded weights.
"""

from __future__ import annotations

import numpy as np
from pockengine import Program
from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.state import GetOp, ParamOp
from xdsl.builder import Builder
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region
from xdsl.rewriter import InsertPoint


class Net:
    """Appends ops to @forward and records parameters with seeded values."""

    def __init__(self, input_shape, seed=0):
        self.rng = np.random.default_rng(seed)
        self.params: list[ParamOp] = []
        self.weights: dict[str, np.ndarray] = {}
        self.block = Block(arg_types=[T.tensor(input_shape)])
        self.b = Builder(InsertPoint.at_end(self.block))
        self.x = self.block.args[0]

    def param(self, name, shape, role="weight", value=None, trainable=True):
        if value is None:
            value = self.rng.standard_normal(shape) * (1 / np.sqrt(max(np.prod(shape[1:]), 1)))
        self.params.append(ParamOp(name, T.tensor(shape), role, trainable))
        self.weights[name] = np.asarray(value, np.float32).reshape(shape)
        return self.b.insert(GetOp.of(self.params[-1])).result

    def op(self, op):
        return self.b.insert(op).results[0]

    def conv_bn(self, name, cin, cout, k=3, stride=1, groups=1, act=True):
        w = self.param(f"{name}.0.weight", (cout, cin // groups, k, k))
        self.x = self.op(L.Conv2dOp.build(self.x, w, stride=(stride, stride), padding=(k // 2, k // 2), groups=groups))
        self.bn(f"{name}.1", cout)
        if act:
            self.x = self.op(E.ClampOp.build(self.x, min=0.0, max=6.0))

    def bn(self, name, c):
        g = self.param(f"{name}.weight", (c,), "norm", 1 + 0.1 * self.rng.standard_normal(c))
        b = self.param(f"{name}.bias", (c,), "bias", 0.1 * self.rng.standard_normal(c))
        m = self.param(f"{name}.running_mean", (c,), "running_mean", 0.1 * self.rng.standard_normal(c), False)
        v = self.param(f"{name}.running_var", (c,), "running_var", 1 + 0.1 * self.rng.random(c), False)
        self.x = self.op(N.BatchNormOp.build(self.x, g, b, m, v))

    def conv_bias(self, name, cin, cout, act=True):
        w = self.param(f"{name}.weight", (cout, cin, 1, 1))
        b = self.param(f"{name}.bias", (cout,), "bias", 0.1 * self.rng.standard_normal(cout))
        y = self.op(L.Conv2dOp.build(self.x, w))
        b4 = self.op(S.ReshapeOp.build(b, [1, cout, 1, 1]))
        self.x = self.op(E.AddOp.build(y, b4))
        if act:
            self.x = self.op(E.ReluOp.build(self.x))

    def linear(self, name, cin, cout, act=False):
        w = self.param(f"{name}.weight", (cout, cin))
        b = self.param(f"{name}.bias", (cout,), "bias", 0.1 * self.rng.standard_normal(cout))
        self.x = self.op(E.AddOp.build(self.op(L.LinearOp.build(self.x, w)), b))
        if act:
            self.x = self.op(E.ReluOp.build(self.x))

    def program(self) -> Program:
        self.b.insert(func.ReturnOp(self.x))
        fn = func.FuncOp("forward", (list(self.block.arg_types), [self.x.type]), Region(self.block))
        prog = Program(ModuleOp([*self.params, fn]), self.weights)
        prog.verify()
        return prog


def cnn(batch=2, size=8, seed=0) -> Program:
    """features.0 conv3x3 3→8 s2 +BN, features.1 depthwise 8 +BN, features.2 pointwise 8→12 + bias,
    features.3 pointwise 12→16 +BN, pool, classifier 16→5."""
    n = Net((batch, 3, size, size), seed)
    n.conv_bn("features.0", 3, 8, stride=2)
    n.conv_bn("features.1", 8, 8, groups=8)
    n.conv_bias("features.2", 8, 12)
    n.conv_bn("features.3", 12, 16, k=1, act=False)
    n.x = n.op(L.GlobalAvgPoolOp.build(n.x))
    n.x = n.op(S.ReshapeOp.build(n.x, [batch, 16]))
    n.linear("classifier", 16, 5)
    return n.program()


def mlp(batch=4, seed=0) -> Program:
    n = Net((batch, 6), seed)
    n.linear("fc1", 6, 10, act=True)
    n.linear("fc2", 10, 8, act=True)
    n.linear("fc3", 8, 3)
    return n.program()


def labels(prog: Program, seed=1) -> np.ndarray:
    fn = prog.functions()["forward"]
    n, c = fn.function_type.outputs.data[0].get_shape()
    return np.random.default_rng(seed).integers(0, c, size=n).astype(np.int64)


def inputs(prog: Program, seed=2) -> np.ndarray:
    fn = prog.functions()["forward"]
    shape = fn.function_type.inputs.data[0].get_shape()
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)




# --- the same models in PyTorch (the independent reference) -------------------------------


def torch_cnn(w: dict, x):
    """cnn() written with torch.nn.functional; `w` maps parameter names to tensors."""
    import torch.nn.functional as F

    def bn(y, name):
        return F.batch_norm(y, w[f"{name}.running_mean"], w[f"{name}.running_var"], w[f"{name}.weight"],
                            w[f"{name}.bias"], training=False, eps=1e-5)

    y = F.hardtanh(bn(F.conv2d(x, w["features.0.0.weight"], stride=2, padding=1), "features.0.1"), 0, 6)
    y = F.hardtanh(bn(F.conv2d(y, w["features.1.0.weight"], padding=1, groups=8), "features.1.1"), 0, 6)
    y = F.relu(F.conv2d(y, w["features.2.weight"], w["features.2.bias"]))
    y = bn(F.conv2d(y, w["features.3.0.weight"]), "features.3.1")
    y = y.mean(dim=(2, 3))
    return F.linear(y, w["classifier.weight"], w["classifier.bias"])


def torch_mlp(w: dict, x):
    import torch.nn.functional as F

    y = F.relu(F.linear(x, w["fc1.weight"], w["fc1.bias"]))
    y = F.relu(F.linear(y, w["fc2.weight"], w["fc2.bias"]))
    return F.linear(y, w["fc3.weight"], w["fc3.bias"])
