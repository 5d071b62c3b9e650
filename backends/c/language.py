"""C99 for a CPU: the C-style Language as it is (restrict pointers, `omp simd` sums through
the kernels' PK_SIMD_SUM, no qualifiers or address spaces). A C-like language for another
device is a subclass of backends/cstyle.py's CStyleLanguage that overrides its hooks."""

from __future__ import annotations

from dataclasses import dataclass

from ..cstyle import CStyleLanguage


@dataclass
class C99(CStyleLanguage):
    """Host and cross-compiled CPU C: `model.c` includes the kernels it calls (static, so
    GCC propagates the constants its calls share into them)."""

    name = "c99"
