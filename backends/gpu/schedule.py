"""The launch schedule: a kernel program as the fixed list of kernel launches per function
that a data-parallel device's host replays, and its device memory layout.

Device memory is two buffers. `P` is the parameter blob (weights and optimizer state, the
host's layout byte for byte). `A` holds, in order: the planned arena, each function's
inputs and outputs (copied in and out per call), the constants and int64 tables (written
once when the device opens), and the scratch the library's row kernels share. Every
argument of every launch is then (buffer, byte offset), a number, or a float: a host needs
no knowledge of the program beyond these tables (backends/gpu/host.py prints them as C).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kernel_ir import ITEMSIZE, Call, KernelProgram, Map, View, align
from .grid import Grid
from .language import KernelDef
from .library import launches, scratch_floats
from .maps import MapKernels

P_BUF, A_BUF = 0, 1


@dataclass
class Launch:
    kernel: str
    grid: Grid
    args: list  # ("buf", buffer, byte offset, itemsize) | ("long", n) | ("float", x)
    origin: str = ""
    raw: list = field(default_factory=list)  # the library's arguments before placement


@dataclass
class FunctionSchedule:
    name: str
    launches: list[Launch]
    inputs: list[tuple[int, int]]  # (byte offset in A, bytes) per input
    outputs: list[tuple[int, int]]


@dataclass
class Schedule:
    kernels: list[KernelDef]
    functions: dict[str, FunctionSchedule]
    params_bytes: int
    device_bytes: int  # of A
    image_offset: int  # where the constant image lies in A
    image: bytes  # constants and tables, written once
    scratch_offset: int
    one_zero: int = 0  # where the floats (1, 0) lie in A (cuBLAS's alpha and beta)
    resolve: object = None  # launch argument → its placed form

    def launch_count(self) -> int:
        return sum(len(f.launches) for f in self.functions.values())


def build_schedule(kp: KernelProgram, max_group: int = 256) -> Schedule:
    maps = MapKernels(max_group)
    where: dict[int, tuple[int, int]] = {}  # id(storage) → (buffer, byte offset)
    top = align(max(kp.arena_bytes, 64))
    # inputs and outputs of each function, then constants
    io: dict[str, tuple[list, list]] = {}
    for name, fn in kp.functions.items():
        ins, outs = [], []
        for vs, acc in ((fn.inputs, ins), (fn.outputs, outs)):
            for v in vs:
                s = v.storage.resolve()
                where[id(s)] = (A_BUF, top)
                acc.append((top, v.nbytes))
                top = align(top + max(s.nbytes, v.nbytes, 1))
        io[name] = (ins, outs)
    image_offset = top
    image = bytearray()

    def place(data: bytes) -> int:
        nonlocal image
        at = image_offset + len(image)
        image += data
        image += bytes(align(len(image)) - len(image))
        return at

    for st in kp.consts:
        arr = np.asarray(st.data)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        where[id(st)] = (A_BUF, place(np.ascontiguousarray(arr).tobytes() or b"\0"))
    one_zero = place(np.array([1.0, 0.0], np.float32).tobytes())
    tables: dict[tuple, int] = {}
    kernels: dict[str, KernelDef] = {}
    pending: list[tuple[str, list]] = []
    scratch = 2
    for name, fn in kp.functions.items():
        out = []
        for step in fn.steps:
            if isinstance(step, Map):
                group = maps.launches(step)
            else:
                group = launches(step, maps)
                scratch = max(scratch, scratch_floats(step))
            for kd, grid, args in group:
                kernels.setdefault(kd.name, kd)
                out.append((kd.name, grid, args, step.origin))
        pending.append((name, out))
    for st_args in (a for _, out in pending for _, _, args, _ in out for a in args):
        if st_args[0] == "table" and st_args[1] not in tables:
            tables[st_args[1]] = place(np.asarray(st_args[1], np.int64).tobytes() or b"\0" * 8)
    scratch_offset = align(image_offset + len(image))
    device_bytes = align(scratch_offset + max(4 * scratch, maps.scratch))

    def resolve(a):
        kind = a[0]
        if kind == "buf":
            v: View = a[1]
            s = v.storage.resolve()
            if s.region == "params":
                buf, base = P_BUF, s.offset
            elif s.region == "arena":
                buf, base = A_BUF, s.offset
            elif s.region == "scratch":  # a staged map's copy (backends/gpu/maps.py)
                buf, base = A_BUF, scratch_offset + s.offset
            elif id(s) in where:
                buf, base = where[id(s)]
            else:
                raise ValueError(f"view {v} lies in no device buffer")
            off = base + v.offset * ITEMSIZE[v.dtype]
            if off % ITEMSIZE[v.dtype]:
                raise ValueError(f"view {v} is not aligned to its element size")
            return ("buf", buf, off, ITEMSIZE[v.dtype])
        if kind == "table":
            return ("buf", A_BUF, tables[a[1]], 8)
        if kind == "scratch":
            return ("buf", A_BUF, scratch_offset + 4 * a[1], 4)
        if kind == "long":
            return ("long", int(a[1]))
        if kind == "float":
            return ("float", float(a[1]))
        raise ValueError(f"unknown launch argument {a!r}")

    functions = {}
    for name, out in pending:
        ls = [Launch(k, grid, [resolve(a) for a in args], origin, args) for k, grid, args, origin in out]
        functions[name] = FunctionSchedule(name, ls, *io[name])
    ordered = list(kernels.values())
    return Schedule(ordered, functions, max(kp.params_bytes, 64), device_bytes, image_offset, bytes(image),
                    scratch_offset, one_zero, resolve)


def calls_of(kp: KernelProgram) -> list[Call]:
    return [s for f in kp.functions.values() for s in f.steps if isinstance(s, Call)]
