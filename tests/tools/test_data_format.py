"""The one .npz format of `pockengine train` and `pockengine search` (pockengine/data.py):
every way a data file can be wrong is a DataError naming the file and the array."""

from __future__ import annotations

import numpy as np
import pytest
from pockengine import data
from pockengine.errors import UserError


def _save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_x_y_and_the_validation_split(tmp_path):
    x, y = np.ones((6, 2), np.float32), np.arange(6)
    p = _save(tmp_path / "d.npz", x=x, y=y, x_val=x[:2], y_val=y[:2])
    got = data.step_arrays(p, 2)
    assert [a.tolist() for a in got] == [x.tolist(), y.tolist()]
    (tx, ty), (vx, vy) = data.splits(p)
    assert tx.shape == (6, 2) and ty.shape == (6,) and vx.shape == (2, 2) and vy.tolist() == [0, 1]
    # x_train / y_train are the same arrays by their other names
    q = _save(tmp_path / "old.npz", x_train=x, y_train=y, x_val=x, y_val=y)
    assert data.splits(q)[0][1].tolist() == y.tolist()
    # a step of three inputs reads arr_0, arr_1, arr_2
    r = tmp_path / "three.npz"
    np.savez(r, x, y, y)
    assert len(data.step_arrays(r, 3)) == 3


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"garbage" * 9), "not an .npz file (no zip header)"),
    (lambda p: p.write_bytes(b""), "not an .npz file"),
    (lambda p: np.save(p, np.zeros(3)), "a single .npy array, not an .npz"),
    (lambda p: np.savez(p, x=np.array([1, "a", None], dtype=object), y=np.arange(3)),
     "array 'x' holds Python objects"),
    (lambda p: np.savez(p, x=np.zeros((3, 2)), y=np.array(["a", "b", "c"])), "array 'y' holds strings"),
    (lambda p: np.savez(p, x=np.zeros((3, 2)), y=np.array([True, False, True])), "array 'y' holds booleans"),
    (lambda p: np.savez(p, x=np.zeros((3, 2))), "missing arrays y (has x"),
    (lambda p: np.savez(p, a=np.zeros(3)), "missing arrays x, y"),
    (lambda p: np.savez(p, x=np.zeros((3, 2)), y=np.arange(4)), "'x' has 3 samples but 'y' has 4"),
    (lambda p: np.savez(p, x=np.zeros((0, 2)), y=np.arange(0)), "'x' holds no samples"),
])
def test_bad_files_name_the_file_and_the_array(tmp_path, make, message):
    path = tmp_path / "d.npz"
    make(path)
    if not path.exists():  # np.save appended .npy
        path = tmp_path / "d.npz.npy"
    with pytest.raises(data.DataError, match=None) as e:
        data.step_arrays(path, 2)
    assert str(e.value).startswith(str(path)) and message in str(e.value), str(e.value)
    assert isinstance(e.value, UserError)


def test_truncated_archive(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((64, 64)), y=np.arange(64))
    p.write_bytes(p.read_bytes()[:3000])
    with pytest.raises(data.DataError, match="d.npz"):
        data.step_arrays(p, 2)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(data.DataError, match="no such data file"):
        data.step_arrays(tmp_path / "nope.npz", 2)
    with pytest.raises(data.DataError, match="not a file"):
        data.step_arrays(tmp_path, 2)


def test_search_needs_the_validation_split(tmp_path):
    p = _save(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.arange(4))
    with pytest.raises(data.DataError, match="missing arrays x_val, y_val"):
        data.splits(p)


def test_labels_are_not_truncated():
    assert data.as_input("d.npz", "y", np.array([1.0, 3.0]), "i64").tolist() == [1, 3]
    for bad in ([0.7, 1.0], [1.0, np.nan], [np.inf]):
        with pytest.raises(data.DataError, match="array 'y' feeds an integer input"):
            data.as_input("d.npz", "y", np.array(bad), "i64")
    assert data.as_input("d.npz", "m", np.array([0, 1]), "i1").dtype == np.bool_
    assert data.as_input("d.npz", "x", np.array([1, 2]), "f32").dtype == np.float32


def test_the_help_text_is_what_both_commands_show():
    import argparse

    from pockengine.backends import cli as backends_cli
    from pockengine.search import cli as search_cli

    for module, prog in ((backends_cli, "pockengine train"), (search_cli, "pockengine search")):
        parser = argparse.ArgumentParser(prog=prog)
        module.add_arguments(parser)
        text = " ".join(parser.format_help().split())
        assert "arrays x" in text and "y" in text and "one row per sample" in text, text
