"""C99 for a CPU: the C-style Language as it is (restrict pointers, `omp simd` sums through
the kernels' PK_SIMD_SUM, no qualifiers or address spaces), with two CPU hooks: threaded maps
run their outer loop split into per-thread ranges of a serial function (`map_template`), and
a power with a computed exponent checks for the small integers first (`pk_powf`, pock.h). A
C-like language for another device is a subclass of backends/cstyle.py's CStyleLanguage that
overrides its hooks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cstyle import SCALAR_OPS, CStyleLanguage


def _c99_scalar_ops() -> dict:
    # a computed exponent (the VJP of x**3 raises x to 3 - 1, a value in the arena): pk_powf
    # multiplies for 1, 2, 3 as the literal forms do, and the check, invariant in the loop,
    # is unswitched by the compiler, so the loop vectorizes
    return {**SCALAR_OPS, "train.pow": "pk_powf({0}, {1})"}


@dataclass
class C99(CStyleLanguage):
    """Host and cross-compiled CPU C: `model.c` includes the kernels it calls (static, so
    GCC propagates the constants its calls share into them)."""

    name = "c99"
    scalar_ops: dict = field(default_factory=_c99_scalar_ops)

    def map_template(self, name, m, literals, nd, inner, quals, tiled=False) -> str:
        """A threaded map (issue 19) is two functions: `<name>_run`, the serial loop nest with
        restrict parameters, and `<name>`, which hands each thread a range of the outer loop
        (pock.h's PK_SPLIT: the operands advanced by the range's start, the outer extent its
        length). A `#pragma omp parallel for` on the loop itself would move the body into an
        outlined function whose operands arrive through a struct without their restrict
        qualifiers: GCC then neither hoists loop-invariant work (Adam's bias corrections, two
        pow calls per element) nor vectorizes without alias checks: 8x slower on the tied
        wte update of W6. Each element is computed as in the serial loop: bitwise the same."""
        if not (nd and not self.loop_prefix and self._threadable(m)):
            return super().map_template(name, m, literals, nd, inner, quals, tiled)
        self.parallel_maps = False  # the serial body, without PK_PARALLEL_FOR
        try:
            serial = super().map_template(f"{name}_run", m, literals, nd, inner, quals, tiled)
        finally:
            self.parallel_maps = True
        ptrs = [(f"i{i}", f"const {self.type_map[v.dtype]}") for i, v in enumerate(m.inputs) if literals[i] is None]
        ptrs += [(f"o{i}", self.type_map[o.dtype]) for i, o in enumerate(m.outputs)]
        params = [f"long d{d}" for d in range(nd)]
        args = ["hi_ - lo_", *(f"d{d}" for d in range(1, nd))]
        for k, (p, ty) in enumerate(ptrs):
            q = f" {self.restrict}" if quals[k] and self.restrict else ""
            strides = [f"{p}s{d}" for d in range(nd) if d < nd - 1 or inner[k] == "n"]
            params.append(f"{ty} *{q} {p}")
            params += [f"long {s}" for s in strides]
            step = {0: None, 1: "lo_"}.get(inner[k], f"lo_ * {p}s0") if nd == 1 else f"lo_ * {p}s0"
            args.append(f"{p} + {step}" if step else p)
            args += strides
        work = " * ".join(f"d{d}" for d in range(nd))
        return "\n".join([serial, f"PK_NOINLINE static void {name}({', '.join(params)}) {{",
                          f"    PK_SPLIT(d0, d0 > 1 && {work} >= PK_PAR_MIN, lo_, hi_, "
                          f"{name}_run({', '.join(args)}));", "}", ""])
