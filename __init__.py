"""pockengine: a research compiler for on-device training (PockEngine, MICRO 2023) on xDSL."""

__version__ = "0.1.0"

from .ir.program import Program  # noqa: E402

__all__ = ["Program", "__version__"]
