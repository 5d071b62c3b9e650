"""ATen lowerings, family by family: small modules imported and compared with PyTorch eager."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_check import check, op_counts

torch.manual_seed(0)


class Elementwise(nn.Module):
    def forward(self, x, n):
        a = x * 2 + 1 - x / 3 - 2 * x
        b = torch.rsqrt(x.abs() + 1) + x.pow(3) + torch.sqrt(x * x + 1) + torch.exp(-x) + torch.log(x.abs() + 1)
        c = torch.sin(x) * torch.cos(x) + torch.tanh(x) + torch.sigmoid(x) + torch.erf(x) + 1 / (x.abs() + 1)
        d = F.gelu(x) + F.gelu(x, approximate="tanh") + F.relu(x) + F.hardtanh(x, -0.5, 0.5) + F.silu(x) + F.relu6(4 * x)
        e = torch.where(x > 0, x, n.float()) + (n * 2 + 1) / 2 + torch.maximum(x, n) + torch.minimum(x, 0.5 * n)
        mask = ((x >= 0.1) & (n <= 3)) | ~(x == n) | (n != 2) & (x < n) | (x > 1.5)
        ints = (n + 3) * n - 1 - torch.tensor(2) * n
        return a + b + c + d + e, mask, ints, x.clamp(min=-0.2), n.clamp(0, 4), 2.0 ** x, 1 - x


class Reductions(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln2 = nn.LayerNorm((3, 5))

    def forward(self, x):
        return (x.sum(-1), x.mean((0, 2), keepdim=True), x.amax(1), torch.softmax(x, -1), torch.log_softmax(x, 1),
                x.cumsum(1), (x > 0).any(-1), F.layer_norm(x, (5,)), self.ln2(x), (x > 0).sum(-1), x.sum(),
                (x > 0).cumsum(-1))


class Movement(nn.Module):
    def forward(self, x, idx, idx3):
        parts = torch.split(x, [1, 3], dim=0)
        return (x[:, 1:4, ::2], x[..., -2:], x[2], x.permute(2, 0, 1).reshape(6, -1), torch.cat([x, x * 2], -1),
                F.pad(x, (1, 2, 0, 1), value=0.5), x[idx], x[idx, :, idx], x[:, idx + 1], torch.gather(x, 2, idx3),
                x.unsqueeze(1).expand(4, 3, 5, 6), x.transpose(0, 1).contiguous(), parts[1], x[:, -1],
                torch.index_select(x, 1, idx.reshape(-1).abs()), x[:, None, 2:].squeeze(1), x.flatten(1), x.t() if x.dim() == 2
                else x.reshape(4, 30).t())


class ConvPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 4, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(3, 6, 3, padding=2, dilation=2, groups=3)
        self.c3 = nn.Conv2d(6, 4, (1, 3), stride=(2, 1), bias=False)

    def forward(self, x):
        y = self.c3(self.c2(x))
        pooled = (F.max_pool2d(y, 3, 2, 1, ceil_mode=True), F.avg_pool2d(y, 3, 2, 1, count_include_pad=False),
                  F.avg_pool2d(y, 2, ceil_mode=True), F.adaptive_avg_pool2d(y, 1), y.mean((2, 3)))
        return (self.c1(x.flatten(2)), *pooled)


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4, padding_idx=0)

    def forward(self, ids):
        return self.emb(ids), torch.arange(ids.shape[1]) * 2 + ids, torch.full_like(ids, 7), torch.zeros(2, 3)


def test_elementwise():
    x = torch.randn(3, 4)
    n = torch.randint(-3, 5, (3, 4))
    check(Elementwise(), (x, n))


def test_reductions_and_norms():
    m = Reductions().eval()
    with torch.no_grad():
        m.ln2.weight.uniform_(0.5, 1.5)
        m.ln2.bias.uniform_(-0.5, 0.5)
    check(m, (torch.randn(2, 3, 5),))


def test_movement_and_indexing():
    x = torch.randn(4, 5, 6)
    idx = torch.tensor([[0, 3, -1], [2, 1, 0]])
    idx3 = torch.randint(0, 6, (4, 5, 2))
    check(Movement(), (x, idx, idx3))


def test_conv_and_pooling():
    check(ConvPool().eval(), (torch.randn(2, 3, 9, 9),))


class LayerNormStats(nn.Module):
    def forward(self, x, w, b):
        y, mean, rstd = torch.ops.aten.native_layer_norm(x, [4], w, b, 1e-5)
        return y, mean, rstd


def test_layer_norm_statistics_outputs():
    check(LayerNormStats(), (torch.randn(2, 3, 4), torch.rand(4) + 0.5, torch.randn(4)))


def test_embedding_and_creation():
    p = check(Embed(), (torch.randint(0, 10, (2, 5)),))
    gathers = [op for op in p.module.walk() if op.name == "train.gather"]
    assert [g.p.padding_idx for g in gathers] == [0]
    # arange/full/zeros fold at import: no op computes them at run time
    assert op_counts(p)["train.mul"] == 0


class Losses(nn.Module):
    def forward(self, z, y, z3, y3):
        return (F.cross_entropy(z, y), F.cross_entropy(z, y, reduction="sum"), F.cross_entropy(z, y, ignore_index=2),
                F.cross_entropy(z3, y3))


def test_cross_entropy_chain_becomes_one_op():
    z, y = torch.randn(6, 5), torch.tensor([1, 2, 0, 4, 2, 3])
    z3, y3 = torch.randn(2, 5, 3), torch.randint(0, 5, (2, 3))
    p = check(Losses(), (z, y, z3, y3))
    ces = [op for op in p.module.walk() if op.name == "train.cross_entropy"]
    assert sorted((c.p.reduction, c.p.ignore_index) for c in ces) == [("mean", -100), ("mean", 2), ("sum", -100)]
    assert op_counts(p)["train.gather_elements"] == 1  # only the [N, C, d] form keeps the decomposition


class RMSNorm(nn.Module):  # as transformers' LlamaRMSNorm
    def __init__(self, n, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(n) + 0.5)
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = RMSNorm(8)
        self.up = nn.Linear(8, 16, bias=False)
        self.down = nn.Linear(16, 8)

    def forward(self, x):
        return self.down(F.silu(self.up(self.norm(x)))) + x


def test_canonical_linear_rmsnorm_silu():
    p = check(Block(), (torch.randn(2, 3, 8),))
    ops = op_counts(p)
    assert ops["train.rms_norm"] == 1 and ops["train.silu"] == 1 and ops["train.linear"] == 2
    for gone in ("train.matmul", "train.transpose", "train.reshape", "train.pow", "train.rsqrt", "train.sigmoid"):
        assert ops[gone] == 0, gone
    (rms,) = [op for op in p.module.walk() if op.name == "train.rms_norm"]
    assert rms.p.eps == 1e-6


class CausalMask(nn.Module):
    def forward(self, x):
        n = x.shape[1]
        i = torch.arange(n)
        mask = i[None, :] <= i[:, None]
        scores = x @ x.transpose(1, 2)
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)


def test_shape_only_subgraphs_fold_to_constants():
    p = check(CausalMask(), (torch.randn(2, 5, 4),))
    ops = op_counts(p)
    assert ops["train.le"] == 0 and ops["train.logical_not"] == 0
    const_masks = [op for op in p.module.walk() if op.name == "train.constant"]
    assert const_masks, "the causal mask should be one constant"


@pytest.mark.parametrize("shape", [(1, 3, 7, 7), (2, 3, 8, 6)])
def test_resnet_stem(shape):
    stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    with torch.no_grad():
        stem[1].running_mean.uniform_(-0.2, 0.2)
        stem[1].running_var.uniform_(0.5, 1.5)
    check(stem.eval(), (torch.randn(*shape),))


def test_fresh_inputs_are_not_baked_in():
    m = Elementwise()
    x, n = torch.randn(3, 4), torch.randint(-3, 5, (3, 4))
    p = check(m, (x, n))
    x2, n2 = torch.randn(3, 4), torch.randint(-3, 5, (3, 4))
    with torch.no_grad():
        ref = m(x2, n2)[0].numpy()
    np.testing.assert_allclose(p.run("forward", x2.numpy(), n2.numpy())[0], ref, rtol=1e-4, atol=1e-4)
