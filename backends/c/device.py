"""The in-process Device: a shared library loaded with ctypes, its arena and parameter blob
numpy buffers of this process (host C, arm64 on an arm64 host)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from ..kernel_ir import NUMPY, KernelProgram
from ..project import blob_bytes
from ..target import Device


class HostDevice(Device):
    """Calls `void pock_<fn>(P, A, in, out)` of libmodel.so in this process. The parameter
    blob and the arena are allocated here once; `read_params` is a view (no copy)."""

    def __init__(self, function_names):
        self._names = function_names  # KernelProgram → {function: C symbol} (the Language's)

    def open(self, kp: KernelProgram, artifact: Path) -> None:
        self.library = Path(artifact)
        self._lib = ctypes.CDLL(str(artifact))
        self._fns = {}
        for name, cname in self._names(kp).items():
            fn = getattr(self._lib, cname)
            fn.argtypes = [ctypes.c_void_p] * 4
            fn.restype = None
            self._fns[name] = fn
        self._outs = {name: [(v.shape, NUMPY[v.dtype]) for v in f.outputs] for name, f in kp.functions.items()}
        self._blob = np.zeros(blob_bytes(kp), np.uint8)
        self._arena = np.zeros(max(kp.arena_bytes, 64), np.uint8)
        self._slots = sum(len(f.steps) for f in kp.functions.values())

    def set_threads(self, n: int) -> None:
        """The kernels' thread count (pock.h's pock_threads); a library built without OpenMP
        has none and runs on one thread."""
        try:
            ctypes.c_int.in_dll(self._lib, "pock_threads").value = n
        except ValueError:
            pass

    def write_params(self, blob: np.ndarray) -> None:
        self._blob[:] = blob

    def read_params(self) -> np.ndarray:
        return self._blob

    def run(self, function: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outs = [np.empty(shape, dt) for shape, dt in self._outs[function]]
        in_ptrs = (ctypes.c_void_p * max(len(inputs), 1))(*[a.ctypes.data for a in inputs])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[a.ctypes.data for a in outs])
        self._fns[function](self._blob.ctypes.data, self._arena.ctypes.data, in_ptrs, out_ptrs)
        return outs

    def profile(self) -> np.ndarray:
        fn = self._lib.pock_profile
        fn.restype = ctypes.POINTER(ctypes.c_double)
        return np.ctypeslib.as_array(fn(), (max(self._slots, 1),)).copy()
