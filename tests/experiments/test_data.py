"""The experiments' loaders on the real files (skipped, with the reason, where a source is not
installed: CI installs them through .ci/run and `make data`)."""

from __future__ import annotations

import numpy as np
import pytest
from pockengine.experiments import data


def _or_skip(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except data.DataUnavailable as e:
        pytest.skip(str(e))


def test_fashion_mnist_test_file():
    x, y = _or_skip(data.fashion_mnist, "test")
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10  # balanced classes, as published
    assert 60 < x.mean() < 80  # real images (Fashion-MNIST's mean pixel is ~73 of 255), not the header
    assert y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]  # the published order of t10k


def test_rotten_tomatoes_snippets():
    texts, labels = _or_skip(data.rotten_tomatoes)
    assert len(texts) == 12_808 and int(labels.sum()) == 7_403  # plot summaries dropped
    assert all(isinstance(t, str) and t for t in texts[:100])


def test_jane_austen_novels():
    novels = _or_skip(data.jane_austen)
    assert set(novels) == set(data.NOVELS)
    assert novels["emma"].count("\n") + 1 == 16_235  # emma's lines in janeaustenr
    assert novels["prideprejudice"].startswith("PRIDE AND PREJUDICE")


def test_brown_files_and_tags():
    assert data.strip_tags("The/at jury/nn said/vbd ./.\n\n\tit/pps ''/''") == "The jury said .\nit ''"
    files = _or_skip(data.brown)
    assert len(files) == 500
    assert files[0].startswith("The Fulton County Grand Jury said Friday")
    assert "/nn" not in files[0] and "/at " not in files[0]


def test_missing_sources_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKENGINE_DATA", str(tmp_path))
    with pytest.raises(data.DataUnavailable, match="make data"):
        data.jane_austen()
    with pytest.raises(data.DataUnavailable, match="make data"):
        data.brown()
    with pytest.raises(data.DataUnavailable, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("train", root=tmp_path)


def test_cli_exits_2_without_data(tmp_path, monkeypatch, capsys):
    from pockengine.experiments.cli import main

    monkeypatch.setenv("POCKENGINE_DATA", str(tmp_path))
    assert main(["lm", "--tiny", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "make data" in err and "Traceback" not in err


def test_driver_subcommand_exits_2_without_data(tmp_path, monkeypatch, capsys):
    from pockengine.tools.driver import main

    monkeypatch.setenv("POCKENGINE_DATA", str(tmp_path))
    assert main(["experiment", "lm", "--tiny", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pockengine experiment lm: ") and "make data" in err and "Traceback" not in err
