"""`pockengine demo --llm` on a toy Llama: the compiled sparse step and PyTorch eager with the
same scheme fine-tune identically; the corpus is Python's own text."""

from __future__ import annotations

import numpy as np
import pytest


def test_corpus_is_python_text_as_ascii_bytes():
    from pockengine.demo import corpus

    pre, tune = corpus.texts()
    assert len(pre) > 300_000 and len(tune) > 50_000  # the Language Reference; stdlib docstrings + Zen
    assert pre.dtype == np.int64 and 0 <= pre.min() and max(pre.max(), tune.max()) < corpus.VOCAB
    assert "Beautiful is better than ugly." in corpus.decode(tune)
    assert 'The "if" statement' in corpus.decode(pre)
    a, b = corpus.batches(pre, 2, 16, 2, seed=3), corpus.batches(pre, 2, 16, 2, seed=3)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))  # seeded


def test_llm_scheme_selects_late_projections_and_norms():
    from pockengine.demo.llm import LLMConfig, scheme_text

    text = scheme_text(LLMConfig())
    assert "model.layers.3.mlp.*: ratio 1/4" in text and "model.layers.2.*norm.weight: full" in text
    assert "model.layers.1." not in text  # early blocks stay frozen: backprop stops before them


@pytest.mark.slow
def test_llm_demo_pipeline_matches_pytorch(tmp_path, capsys):
    from pockengine.demo import llm

    results = llm.run(llm.LLMConfig.tiny(), tmp_path)
    by = {r.name: r for r in results}
    np.testing.assert_allclose(by["compiled sparse (C)"].losses, by["PyTorch eager, same scheme"].losses, rtol=2e-4)
    assert by["compiled sparse (C)"].quality == pytest.approx(by["PyTorch eager, same scheme"].quality, rel=1e-4)
    assert [s for s, _ in by["compiled sparse (C)"].evals] == [0, 2, 4]
    full, sparse = by["PyTorch eager, full BP"], by["compiled sparse (C)"]
    assert sparse.memory["training_extra"] > 0 and full.memory["training_extra"] > 0
    out = capsys.readouterr().out
    assert out.count("\n[") + out.startswith("[") == 7
    assert (tmp_path / "llm_scheme.pock").is_file()
    assert list((tmp_path / "cache").glob("llm-*.pt"))  # the pretraining is cached
