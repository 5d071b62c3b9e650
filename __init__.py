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
    raise AttributeError(f"module 'pockengine' has no attribute {name!r}")


__all__ = ["Program", "from_onnx", "from_torch", "__version__"]
