"""The implicit-GEMM convolution kernels (backends/c/kernels/conv2d*.c, im2col.c) against
PyTorch autograd in float64: forward, input gradient and weight gradient on geometries that
reach each path — output tiles written in place or through the block buffer (HO·WO a
multiple of NR or not), contiguous, stride-2 and gathered column panels, padding at every
border, asymmetric padding, dilation, groups, several K, row and column blocks (the small
block size forces many), the weight read in place or packed for dx, 1×1 convolutions as one
GEMM per image, and stride-2 depthwise planes (split into stride phases, depthwise.c; its own
tests are in test_depthwise.py). All cases
of one block size go into one module: one C compile."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pockengine import Program
from pockengine.backends.c.build import build_library
from pockengine.backends.runtime import Trainer
from pockengine.backends import get_target
from pockengine.ir import types as T
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import linalg as L
from pockengine.backends.lower_to_kernels import lower_program
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region

# (N, C, H, W, O, kernel, stride, padding (top, left, bottom, right), dilation, groups)
CASES = [
    (2, 3, 20, 37, 8, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),    # a stem: stride-2 runs, odd width
    (3, 16, 16, 16, 10, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # in-place tiles, a short row tile
    (2, 32, 4, 4, 150, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),   # two K blocks, more rows than MC
    (3, 20, 2, 2, 20, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),    # 2×2 outputs: buffered, a part panel
    (2, 12, 9, 9, 8, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),     # 1×1 stride 2
    (2, 8, 5, 31, 8, (1, 1), (1, 2), (0, 0, 0, 0), (1, 1), 1),     # a stride-2 panel ending at the row end
    (2, 8, 11, 13, 12, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 2),   # dilation, groups
    (2, 6, 10, 9, 7, (3, 2), (2, 1), (1, 0, 2, 1), (1, 1), 1),     # asymmetric kernel, stride, padding
    (2, 8, 8, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4),      # groups with 2 output channels each
    (2, 4, 3, 3, 260, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),    # dx: more output channels than KC
    (2, 16, 12, 12, 24, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # dx: wide blocks, packed wᵀ
    (2, 24, 8, 8, 16, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),    # pointwise, large images: GEMM per image
    (2, 8, 9, 9, 12, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2),     # the same with groups
    (3, 24, 5, 5, 16, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),    # pointwise, small images: runs over images
    (1, 4, 17, 17, 6, (5, 5), (3, 3), (2, 2, 2, 2), (1, 1), 1),    # stride 3
    (1, 3, 33, 40, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),    # wide rows: runs and border panels
    # depthwise (depthwise.c) with stride 2: wide rows, phases of unequal size
    (2, 8, 33, 35, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 8),
    (1, 6, 40, 37, 12, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 6),   # a channel multiplier of 2
    (2, 4, 20, 34, 4, (3, 3), (2, 2), (1, 0, 0, 1), (1, 1), 4),    # no left padding
    (2, 4, 21, 36, 4, (3, 3), (2, 2), (0, 1, 1, 0), (1, 2), 4),    # dilated columns
]


def out_size(n, k, s, lo, hi, d):
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def case_ops(args, case):
    n, c, h, w, o, k, s, p, d, g = case
    props = {"stride": s, "padding": p, "dilation": d, "groups": g}
    x, wt, dy = args
    return [L.Conv2dOp.build(x, wt, **props),
            G.Conv2dBackwardInputOp.build(dy, wt, input_size=[h, w], **props),
            G.Conv2dBackwardWeightOp.build(x, dy, kernel=list(k), **props)]


def shapes(case):
    n, c, h, w, o, k, s, p, d, g = case
    ho, wo = out_size(h, k[0], s[0], p[0], p[2], d[0]), out_size(w, k[1], s[1], p[1], p[3], d[1])
    return (n, c, h, w), (o, c // g, *k), (n, o, ho, wo)


def reference(case, x, w, dy):
    """y, dx, dw by autograd on the padded input (F.conv2d pads symmetrically only)."""
    n, c, h, wd, o, k, s, p, d, g = case
    x, w, dy = (torch.from_numpy(a).double().requires_grad_() for a in (x, w, dy))
    y = F.conv2d(F.pad(x, (p[1], p[3], p[0], p[2])), w, stride=s, dilation=d, groups=g)
    y.backward(dy)
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy()


@pytest.mark.parametrize("block", [None, 1024], ids=["default-blocks", "small-blocks"])
def test_conv_kernels_match_torch(block, monkeypatch):
    from pockengine.backends.c import library

    if block:
        monkeypatch.setattr(library, "CONV_BLOCK", block)
    fns = []
    for i, case in enumerate(CASES):
        xs, ws, ys = shapes(case)
        block_ = Block(arg_types=[T.tensor(xs), T.tensor(ws), T.tensor(ys)])
        ops = case_ops(list(block_.args), case)
        block_.add_ops([*ops, func.ReturnOp(*(op.result for op in ops))])
        fns.append(func.FuncOp(f"f{i}", (list(block_.arg_types), [op.result.type for op in ops]), Region(block_)))
    prog = Program(ModuleOp(fns))
    kp = lower_program(prog)
    trainer = Trainer(prog, kp, build_library(kp, get_target("c")))
    rng = np.random.default_rng(0)
    for i, case in enumerate(CASES):
        args = [rng.standard_normal(s).astype(np.float32) for s in shapes(case)]
        for name, got, want in zip(("y", "dx", "dw"), trainer.call(f"f{i}", *args), reference(case, *args)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=f"{name} {case}")
