"""The data-parallel Language base: one kernel description, spelled per language.

A data-parallel kernel is described once as a `KernelDef`: its parameters (typed buffers and
scalars), its group-local arrays and a body written in a small C subset that every
data-parallel language shares (statements, `float`/`long` arithmetic, the math builtins
`exp log sqrt tanh pow fabs fmin fmax sin cos`, the prelude's `pk_*` helpers) plus these
macros for the structure the languages share:

    LID(d) GRP(d) LSZ(d) NGRP(d)   work-item index in its group, group index, group size,
                                   groups in the grid, along axis d (0, 1, 2); all `long`
    GID(d)                         GRP(d) * LSZ(d) + LID(d)
    BARRIER()                      a group-wide barrier over group-local memory
    PK_LOCAL / PK_GLOBAL           the address-space qualifiers of pointers passed to helpers

A language (OpenCL C, CUDA C, and next Metal) is a subclass that fills in ten or so hooks:
how a kernel is declared, how a buffer parameter and a scalar parameter are written, the
local-memory qualifier, the spelling of the index macros and barrier, the type names and the
bit casts the prelude uses. `render(kdef)` prints a kernel; `prelude()` what every program
starts with. Only this module knows the differences: the bodies never do, which is what lets
a run on PoCL speak for the CUDA spelling (tests/backends/test_cuda_project.py checks that
both spellings of each kernel have the same body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# buffer kinds: element type of a typed pointer; scalars: long (64-bit) or float
BUFFER_TYPES = {"f32*": "float", "i64*": "pk_i64", "i32*": "int", "u8*": "pk_u8", "i8*": "pk_i8"}
SCALAR_TYPES = {"long": "long", "float": "float"}
DTYPE_BUFFER = {"f32": "f32*", "i64": "i64*", "i32": "i32*", "i1": "u8*", "i8": "i8*", "u8": "u8*"}
# the kernel IR's dtypes as data-parallel types (the prelude typedefs pk_i64 / pk_u8 / pk_i8)
DP_TYPES = {"f32": "float", "i64": "pk_i64", "i32": "int", "i1": "pk_u8", "f64": "float", "i8": "pk_i8", "u8": "pk_u8"}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # a BUFFER_TYPES or SCALAR_TYPES key

    @property
    def is_buffer(self) -> bool:
        return self.kind in BUFFER_TYPES


@dataclass(frozen=True)
class KernelDef:
    """One data-parallel kernel, language-free. `local` holds (element type, name, count)
    arrays shared by a group; `group` is the group size the body assumes where it matters
    (a tree reduction over `LSZ(0)` needs a power of two), None where any size works."""

    name: str
    params: tuple[Param, ...]
    body: str
    local: tuple[tuple[str, str, int], ...] = ()
    group: tuple[int, int, int] | None = None
    doc: str = ""


def params(spec: str) -> tuple[Param, ...]:
    """'f32* x, long n, float a' → Params."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, name = part.rsplit(" ", 1)
        kind = kind.replace(" ", "")
        if kind not in BUFFER_TYPES and kind not in SCALAR_TYPES:
            raise ValueError(f"kernel parameter {part!r}: unknown kind {kind!r}")
        out.append(Param(name, kind))
    return tuple(out)


# What every program shares, in the common subset (after the language's own head). The
# optimizer's bias corrections use no double (phone GPUs and Metal have none):
# 1 - b^t = -expm1(t·ln b), expm1 by Kahan's exp/log identity.
COMMON_PRELUDE = r"""
PK_FN long pk_minl(long a, long b) { return a < b ? a : b; }
PK_FN long pk_maxl(long a, long b) { return a > b ? a : b; }
PK_FN pk_i64 pk_floordiv(pk_i64 a, pk_i64 b) {
    pk_i64 q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
PK_FN float pk_selectf(int c, float a, float b) { return c ? a : b; }
PK_FN float pk_expf(float x) { return exp(x); }
PK_FN float pk_sigmoidf(float x) { return 1.0f / (1.0f + exp(-x)); }
PK_FN float pk_tanhf(float x) { return tanh(x); }
PK_FN float pk_expm1f(float x) {
    float u = exp(x);
    if (u == 1.0f) return x;
    float um = u - 1.0f;
    if (um == -1.0f) return -1.0f;
    return um * x / log(u);
}
/* erf as the host C kernels compute it (pock.h's rational form): Metal has no erf */
PK_FN float pk_erff(float x) {
    float ax = fmin(fabs(x), 4.0f), z = ax * ax;
    float p = z * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = z * p + -2.10102402082508e-06f;
    p = z * p + -5.69250639462346e-05f;
    p = z * p + -7.34990630326855e-04f;
    p = z * p + -2.95459980854025e-03f;
    p = z * p + -1.60960333262415e-02f;
    float q = z * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = z * q + -1.68282697438203e-03f;
    q = z * q + -7.37332916720468e-03f;
    q = z * q + -1.42647390514189e-02f;
    float r = fmin(ax * (p / q), 1.0f);
    r = x < 0.0f ? -r : r;
    return x != x ? x : r;
}
PK_FN float pk_geluf(float x) { return 0.5f * x * (1.0f + pk_erff(x * 0.70710678118654752f)); }
PK_FN float pk_gelu_tanhf(float x) {
    return 0.5f * x * (1.0f + tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
PK_FN float pk_gelu_grad(float x) {
    return 0.5f * (1.0f + pk_erff(x * 0.70710678118654752f)) + x * exp(-0.5f * x * x) * 0.3989422804014327f;
}
PK_FN float pk_gelu_tanh_grad(float x) {
    float c = 0.7978845608028654f;
    float t = tanh(c * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * 0.044715f * x * x);
}
PK_FN float pk_silu_grad(float x) {
    float s = pk_sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
}
/* The first maximum of max-pool window (oh, ow) of plane x (H x W): its index ih * W + iw,
   -1 if the window lies in the padding. A NaN is a maximum (the first NaN wins); the forward
   takes its value, the backward asks which cell it is. */
PK_FN long pk_window_first_max(PK_GLOBAL float *x, long H, long W, long KH, long KW, long SH, long SW,
                               long PT, long PL, long DH, long DW, long oh, long ow) {
    long at = -1;
    float m = -INFINITY;
    for (long u = 0; u < KH; u++) {
        long ih = oh * SH - PT + u * DH;
        if (ih < 0 || ih >= H) continue;
        for (long v = 0; v < KW; v++) {
            long iw = ow * SW - PL + v * DW;
            if (iw < 0 || iw >= W) continue;
            float xv = x[ih * W + iw];
            if (xv > m || at < 0 || (xv != xv && m == m)) { m = xv; at = ih * W + iw; }
        }
    }
    return at;
}
/* Group-wide reductions over red[LSZ] (LSZ a power of two): every work-item of the group
   calls them with its own value and gets the group's result. */
PK_FN float pk_group_sum(PK_LOCAL float *red, float v, long lid, long lsz) {
    red[lid] = v;
    BARRIER();
    for (long s = lsz / 2; s > 0; s /= 2) {
        if (lid < s) red[lid] += red[lid + s];
        BARRIER();
    }
    float r = red[0];
    BARRIER();
    return r;
}
PK_FN float pk_group_max(PK_LOCAL float *red, float v, long lid, long lsz) {
    red[lid] = v;
    BARRIER();
    for (long s = lsz / 2; s > 0; s /= 2) {
        if (lid < s) { float o = red[lid + s]; red[lid] = (o > red[lid] || o != o) ? o : red[lid]; }
        BARRIER();
    }
    float r = red[0];
    BARRIER();
    return r;
}
"""


@dataclass
class DataParallelLanguage:
    """The hooks a data-parallel spelling fills in (see the module docstring). `render`
    prints a kernel as

        <doc> <preamble(k)>
        <kernel_prefix> <name>(<signature(k), joined by param_separator>) {
            <prologue(k)>
            <the body, unchanged>
        }

    and the signature and prologue are built from per-parameter hooks: `buffer_param`
    (slot = the buffer's index among the kernel's buffers), `scalar_param` (None: the
    scalars travel another way, `block_params` says how), `local_array` (a group-local
    array as a declaration in the body or as a parameter), `builtin_params` (the index
    parameters), `buffer_prologue` / `scalar_prologue` (statements that make the body's
    names). OpenCL, CUDA and Metal are each a handful of these."""

    name: str = "abstract"
    kernel_prefix: str = ""  # what declares a kernel: `__kernel void`, `extern "C" __global__ void`
    local_qualifier: str = ""  # of a group-local array: `__local`, `__shared__`, `threadgroup`
    head: str = ""  # the language's own first lines: typedefs, the index macros, PK_FN, barrier
    max_group: int = 1024  # work-items per group the spelling may ask for
    max_grid: tuple[int, int, int] = (2**31 - 1, 65535, 65535)  # groups per axis
    param_separator: str = ", "

    def buffer_param(self, p: Param, slot: int) -> list[str]:
        raise NotImplementedError

    def scalar_param(self, p: Param, index: int) -> str | None:
        return f"{SCALAR_TYPES[p.kind]} {p.name}"

    def block_params(self, k: KernelDef, buffers: int) -> list[str]:
        """Parameters after the buffers that carry the scalars `scalar_param` declined."""
        return []

    def local_array(self, ty: str, name: str, count: int, slot: int) -> tuple[str | None, str | None]:
        """(parameter, body declaration) of group-local array `slot`: one of them is None."""
        return None, f"{self.local_qualifier} {ty} {name}[{count}];"

    def builtin_params(self, k: KernelDef) -> list[str]:
        """Index parameters a language passes to every kernel (Metal's attributes)."""
        return []

    def preamble(self, k: KernelDef) -> str:
        """Text before the kernel (Metal: the struct of its scalars)."""
        return ""

    def buffer_prologue(self, p: Param) -> str:
        """A statement at the top of the body that makes `p.name` the buffer's pointer."""
        return ""

    def scalar_prologue(self, k: KernelDef) -> list[str]:
        """Statements at the top of the body that make the scalars' names."""
        return []

    def signature(self, k: KernelDef) -> list[str]:
        sig, slot = [], 0
        for i, p in enumerate(k.params):
            if p.is_buffer:
                sig += self.buffer_param(p, slot)
                slot += 1
            else:
                s = self.scalar_param(p, i)
                if s is not None:
                    sig.append(s)
        sig += self.block_params(k, slot)
        sig += [x for x, _ in (self.local_array(ty, n, c, j) for j, (ty, n, c) in enumerate(k.local)) if x]
        return sig + self.builtin_params(k)

    def prologue(self, k: KernelDef) -> list[str]:
        pro = [x for x in (self.buffer_prologue(p) for p in k.params if p.is_buffer) if x]
        pro += self.scalar_prologue(k)
        return pro + [d for _, d in (self.local_array(ty, n, c, j) for j, (ty, n, c) in enumerate(k.local)) if d]

    def prelude(self) -> str:
        return self.head.strip() + "\n" + COMMON_PRELUDE

    def render(self, k: KernelDef) -> str:
        body = [f"    {x}" for x in self.prologue(k)] + [_indent(k.body)]
        doc = f"/* {k.doc} */\n" if k.doc else ""
        return (f"{doc}{self.preamble(k)}{self.kernel_prefix} {k.name}({self.param_separator.join(self.signature(k))})"
                " {\n" + "\n".join(body) + "\n}\n")

    def program(self, kernels: list[KernelDef]) -> str:
        return self.prelude() + "\n" + "\n".join(self.render(k) for k in kernels)


def _indent(text: str) -> str:
    lines = text.strip("\n").splitlines()
    pad = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(("    " + x[pad:]) if x.strip() else "" for x in lines)


def body_of(rendered: str) -> str:
    """The body of a rendered kernel with the language's own lines (signature, buffer
    prologue, local declarations) dropped: equal across spellings of one KernelDef."""
    text = rendered.split(") {\n", 1)[1].rsplit("}", 1)[0]
    keep = [x for x in text.splitlines() if x.strip() and not re.match(
        r"\s*(__global|__local|__shared__|threadgroup|device|const device)\b|\s*const \w+ \w+ = pk_a\.\w+;$", x)]
    return "\n".join(keep)
