"""Canonical forms the frontends recognise after lowering, so later passes see one spelling.

Exports and decompositions spell a layer as several small ops; the passes after import
(autodiff, sparse backprop, fusion) work best on the layer-level op. Each pattern here
rewrites one such spelling (docs/frontends.md lists them with their IR):

- Linear: `matmul(x, transpose(w, [1, 0]))` (addmm/mm/Gemm with a transposed weight) and the
  batched form `matmul(x3, broadcast(transpose(w)))` → `linear(x, w)`; a flatten/unflatten
  pair around it (`reshape(linear(reshape(x)))`, with or without a bias add) is dropped.
- RMSNorm: `g * (x * rsqrt(mean(x^2, -1, keepdims) + eps))` → `rms_norm(x, g)`.
- SiLU: `x * sigmoid(x)` → `silu(x)`; chains of transposes or of reshapes become one op.
- Cross-entropy: PyTorch's decomposition of F.cross_entropy on [N, C] logits (log_softmax,
  gather of the labels, ignore_index masks, sum, divide by the count) → `cross_entropy`.

`canonicalize(module)` applies them with xDSL's greedy walker, whose dead-code elimination
also removes what the rewrites leave unused. `assign_roles(module)` then names each
parameter's role from how the forward uses it.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation, OpResult, SSAValue
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import linalg as L
from ..ir.ops import loss as Lo
from ..ir.ops import norm as N
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from ..ir.ops.state import ConstantOp, GetOp, ParamOp


def producer(v: SSAValue, cls: type[Operation]):
    """The op of type cls that defines v, or None."""
    return v.owner if isinstance(v, OpResult) and isinstance(v.owner, cls) else None


def const_value(v: SSAValue) -> float | None:
    """The value of a constant whose elements are all equal (a scalar or splat), else None."""
    c = producer(v, ConstantOp)
    if c is None:
        return None
    a = c.array().reshape(-1)
    return float(a[0]) if a.size and (a == a[0]).all() else None


# --- Linear ---------------------------------------------------------------------------------------


def transposed_weight(v: SSAValue, x_rank: int) -> SSAValue | None:
    """w when v is transpose(w, [1, 0]) (optionally broadcast over x's batch dim), else None."""
    b = producer(v, S.BroadcastOp)
    if b is not None:
        t = producer(b.x, S.TransposeOp)
        ok = t is not None and x_rank == 3 and len(T.shape(b.x)) == 2
        v = b.x if ok else v
    t = producer(v, S.TransposeOp)
    if t is None or len(T.shape(t.x)) != 2 or t.p.perm != (1, 0):
        return None
    return t.x


class LinearFromMatmul(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: L.MatmulOp, rewriter: PatternRewriter):
        xs = T.shape(op.lhs)
        w = transposed_weight(op.rhs, len(xs))
        if w is None or (len(xs) == 3 and T.shape(op.rhs)[0] != xs[0]) or len(xs) > 3:
            return
        rewriter.replace(op, L.LinearOp.build(op.lhs, w))


class LinearWithoutFlatten(RewritePattern):
    """reshape(linear(reshape(x, [M, K])) [+ b], x.shape[:-1] + [N]) → linear(x) [+ b]"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: S.ReshapeOp, rewriter: PatternRewriter):
        add = producer(op.x, E.AddOp)
        lin = producer(add.lhs if add else op.x, L.LinearOp)
        if lin is None or not lin.result.has_one_use() or (add and not add.result.has_one_use()):
            return
        if add and (len(T.shape(add.rhs)) != 1 or T.shape(add.result) != T.shape(lin.result)):
            return
        flat = producer(lin.x, S.ReshapeOp)
        if flat is None:
            return
        xs, out = T.shape(flat.x), T.shape(op.result)
        if len(T.shape(lin.x)) != 2 or not xs or xs[-1] != T.shape(lin.x)[1] or out != (*xs[:-1], out[-1]):
            return
        new = [L.LinearOp.build(flat.x, lin.weight)]
        if add:
            new.append(E.AddOp.build(new[0].result, add.rhs))
        rewriter.replace(op, new)


# --- data movement and activations ----------------------------------------------------------------


class TransposeOfTranspose(RewritePattern):
    """transpose(transpose(x, p), q) → transpose(x, p∘q), or x when that is the identity"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: S.TransposeOp, rewriter: PatternRewriter):
        inner = producer(op.x, S.TransposeOp)
        if inner is None:
            return
        perm = [inner.p.perm[i] for i in op.p.perm]
        if perm == sorted(perm):
            rewriter.replace(op, [], [inner.x])
        else:
            rewriter.replace(op, S.TransposeOp.build(inner.x, perm=perm))


class ReshapeOfReshape(RewritePattern):
    """reshape(reshape(x)) → reshape(x), or x when the shapes agree"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: S.ReshapeOp, rewriter: PatternRewriter):
        inner = producer(op.x, S.ReshapeOp)
        if inner is None:
            return
        if T.shape(inner.x) == T.shape(op.result):
            rewriter.replace(op, [], [inner.x])
        else:
            rewriter.replace(op, S.ReshapeOp.build(inner.x, T.shape(op.result)))


class SiluPattern(RewritePattern):
    """x * sigmoid(x) → silu(x)"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: E.MulOp, rewriter: PatternRewriter):
        for x, s in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            sig = producer(s, E.SigmoidOp)
            if sig is not None and sig.x is x and T.shape(x) == T.shape(op.result):
                rewriter.replace(op, E.SiluOp.build(x))
                return


# --- RMSNorm --------------------------------------------------------------------------------------


def rms_normalized(v: SSAValue) -> tuple[SSAValue, float] | None:
    """(x, eps) when v = x * rsqrt(mean(x^2, last axis, keepdims) + eps) (either order)."""
    mul = producer(v, E.MulOp)
    if mul is None:
        return None
    for x, r in ((mul.lhs, mul.rhs), (mul.rhs, mul.lhs)):
        rs = producer(r, E.RsqrtOp)
        add = producer(rs.x, E.AddOp) if rs else None
        mean = producer(add.lhs, R.MeanOp) if add else None
        pw = producer(mean.x, E.PowOp) if mean else None
        rank = len(T.shape(x))
        if pw is None or pw.lhs is not x or const_value(pw.rhs) != 2.0 or not mean.p.keepdims:
            continue
        if tuple(a % rank for a in mean.p.axes) != (rank - 1,) or (eps := const_value(add.rhs)) is None:
            continue
        return x, float(str(np.float32(eps)))  # the f32 constant's shortest spelling: 1e-06
    return None


class RmsNormPattern(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: E.MulOp, rewriter: PatternRewriter):
        for g, v in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            found = rms_normalized(v)
            if found and T.shape(g) == T.shape(found[0])[-1:] and T.shape(op.result) == T.shape(found[0]):
                rewriter.replace(op, N.RmsNormOp.build(found[0], g, axis=-1, eps=found[1]))
                return


# --- cross-entropy ---------------------------------------------------------------------------------


def valid_labels(v: SSAValue) -> tuple[SSAValue, int] | None:
    """(labels, ignore_index) when v = labels != ignore_index."""
    ne = producer(v, E.NeOp)
    ii = const_value(ne.rhs) if ne else None
    return (ne.lhs, int(ii)) if ii is not None and ii == int(ii) else None


class CrossEntropySum(RewritePattern):
    """sum(where(y != ii, -gather(log_softmax(z, 1), 1, where(y != ii, y, 0)[:, None])[:, 0], 0))"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: R.SumOp, rewriter: PatternRewriter):
        w = producer(op.x, E.WhereOp)
        if w is None or T.shape(op.result) != () or const_value(w.rhs) != 0.0:
            return
        valid, neg = valid_labels(w.cond), producer(w.lhs, E.NegOp)
        squeeze = producer(neg.x, S.ReshapeOp) if neg else None
        g = producer(squeeze.x, S.GatherElementsOp) if squeeze else None
        logp = producer(g.x, R.LogSoftmaxOp) if g else None
        if valid is None or logp is None or g.p.axis != 1 or len(T.shape(logp.x)) != 2 or logp.p.axis % 2 != 1:
            return
        y, ii = valid
        unsq = producer(g.indices, S.ReshapeOp)
        safe = producer(unsq.x, E.WhereOp) if unsq else None
        if safe is None or safe.lhs is not y or valid_labels(safe.cond) != valid or const_value(safe.rhs) != 0:
            return
        rewriter.replace(op, Lo.CrossEntropyOp.build(logp.x, y, reduction="sum", ignore_index=ii))


class CrossEntropyMean(RewritePattern):
    """cross_entropy(z, y, sum) / float(sum(int(y != ii))) → cross_entropy(z, y, mean)"""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: E.DivOp, rewriter: PatternRewriter):
        ce = producer(op.lhs, Lo.CrossEntropyOp)
        cast = producer(op.rhs, E.CastOp)
        count = producer(cast.x, R.SumOp) if cast else None
        if ce is None or ce.p.reduction != "sum" or count is None or not ce.result.has_one_use():
            return
        mask = producer(count.x, E.CastOp)  # PyTorch sums the bool mask as int64
        if valid_labels(mask.x if mask else count.x) != (ce.labels, ce.p.ignore_index):
            return
        rewriter.replace(op, Lo.CrossEntropyOp.build(ce.logits, ce.labels, ignore_index=ce.p.ignore_index))


PATTERNS = [LinearFromMatmul(), LinearWithoutFlatten(), TransposeOfTranspose(), ReshapeOfReshape(), SiluPattern(),
            RmsNormPattern(), CrossEntropySum(), CrossEntropyMean()]


def canonicalize(module: ModuleOp) -> None:
    PatternRewriteWalker(GreedyRewritePatternApplier(list(PATTERNS))).rewrite_module(module)


# --- parameter roles ---------------------------------------------------------------------------------


def _role_of_use(op: Operation, index: int) -> str | None:
    if isinstance(op, N.BatchNormOp):
        return ("norm", "norm", "running_mean", "running_var")[index - 1] if index else None
    if isinstance(op, (N.LayerNormOp, N.RmsNormOp)) and index:
        return "norm"
    if isinstance(op, S.GatherOp) and index == 0 and op.p.axis == 0:
        return "embedding"
    if isinstance(op, (L.Conv2dOp, L.LinearOp, L.MatmulOp)) and index == 1:
        return "weight"
    return None


def assign_roles(module: ModuleOp) -> None:
    """Set each train.param's role from its uses: BatchNorm statistics → running_mean/var,
    normalization affine terms → norm, embedding tables → embedding, conv/linear weights →
    weight; otherwise `bias` for parameters named *bias, and buffers stay `buffer`."""
    uses: dict[str, set[str]] = {}
    for op in module.walk():
        if isinstance(op, GetOp):
            name = op.param.root_reference.data
            for use in op.result.uses:
                if (role := _role_of_use(use.operation, use.index)) is not None:
                    uses.setdefault(name, set()).add(role)
    for p in module.ops:
        if not isinstance(p, ParamOp):
            continue
        name, found = p.sym_name.data, uses.get(p.sym_name.data, set())
        if p.role.data == "buffer":  # state: only BatchNorm statistics get a finer role
            role = next((r for r in ("running_mean", "running_var") if r in found), "buffer")
        else:
            role = next((r for r in ("norm", "embedding", "weight") if r in found), None)
            role = role or ("bias" if name.endswith("bias") else "weight")
        p.properties["role"] = StringAttr(role)
