"""Elementwise ops become one-instruction loop nests; the C renderer's table says how each
instruction prints (backends/c_renderer.py `SCALAR_OPS`), and fusion merges chains of them."""

from __future__ import annotations

from pockengine.ir.ops import elementwise as E
from pockengine.passes.lower_to_kernels import lowers


@lowers(*E.OPS)
def lower_elementwise(lw, op):
    lw.elementwise(op)
