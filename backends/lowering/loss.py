"""cross_entropy and mse: scalar results written by one kernel each."""

from __future__ import annotations

import math

from ...ir.ops import loss as Lo
from ..lower_to_kernels import lowers


@lowers(Lo.CrossEntropyOp)
def lower_cross_entropy(lw, op):
    logits = lw.contiguous(lw.view(op.logits))
    labels = lw.contiguous(lw.view(op.labels))
    y = lw.result(op.result)
    n, c = logits.shape[:2]
    inner = math.prod(logits.shape[2:])
    lw.call("cross_entropy", dict(n=n, c=c, inner=inner, logits=logits, labels=labels, ignore_index=op.p.ignore_index,
                                  mean=int(op.p.reduction == "mean"), loss=y), [logits, labels], [y],
            variant="i32" if labels.dtype == "i32" else "")


@lowers(Lo.MseOp)
def lower_mse(lw, op):
    a, b = lw.contiguous(lw.view(op.pred)), lw.contiguous(lw.view(op.target))
    y = lw.result(op.result)
    lw.call("mse", dict(count=a.size, pred=a, target=b, mean=int(op.p.reduction == "mean"), loss=y), [a, b], [y])


# rows per chunk of the linear_cross_entropy kernel: its logits [C, rows] (CHUNK_BYTES) stay
# in cache from the GEMM that makes them to the two that read their gradient; fewer, larger
# chunks read the weight and the momentum buffer fewer times, smaller ones take less memory
CHUNK_BYTES = 3 << 20  # W4 (8000 classes): 96 rows, 6 chunks for 512 rows
VOCAB_BLOCK = 256  # vocabulary rows per logits GEMM: bounds its packing workspace


def lower_linear_cross_entropy(lw, op):
    """train.fused kind "linear_cross_entropy" (passes/fusion.py): one kernel call over
    chunks of rows (backends/c/kernels/linear_cross_entropy.c); with a momentum SGD the
    weight gradient accumulates into the momentum buffer, then one loop updates the weight."""
    from ...passes.fusion import (
        match_head,  # the one backends → passes import (tests/backends/test_layering.py)
    )
    from ..kernel_ir import View
    from ..lower_to_kernels import LoweringError
    from .fused import emit_sgd, outputs_of
    from .linalg import as_matrix

    ops = [o for o in op.block.ops if isinstance(o, Lo.CrossEntropyOp)]
    head = match_head(ops[0], 0) if len(ops) == 1 else None
    if head is None or len(head.ops) != len(list(op.block.ops)) - 1:
        raise LoweringError("a linear_cross_entropy group must hold exactly the ops of one head (passes/fusion.py)")
    outer = dict(zip(op.block.args, op.inputs))
    out_of = outputs_of(op)
    view = lambda v: lw.view(outer[v])
    x, m, rsx, csx = as_matrix(lw, view(head.linear.x))
    w = view(head.linear.weight)
    c, k = w.shape
    ws0, ws1 = w.elem_strides()
    bias = lw.contiguous(view(head.bias)) if head.bias is not None else None
    labels = lw.contiguous(view(head.loss.labels))
    rowlab = View(lw.owner.const(head.rows, "i64"), "i64", head.rows.shape)
    result = lambda v: lw.result(out_of[v], "gradients") if v in out_of else None
    loss = lw.result(out_of[head.loss.result]) if head.loss.result in out_of else None
    dloss = lw.contiguous(view(head.backward.dloss)) if head.backward is not None else None
    dx = result(head.dx.result) if head.dx is not None else None
    db = result(head.db.result) if head.db is not None else None
    rows = max(1, min(m, CHUNK_BYTES // (4 * c)))
    if rows > 16:
        rows -= rows % 16  # whole 16-wide GEMM tiles
    vb = min(c, VOCAB_BLOCK)
    up = lambda n: -(-n // 16) * 16
    gw = lw.library.gemm_workspace
    work = lw.scratch(up(rows * c) + 3 * up(rows) + max(gw(vb, rows, k), gw(rows, k, vb), gw(vb, k, rows)))
    geometry = [m, k, c, rows, rsx, csx, ws0, ws1, vb, head.loss.p.ignore_index,
                int(head.loss.p.reduction == "mean"), labels.size]

    def emit(dw, ab):
        reads = [x, w, labels, rowlab] + [v for v in (bias, dloss, ab) if v is not None]
        if dw is not None and ab is not None:
            reads.append(dw)  # dw = alpha·g + beta·dw reads the buffer it accumulates into
        writes = [v for v in (loss, dx, dw, db) if v is not None] + [work]
        lw.call("linear_cross_entropy", dict(geometry=geometry, x=x, w=w, bias=bias, labels=labels, rows=rowlab,
                                             dloss=dloss, loss=loss, dx=dx, dw=dw, ab=ab, db=db, work=work),
                reads, writes, variant="i32" if labels.dtype == "i32" else "")

    if head.sgd is not None:
        emit_sgd(lw, head.sgd, outer, out_of, emit)
    else:
        emit(result(head.dw.result) if head.dw is not None else None, None)
