"""Compiled trainers for the demo: the training pipeline from Python, then the C backend.

    autodiff{loss=... optimizer=... lr=...},sparse-backprop{scheme="s.pock"},dead-gradient-elimination

runs on a copy of the imported program (the same pipeline string works in `pock-opt -p`), and
`pockengine.compile` turns the resulting @train_step into a shared library (reordering, fusion
and the memory plan happen there).
"""

from __future__ import annotations

from pathlib import Path


def pipeline(loss: str, optimizer: str, scheme: Path | None = None, **hyper) -> str:
    opts = " ".join(f"{k}={v}" for k, v in {"loss": loss, "optimizer": optimizer, **hyper}.items())
    spec = f"autodiff{{{opts}}}"
    if scheme is not None:
        spec += f',sparse-backprop{{scheme="{scheme}"}},dead-gradient-elimination'
    return spec


def compile_trainer(program, loss: str, optimizer: str, scheme: Path | None = None, **hyper):
    """(Trainer, the pipeline string it ran)."""
    from pockengine.backends.runtime import compile as compile_program
    from pockengine.passes import run_pipeline

    spec = pipeline(loss, optimizer, scheme, **hyper)
    step = run_pipeline(program.copy(), spec)
    return compile_program(step), spec
