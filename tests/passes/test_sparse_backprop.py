"""`sparse-backprop`: the IR it produces, and its training against PyTorch with frozen tensors
(`requires_grad=False`) and channel gradient masks."""

import sys
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import BoolAttr

sys.path.insert(0, str(Path(__file__).parent))
import sparse_models as M
from pockengine.ir.ops.state import SetOp, SetSliceOp
from pockengine.passes import PipelineError, run_pipeline
from pockengine.passes.scheme import Scheme
from pockengine.passes.sparse_backprop import SparseBackpropError, sparse_backprop

SGD = "autodiff{optimizer=sgd lr=0.1 momentum=0.9}"
ADAM = "autodiff{optimizer=adam lr=0.01}"
# features.1 is depthwise (ratio on channels 0..3), features.3 pointwise (input channels 0..2),
# the classifier a linear layer (input features 0..7)
CNN_SCHEME = """default frozen
last 2 conv layers: bias
features.1: ratio 1/2
features.3: ratio 1/4
classifier.weight: ratio 0.5
classifier.bias: full"""
MLP_SCHEME = "default frozen\nfc2: ratio 1/3\nfc3.bias: full\nfc1.bias: full"


def inline(scheme: str) -> str:
    """Scheme text for a pipeline string: statements on one line, `;`-separated."""
    return "; ".join(line.strip() for line in scheme.splitlines() if line.strip())


def _step(prog, spec):
    p = prog.copy()
    run_pipeline(p, spec)
    p.verify()
    return p


def _sets(prog):
    fn = prog.functions()["train_step"]
    return {op.param.root_reference.data: op for op in fn.walk() if isinstance(op, (SetOp, SetSliceOp))}


def test_frozen_parameters_lose_update_and_state():
    p = _step(M.cnn(), f'{SGD},sparse-backprop{{scheme="default frozen; classifier.*: full"}}')
    assert set(_sets(p)) == {"classifier.weight", "classifier.bias", "classifier.weight.momentum",
                             "classifier.bias.momentum", "optimizer.step"}
    assert p.trainable() == ["classifier.weight", "classifier.bias"]
    state = [q.sym_name.data for q in p.params() if q.role.data == "optimizer_state"]
    assert state == ["optimizer.step", "classifier.weight.momentum", "classifier.bias.momentum"]
    assert set(p.weights) == {q.sym_name.data for q in p.params()}


def test_ratio_update_writes_a_slice_and_shrinks_its_state():
    p = _step(M.cnn(), f'{SGD},sparse-backprop{{scheme="features.3: ratio 1/4; features.1: ratio 1/2"}}')
    sets = _sets(p)
    conv, dw = sets["features.3.0.weight"], sets["features.1.0.weight"]
    assert isinstance(conv, SetSliceOp) and conv.slice_axis == 1 and conv.value.type.get_shape() == (16, 3, 1, 1)
    assert isinstance(dw, SetSliceOp) and dw.slice_axis == 0 and dw.value.type.get_shape() == (4, 1, 3, 3)
    assert p.param("features.3.0.weight.momentum").type.get_shape() == (16, 3, 1, 1)
    assert p.weights["features.3.0.weight.momentum"].shape == (16, 3, 1, 1)
    assert p.param("features.3.0.weight").type.get_shape() == (16, 12, 1, 1)  # the parameter itself keeps its shape


def test_state_values_keep_their_slice_when_the_scheme_comes_later():
    p = _step(M.mlp(), SGD)
    x, y = M.inputs(p), M.labels(p)
    p.run("train_step", x, y)
    momentum = p.weights["fc2.weight.momentum"].copy()
    run_pipeline(p, 'sparse-backprop{scheme="fc2.weight: ratio 1/2"}')
    np.testing.assert_array_equal(p.weights["fc2.weight.momentum"], momentum[:, :5])
    assert "fc1.weight.momentum" not in p.weights
    p.run("train_step", x, y)


def _torch_train(model, prog0, decisions, x, y, optimizer, steps):
    """PyTorch reference: frozen tensors have requires_grad=False, ratio tensors a gradient mask."""
    import torch

    w = {k: torch.tensor(v, requires_grad=decisions.get(k) is not None and decisions[k].mode != "frozen")
         for k, v in prog0.weights.items()}
    trained = [w[k] for k, u in decisions.items() if u.mode != "frozen"]
    opt = torch.optim.SGD(trained, lr=0.1, momentum=0.9) if optimizer == "sgd" else torch.optim.Adam(trained, lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(w, torch.tensor(x)), torch.tensor(y))
        loss.backward()
        for k, u in decisions.items():
            if u.mode == "ratio":  # keep the gradient of the first `channels` slices along `axis` only
                mask = torch.zeros_like(w[k].grad)
                mask.narrow(u.axis, 0, u.channels).fill_(1)
                w[k].grad *= mask
        opt.step()
    return {k: v.detach().numpy() for k, v in w.items()}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_sparse_training_matches_pytorch_with_masks(name, optimizer):
    prog0 = getattr(M, name)()
    scheme = CNN_SCHEME if name == "cnn" else MLP_SCHEME
    x, y = M.inputs(prog0), M.labels(prog0)
    p = _step(prog0, f'{SGD if optimizer == "sgd" else ADAM},sparse-backprop{{scheme="{inline(scheme)}"}},'
                     'dead-gradient-elimination')
    decisions = Scheme.parse(scheme).resolve(prog0)
    assert any(u.mode == "ratio" for u in decisions.values()) and any(u.mode == "frozen" for u in decisions.values())
    for _ in range(3):
        p.run("train_step", x, y)
    want = _torch_train(getattr(M, f"torch_{name}"), prog0, decisions, x, y, optimizer, 3)
    for k, v in want.items():
        np.testing.assert_allclose(p.weights[k], v, rtol=1e-4, atol=1e-6, err_msg=k)
    for k, u in decisions.items():  # frozen tensors and untouched channels stay bit-identical
        if u.mode == "frozen":
            np.testing.assert_array_equal(p.weights[k], prog0.weights[k])
        elif u.mode == "ratio":
            rest = np.take(p.weights[k], range(u.channels, p.weights[k].shape[u.axis]), axis=u.axis)
            np.testing.assert_array_equal(rest, np.take(prog0.weights[k], range(u.channels, rest.shape[u.axis] + u.channels),
                                                        axis=u.axis))


def test_errors():
    prog = M.cnn()
    with pytest.raises(SparseBackpropError, match="needs @train_step: run autodiff first"):
        sparse_backprop(prog.module, Scheme.parse("classifier.*: full"))
    with pytest.raises(SparseBackpropError, match="needs a scheme"):
        run_pipeline(_step(prog, SGD), "sparse-backprop")
    with pytest.raises(SparseBackpropError, match=r"<inline scheme>:1:1: `nope\*` matches no parameter"):
        run_pipeline(_step(prog, SGD), 'sparse-backprop{scheme="nope*: full"}')
    with pytest.raises(PipelineError, match="has no option 'schema'"):
        run_pipeline(_step(prog, SGD), 'sparse-backprop{schema="x"}')
    frozen_first = prog.copy()
    frozen_first.param("classifier.bias").properties["trainable"] = BoolAttr.from_bool(False)
    with pytest.raises(SparseBackpropError, match="none of them trainable"):
        run_pipeline(_step(frozen_first, SGD), 'sparse-backprop{scheme="classifier.bias: full"}')


def test_scheme_file_option(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(__import__("json").dumps(Scheme.parse("default frozen\nclassifier.*: full").to_json()))
    p = _step(M.cnn(), f'{SGD},sparse-backprop{{scheme="{f}"}}')
    assert p.trainable() == ["classifier.weight", "classifier.bias"]
