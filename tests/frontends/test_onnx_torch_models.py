"""The frontend test models (tests/frontends/models.py) exported with
torch.onnx.export(dynamo=True), imported, and checked against onnxruntime and PyTorch eager.

The exporter folds BatchNorm into Conv, RoPE tables and masks into initializers and transposes
Linear weights into `val_*` initializers; those keep their ONNX names. Exporting takes 10-40 s
per model on 2 cores, so the zoo is in the slow group; a tiny transformer block is not.
"""

from __future__ import annotations

import time
import warnings

import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

import models
from onnx_reference import assert_close, ort_run
from pockengine.frontends.onnx_importer import from_onnx


def export(module, args, path, opset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=True, opset_version=opset, verbose=False)
    return onnx.load(path)


def check_exported(module, args, tmp_path, opset=18, rtol=1e-4):
    m = export(module, args, tmp_path / "model.onnx", opset)
    start = time.perf_counter()
    prog = from_onnx(tmp_path / "model.onnx")
    imported = time.perf_counter() - start
    prog.verify()
    arrays = [a.numpy() for a in args]
    ours = prog.run("forward", *arrays)
    ref = ort_run(m, {v.name: a for v, a in zip(m.graph.input, arrays)})[0]
    with torch.no_grad():
        eager = module(*args).numpy()
    err_ort = assert_close(ours, ref, rtol, "vs onnxruntime")
    err_eager = assert_close(ours, eager, rtol, "vs PyTorch eager")
    print(f"import {imported:.2f} s, max error {err_ort:.2e} vs onnxruntime, {err_eager:.2e} vs eager")
    return prog


class Block(torch.nn.Module):
    """A pre-norm transformer MLP block with a softmax head: Gemm, LayerNorm, Gelu/Erf, Softmax."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(16)
        self.up, self.down = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)

    def forward(self, x):
        h = x + self.down(torch.nn.functional.gelu(self.up(self.norm(x))))
        return torch.softmax(h, dim=-1)


@pytest.mark.parametrize("opset", [18, 20])
def test_tiny_block(opset, tmp_path):
    torch.manual_seed(0)
    prog = check_exported(Block().eval(), (torch.randn(2, 5, 16),), tmp_path, opset)
    roles = {p.sym_name.data: p.role.data for p in prog.params()}
    assert roles["norm.weight"] == "norm" and roles["norm.bias"] == "norm"
    assert roles["up.bias"] == "bias" and roles["down.bias"] == "bias"
    assert "train.layer_norm" in str(prog)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "mcunet", "bert_tiny", "llama_tiny", "minilm"])
def test_exported_model(name, tmp_path):
    module, args = models.FACTORIES[name]()
    prog = check_exported(module, args, tmp_path)
    if name == "llama_tiny":
        assert "train.rms_norm" in str(prog)  # Reciprocal(Sqrt) then the shared RMSNorm pattern
    if name in ("mobilenet_v2", "resnet18", "mcunet"):
        assert all(p.role.data in ("weight", "bias") for p in prog.params())  # BN is folded into Conv
