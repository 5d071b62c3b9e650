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

from ..gpu.language import BUFFER_TYPES, SCALAR_TYPES, DataParallelLanguage, KernelDef, Param

HEAD = r"""
/* Metal Shading Language spelling of the pockengine data-parallel base */
#include <metal_stdlib>
#include <metal_simdgroup_matrix>
using namespace metal;
typedef long pk_i64;
typedef uchar pk_u8;
typedef char pk_i8;  /* signed in MSL (the emulator builds with -fsigned-char) */
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
SIMDGROUP_INDEX = "uint pk_sgi [[simdgroup_index_in_threadgroup]]"  # of the SIMD-group GEMM (gemm.py)
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
    param_separator: str = ",\n    "

    def preamble(self, k: KernelDef) -> str:
        fields = binding(k).scalars
        return f"struct {k.name}_args {{ " + " ".join(f"{SCALAR_TYPES[t]} {n};" for n, t, _ in fields) + " };\n" \
            if fields else ""

    def buffer_param(self, p: Param, slot: int) -> list[str]:
        return [f"device {BUFFER_TYPES[p.kind]} *{p.name} [[buffer({slot})]]"]

    def scalar_param(self, p: Param, index: int) -> None:
        return None  # all scalars in one `constant` struct (block_params)

    def block_params(self, k: KernelDef, buffers: int) -> list[str]:
        return [f"constant {k.name}_args &pk_a [[buffer({buffers})]]"] if binding(k).scalars else []

    def scalar_prologue(self, k: KernelDef) -> list[str]:
        return [f"const {SCALAR_TYPES[t]} {n} = pk_a.{n};" for n, t, _ in binding(k).scalars]

    def local_array(self, ty: str, name: str, count: int, slot: int) -> tuple[str | None, str | None]:
        return f"threadgroup {ty} *{name} [[PK_THREADGROUP_SLOT({slot})]]", None

    def builtin_params(self, k: KernelDef) -> list[str]:
        from .gemm import uses_simdgroup

        return list(BUILTINS) + ([SIMDGROUP_INDEX] if uses_simdgroup(k) else [])
