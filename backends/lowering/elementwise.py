"""Elementwise ops are one scalar instruction each; the C renderer's table says how each
prints (backends/c_renderer.py `SCALAR_OPS`), and fusion merges chains of them."""

from __future__ import annotations

from ...ir.ops import elementwise as E
from ...ir.ops import grad as G
from ..lower_to_kernels import dtype_of, instr_attrs, map_form


@map_form(*E.OPS, G.GeluBackwardOp, G.SiluBackwardOp)
def elementwise_form(mb, op, operands):
    args = [operands.ref(i) for i in range(len(operands))]
    return [mb.emit(op.name, args, dtype_of(op.results[0].type), instr_attrs(op))]
