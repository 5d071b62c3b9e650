"""from_torch's contract: names, roles and state, errors, saving, and `pockengine import`."""

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from pockengine import Program, from_torch
from pockengine.frontends import FrontendError
from pockengine.tools.driver import main as driver
from torch import nn
from torch_check import check

HERE = Path(__file__).parent


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.emb = nn.Embedding(5, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)
        self.head.bias.requires_grad_(False)  # frozen by the user
        self.register_buffer("scale", torch.tensor([2.0]))

    def forward(self, x, ids):
        h = self.features(x).mean((2, 3)) + self.emb(ids)
        return self.head(self.norm(h)) * self.scale


def test_parameter_names_roles_and_state():
    net = Net().eval()
    p = check(net, (torch.randn(2, 3, 6, 6), torch.tensor([1, 4])))
    decl = {q.sym_name.data: (q.role.data, q.is_trainable) for q in p.params()}
    assert decl == {
        "features.0.weight": ("weight", True), "features.0.bias": ("bias", True),
        "features.1.weight": ("norm", True), "features.1.bias": ("norm", True),
        "features.1.running_mean": ("running_mean", False), "features.1.running_var": ("running_var", False),
        "features.1.num_batches_tracked": ("buffer", False),
        "emb.weight": ("embedding", True), "norm.weight": ("norm", True), "norm.bias": ("norm", True),
        "head.weight": ("weight", True), "head.bias": ("bias", False), "scale": ("buffer", False),
    }
    for name, t in net.state_dict().items():  # the weights are PyTorch's, by the same names
        np.testing.assert_array_equal(p.weights[name], t.numpy())
    assert list(p.functions()) == ["forward"]


def test_saved_program_reloads_and_runs(tmp_path):
    net = Net().eval()
    args = (torch.randn(2, 3, 6, 6), torch.tensor([0, 3]))
    p = from_torch(net, args)
    p.save(tmp_path / "net")
    q = Program.load(tmp_path / "net")
    q.verify()
    np.testing.assert_array_equal(q.run("forward", *[a.numpy() for a in args]),
                                  p.run("forward", *[a.numpy() for a in args]))


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls.add_(1)
        return x * 2


def test_buffer_mutation_becomes_train_set():
    p = from_torch(Counter(), (torch.ones(3),))
    assert "train.set @calls" in str(p)
    p.run("forward", np.ones(3, np.float32))
    p.run("forward", np.ones(3, np.float32))
    assert p.weights["calls"] == 2


class Sorts(nn.Module):
    def forward(self, x):
        y = x * 2
        return torch.topk(y, 2).values


def test_unsupported_op_names_op_node_and_source_line():
    with pytest.raises(FrontendError) as e:
        from_torch(Sorts(), (torch.randn(3, 4),))
    msg = str(e.value)
    assert "aten.topk.default" in msg and "node 'topk'" in msg
    assert "test_torch_import.py:" in msg and "torch.topk(y, 2)" in msg
    assert "supported_ops('torch') lists the" in msg and "\n" not in msg


def test_an_import_leaves_gc_and_torch_settings_as_it_found_them():
    import gc

    for module, args in ((Sorts(), (torch.randn(3, 4),)), (Counter(), (torch.ones(3),))):
        with contextlib.suppress(FrontendError):  # a refusal (imported twice: with stack traces) and a success
            from_torch(module, args)
        assert gc.isenabled() and torch.fx.config.do_not_emit_stack_traces is False
    gc.disable()
    try:
        from_torch(Counter(), (torch.ones(3),))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_training_mode_gets_a_hint():
    with pytest.raises(FrontendError, match=r"_native_batch_norm_legit_functional.*import module.eval\(\)"):
        from_torch(Net().train(), (torch.randn(2, 3, 6, 6), torch.tensor([1, 4])))


def test_dynamic_shapes_are_refused_clearly():
    with pytest.raises(FrontendError, match="static shapes"):
        from_torch(Counter(), (torch.ones(3),), dynamic=True)


def test_cli_imports_a_factory(tmp_path, capsys):
    (tmp_path / "net.py").write_text(
        "import torch\nfrom torch import nn\n\ndef make():\n    torch.manual_seed(0)\n"
        "    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU6(), nn.Flatten(), nn.Linear(64, 2))\n"
        "    return m.eval(), (torch.randn(2, 3, 6, 6),)\n")
    out = tmp_path / "out"
    assert driver(["import", f"{tmp_path / 'net.py'}:make", "-o", str(out)]) == 0
    assert sorted(f.name for f in out.iterdir()) == ["model.mlir", "weights.safetensors"]
    assert "wrote" in capsys.readouterr().out
    from pockengine.frontends import _call_factory

    module, args = _call_factory(f"{tmp_path / 'net.py'}:make")
    p = Program.load(out)
    p.verify()
    with torch.no_grad():
        ref = module(*args).numpy()
    np.testing.assert_allclose(p.run("forward", args[0].numpy()), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_cli_unsupported_op_writes_nothing(tmp_path, capsys):
    factory = tmp_path / "bad.py"
    factory.write_text("import torch\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
                       "        return torch.sort(x).values\n\ndef make():\n    return M(), (torch.randn(4),)\n")
    out = tmp_path / "out"
    assert driver(["import", f"{factory}:make", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "aten.sort" in err and "bad.py:5" in err and "supported_ops('torch')" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.py"]


@pytest.mark.parametrize("ref", ["nope.py:make", "models.py", "models.py:missing"])
def test_cli_bad_references(ref, tmp_path, capsys):
    ref = ref if ref.startswith("nope") else str(HERE / ref)
    assert driver(["import", ref, "-o", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err
