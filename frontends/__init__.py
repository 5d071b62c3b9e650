"""Frontends: PyTorch (torch.export) and ONNX models into the `train` dialect.

    from pockengine import from_torch, from_onnx
    program = from_torch(model.eval(), (x,))        # frontends/torch_import.py
    program = from_onnx("model.onnx")               # frontends/onnx_importer.py

Both lower into the same ops and recognise the same canonical forms (frontends/canonical.py,
docs/frontends.md). torch and onnx are imported only when their frontend is used.
`import_model` serves `pockengine import MODEL -o DIR`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from ..tools import UserError


class FrontendError(UserError):
    """A model cannot be imported: names the op, the node and (torch) the source line."""


def from_torch(module, example_args, *, dynamic: bool = False):
    from .torch_import import from_torch as impl

    return impl(module, example_args, dynamic=dynamic)


def from_onnx(model, *, input_shapes=None):
    from .onnx_importer import from_onnx as impl

    return impl(model, input_shapes=input_shapes)


def supported_ops(frontend: str = "torch") -> list[str]:
    """The ATen overloads (frontend "torch") or ONNX op types ("onnx") the importers lower;
    refusals name this function rather than printing the list."""
    if frontend == "torch":
        from . import torch_nn_ops, torch_training_ir  # noqa: F401  (register their lowerings)
        from .torch_ops import ATEN

        return sorted(str(k) for k in ATEN)
    if frontend == "onnx":
        from .onnx_importer import supported_ops as onnx_ops

        return onnx_ops()
    raise ValueError(f"frontend must be 'torch' or 'onnx', got {frontend!r}")


def import_model(ref: str | os.PathLike, out_dir: str | os.PathLike):
    """Import a model and write `out_dir/model.mlir` + `weights.safetensors` atomically.

    `ref` is an `.onnx` file, or `path/to/module.py:factory` where `factory()` returns
    `(torch_module, example_args)`. Nothing is written when the import fails.
    """
    ref = str(ref)
    if ref.endswith(".onnx"):
        if not Path(ref).is_file():
            raise FrontendError(f"{ref}: no such file")
        program = from_onnx(ref)
    else:
        module, args = _call_factory(ref)
        program = from_torch(module, args)
    program.save(out_dir)
    return program


def _call_factory(ref: str):
    path, sep, name = ref.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        raise FrontendError(f"{ref!r}: expected an .onnx file or `module.py:factory`")
    if not Path(path).is_file():
        raise FrontendError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"_pockengine_model_{Path(path).stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(path).resolve().parent))  # the factory may import its neighbours
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(Path(path).resolve().parent))
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise FrontendError(f"{path} defines no function {name!r}")
    result = factory()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise FrontendError(f"{ref}: the factory must return (module, example_args), got {type(result).__name__}")
    return result


__all__ = ["FrontendError", "from_onnx", "from_torch", "import_model", "supported_ops"]
