"""Real models through from_torch: the interpreted forward matches PyTorch eager (rtol 1e-4, f32)
on the example inputs and on fresh random ones (nothing input-dependent is folded at import).

`pytest -s` prints one line per model: max abs/rel error and import time."""

import models
import pytest
import torch
from pockengine import Program
from torch_check import check, compare, op_counts


def fresh_inputs(name, args):
    g = torch.Generator().manual_seed(123)
    if name in ("bert_tiny", "llama_tiny", "minilm"):
        vocab = 30522 if name == "minilm" else 1000
        ids = torch.randint(1, vocab, args[0].shape, generator=g)
        if len(args) == 1:
            return (ids,)
        mask = torch.ones_like(args[1])
        mask[0, args[1].shape[1] // 3:] = 0
        return ids, mask
    return tuple(torch.randn(a.shape, generator=g) for a in args)


def run_model(name, tmp_path):
    module, args = models.FACTORIES[name]()
    p = check(module, args)
    p.save(tmp_path / name)  # the saved text and weights give the same program
    errs2 = compare(Program.load(tmp_path / name), module, fresh_inputs(name, args))
    err_abs, err_rel = max(p.errors[0], errs2[0]), max(p.errors[1], errs2[1])
    print(f"\n{name}: max abs {err_abs:.2e}, max rel {err_rel:.2e}, import {p.import_seconds:.1f} s "
          f"({p.import_cpu_seconds:.1f} s CPU)")
    return p


def test_mcunet(tmp_path):
    p = run_model("mcunet", tmp_path)
    assert op_counts(p)["train.conv2d"] == 27


def test_bert_tiny(tmp_path):
    p = run_model("bert_tiny", tmp_path)
    ops = op_counts(p)
    assert ops["train.linear"] == 14 and ops["train.layer_norm"] == 5 and ops["train.matmul"] == 4
    assert p.param("bert.embeddings.word_embeddings.weight").role.data == "embedding"


def test_llama_tiny_gqa(tmp_path):
    p = run_model("llama_tiny", tmp_path)
    ops = op_counts(p)
    assert ops["train.rms_norm"] == 5 and ops["train.linear"] == 15 and ops["train.silu"] == 2
    inv = p.param("model.rotary_emb.inv_freq")
    assert inv.role.data == "buffer" and not inv.is_trainable


@pytest.mark.slow
def test_mobilenet_v2(tmp_path):
    p = run_model("mobilenet_v2", tmp_path)
    assert op_counts(p)["train.relu6"] == 35
    assert p.param("features.3.conv.0.0.weight").role.data == "weight"


@pytest.mark.slow
def test_resnet18(tmp_path):
    p = run_model("resnet18", tmp_path)
    assert op_counts(p)["train.max_pool2d"] == 1


@pytest.mark.slow
def test_minilm_pretrained(tmp_path):
    p = run_model("minilm", tmp_path)
    assert len([q for q in p.params() if q.is_trainable]) == 103  # the checkpoint's tensors
