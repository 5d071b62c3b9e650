"""The in-process Device: a shared library loaded with ctypes, its arena and parameter blob
numpy buffers of this process (host C, arm64 on an arm64 host)."""

from __future__ import annotations

import ctypes
import os
import weakref
from pathlib import Path

import numpy as np

from ..kernel_ir import KernelProgram
from ..project import blob_bytes
from ..target import Device, bind_functions

# libgomp cannot run a parallel region in a process forked after it started its threads (the
# child waits forever for threads that were not copied): a process pool that forks after a
# threaded step hangs. As PyTorch does, a child forked after that runs its steps on one thread
# (pipeline.check_threads asks `forked_after_threads`); spawn/forkserver children are not affected.
_threaded = False  # this process has run a step with more than one thread
_forked_after_threads = False
_devices: weakref.WeakSet = weakref.WeakSet()


def forked_after_threads() -> bool:
    return _forked_after_threads


def _after_fork_in_child() -> None:
    global _forked_after_threads
    if _threaded or _forked_after_threads:
        _forked_after_threads = True
        for device in list(_devices):
            device.set_threads(1)


os.register_at_fork(after_in_child=_after_fork_in_child)


class HostDevice(Device):
    """Calls `void pock_<fn>(P, A, in, out)` of libmodel.so in this process. The parameter
    blob and the arena are allocated here once; `read_params` is a view (no copy)."""

    def __init__(self, function_names):
        self._names = function_names  # KernelProgram → {function: C symbol} (the Language's)

    def open(self, kp: KernelProgram, artifact: Path) -> None:
        self.library = Path(artifact)
        self._lib = ctypes.CDLL(str(artifact))
        self._fns, self._outs = bind_functions(self._lib, self._names(kp), kp)
        self._blob = np.zeros(blob_bytes(kp), np.uint8)
        self._arena = np.zeros(max(kp.arena_bytes, 64), np.uint8)
        self._slots = sum(len(f.steps) for f in kp.functions.values())

    def set_threads(self, n: int) -> None:
        """The kernels' thread count (pock.h's pock_threads); a library built without OpenMP
        has none and runs on one thread."""
        global _threaded
        try:
            ctypes.c_int.in_dll(self._lib, "pock_threads").value = n
        except ValueError:
            return
        _devices.add(self)
        _threaded = _threaded or n != 1

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
