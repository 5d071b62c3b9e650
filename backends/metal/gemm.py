"""The GEMM of the metal target on SIMD-group matrices (MSL `simdgroup_float8x8`).

Apple GPUs (family 7 / M1 on, MSL 2.3+) multiply 8×8 matrices held cooperatively by the 32
threads of a SIMD-group: `simdgroup_load` / `simdgroup_store` move a tile between memory and
the SIMD-group, `simdgroup_multiply_accumulate(d, a, b, c)` computes d = a·b + c. This is
the same GEMM as the data-parallel base's (backends/gpu/gemm.py: same `GemmForm` hooks, same
parameters, same grid of 64×64 blocks of C over 16×16 = 256 threads, so the launch schedule
is unchanged), with the inner product done on those tiles instead of 4×4 register tiles:

    A block (64×16) and B block (16×64) staged in threadgroup memory by the form's guarded
    loads (zeros past M, N, K: no shape has to be a multiple of 8, 16 or 64)
    8 SIMD-groups in a 4×2 layout, each owning a 16×32 piece of C = 2×4 accumulator tiles
    per 8-wide slice of K: 2 A tiles + 4 B tiles loaded, 8 multiply-accumulates
    the accumulators stored to a threadgroup C block, then each thread applies the form's
    store to its elements (guarded, with the (alpha, beta) momentum accumulate)

Every operation on a SIMD-group matrix is executed by all 32 threads of the SIMD-group with
the same arguments (uniform control flow): the loops around them depend only on K and the
batch index. `sg_schedule` picks this kernel for launches with at least one whole 8×8×8
tile (M, N, K ≥ 8); thinner products (a row vector, a rank-few update) keep the base's
scalar kernel, where 7/8 of every tile would be padding.
"""

from __future__ import annotations

from ..gpu import gemm as G
from ..gpu.language import KernelDef

SUFFIX = "_sg"
MIN_DIM = 8

A_AT = "ii * @BK@ + kk"  # A row-major in threadgroup memory: simdgroup_load reads 8×8 tiles of it

TEMPLATE = """
long tx = LID(0), ty = LID(1), tid = ty * @GX@ + tx;
long i0 = GRP(1) * @BM@, j0 = GRP(0) * @BN@;
long sg = (long)pk_sgi, si = (sg / 2) * 16, sj = (sg % 2) * 32;
@SETUP@
for (long bt = GRP(2); bt < NB; bt += NGRP(2)) {
    @BATCH@
    simdgroup_float8x8 acc[2][4];
    for (int u = 0; u < 2; u++)
        for (int v = 0; v < 4; v++) acc[u][v] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    for (long k0 = 0; k0 < K; k0 += @BK@) {
@STAGE@        for (int kk = 0; kk < @BK@; kk += 8) {
            simdgroup_float8x8 ma[2], mb[4];
            for (int u = 0; u < 2; u++) simdgroup_load(ma[u], As, @BK@, ulong2((ulong)kk, (ulong)(si + 8 * u)));
            for (int v = 0; v < 4; v++) simdgroup_load(mb[v], Bs, @BN@, ulong2((ulong)(sj + 8 * v), (ulong)kk));
            for (int u = 0; u < 2; u++)
                for (int v = 0; v < 4; v++) simdgroup_multiply_accumulate(acc[u][v], ma[u], mb[v], acc[u][v]);
        }
        BARRIER();
    }
    for (int u = 0; u < 2; u++)
        for (int v = 0; v < 4; v++)
            simdgroup_store(acc[u][v], Cs, @BN@, ulong2((ulong)(sj + 8 * v), (ulong)(si + 8 * u)));
    BARRIER();
    for (long e = tid; e < @BM@ * @BN@; e += @NT@) {
        long i = i0 + e / @BN@, j = j0 + e % @BN@;
        if (i < M && j < N) { float r = Cs[e]; @STORE@ }
    }
    BARRIER();
}
"""

LOCAL = (("float", "As", G.BM * G.BK), ("float", "Bs", G.BK * G.BN), ("float", "Cs", G.BM * G.BN))
assert G.GROUP == (16, 16, 1) and (G.BM, G.BN, G.BK) == (64, 64, 16), "the layout above assumes these tiles"

FORMS = {f.name: f for f in G.GEMM_FORMS}


def sg_kernel(form: G.GemmForm) -> KernelDef:
    return form.kernel(TEMPLATE, SUFFIX, LOCAL, a_at=A_AT)


def uses_simdgroup(k: KernelDef) -> bool:
    return "simdgroup_" in k.body


def _mnk(kernel: str, raw: list) -> tuple[int, int, int]:
    """M, N, K of a GEMM-form launch from the library's arguments (backends/gpu/library.py)."""
    if kernel == "pk_gemm":
        return int(raw[1][1]), int(raw[2][1]), int(raw[3][1])
    g = raw[0][1]  # the conv geometry table: N C H W O KH KW SH SW PT PL DH DW G HO WO
    n, c, h, w, o, kh, kw, groups, ho, wo = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[13], g[14], g[15]
    cg, og = c // groups, o // groups
    return {"pk_conv_fwd": (og, ho * wo, cg * kh * kw), "pk_conv_dx": (cg, h * w, og * kh * kw),
            "pk_conv_dw": (og, cg * kh * kw, n * ho * wo)}[kernel]


def sg_schedule(sched) -> int:
    """Move the schedule's GEMM launches that hold a whole 8×8×8 tile onto the SIMD-group
    kernels (same parameters and grid); drop scalar GEMM kernels no launch uses any more.
    Returns how many launches moved."""
    by_name = {k.name: k for k in sched.kernels}
    moved = 0
    for fs in sched.functions.values():
        for ln in fs.launches:
            if ln.kernel in FORMS and min(_mnk(ln.kernel, ln.raw)) >= MIN_DIM:
                if ln.grid.local != G.GROUP:
                    raise ValueError(f"launch of {ln.kernel}: group {ln.grid.local}, the GEMM assumes {G.GROUP}")
                name = ln.kernel + SUFFIX
                if name not in by_name:
                    by_name[name] = sg_kernel(FORMS[ln.kernel])
                    sched.kernels.append(by_name[name])
                ln.kernel = name
                moved += 1
    used = {ln.kernel for fs in sched.functions.values() for ln in fs.launches}
    sched.kernels[:] = [k for k in sched.kernels if k.name in used or k.name not in FORMS]
    return moved
