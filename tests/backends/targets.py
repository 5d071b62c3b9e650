"""Skipping a test whose target's toolchain is absent, with the reason (one helper for every
target's tests)."""

from __future__ import annotations

import pytest
from pockengine.backends import get_target


def missing(name: str) -> str | None:
    """None when target `name` can build and run here, else what is missing."""
    try:
        return get_target(name).available()
    except (ImportError, ValueError) as e:
        return str(e)


def needs(name: str):
    """A skipif mark: the test needs target `name`'s toolchain."""
    why = missing(name)
    return pytest.mark.skipif(why is not None, reason=f"{name} target: {why}")
