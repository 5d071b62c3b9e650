"""The tiled GEMM of the data-parallel library and the contractions built on it.

One template, `C = alpha·A·B + beta·C` over a batch, with group-local tiles: a group of
(BN/TN) × (BM/TM) work-items computes a BM × BN block of C, each work-item a TM × TN
register tile, stepping through K in BK slices staged in group-local memory between two
barriers. Edges are guarded (zeros are loaded past M, N, K), so no shape needs to be a
multiple of a tile. What differs between the contractions is only where an element of A
and B comes from and where an element of C goes: `GemmForm` fills those hooks.

    pk_gemm        strided A[i·rsa + k·csa], B[k·rsb + j·csb], C rows ldc apart, per-batch
                   offsets from a table: matmul, linear, linear_backward_weight (with the
                   (alpha, beta) pair read from device memory: an SGD momentum update
                   accumulating straight into its buffer)
    pk_conv_fwd    implicit GEMM: B is the unfolded input (im2col), never stored
    pk_conv_dx     implicit GEMM: dx = wᵀ · col2im(dy), gathered (no scatter, no atomics)
    pk_conv_dw     implicit GEMM: dw = dy · colᵀ summed over images and pixels, with (alpha, beta)
"""

from __future__ import annotations

from dataclasses import dataclass

from .language import KernelDef, params

BM, BN, BK, TM, TN = 64, 64, 16, 4, 4
GROUP = (BN // TN, BM // TM, 1)

# The K-slice staging every tiled GEMM shares: A's and B's tiles into local memory, zero outside
# the matrices, then a barrier; A is stored at @A_AT@, the layout its kernel reads (kk-major here).
STAGE = """        for (long e = tid; e < @BM@ * @BK@; e += @NT@) {
            long ii = e / @BK@, kk = e % @BK@, i = i0 + ii, k = k0 + kk;
            float va = 0.0f;
            if (i < M && k < K) { @LOAD_A@ }
            As[@A_AT@] = va;
        }
        for (long e = tid; e < @BK@ * @BN@; e += @NT@) {
            long kk = e / @BN@, jj = e % @BN@, k = k0 + kk, j = j0 + jj;
            float vb = 0.0f;
            if (k < K && j < N) { @LOAD_B@ }
            Bs[kk * @BN@ + jj] = vb;
        }
        BARRIER();
"""

TEMPLATE = """
long tx = LID(0), ty = LID(1), tid = ty * @GX@ + tx;
long i0 = GRP(1) * @BM@, j0 = GRP(0) * @BN@;
@SETUP@
for (long bt = GRP(2); bt < NB; bt += NGRP(2)) {
    @BATCH@
    float acc[@TM@][@TN@];
    for (int u = 0; u < @TM@; u++)
        for (int v = 0; v < @TN@; v++) acc[u][v] = 0.0f;
    for (long k0 = 0; k0 < K; k0 += @BK@) {
@STAGE@        for (int kk = 0; kk < @BK@; kk++) {
            float ra[@TM@], rb[@TN@];
            for (int u = 0; u < @TM@; u++) ra[u] = As[kk * @BM@ + ty + u * @GY@];
            for (int v = 0; v < @TN@; v++) rb[v] = Bs[kk * @BN@ + tx + v * @GX@];
            for (int u = 0; u < @TM@; u++)
                for (int v = 0; v < @TN@; v++) acc[u][v] += ra[u] * rb[v];
        }
        BARRIER();
    }
    for (int u = 0; u < @TM@; u++)
        for (int v = 0; v < @TN@; v++) {
            long i = i0 + ty + u * @GY@, j = j0 + tx + v * @GX@;
            if (i < M && j < N) { float r = acc[u][v]; @STORE@ }
        }
}
"""

# the store with (alpha, beta): beta = 0 never reads C (it may hold NaN garbage)
AB_SETUP = "float alpha = has_ab ? ab[0] : 1.0f, beta = has_ab ? ab[1] : 0.0f;\nif (beta_one) beta = 1.0f;"
AB_STORE = "long at = {at}; {out}[at] = beta == 0.0f ? alpha * r : alpha * r + beta * {out}[at];"

GEO = """long N_ = geo[0], C = geo[1], H = geo[2], W = geo[3], O = geo[4], KH = geo[5], KW = geo[6];
long SH = geo[7], SW = geo[8], PT = geo[9], PL = geo[10], DH = geo[11], DW = geo[12], G = geo[13];
long HO = geo[14], WO = geo[15], cg = C / G, og = O / G, P = HO * WO;"""


@dataclass(frozen=True)
class GemmForm:
    name: str
    params: str
    setup: str  # once per work-item: the sizes M, N, K, NB and what the hooks need
    batch: str  # per batch index bt
    load_a: str  # sets va from (i, k)
    load_b: str  # sets vb from (k, j)
    store: str  # writes r to (i, j)
    doc: str

    def kernel(self, template: str = TEMPLATE, suffix: str = "", local=None, extra: dict | None = None,
               a_at: str = "kk * @BM@ + ii") -> KernelDef:
        """This form in `template` (the tiled one here; a language may bring its own, as Metal's
        simdgroup-matrix GEMM does, with the same hooks, parameters and grid)."""
        subs = {"@GX@": GROUP[0], "@GY@": GROUP[1], "@BM@": BM, "@BN@": BN, "@BK@": BK, "@TM@": TM, "@TN@": TN,
                "@NT@": GROUP[0] * GROUP[1], **(extra or {}), "@SETUP@": self.setup, "@BATCH@": self.batch,
                "@LOAD_A@": self.load_a, "@LOAD_B@": self.load_b, "@STORE@": self.store}
        body = template.replace("@STAGE@", STAGE.replace("@A_AT@", a_at))
        for k, v in subs.items():
            body = body.replace(k, str(v))
        local = local or (("float", "As", BM * BK), ("float", "Bs", BK * BN))
        return KernelDef(self.name + suffix, params(self.params), body, local=local, group=GROUP, doc=self.doc)


GEMM = GemmForm(
    "pk_gemm",
    "long NB, long M, long N, long K, f32* a, long rsa, long csa, f32* b, long rsb, long csb, f32* c, long ldc,"
    " i64* offs, f32* ab, long has_ab, long beta_one",
    AB_SETUP,
    "long oa = offs[3 * bt], ob = offs[3 * bt + 1], oc = offs[3 * bt + 2];",
    "va = a[oa + i * rsa + k * csa];",
    "vb = b[ob + k * rsb + j * csb];",
    AB_STORE.format(at="oc + i * ldc + j", out="c"),
    "C[b] = alpha A[b] B[b] + beta C[b], strided operands, batch offsets from a table")

CONV_FWD = GemmForm(
    "pk_conv_fwd", "i64* geo, f32* x, f32* w, f32* y",
    GEO + "\nlong NB = N_ * G, M = og, N = P, K = cg * KH * KW;",
    "long n = bt / G, g = bt % G;",
    "va = w[(g * og + i) * K + k];",
    """long ci = k / (KH * KW), t = k % (KH * KW);
long ih = (j / WO) * SH - PT + (t / KW) * DH, iw = (j % WO) * SW - PL + (t % KW) * DW;
if (ih >= 0 && ih < H && iw >= 0 && iw < W) vb = x[((n * C + g * cg + ci) * H + ih) * W + iw];""",
    "y[(n * O + g * og + i) * P + j] = r;",
    "conv2d as an implicit GEMM per (image, group): y = w . im2col(x)")
CONV_DX = GemmForm(
    "pk_conv_dx", "i64* geo, f32* dy, f32* w, f32* dx",
    GEO + "\nlong NB = N_ * G, M = cg, N = H * W, K = og * KH * KW;",
    "long n = bt / G, g = bt % G;",
    "long oc = k / (KH * KW), t = k % (KH * KW);\nva = w[((g * og + oc) * cg + i) * KH * KW + t];",
    """long oc = k / (KH * KW), t = k % (KH * KW);
long ah = j / W + PT - (t / KW) * DH, aw = j % W + PL - (t % KW) * DW;
if (ah >= 0 && aw >= 0 && ah % SH == 0 && aw % SW == 0 && ah / SH < HO && aw / SW < WO)
    vb = dy[(n * O + g * og + oc) * P + (ah / SH) * WO + aw / SW];""",
    "dx[(n * C + g * cg + i) * H * W + j] = r;",
    "conv2d_backward_input as an implicit GEMM per (image, group): dx = w^T . col2im(dy), gathered")

CONV_DW = GemmForm(
    "pk_conv_dw", "i64* geo, f32* x, f32* dy, f32* dw, f32* ab, long has_ab",
    GEO + "\nlong NB = G, M = og, N = cg * KH * KW, K = N_ * P;\n" + AB_SETUP.split("\n")[0],
    "long g = bt;",
    "long n = k / P, p = k % P;\nva = dy[(n * O + g * og + i) * P + p];",
    """long n = k / P, p = k % P, ci = j / (KH * KW), t = j % (KH * KW);
long ih = (p / WO) * SH - PT + (t / KW) * DH, iw = (p % WO) * SW - PL + (t % KW) * DW;
if (ih >= 0 && ih < H && iw >= 0 && iw < W) vb = x[((n * C + g * cg + ci) * H + ih) * W + iw];""",
    AB_STORE.format(at="(g * og + i) * N + j", out="dw"),
    "conv2d_backward_weight as an implicit GEMM per group: dw = alpha dy . im2col(x)^T + beta dw")

GEMM_FORMS = (GEMM, CONV_FWD, CONV_DX, CONV_DW)
