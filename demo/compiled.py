"""Compiled trainers for the demo: the compile recipe (pockengine/pipeline.py) from Python.

    slice-propagation,autodiff{loss=... optimizer=... lr=...},sparse-backprop{scheme="s.pock"},
    dead-gradient-elimination,operator-reordering,fusion,lower-to-kernels{target=c},memory-plan{target=c}

is the recipe `pockengine.compile` runs on a copy of the imported program (the same string
works in `pock-opt -p`), then emit and build turn the @train_step into a shared library.
"""

from __future__ import annotations

from pathlib import Path


def pipeline(loss: str, optimizer: str, scheme: Path | None = None, **hyper) -> str:
    """The printed recipe of `compile_trainer`."""
    from ..pipeline import Recipe

    return Recipe(loss, optimizer, None if scheme is None else str(scheme), hyper).pipeline()


def compile_trainer(program, loss: str, optimizer: str, scheme: Path | None = None, **hyper):
    """(Trainer, the pipeline string it ran)."""
    from ..pipeline import compile as compile_program

    scheme = None if scheme is None else str(scheme)
    return compile_program(program, loss, optimizer, scheme, **hyper), pipeline(loss, optimizer, scheme, **hyper)
