"""The interpreter's max_pool2d_backward (the oracle the kernels are checked against) routes dy to
the first maximum among the window's cells *inside* the input, as PyTorch does: padding never wins,
not even over a window whose cells are all -inf (it did: the padded -inf came first in argmax order,
so the gradient was cropped away), and a NaN is the maximum. Among several NaNs of a window the
first gets dy (PyTorch's CPU kernel picks the last one; the C and GPU kernels agree with the
interpreter), so NaN windows are checked for where dy may land, not against torch's choice."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pockengine.ir.interpreter.grad import run_max_pool2d_backward


def _ours(x, dy, k, s, pad, dil):
    p = SimpleNamespace(kernel=(k, k), stride=(s, s), padding=(pad,) * 4, dilation=(dil, dil))
    return run_max_pool2d_backward(None, SimpleNamespace(p=p), x, dy)


@pytest.mark.parametrize("fill", [-np.inf, "mixed", np.nan])
@pytest.mark.parametrize("k,s,pad,dil", [(2, 1, 1, 1), (3, 2, 1, 1), (3, 1, 1, 2)])
def test_first_inside_maximum_like_torch(fill, k, s, pad, dil):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    if fill == "mixed":  # ties of -inf beside finite cells, and a NaN
        x[x < 0.3] = -np.inf
    else:
        x[:] = fill
    t = torch.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, k, s, pad, dil)
    dy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(torch.tensor(dy))
    ours = _ours(x, dy, k, s, pad, dil)
    if fill is np.nan:  # every window's dy lands on one of its cells: nothing is cropped away
        np.testing.assert_allclose(ours.sum(), dy.sum(), rtol=1e-5)
        return
    np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-6, atol=1e-6)
