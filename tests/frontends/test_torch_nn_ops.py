"""Layers of common models (frontends/torch_nn_ops.py): forward against PyTorch eager, gradients
against autograd, and three SGD steps of the compiled C trainer against torch.optim."""

import numpy as np
import pockengine
import pytest
import torch
from pockengine.frontends import FrontendError, from_torch, supported_ops
from pockengine.passes import run_pipeline
from torch import nn
from torch_check import check, op_counts

LAYERS = {
    "conv_transpose2d": (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), (2, 4, 5, 5)),
    "conv_transpose2d-grouped": (nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=(0, 1), groups=2,
                                                    dilation=(1, 2)), (2, 4, 5, 5)),
    "conv_transpose1d": (nn.ConvTranspose1d(4, 6, 3, stride=2), (2, 4, 5)),
    "conv3d": (nn.Conv3d(4, 6, 3, stride=(2, 1, 1), padding=1, groups=2), (2, 4, 5, 6, 6)),
    "conv3d-dilated": (nn.Conv3d(4, 6, (2, 3, 3), dilation=(2, 1, 1), bias=False), (1, 4, 5, 6, 6)),
    "max_pool3d": (nn.MaxPool3d(3, 2, 1), (1, 2, 5, 5, 5)),
    "avg_pool3d": (nn.AvgPool3d((2, 3, 3), 1, 1), (1, 2, 4, 4, 4)),
    "leaky_relu": (nn.LeakyReLU(0.1), (4, 3, 5, 5)),
    "prelu": (nn.PReLU(3), (4, 3, 5, 5)),
    "elu": (nn.ELU(0.7), (4, 30)),
    "selu": (nn.SELU(), (4, 30)),
    "softplus": (nn.Softplus(2.0, 10), (4, 30)),
    "hardswish": (nn.Hardswish(), (4, 30)),
    "hardsigmoid": (nn.Hardsigmoid(), (4, 30)),
    "group_norm": (nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    "instance_norm2d": (nn.InstanceNorm2d(4, affine=True), (2, 4, 3, 3)),
    "instance_norm1d": (nn.InstanceNorm1d(4), (2, 4, 7)),
    "batch_norm-no-running-stats": (nn.BatchNorm2d(4, track_running_stats=False), (3, 4, 2, 2)),
    "upsample-nearest": (nn.Upsample(scale_factor=2, mode="nearest"), (2, 3, 4, 4)),
    "upsample-nearest-fraction": (nn.Upsample(scale_factor=1.7, mode="nearest"), (2, 3, 4, 5)),
    "upsample-nearest-exact": (nn.Upsample(size=(7, 9), mode="nearest-exact"), (2, 3, 4, 5)),
    "upsample-bilinear": (nn.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4, 4)),
    "upsample-bilinear-align": (nn.Upsample(size=(7, 9), mode="bilinear", align_corners=True), (2, 3, 4, 4)),
    "upsample-bilinear-down": (nn.Upsample(scale_factor=0.6, mode="bilinear"), (2, 3, 5, 5)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch(name):
    torch.manual_seed(0)
    layer, shape = LAYERS[name]
    check(layer.eval(), (torch.randn(shape) * 3,))


class Scaled(nn.Module):
    def __init__(self, layer, channels):
        super().__init__()
        self.scale, self.layer = nn.Parameter(torch.rand(channels) + 0.5), layer

    def forward(self, x):
        return self.layer(x * self.scale.reshape(-1, *[1] * (x.dim() - 2)))


@pytest.mark.parametrize("name", ["conv_transpose2d-grouped", "conv3d", "max_pool3d", "avg_pool3d", "elu", "prelu",
                                  "softplus", "group_norm", "instance_norm2d", "upsample-bilinear"])
def test_layer_gradients_match_autograd(name):
    """The gradients of an mse loss for the layer's parameters and a scale of its input (so the
    input gradient is checked too), through autodiff of the imported layer vs torch autograd."""
    torch.manual_seed(0)
    layer, shape = LAYERS[name]
    layer = Scaled(layer, shape[1]).eval().double()
    x = torch.randn(shape, dtype=torch.float64) * 3
    program = from_torch(layer, (x,))
    trainable = program.trainable()
    with torch.no_grad():
        r = torch.randn(layer(x).shape, dtype=torch.float64)
    run_pipeline(program, "autodiff{loss=mse optimizer=sgd lr=1.0}")
    before = {n: program.weights[n].copy() for n in trainable}
    program.run("train_step", x.numpy(), (layer(x) - r / 2).detach().numpy(), dtype=np.float64)
    loss = ((layer(x) - (layer(x) - r / 2).detach()) ** 2).mean()
    loss.backward()
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(before[n] - program.weights[n], p.grad.numpy(), rtol=1e-6, atol=1e-9, err_msg=n)


@pytest.mark.parametrize("layer", [nn.ELU(), nn.Softplus(), nn.SELU()])
def test_large_inputs_give_finite_gradients(layer):
    """exp of the untaken branch never overflows: no 0·inf = NaN in the gradient."""
    x = torch.tensor([[-200.0, -3.0, 0.0, 5.0, 100.0, 300.0]])
    program = from_torch(nn.Sequential(nn.Linear(6, 6), layer).eval(), (x,))
    run_pipeline(program, "autodiff{loss=mse optimizer=sgd lr=0.01}")
    program.run("train_step", x.numpy(), np.zeros((1, 6), np.float32))
    assert all(np.isfinite(v).all() for v in program.weights.values())
    nan = program.run("forward", np.full((1, 6), np.nan, np.float32))
    assert np.isnan(nan).all()  # NaN in, NaN out


def test_compiled_training_matches_torch():
    """Every new layer in one network, compiled to C with train-mode BatchNorm (batch_norm="batch"):
    three SGD steps give PyTorch's losses (model.train()) and running statistics."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.LeakyReLU(0.1),
        nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(4, affine=True),
        nn.Hardswish(), nn.Upsample(scale_factor=0.5, mode="bilinear"), nn.PReLU(), nn.ELU(),
        nn.Upsample(scale_factor=2, mode="nearest"), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
        nn.Softplus(), nn.Hardsigmoid()).eval()
    x, y = torch.randn(2, 3, 6, 6), torch.randint(0, 3, (2,))
    program = from_torch(model, (x,))
    assert op_counts(program)["train.conv_transpose2d"] == 1
    trainer = pockengine.compile(program, loss="cross_entropy", optimizer="sgd", lr=0.1, batch_norm="batch")
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        got = trainer.step(x.numpy(), y.numpy())
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        assert got == pytest.approx(loss.item(), rel=1e-4)
    stats = trainer.parameters()
    for name in ("1.running_mean", "1.running_var"):
        np.testing.assert_allclose(stats[name], model.state_dict()[name].numpy(), rtol=1e-4, atol=1e-6)


def test_refusal_is_one_line_and_the_list_is_on_request():
    class Sorts(nn.Module):
        def forward(self, x):
            return torch.sort(x).values

    with pytest.raises(FrontendError) as e:
        from_torch(Sorts(), (torch.randn(3, 4),))
    msg = str(e.value)
    assert "\n" not in msg and "aten.sort" in msg and "supported_ops('torch')" in msg and len(msg) < 300
    ops = supported_ops("torch")
    assert "aten.scaled_dot_product_attention.default" in ops and "aten.convolution.default" in ops


def test_unsupported_geometry_is_located():
    with pytest.raises(FrontendError, match=r"max_pool3d_with_indices.*node .*max_pool3d with ceil_mode=True"):
        from_torch(nn.MaxPool3d(2, ceil_mode=True), (torch.randn(1, 1, 5, 5, 5),))


class InplaceReuse(nn.Module):
    """relu_ overwrites y, which is read again (directly and through a view) afterwards."""

    def forward(self, x):
        y = x * 2
        v = y.view(-1)
        z = y.relu_()
        return z + y, v * 3


class InplacePrivate(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        y += 1.0
        return torch.relu_(y).flatten(1)


@pytest.mark.parametrize("model", [InplaceReuse, InplacePrivate])
def test_training_ir_path_matches_decomposed_path(model, monkeypatch):
    """The training IR lowered directly (no run_decompositions) and the decomposed program give
    the same numbers; an in-place op whose target is read later makes the import decompose."""
    from pockengine.frontends import torch_import

    torch.manual_seed(0)
    m, x = model().eval(), torch.randn(2, 3, 5, 5)
    direct = check(m, (x,))
    assert (direct.import_phases["decompositions"] == 0.0) == (model is InplacePrivate)
    monkeypatch.setattr(torch_import, "DIRECT", False)
    decomposed = check(m, (x,))
    assert decomposed.import_phases["decompositions"] > 0
    for a, b in zip(direct.run("forward", x.numpy()), decomposed.run("forward", x.numpy())):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


class Attention(nn.Module):
    """F.scaled_dot_product_attention over its argument combinations, and the CPU flash variant."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x, keep, bias):
        sdpa = torch.nn.functional.scaled_dot_product_attention
        q = self.proj(x).reshape(2, 4, 5, 2)  # [B, H, L, E]
        k, v = x.reshape(2, 4, 5, 2), (x * 2).reshape(2, 4, 5, 2)
        kv2 = x.reshape(2, 4, 5, 2)[:, :2]  # 2 key/value heads for 4 query heads
        flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, is_causal=True, scale=0.5)
        return (sdpa(q, k, v), sdpa(q, k, v, is_causal=True), sdpa(q, k, v, attn_mask=keep),  # a row fully masked
                sdpa(q, k, v, attn_mask=bias, scale=0.3), sdpa(q, kv2, kv2 * 3, enable_gqa=True), flash[0], flash[1])


def test_attention_variants_match_torch_and_autograd():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    keep = torch.rand(2, 1, 5, 5) > 0.3
    keep[0, 0, 2] = False
    bias = torch.randn(5, 5)
    model = Attention().eval()
    program = check(model, (x, keep, bias))
    assert op_counts(program)["train.softmax"] == 6
    # gradients through every form (the fully masked row included) against autograd
    model = AttentionLoss().eval()
    program = from_torch(model, (x, keep, bias))
    target = torch.randn(model(x, keep, bias).shape)
    run_pipeline(program, "autodiff{loss=mse optimizer=sgd lr=1.0}")
    before = {n: program.weights[n].copy() for n in program.trainable()}
    program.run("train_step", x.numpy(), keep.numpy(), bias.numpy(), target.numpy())
    torch.nn.functional.mse_loss(model(x, keep, bias), target).backward()
    for n, p in model.named_parameters():
        np.testing.assert_allclose(before[n] - program.weights[n], p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=n)


class AttentionLoss(Attention):
    def forward(self, x, keep, bias):
        outs = super().forward(x, keep, bias)
        return torch.cat([o.flatten() for o in outs[:6]])


def test_inplace_activation_on_the_input():
    """nn.ReLU(inplace=True) as the first layer mutates the user's input: not an output."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(5, 2), nn.Hardswish()).eval()
    x = torch.randn(4, 5)
    program = from_torch(model, (x.clone(),))
    with torch.no_grad():
        ref = model(x.clone()).numpy()
    np.testing.assert_allclose(program.run("forward", x.numpy()), ref, rtol=1e-5, atol=1e-6)
