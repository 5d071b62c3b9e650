"""A target = Language × Kernel library × Device × Toolchain.

    Language       how the kernel IR prints: a C-style base (backends/cstyle.py) with hooks for
                   qualifiers, address spaces, the type map, scalar-op table, math helpers, and
                   (data-parallel languages) the work-item index, launch and barrier
    KernelLibrary  which kernel implements each library op (`gemm`, `conv2d`, `softmax`, ...):
                   its source, entry symbol, argument order, in-place ability; the tiles and
                   the workspace the lowering plans for it
    Device         where the planned arena and parameter blob live and a step runs: allocate,
                   copy in and out, run, synchronize (host memory, a GPU, an emulated DSP)
    Toolchain      the compiler and flags that build what the language prints, the Makefile
                   of a written project, and how to run the built program here

A target family is a folder (backends/c/, backends/hexagon/, ...) holding its four parts and
kernel sources; backends/__init__.py's `get_all_targets()` maps names to factories that
import the folder only when chosen. Adding a target: subclass the Language (or reuse one),
write a KernelLibrary table (reusing the portable C kernels where nothing better exists), a
Device and a Toolchain, and register a factory.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .kernel_ir import NUMPY, Call, KernelProgram


class BuildError(RuntimeError):
    """A toolchain rejected the generated code; the message holds its output."""


def cache_dir() -> Path:
    """Where toolchains cache what they build: $POCKENGINE_CACHE, else ~/.cache/pockengine."""
    d = os.environ.get("POCKENGINE_CACHE")
    return Path(d) if d else Path.home() / ".cache" / "pockengine"


class Language:
    """How a kernel program prints in one language: `render` returns the generated files
    (name → text) for a program and the library it calls."""

    name = "abstract"

    def render(self, kp: KernelProgram, library: KernelLibrary, title: str = "model") -> dict[str, str]:
        raise NotImplementedError

    def function_names(self, kp: KernelProgram) -> dict[str, str]:
        """Kernel-IR function name → the symbol a Device calls."""
        raise NotImplementedError


@dataclass(frozen=True)
class Kernel:
    """One entry of a kernel library: library op `op` (with `variant`, e.g. an index dtype)
    is `symbol` in the source file `source` (a stem in the library's folder), taking the
    call's operands in the order `args`. `inplace` lists (written operand, read operand)
    pairs the kernel may run over the same storage."""

    op: str
    source: str
    symbol: str
    args: tuple[str, ...]
    variant: str = ""
    inplace: tuple[tuple[str, str], ...] = ()


class KernelLibrary:
    """A table of kernels keyed by (library op, variant), the folder of their sources, and
    the planning a lowering asks of this library (tiles, workspace sizes).

    `kernel(call)` finds the entry of a kernel-IR Call; `sources(ops)` lists the source
    stems to ship, dependencies first (a source's `requires: a, b` comment)."""

    name = "abstract"

    def __init__(self, kernel_dir: Path, kernels: Iterable[Kernel]):
        self.kernel_dir = Path(kernel_dir)
        self.kernels: dict[tuple[str, str], Kernel] = {}
        for k in kernels:
            self.add(k)

    def add(self, k: Kernel) -> None:
        self.kernels[(k.op, k.variant)] = k

    def kernel(self, call: Call) -> Kernel:
        k = self.kernels.get((call.op, call.variant))
        if k is None:
            known = sorted({f"{o}{'.' + v if v else ''}" for o, v in self.kernels})
            raise KeyError(f"kernel library {self.name!r} has no {call.op}"
                           f"{'.' + call.variant if call.variant else ''}; it has: {', '.join(known)}")
        return k

    def supports(self, op: str, variant: str = "") -> bool:
        return (op, variant) in self.kernels

    def source_path(self, stem: str) -> Path:
        return self.kernel_dir / f"{stem}{self.suffix}"

    suffix = ".c"

    def sources(self, stems: Iterable[str]) -> list[str]:
        """`stems` and what they require, dependencies first."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            path = self.source_path(name)
            if not path.is_file():
                raise FileNotFoundError(f"no kernel {path.name} in {self.kernel_dir}")
            m = re.search(r"requires:\s*([\w, ]+)", path.read_text())
            for dep in (m.group(1).replace(",", " ").split() if m else []):
                visit(dep)
            order.append(name)

        for s in stems:
            visit(s)
        return order

    def program_sources(self, kp: KernelProgram) -> list[str]:
        """The source stems a program's calls need, dependencies first."""
        stems: list[str] = []
        for f in kp.functions.values():
            for s in f.steps:
                if isinstance(s, Call):
                    stem = self.kernel(s).source
                    if stem not in stems:
                        stems.append(stem)
        return self.sources(stems)

    # --- planning the lowering asks of the library (workspace in elements of f32) ------------
    def gemm_workspace(self, m: int, n: int, k: int) -> int:
        raise NotImplementedError

    def conv_plan(self, kind: str, xs, ws, p, ys) -> tuple[list[int], int]:
        raise NotImplementedError


def bind_functions(lib, names: dict[str, str], kp: KernelProgram):
    """The step functions `void sym(P, A, in, out)` of a loaded library (ctypes), and the
    (shape, numpy dtype) of each function's outputs: what an in-process Device calls."""
    fns = {}
    for name, cname in names.items():
        fn = getattr(lib, cname)
        fn.argtypes = [ctypes.c_void_p] * 4
        fn.restype = None
        fns[name] = fn
    return fns, {name: [(v.shape, NUMPY[v.dtype]) for v in f.outputs] for name, f in kp.functions.items()}


class Device:
    """Where a compiled program's memory lives and its functions run. `Trainer`
    (backends/runtime.py) only talks to this interface, so a device whose memory is not the
    process's (a GPU, a DSP behind RPC, an emulator) fits without changing Trainer's API.

    Life cycle: `open(kp, artifact)` (load what the Toolchain built: allocate the planned
    arena and parameter blob), then `write_params` / `run` / `read_params` in any order,
    `sync()` to wait for queued work, `close()` to release it."""

    def open(self, kp: KernelProgram, artifact: Path) -> None:
        raise NotImplementedError

    def write_params(self, blob: np.ndarray) -> None:
        """Copy the whole parameter blob (uint8, kp.params_bytes rounded up) in."""
        raise NotImplementedError

    def read_params(self) -> np.ndarray:
        """The parameter blob as it is now (a copy or a host view; treat as read-only)."""
        raise NotImplementedError

    def run(self, function: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run one function on host inputs (contiguous, of the compiled dtypes and shapes);
        returns its outputs as host arrays."""
        raise NotImplementedError

    def sync(self) -> None:
        """Wait until every queued run has finished (host devices: nothing to do)."""

    def profile(self) -> np.ndarray:
        """Milliseconds per step slot, summed over runs (a library built with profiling)."""
        raise NotImplementedError(f"{type(self).__name__} cannot profile")

    def close(self) -> None:
        """Release the device's memory and processes."""


@dataclass
class Toolchain:
    """How to build what the language printed, and how to run it here.

    `cc`/`cflags`/`ldflags` build the program; `runner` prefixes a built executable's
    command line (an emulator); `can_load`: a shared library it builds loads into this
    process (the in-process Device works); `openmp_threads`: its builds thread the C kernels with
    OpenMP (pock.h), so `compile()`'s default of every core builds with it."""

    openmp_threads: ClassVar[bool] = False
    cc: str
    cflags: list[str]
    ldflags: list[str] = field(default_factory=list)
    runner: list[str] = field(default_factory=list)
    can_load: bool = True

    def available(self) -> str | None:
        """None when the toolchain is installed, else what is missing."""
        missing = [t for t in [self.cc, *self.runner[:1]] if shutil.which(t) is None]
        return f"{', '.join(missing)} not installed" if missing else None

    def build(self, files: dict[str, str], target: Target, openmp: bool = False,
              extra_cflags: tuple[str, ...] = ()) -> Path:
        """Build the program's files into what the Device loads; returns its path."""
        raise NotImplementedError

    def makefile(self, target: Target) -> str:
        raise NotImplementedError


@dataclass
class Target:
    """A named Language × KernelLibrary × Device × Toolchain. `project_files` adds the
    target's own files to a written project (a runner main.c, a Makefile, ...)."""

    name: str
    language: Language
    library: KernelLibrary
    toolchain: Toolchain
    device: Callable[[], Device] | None  # None: nothing runs in this process (write a project)
    project_files: Callable[[Target], dict[str, str]] = lambda target: {}

    # the Toolchain's fields, read often
    @property
    def cc(self) -> str:
        return self.toolchain.cc

    @property
    def cflags(self) -> list[str]:
        return self.toolchain.cflags

    @property
    def ldflags(self) -> list[str]:
        return self.toolchain.ldflags

    @property
    def runner(self) -> list[str]:
        return self.toolchain.runner

    @property
    def can_load(self) -> bool:
        return self.toolchain.can_load

    def available(self) -> str | None:
        return self.toolchain.available()

    def sources(self, kp: KernelProgram, title: str = "model") -> dict[str, str]:
        """The generated program: name → text (model source, header, the kernels it calls)."""
        return self.language.render(kp, self.library, title)

    def makefile(self) -> str:
        return self.toolchain.makefile(self)

    def build(self, kp: KernelProgram, title: str = "model", openmp: bool = False,
              extra_cflags: tuple[str, ...] = ()) -> Path:
        return self.toolchain.build(self.sources(kp, title), self, openmp=openmp, extra_cflags=extra_cflags)

    def open(self, kp: KernelProgram, artifact: Path) -> Device:
        """A Device holding the built program, its arena and parameter blob allocated."""
        if self.device is None:
            raise ValueError(f"target {self.name!r} does not run in this process; write a project with "
                             f"`pockengine compile --target {self.name}` instead")
        dev = self.device()
        dev.open(kp, artifact)
        return dev

    def load(self, kp: KernelProgram, title: str = "model", openmp: bool = False,
             extra_cflags: tuple[str, ...] = ()) -> Device:
        """Build (or reuse the cached build) and open: the Device a Trainer drives."""
        if self.device is None:
            self.open(kp, Path())  # the error above
        return self.open(kp, self.build(kp, title, openmp, extra_cflags))
