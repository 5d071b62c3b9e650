"""Metal Shading Language: the third spelling of the data-parallel base (backends/gpu/).

A kernel of the base becomes

    struct pk_k_args { long n; float a; ... };          /* its scalars, one `constant` block */
    kernel void pk_k(device float *x [[buffer(0)]], ..., constant pk_k_args &pk_a [[buffer(B)]],
                     threadgroup float *red [[threadgroup(0)]],   (PK_THREADGROUP_SLOT(0))
                     uint3 pk_gid [[thread_position_in_grid]], uint3 pk_lid [[thread_position_in_threadgroup]],
                     uint3 pk_grp [[threadgroup_position_in_grid]], uint3 pk_lsz [[threads_per_threadgroup]],
                     uint3 pk_ngrp [[threadgroups_per_grid]])

Buffers take the argument slots 0..B-1 in the kernel's order (the host binds the arena or
parameter MTLBuffer at the launch's byte offset), the scalars come as one struct through
`setBytes` at slot B (a map of rank 4 with five operands has 24 scalars: one slot each would
pass Metal's 31), and group-local arrays are threadgroup arguments whose lengths the host sets
(`setThreadgroupMemoryLength`), so one kernel source serves any launch. The barrier fences
threadgroup and device memory, as the OpenCL spelling's does. No `double` anywhere: the
optimizer's bias corrections are the base's float forms (backends/gpu/maps.py), the same on
every data-parallel target.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gpu.language import BUFFER_TYPES, SCALAR_TYPES, DataParallelLanguage, KernelDef, _indent

HEAD = r"""
/* Metal Shading Language spelling of the pockengine data-parallel base */
#include <metal_stdlib>
using namespace metal;
typedef long pk_i64;
typedef uchar pk_u8;
#define PK_FN inline
#define PK_LOCAL threadgroup
#define PK_GLOBAL device
#define LID(d) ((long)pk_lid[d])
#define GRP(d) ((long)pk_grp[d])
#define LSZ(d) ((long)pk_lsz[d])
#define NGRP(d) ((long)pk_ngrp[d])
#define GID(d) ((long)pk_gid[d])
#define BARRIER() threadgroup_barrier(mem_flags::mem_threadgroup | mem_flags::mem_device)
#define PK_AS_UINT(x) as_type<uint>(x)
#define PK_AS_FLOAT(x) as_type<float>(x)
/* float atomic add on device memory (MSL 3.0 atomic_float, relaxed order) */
#ifndef PK_THREADGROUP_SLOT
#define PK_THREADGROUP_SLOT(i) threadgroup(i)
#endif
#define pk_atomic_addf(p, v) atomic_fetch_add_explicit((device atomic_float *)(p), (v), memory_order_relaxed)
"""

BUILTINS = ("uint3 pk_gid [[thread_position_in_grid]]", "uint3 pk_lid [[thread_position_in_threadgroup]]",
            "uint3 pk_grp [[threadgroup_position_in_grid]]", "uint3 pk_lsz [[threads_per_threadgroup]]",
            "uint3 pk_ngrp [[threadgroups_per_grid]]")
MAX_BUFFERS = 31  # argument-table buffer slots of a Metal kernel
SIZES = {"long": 8, "float": 4}


@dataclass(frozen=True)
class Binding:
    """Where one kernel's arguments go: buffer slots in order, the scalar struct's fields
    (name, kind, byte offset) and size, and the threadgroup arrays' byte lengths."""

    buffers: tuple[str, ...]
    scalars: tuple[tuple[str, str, int], ...]
    scalar_bytes: int
    threadgroup: tuple[int, ...]


def binding(k: KernelDef) -> Binding:
    bufs = tuple(p.name for p in k.params if p.is_buffer)
    if len(bufs) + 1 > MAX_BUFFERS:
        raise ValueError(f"kernel {k.name}: {len(bufs)} buffers and the scalar block pass Metal's {MAX_BUFFERS} slots")
    fields, at = [], 0
    for p in k.params:
        if not p.is_buffer:
            size = SIZES[p.kind]
            at = -(-at // size) * size
            fields.append((p.name, p.kind, at))
            at += size
    total = -(-at // 8) * 8 if fields else 0
    tg = tuple(-(-(n * (8 if ty in ("long", "pk_i64") else 4)) // 16) * 16 for ty, _, n in k.local)
    return Binding(bufs, tuple(fields), total, tg)


@dataclass
class MSLLanguage(DataParallelLanguage):
    name: str = "metal"
    kernel_prefix: str = "kernel void"
    local_qualifier: str = "threadgroup"
    head: str = HEAD
    max_group: int = 256  # maxTotalThreadsPerThreadgroup is 1024 on Apple GPUs, less for heavy kernels

    def render(self, k: KernelDef) -> str:
        b = binding(k)
        sig = [f"device {BUFFER_TYPES[p.kind]} *{p.name} [[buffer({i})]]"
               for i, p in enumerate(q for q in k.params if q.is_buffer)]
        struct = ""
        pro = []
        if b.scalars:
            struct = (f"struct {k.name}_args {{ " + " ".join(f"{SCALAR_TYPES[kind]} {n};" for n, kind, _ in b.scalars)
                      + " };\n")
            sig.append(f"constant {k.name}_args &pk_a [[buffer({len(b.buffers)})]]")
            pro = [f"const {SCALAR_TYPES[kind]} {n} = pk_a.{n};" for n, kind, _ in b.scalars]
        sig += [f"threadgroup {ty} *{name} [[PK_THREADGROUP_SLOT({i})]]" for i, (ty, name, _) in enumerate(k.local)]
        sig += list(BUILTINS)
        doc = f"/* {k.doc} */\n" if k.doc else ""
        body = [f"    {x}" for x in pro] + [_indent(k.body)]
        return (f"{doc}{struct}{self.kernel_prefix} {k.name}(" + ",\n    ".join(sig) + ") {\n" + "\n".join(body)
                + "\n}\n")

