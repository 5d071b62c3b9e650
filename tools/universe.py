"""The `train` dialect and pockengine's passes for xDSL's own tools (`xdsl-opt`).

pyproject.toml registers `UNIVERSE` under xDSL's plugin entry point `xdsl.universe`, so once
pockengine is installed

    xdsl-opt examples/mlp.mlir -p autodiff,fusion

parses, verifies and transforms `train` IR like `pock-opt` does (without pock-opt's located
verifier messages, --stats and --verify-diagnostics). xDSL's own passes of the same name
(canonicalize, cse, dce) are xDSL's, so only pockengine's passes are added.
"""

from __future__ import annotations

from xdsl.universe import Universe


def _train_dialect():
    from ..ir.dialect import Train

    return Train


def _pockengine_passes():
    from xdsl.transforms import get_all_passes as xdsl_passes

    from ..pipeline import get_all_passes  # passes/ and the backend passes (lower-to-kernels, memory-plan)

    stock = xdsl_passes()
    return {name: factory for name, factory in get_all_passes().items() if name not in stock}


UNIVERSE = Universe(all_dialects={"train": _train_dialect}, all_passes=_pockengine_passes())
