"""Which GEMM launches go to cuBLAS, and as what calls.

The own GEMM computes row-major C[i, j] = alpha·Σ A[i, k]·B[k, j] + beta·C[i, j] with
arbitrary strides; cuBLAS is column-major, so each launch is asked as Cᵀ = Bᵀ·Aᵀ: Cᵀ is C's
bytes read column-major (ld = C's row stride), and each operand fits when one of its strides
is 1 (its transpose is then a column-major matrix, or the transpose of one). A batch whose
offsets step evenly is one strided-batched call, any other batch one call per matrix. A
launch that does not fit (neither stride 1) keeps the own kernel. (alpha, beta) are read
on the device (pointer mode device): the SGD factors computed there, or the constants
(1, 0) of the image.
"""

from __future__ import annotations

import itertools

from ..gpu.schedule import A_BUF, Schedule

STRUCT = """typedef struct {
    int transa, transb, m, n, k, lda, ldb, ldc, batch;
    int abuf, bbuf, cbuf, alphabuf, betabuf;
    long long aoff, boff, coff, alphaoff, betaoff, sa, sb, sc;
} pk_blas_call;
"""


def operand(rows: int, cols: int, rs: int, cs: int):
    """X[r, c] = x[r·rs + c·cs] as cuBLAS's view of Xᵀ: (transpose?, ld), or None."""
    if cols == 1:
        cs = 1
    if rows == 1 and cs == 1:
        rs = max(cols, 1)
    if cs == 1 and rs >= max(cols, 1):
        return 0, rs
    if rs == 1 and cs >= max(rows, 1):
        return 1, cs
    return None


def gemm_calls(raw, sched: Schedule) -> list[dict] | None:
    """The cuBLAS calls for one pk_gemm launch (its library arguments `raw`), or None."""
    (_, m, n, k, _, rsa, csa, _, rsb, csb, _, ldc, offs, _, has_ab, beta_one) = (x[1] for x in raw)
    if min(m, n, k) <= 0 or max(m, n, k, ldc) >= 2**31:
        return None
    opb, opa = operand(k, n, rsb, csb), operand(m, k, rsa, csa)
    if opb is None or opa is None or ldc < n:
        return None
    (_, abuf, aoff, _), (_, bbuf, boff, _), (_, cbuf, coff, _) = (sched.resolve(raw[i]) for i in (4, 7, 10))
    if has_ab:
        _, abb, abo, _ = sched.resolve(raw[13])
        alpha = (abb, abo)
        beta = (A_BUF, sched.one_zero) if beta_one else (abb, abo + 4)
    else:
        alpha, beta = (A_BUF, sched.one_zero), (A_BUF, sched.one_zero + 4)
    triples = [tuple(offs[i:i + 3]) for i in range(0, len(offs), 3)]
    base = {"transa": opb[0], "transb": opa[0], "m": n, "n": m, "k": k, "lda": opb[1], "ldb": opa[1], "ldc": ldc,
            "alphabuf": alpha[0], "alphaoff": alpha[1], "betabuf": beta[0], "betaoff": beta[1]}

    def call(t0, batch, strides):
        oa, ob, oc = t0
        return dict(base, batch=batch, abuf=bbuf, aoff=boff + 4 * ob, bbuf=abuf, boff=aoff + 4 * oa, cbuf=cbuf,
                    coff=coff + 4 * oc, sa=strides[1], sb=strides[0], sc=strides[2])

    if len(triples) > 1:
        step = tuple(y - x for x, y in zip(triples[0], triples[1]))
        if all(tuple(y - x for x, y in zip(p, q)) == step for p, q in itertools.pairwise(triples)):
            return [call(triples[0], len(triples), step)]
    return [call(t, 1, (0, 0, 0)) for t in triples]


def blas_table(sched: Schedule) -> tuple[list, str]:
    """Per launch (first, count) into pk_blas or None, and the C table."""
    per, rows = [], []
    for fs in sched.functions.values():
        for ln in fs.launches:
            calls = gemm_calls(ln.raw, sched) if ln.kernel == "pk_gemm" else None
            if not calls:
                per.append(None)
                continue
            per.append((len(rows), len(calls)))
            for cl in calls:
                ints = [cl[k] for k in ("transa", "transb", "m", "n", "k", "lda", "ldb", "ldc", "batch", "abuf", "bbuf",
                                        "cbuf", "alphabuf", "betabuf")]
                longs = [cl[k] for k in ("aoff", "boff", "coff", "alphaoff", "betaoff", "sa", "sb", "sc")]
                rows.append("{" + ", ".join([*map(str, ints), *(f"{v}LL" for v in longs)]) + "}")
    body = ",\n  ".join(rows) or "{0}"
    return per, (f"#ifndef PK_CUBLAS\n#define PK_CUBLAS 0\n#endif\n#if PK_CUBLAS\n{STRUCT}#define PK_N_BLAS {len(rows)}\n"
                 f"static const pk_blas_call pk_blas[] = {{\n  {body}}};\n#endif\n")
