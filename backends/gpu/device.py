"""What the data-parallel targets share besides the kernels: the library table the lowering
plans with, the Device that drives a built host library, and a cached build.

`DataParallelLibrary` answers the lowering's questions for these targets: which library
ops exist (those backends/gpu/library.py has launches for) and which may run in place (the
same pairs as the C kernels: the row kernels read and write each element in one work-item),
and plans no GEMM packing workspace (the tiles live in group-local memory).

`GpuDevice` loads the built host library (a generated model.c/model.cu over a host runtime)
with ctypes: `pock_device_open`, `pock_device_write_params` / `read_params`, and the same
`pock_<function>(P, A, in, out)` entry points as the C target. The parameters stay on the
device between steps and come back only when asked for.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np

from ...atomic import cache_entry, verified_entry
from ..kernel_ir import KernelProgram
from ..project import blob_bytes
from ..target import BuildError, Device, bind_functions, cache_dir
from .library import supported


def data_parallel_library():
    """The C library's table restricted to the ops the data-parallel library implements,
    with no packing workspace (a subclass made here so that importing this module does not
    import the C target)."""
    from ..c.library import KERNEL_DIR, KERNELS, CKernelLibrary

    class DataParallelLibrary(CKernelLibrary):
        name = "data-parallel"

        def gemm_workspace(self, m: int, n: int, k: int) -> int:
            return 0

        def conv_plan(self, kind: str, xs, ws, p, ys):
            geometry, _ = super().conv_plan(kind, xs, ws, p, ys)
            return geometry, 0

    ops = supported()
    return DataParallelLibrary(KERNEL_DIR, [k for k in KERNELS if (k.op, k.variant) in ops])


class GpuDevice(Device):
    """A data-parallel program's host library in this process (see the module docstring)."""

    def __init__(self, function_names):
        self._names = function_names

    def open(self, kp: KernelProgram, artifact: Path) -> None:
        self.library = Path(artifact)
        self._lib = ctypes.CDLL(str(artifact))
        for sym, res, args in (("pock_device_open", ctypes.c_int, []),
                               ("pock_device_write_params", ctypes.c_int, [ctypes.c_void_p]),
                               ("pock_device_read_params", ctypes.c_int, [ctypes.c_void_p]),
                               ("pock_device_error", ctypes.c_char_p, []), ("pock_device_close", None, [])):
            f = getattr(self._lib, sym)
            f.restype, f.argtypes = res, args
        self._fns, self._outs = bind_functions(self._lib, self._names(kp), kp)
        self._blob = np.zeros(blob_bytes(kp), np.uint8)
        self._dummy = np.zeros(64, np.uint8)
        self._check(self._lib.pock_device_open())

    def _check(self, rc=0) -> None:
        err = self._lib.pock_device_error()
        if err or rc:
            raise RuntimeError((err or b"device call failed").decode(errors="replace"))

    def write_params(self, blob: np.ndarray) -> None:
        self._blob[:] = blob
        self._check(self._lib.pock_device_write_params(self._blob.ctypes.data))

    def read_params(self) -> np.ndarray:
        self._check(self._lib.pock_device_read_params(self._blob.ctypes.data))
        return self._blob

    def run(self, function: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outs = [np.empty(shape, dt) for shape, dt in self._outs[function]]
        in_ptrs = (ctypes.c_void_p * max(len(inputs), 1))(*[a.ctypes.data for a in inputs])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[a.ctypes.data for a in outs])
        self._fns[function](self._blob.ctypes.data, self._dummy.ctypes.data, in_ptrs, out_ptrs)
        self._check()
        return outs

    def close(self) -> None:
        if getattr(self, "_lib", None) is not None:
            self._lib.pock_device_close()


def build_cached(files: dict[str, str], cmd: list[str], product: str) -> Path:
    """Write `files` into a fresh folder and run `cmd` there (it makes `product`), once per
    content and command: the product is cached under cache_dir()."""
    key = hashlib.sha256(json.dumps([files, cmd], sort_keys=True).encode()).hexdigest()[:20]
    final = cache_dir() / f"dp-{key}"
    if verified_entry(final, product):
        return final / product
    with cache_entry(final) as tmp:  # the shared build-cache entry: manifest, atomic, race-safe
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed in {tmp}:\n{res.stderr[-4000:]}")
    return final / product
