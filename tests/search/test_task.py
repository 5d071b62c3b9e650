"""The digits transfer task: real data, disjoint splits, a pretrained and imported program."""

from __future__ import annotations

import numpy as np
import pytest
from pockengine.search import task as T


@pytest.fixture(scope="module")
def digits():
    return T.load_digits()


def test_the_bundled_digits_are_real_and_balanced(digits):
    x, y = digits
    assert x.shape == (5000, 1, 14, 14) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [500] * 10
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    # real handwriting: the mean "1" is a vertical stroke, the mean "0" a ring with a hole
    one, zero = x[y == 1].mean(0)[0], x[y == 0].mean(0)[0]
    assert one[:, 6:8].mean() > one[:, :3].mean() + 1 and zero[7, 7] < zero[7, 3] - 0.5


def test_splits_are_disjoint_and_relabelled(digits):
    x, y = digits
    (xs, ys), (train, val, test) = T._splits(x, y)
    assert set(ys.tolist()) == {0, 1, 2, 3, 4} and len(xs) == 2500
    assert [len(s[1]) for s in (train, val, test)] == [1000, 500, 1000]
    keys = [{a.tobytes() for a in s[0]} for s in (train, val, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    for _, labels in (train, val, test):
        assert set(labels.tolist()) == {0, 1, 2, 3, 4} and labels.dtype == np.int64
    again = T._splits(x, y)[1]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip((train, val, test), again))


def test_head_initialization_is_seeded():
    w = {"classifier.weight": np.zeros((5, 64), np.float32), "classifier.bias": np.zeros(5, np.float32), "k": 1}
    a, b, c = T.init_head(w, 0), T.init_head(w, 0), T.init_head(w, 1)
    assert np.array_equal(a["classifier.weight"], b["classifier.weight"])
    assert not np.array_equal(a["classifier.weight"], c["classifier.weight"])
    assert np.abs(a["classifier.weight"]).max() <= 1 / 8 and a["k"] == 1


@pytest.mark.slow
def test_pretrained_program_matches_the_torch_net(tmp_path):
    """Pretraining (< 1 min) and import: the program's forward equals the torch net it came from."""
    import torch

    task = T.digits_transfer(batch=16, cache_dir=tmp_path)
    assert task.pretrain_accuracy > 0.95
    assert len(task.program.functions()["forward"].body.block.args[0].type.get_shape()) == 4
    again = T.digits_transfer(batch=16, cache_dir=tmp_path)  # cached: no second pretraining
    assert again.pretrain_accuracy == task.pretrain_accuracy
    net = T.TinyMobileNetV2(5)
    state = {k: torch.tensor(v) for k, v in task.program.weights.items()}
    net.load_state_dict(state, strict=False)
    net.eval()
    x = task.val[0][:16]
    with torch.no_grad():
        ref = net(torch.tensor(x)).numpy()
    np.testing.assert_allclose(task.program.run("forward", x), ref, rtol=1e-4, atol=1e-4)
    # the source classes were learned: the backbone + its old head would classify them; here the
    # new head is random, so the transfer split starts near chance
    logits = task.program.run("forward", task.val[0][:16])
    assert logits.shape == (16, 5)
