"""pockengine: a research compiler for on-device training (PockEngine, MICRO 2023) on xDSL."""

from importlib import import_module as _import_module

from .errors import UserError  # the base class of every bad-input error (pockengine/errors.py)

__version__ = "0.1.0"

# name → (module, attribute or None for the module itself). Lazy, so that `pock-opt --help` and
# `pockengine --version` start without loading xDSL, torch or onnx. Loaded with import_module,
# never `from . import x`: that form asks this module for `x` first and would re-enter
# __getattr__ (the RecursionError `pockengine.search` once raised).
_LAZY = {
    "Program": (".ir.program", "Program"),
    "from_torch": (".frontends", "from_torch"),  # frontends load torch/onnx only when called
    "from_onnx": (".frontends", "from_onnx"),
    "compile": (".pipeline", "compile"),  # `pockengine.compile(program, ...) -> Trainer` (the recipe)
    "search": (".search", None),  # `pockengine.search(program, train, val, budget=...)`: a callable module
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'pockengine' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = _import_module(module, __name__)
    return mod if attr is None else getattr(mod, attr)


__all__ = ["Program", "UserError", "__version__", "compile", "from_onnx", "from_torch", "search"]
