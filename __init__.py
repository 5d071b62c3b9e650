"""pockengine: a research compiler for on-device training (PockEngine, MICRO 2023) on xDSL."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy, so that `pock-opt --help` and `pockengine --version` start without loading xDSL
    if name == "Program":
        from .ir.program import Program

        return Program
    if name in ("from_torch", "from_onnx"):  # frontends load torch/onnx only when called
        from . import frontends

        return getattr(frontends, name)
    if name == "compile":  # `pockengine.compile(program, ...) -> Trainer` (backends/runtime.py)
        from .backends.runtime import compile

        return compile
    if name == "search":  # `pockengine.search(program, train, val, budget=...) -> (Scheme, Report)`
        from . import search  # a callable module (search/__init__.py)

        return search
    raise AttributeError(f"module 'pockengine' has no attribute {name!r}")


__all__ = ["Program", "compile", "from_onnx", "from_torch", "search", "__version__"]
