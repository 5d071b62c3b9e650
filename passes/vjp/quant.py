"""Gradient rules of the quantization ops (ir/ops/quant.py).

Integer values carry no gradient (train.quantize, train.matmul_integer and train.conv_integer
are non-differentiable), so a float gradient crosses quantization only through
train.fake_quantize, the quantize → dequantize pair the frontends fuse on activations.
Scales and zero points are treated as constants (detached), as in
torch.fake_quantize_per_tensor_affine / per_channel_affine and PyTorch's QAT observers.
"""

from __future__ import annotations

from pockengine.ir.ops import quant as Q

from . import vjp


@vjp(Q.FakeQuantizeOp)
def fake_quantize(b, op, grads_out):
    """y = (clamp(round(x/s) + z, lo, hi) - z)·s  →  dx = dy·[lo ≤ round(x/s) + z ≤ hi]
    (the straight-through estimator with the clip mask); no gradient for s or z"""
    return [b.fake_quantize_backward(op.x, op.scale, op.zero_point, grads_out[0]), None, None]


@vjp(Q.DequantizeOp)
def dequantize(b, op, grads_out):
    """y = (q - z)·s  →  ds = Σ dy·(q - z) (summed to s's shape); none for the integers q, z"""
    q_minus_z = b.dequantize(op.x, b.const(1.0, op.scale), op.zero_point)
    return [None, b.sum_to(b.mul(grads_out[0], q_minus_z), op.scale), None]
