"""The interpreter against PyTorch's eager functions, op by op, on the generated cases of
op_cases.py (random shapes, attributes and dtypes), in float64 and float32."""

from __future__ import annotations

import math

import numpy as np
import op_cases as C
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import examples
from pockengine.ir.interpreter import Interpreter
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import loss as Lo
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S

_TORCH_DTYPE = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32, "f64": torch.float64,
                "i64": torch.int64, "i32": torch.int32, "i1": torch.bool}


def _cast(op, x):
    y = x.to(_TORCH_DTYPE[op.p.to])
    return y.double() if y.is_floating_point() else y  # f16/bf16 rounding, then compare wide


def _clamp(op, x):
    lo, hi = op.p.min, op.p.max
    if lo == -math.inf and hi == math.inf:
        return x
    return torch.clamp(x, None if lo == -math.inf else lo, None if hi == math.inf else hi)


def _div(op, a, b):
    return torch.div(a, b) if a.is_floating_point() else torch.div(a, b, rounding_mode="floor")


def _conv2d(op, x, w):
    p = op.p
    pt, pl, pb, pr = p.padding
    return F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, stride=p.stride, dilation=p.dilation, groups=p.groups)


def _conv_transpose2d(op, x, w):
    """Unpadded transposed conv, extended by output_padding, then cropped by [top, left, bottom, right]."""
    p = op.p
    pt, pl, _, _ = p.padding
    ho, wo = op.result.type.get_shape()[2:]
    y = F.conv_transpose2d(x, w, stride=p.stride, dilation=p.dilation, groups=p.groups)
    y = F.pad(y, (0, p.output_padding[1], 0, p.output_padding[0]))
    return y[..., pt:pt + ho, pl:pl + wo]


def _max_pool(op, x):
    p = op.p
    return F.max_pool2d(x, p.kernel, p.stride, p.padding[:2], p.dilation, ceil_mode=p.ceil_mode)


def _avg_pool(op, x):
    p = op.p
    return F.avg_pool2d(x, p.kernel, p.stride, p.padding[:2], ceil_mode=p.ceil_mode,
                        count_include_pad=p.count_include_pad)


def _pad(op, x):
    r = x.dim()
    lo, hi = op.p.pads[:r], op.p.pads[r:]
    flat = [v for i in reversed(range(r)) for v in (lo[i], hi[i])]  # torch: last dim first
    return F.pad(x, flat, value=op.p.value)


def _slice(op, x):
    idx = [slice(None)] * x.dim()
    for a, s, e, k in zip(op.p.axes, op.p.starts, op.p.ends, op.p.steps):
        idx[a] = slice(s, e, k)
    return x[tuple(idx)]


def _gather(op, x, idx):
    ax = op.p.axis % x.dim()
    n = x.shape[ax]
    flat = torch.index_select(x, ax, (idx.long() % n).reshape(-1))
    return flat.reshape((*x.shape[:ax], *idx.shape, *x.shape[ax + 1:]))


def _gather_elements(op, x, idx):
    ax = op.p.axis % x.dim()
    return torch.gather(x, ax, idx % x.shape[ax])


def _reduce(fn):
    def run(op, x):
        if not op.p.axes:  # the IR reduces nothing over empty axes (torch would reduce all)
            return x
        return fn(x, dim=tuple(op.p.axes), keepdim=op.p.keepdims)

    return run


def _layer_norm(op, x, g, b):
    return F.layer_norm(x, x.shape[op.p.axis % x.dim():], g, b, op.p.eps)


def _rms_norm(op, x, g):
    return F.rms_norm(x, x.shape[op.p.axis % x.dim():], g, op.p.eps)


def _batch_norm(op, x, g, b, mean, var):
    return F.batch_norm(x, mean, var, g, b, training=False, eps=op.p.eps)


def _cross_entropy(op, logits, labels):
    if op.p.reduction == "mean" and bool((labels == op.p.ignore_index).all()):
        return torch.zeros((), dtype=logits.dtype)  # the IR's choice; torch gives nan (0/0)
    return F.cross_entropy(logits, labels, ignore_index=op.p.ignore_index, reduction=op.p.reduction)


TORCH = {
    E.NegOp: lambda op, x: -x,
    E.AbsOp: lambda op, x: torch.abs(x),
    E.SqrtOp: lambda op, x: torch.sqrt(x),
    E.RsqrtOp: lambda op, x: torch.rsqrt(x),
    E.ReciprocalOp: lambda op, x: torch.reciprocal(x),
    E.ExpOp: lambda op, x: torch.exp(x),
    E.LogOp: lambda op, x: torch.log(x),
    E.TanhOp: lambda op, x: torch.tanh(x),
    E.SinOp: lambda op, x: torch.sin(x),
    E.CosOp: lambda op, x: torch.cos(x),
    E.ErfOp: lambda op, x: torch.special.erf(x),
    E.SigmoidOp: lambda op, x: torch.sigmoid(x),
    E.ReluOp: lambda op, x: F.relu(x),
    E.Relu6Op: lambda op, x: F.relu6(x),
    E.SiluOp: lambda op, x: F.silu(x),
    E.GeluOp: lambda op, x: F.gelu(x, approximate=op.p.approximate),
    E.ClampOp: _clamp,
    E.LogicalNotOp: lambda op, x: torch.logical_not(x),
    E.CastOp: _cast,
    E.AddOp: lambda op, a, b: a + b,
    E.SubOp: lambda op, a, b: a - b,
    E.MulOp: lambda op, a, b: a * b,
    E.DivOp: _div,
    E.PowOp: lambda op, a, b: torch.pow(a, b),
    E.MaximumOp: lambda op, a, b: torch.maximum(a, b),
    E.MinimumOp: lambda op, a, b: torch.minimum(a, b),
    E.AndOp: lambda op, a, b: torch.bitwise_and(a, b),
    E.OrOp: lambda op, a, b: torch.bitwise_or(a, b),
    E.EqOp: lambda op, a, b: a == b,
    E.NeOp: lambda op, a, b: a != b,
    E.LtOp: lambda op, a, b: a < b,
    E.LeOp: lambda op, a, b: a <= b,
    E.GtOp: lambda op, a, b: a > b,
    E.GeOp: lambda op, a, b: a >= b,
    E.WhereOp: lambda op, c, a, b: torch.where(c, a, b),
    L.Conv2dOp: _conv2d,
    L.ConvTranspose2dOp: _conv_transpose2d,
    L.MatmulOp: lambda op, a, b: torch.matmul(a, b),
    L.LinearOp: lambda op, x, w: F.linear(x, w),
    L.MaxPool2dOp: _max_pool,
    L.AvgPool2dOp: _avg_pool,
    L.GlobalAvgPoolOp: lambda op, x: F.adaptive_avg_pool2d(x, 1),
    L.PadOp: _pad,
    S.ReshapeOp: lambda op, x: x.reshape(op.p.shape),
    S.TransposeOp: lambda op, x: x.permute(op.p.perm),
    S.BroadcastOp: lambda op, x: x.expand(op.p.shape),
    S.SliceOp: _slice,
    S.ConcatOp: lambda op, *xs: torch.cat(xs, op.p.axis),
    S.GatherOp: _gather,
    S.GatherElementsOp: _gather_elements,
    R.SumOp: _reduce(torch.sum),
    R.MeanOp: _reduce(torch.mean),
    R.MaxOp: _reduce(torch.amax),
    R.AnyOp: _reduce(lambda x, dim, keepdim: torch.any(x, dim=dim, keepdim=keepdim)),
    R.SoftmaxOp: lambda op, x: torch.softmax(x, op.p.axis),
    R.LogSoftmaxOp: lambda op, x: torch.log_softmax(x, op.p.axis),
    R.CumsumOp: lambda op, x: torch.cumsum(x, op.p.axis),
    N.BatchNormOp: _batch_norm,
    N.LayerNormOp: _layer_norm,
    N.RmsNormOp: _rms_norm,
    Lo.CrossEntropyOp: _cross_entropy,
    Lo.MseOp: lambda op, a, b: F.mse_loss(a, b, reduction=op.p.reduction),
}

# PyTorch's pooling takes symmetric padding of at most half the kernel; the IR allows more
# (tests/ir/test_oracle_loops.py checks those against direct loops).
STRATEGY = {L.MaxPool2dOp: lambda op: C.pool(op, torch_legal=True),
            L.AvgPool2dOp: lambda op: C.pool(op, torch_legal=True)}


def interpret(case, arrays, float_dtype):
    module = case.module()
    op = next(o for o in module.walk() if isinstance(o, case.op))
    with np.errstate(all="ignore"):
        outs = Interpreter(module, {}, float_dtype).call("f", *arrays)
    return op, outs


def as_torch(a: np.ndarray, float_dtype) -> torch.Tensor:
    return torch.from_numpy((a.astype(float_dtype) if a.dtype.kind == "f" else a).copy())  # 0-d stays 0-d


def tolerance(float_dtype):
    return (1e-9, 1e-11) if float_dtype == np.float64 else (2e-5, 1e-5)


@pytest.mark.parametrize("op", list(TORCH), ids=lambda op: op.name)
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), float_dtype=st.sampled_from([np.float64, np.float32]))
def test_matches_torch(op, data, float_dtype):
    case = data.draw(STRATEGY.get(op, C.cases)(op))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    arrays = case.inputs(rng)
    instance, (out,) = interpret(case, arrays, float_dtype)
    want = TORCH[op](instance, *[as_torch(a, float_dtype) for a in arrays])
    want = want.float().numpy() if want.dtype == torch.bfloat16 else want.numpy()
    assert out.shape == want.shape
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(out, want)
        return
    rtol, atol = tolerance(float_dtype)
    if isinstance(instance, E.CastOp) and instance.p.to in ("f16", "bf16"):
        rtol = 1e-7  # both round to the same narrow value; only the wide compare differs
    np.testing.assert_allclose(out, want.astype(out.dtype), rtol=rtol, atol=atol, equal_nan=True)


def test_torch_table_covers_forward_ops():
    """Every op of the forward families has a PyTorch reference here. (State ops are checked in
    test_interpreter_types.py; backward and optimizer ops by the autodiff tests.)"""
    from pockengine.ir.ops import elementwise, linalg, loss, norm, reduce, shape

    forward = [*elementwise.OPS, *linalg.OPS, *shape.OPS, *reduce.OPS, *norm.OPS, *loss.OPS]
    assert not [op.name for op in forward if op not in TORCH]
