"""Maps (elementwise loops, fused groups, epilogues, optimizer updates) as data-parallel
kernels: one work-item per element of the collapsed shape (backends/gpu/grid.py).

The element's body comes from the C-style renderer's scalar table (backends/cstyle.py
`SCALAR_OPS`, one format per scalar instruction), with C's float math names mapped to the
data-parallel builtins and the optimizer's double scalars replaced by float forms that every
data-parallel target computes alike (no double on phones or Apple GPUs):

    adam_step_size(t) = lr / (1 - b1^t) = lr / -expm1(t·ln b1)
    adam_bias2_sqrt(t) = sqrt(1 - b2^t) = sqrt(-expm1(t·ln b2))

Kernels are shared by every map with the same body, dtypes, literals and rank: dims and
strides are arguments. A map whose output overlaps an input it reads at another place (an
expanding copy in place, which the CPU runs in reverse) copies that input to scratch first,
then runs in parallel; one that writes an output element twice (a zero stride) has no
parallel order that is right and runs as one work-item in the kernel IR's order.
"""

from __future__ import annotations

import hashlib
import math
import re

from ..kernel_ir import ITEMSIZE, Instr, Map, View, broadcast_strides, collapse
from .grid import DimMap, Grid, map_grid
from .language import DP_TYPES, DTYPE_BUFFER, KernelDef, Param

_C_MATH = re.compile(r"\b(fabs|sqrt|log|sin|cos|pow)f\(")


def _renderer():
    from ..cstyle import CStyleLanguage

    return CStyleLanguage(restrict="", type_map=dict(DP_TYPES))


def scalar(r, ins: Instr, args: list[str], types: list[str]) -> str:
    """One scalar instruction in the data-parallel subset."""
    from ..cstyle import c_float

    if ins.op == "optim.adam_step_size":
        lr, b1 = ins.attrs
        return f"({c_float(lr)} / -pk_expm1f({args[0]} * {c_float(math.log(b1))}))"
    if ins.op == "optim.adam_bias2_sqrt":
        (b2,) = ins.attrs
        return f"sqrt(-pk_expm1f({args[0]} * {c_float(math.log(b2))}))"
    return _C_MATH.sub(lambda m: m.group(1) + "(", r.scalar(ins, args, types))


def body_lines(m: Map, literals, load, store, ind: str) -> list[str]:
    r = _renderer()
    r.scalar = lambda ins, args, types: scalar(_renderer(), ins, args, types)
    return r.map_body(m, literals, load, store, ind)


def _literal(v: View, strides) -> str | None:
    from ..cstyle import c_float

    s = v.storage.resolve()
    if s.region != "const" or any(strides) or s.data is None:
        return None
    import numpy as np

    x = np.asarray(s.data).reshape(-1)[v.offset]
    return c_float(x) if v.dtype == "f32" else str(int(x))


def _extent(v: View, shape) -> tuple[int, int]:
    """Byte range [lo, hi] that `v` touches over `shape`."""
    s = v.storage.resolve()
    st = broadcast_strides(v, shape)
    lo = hi = v.offset
    for d, k in zip(shape, st):
        if d > 1:
            (lo, hi) = (lo + (d - 1) * k, hi) if k < 0 else (lo, hi + (d - 1) * k)
    base = s.offset or 0
    return base + lo * ITEMSIZE[v.dtype], base + (hi + 1) * ITEMSIZE[v.dtype] - 1


def hazard(m: Map) -> tuple[str, list[int]]:
    """How a map runs in parallel: ("none", []); ("stage", inputs) when outputs overlap
    those inputs at other places (an expanding copy in place, run in reverse on the CPU):
    they are copied to scratch first; ("serial", []) when an output is written twice through
    a zero stride (no parallel order is right)."""
    staged = []
    for o in m.outputs:
        ost = broadcast_strides(o, m.shape)
        if any(k == 0 and d > 1 for d, k in zip(m.shape, ost)):
            return "serial", []
        for j, v in enumerate(m.inputs):
            if v.storage.resolve() is not o.storage.resolve() or j in staged:
                continue
            same = broadcast_strides(v, m.shape) == ost and v.offset == o.offset and v.dtype == o.dtype
            if not same:
                a, b = _extent(o, m.shape), _extent(v, m.shape)
                if a[0] <= b[1] and b[0] <= a[1]:
                    staged.append(j)
    return ("stage", staged) if staged else ("none", [])


def needs_serial(m: Map) -> bool:
    return hazard(m)[0] != "none"


class MapKernels:
    """Map → its launches (KernelDef, grid, arguments), kernels shared by key; `scratch`
    is the most bytes any staged map copies aside."""

    def __init__(self, max_group: int = 256, max_grid=(2**31 - 1, 65535, 65535)):
        self.max_group, self.max_grid = max_group, max_grid
        self.kernels: dict[tuple, KernelDef] = {}
        self.scratch = 0

    def launches(self, m: Map) -> list:
        kind, staged = hazard(m)
        if kind != "stage":
            return [self.launch(m, kind == "serial")]
        from ..kernel_ir import Storage

        out, inputs, at = [], list(m.inputs), 0
        for j in staged:
            v = m.inputs[j]
            nbytes = math.prod(m.shape) * ITEMSIZE[v.dtype]
            aside = View(Storage("scratch", nbytes, "workspace", "staged map input", offset=at), v.dtype, m.shape)
            out.append(self.launch(Map(m.shape, [v], [], [aside], [0], m.origin + " (staged)")))
            inputs[j] = aside
            at += -(-nbytes // 64) * 64
        self.scratch = max(self.scratch, at)
        out.append(self.launch(Map(m.shape, inputs, m.body, m.outputs, m.results, m.origin)))
        return out

    def launch(self, m: Map, serial: bool = False):
        literals = tuple(_literal(v, broadcast_strides(v, m.shape)) for v in m.inputs)
        ops = [v for i, v in enumerate(m.inputs) if literals[i] is None] + list(m.outputs)
        dims, sts = collapse(m.shape, [broadcast_strides(v, m.shape) for v in ops])
        if serial:  # keep every dim, in the IR's order (collapse may merge reversed walks wrongly)
            dims = [d for d in m.shape]
            sts = [list(broadcast_strides(v, m.shape)) for v in ops]
        key = (tuple(m.body), tuple(m.results), tuple(v.dtype for v in m.inputs), tuple(o.dtype for o in m.outputs),
               literals, len(dims), serial)
        k = self.kernels.get(key)
        if k is None:
            k = self.kernel("pk_map", m, literals, len(dims), serial)
            # named by content: the same map in another program is the same kernel (a device
            # compiler's cache, e.g. PoCL's, then builds it once)
            digest = hashlib.sha256(repr((k.params, k.body)).encode()).hexdigest()[:10]
            k = self.kernels[key] = KernelDef(f"pk_map_{digest}", k.params, k.body, k.local, k.group, k.doc)
        args = [("long", d) for d in dims]
        for v, st in zip(ops, sts):
            args.append(("buf", v))
            args += [("long", s) for s in st]
        grid = Grid((1, 1, 1), (1, 1, 1)) if serial else map_grid(dims, self.max_group, self.max_grid)
        return k, grid, args

    def kernel(self, name: str, m: Map, literals, nd: int, serial: bool) -> KernelDef:
        ps = [Param(f"d{d}", "long") for d in range(nd)]
        names = []
        for i, v in enumerate(m.inputs):
            if literals[i] is None:
                names.append((f"i{i}", v.dtype))
        for i, o in enumerate(m.outputs):
            names.append((f"o{i}", o.dtype))
        for p, dt in names:
            ps.append(Param(p, DTYPE_BUFFER[dt]))
            ps += [Param(f"{p}s{d}", "long") for d in range(nd)]
        index = lambda p: " + ".join(f"j{d} * {p}s{d}" for d in range(nd)) or "0"
        lines = []
        if serial:
            for d in range(nd):
                lines.append(f"for (long j{d} = 0; j{d} < d{d}; j{d}++)")
            lines.append("if (GID(0) == 0 && GID(1) == 0 && GID(2) == 0) {" if nd == 0 else "{")
            ind = "    "
        else:
            axes = DimMap.of(nd).axes
            for a in (2, 1, 0):
                dims_a = axes[a]
                if not dims_a:
                    continue
                ext = " * ".join(f"d{d}" for d in dims_a)
                lines.append(f"for (long g{a} = GID({a}); g{a} < {ext}; g{a} += LSZ({a}) * NGRP({a})) {{")
                r = f"g{a}"
                for d in reversed(dims_a):
                    if d == dims_a[0]:
                        lines.append(f"long j{d} = {r};")
                    else:
                        lines.append(f"long j{d} = {r} % d{d}; long r{d} = {r} / d{d};")
                        r = f"r{d}"
            if nd == 0:
                lines.append("if (GID(0) == 0 && GID(1) == 0 && GID(2) == 0) {")
            ind = ""
        pointer_of = {}
        k = 0
        for i in range(len(m.inputs)):
            if literals[i] is None:
                pointer_of[i] = f"i{i}"
        lines += body_lines(m, literals, lambda i: f"{pointer_of[i]}[{index(pointer_of[i])}]",
                            lambda i: f"o{i}[{index(f'o{i}')}]", ind)
        opened = sum(1 for x in lines if x.rstrip().endswith("{"))
        lines += ["}"] * opened
        body = ", ".join(i.op.removeprefix("train.") for i in m.body) or "copy"
        del k
        return KernelDef(name, tuple(ps), "\n".join(lines), doc=f"map: {_safe(body)}")


def _safe(text: str) -> str:
    from ..cstyle import c_comment

    return c_comment(text)
