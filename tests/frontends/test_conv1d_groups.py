"""Grouped and depthwise Conv1d through the torch frontend (issue 12: untested, so a mutant in
their import survived): the imported forward equals PyTorch eager, and the step autodiff
derives gives PyTorch's gradients."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from pockengine import from_torch
from pockengine.passes import run_pipeline
from torch import nn

CASES = {  # (in, out, kernel, groups, stride, padding, dilation)
    "grouped": (8, 12, 3, 4, 1, 1, 1),
    "depthwise": (6, 6, 5, 6, 1, 2, 1),
    "depthwise-multiplier": (4, 8, 3, 4, 2, 1, 1),
    "grouped-dilated": (6, 6, 3, 3, 1, 2, 2),
}


class Net(nn.Module):
    def __init__(self, cin, cout, k, groups, stride, padding, dilation):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.head = nn.Linear(cout, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=-1))


@pytest.mark.parametrize("case", sorted(CASES))
def test_grouped_conv1d_forward_and_gradients_match_pytorch(case):
    torch.manual_seed(0)
    cin, *_ = CASES[case]
    net = Net(*CASES[case]).eval()
    x = torch.randn(2, cin, 11)
    prog = from_torch(net, (x,))
    np.testing.assert_allclose(prog.run("forward", x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-5)

    y = torch.tensor([0, 2])
    lr = 0.1
    run_pipeline(prog, f"autodiff{{optimizer=sgd lr={lr}}}")
    before = {k: v.copy() for k, v in prog.weights.items()}
    prog.run("train_step", x.numpy(), y.numpy())
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    grads = dict(net.named_parameters())
    for name in ("conv.weight", "conv.bias"):
        (key,) = [k for k in before if k.endswith(name) or k == name]
        got = (before[key] - prog.weights[key]) / lr
        np.testing.assert_allclose(got, grads[name].grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{case} {name}")
