"""The quantization ops' gradient rules (passes/vjp/quant.py) against PyTorch: train.fake_quantize's
straight-through estimator with the clip mask is torch.fake_quantize_per_tensor_affine /
per_channel_affine's autograd (the QAT reference), and train.dequantize's scale gradient is
checked against central finite differences. Also through the C kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pockengine import Program
from pockengine.ir import types as T
from pockengine.ir.ops import quant as Q
from pockengine.ir.ops.state import ConstantOp
from pockengine.passes.vjp import Builder, rule_for
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, i8
from xdsl.ir import Block, Region


def _vjp_module(x_shape, s, z, el):
    """@f(x, dy) -> (y, dx): fake_quantize with constant scale/zero point and its VJP rule."""
    block = Block(arg_types=[T.tensor(x_shape), T.tensor(x_shape)])
    x, dy = block.args
    sc = ConstantOp.from_array(s, T.f32)
    zp = ConstantOp.from_array(z, el)
    fq = Q.FakeQuantizeOp.build(x, sc.result, zp.result)
    block.add_ops([sc, zp, fq])
    b = Builder(block)
    dx, ds, dz = rule_for(fq)(b, fq, [dy])
    assert ds is None and dz is None  # scales and zero points are constants, as in torch
    block.add_op(func.ReturnOp(fq.result, dx))
    fn = func.FuncOp("f", ([T.tensor(x_shape)] * 2, [T.tensor(x_shape)] * 2), Region(block))
    return Program(ModuleOp([fn]), {})


def _data(rng, shape, s):
    x = (rng.standard_normal(shape) * 150 * float(np.max(s))).astype(np.float32)  # saturates on both sides
    return x, rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("unsigned", [False, True])
def test_fake_quantize_per_tensor_matches_torch(unsigned):
    rng = np.random.default_rng(1)
    s, z = np.array(0.037, np.float32), np.array(130 if unsigned else -7, np.uint8 if unsigned else np.int8)
    el, (lo, hi) = (T.ui8, (0, 255)) if unsigned else (i8, (-128, 127))
    prog = _vjp_module((6, 50), s, z, el)
    x, dy = _data(rng, (6, 50), s)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.fake_quantize_per_tensor_affine(xt, float(s), int(z), lo, hi)
    yt.backward(torch.tensor(dy))
    y, dx = prog.run("f", x, dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert 0 < (dx == 0).mean() < 1  # the clip mask cuts some gradients, not all


def test_fake_quantize_per_channel_matches_torch():
    rng = np.random.default_rng(2)
    s = np.array([0.01, 0.2, 0.05], np.float32)
    z = np.array([0, 3, -2], np.int8)
    prog = _vjp_module((4, 3, 5), s.reshape(1, 3, 1), z.reshape(1, 3, 1), i8)
    x, dy = _data(rng, (4, 3, 5), s)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.fake_quantize_per_channel_affine(xt, torch.tensor(s), torch.tensor(z, dtype=torch.int32), 1, -128, 127)
    yt.backward(torch.tensor(dy))
    y, dx = prog.run("f", x, dy)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_fake_quantize_gradient_on_the_c_target():
    import pockengine

    rng = np.random.default_rng(3)
    s, z = np.array([[0.02], [0.3]], np.float32), np.array([[5], [200]], np.uint8)
    prog = _vjp_module((2, 300), s, z, T.ui8)
    x, dy = _data(rng, (2, 300), s)
    x[0, :4] = [np.nan, np.inf, -np.inf, 0.01]
    want = prog.run("f", x, dy)
    got = pockengine.compile(prog, threads=1).call("f", x, dy)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_dequantize_scale_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    block = Block(arg_types=[T.tensor((3, 4), T.f64), T.tensor((3, 4), T.f64)])
    s, dy = block.args
    q = ConstantOp.from_array(rng.integers(-128, 128, (3, 4)).astype(np.int8), i8)
    z = ConstantOp.from_array(np.array(3, np.int8), i8)
    dq = Q.DequantizeOp.build(q.result, s, z.result)
    block.add_ops([q, z, dq])
    grads = rule_for(dq)(Builder(block), dq, [dy])
    assert grads[0] is None and grads[2] is None
    block.add_op(func.ReturnOp(dq.result, grads[1]))
    fn = func.FuncOp("f", ([T.tensor((3, 4), T.f64)] * 2, [T.tensor((3, 4), T.f64)] * 2), Region(block))
    prog = Program(ModuleOp([fn]), {})
    sv, dyv = rng.random((3, 4)) + 0.1, rng.standard_normal((3, 4))
    _, ds = prog.run("f", sv, dyv, dtype=np.float64)
    eps = 1e-6
    for idx in np.ndindex(3, 4):
        e = np.zeros((3, 4))
        e[idx] = eps
        plus, _ = prog.run("f", sv + e, dyv, dtype=np.float64)
        minus, _ = prog.run("f", sv - e, dyv, dtype=np.float64)
        assert ds[idx] == pytest.approx(((plus - minus) * dyv).sum() / (2 * eps), rel=1e-6)
