"""The emulated Hexagon device: one long-lived `qemu-hexagon serve` process holding the
parameter blob and the arena in its own (32-bit) memory, fed over a pipe (serve.c gives the
protocol). Trainer drives it like the in-process C device: every `run` sends the inputs and
reads the outputs back; parameters move only when asked for (`read_params`/`write_params`).

On a phone the same split holds with FastRPC in place of the pipe: the application
processor maps the blob into a buffer shared with the cDSP and calls the step there."""

from __future__ import annotations

import struct
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..kernel_ir import NUMPY, KernelProgram
from ..project import blob_bytes
from ..target import Device
from .toolchain import RUNNER


class DeviceError(RuntimeError):
    """The emulated program stopped or answered out of protocol; the message holds its stderr."""


class QemuDevice(Device):
    def __init__(self, runner: list[str] | None = None):
        self.runner = list(runner or [RUNNER])
        self._proc = None

    def open(self, kp: KernelProgram, artifact: Path) -> None:
        self.library = Path(artifact)
        self._names = list(kp.functions)
        self._sig = {name: ([v.nbytes for v in f.inputs], [(v.shape, NUMPY[v.dtype], v.nbytes) for v in f.outputs])
                     for name, f in kp.functions.items()}
        self._blob_bytes = blob_bytes(kp)
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen([*self.runner, str(artifact)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, bufsize=0)
        self._lock = threading.Lock()
        hello = self._read(20)
        if hello[:8] != b"PKSRV001":
            self._fail("did not answer with its hello")
        params, arena, nfn = struct.unpack("<III", hello[8:])
        if params != self._blob_bytes or arena != max(kp.arena_bytes, 64) or nfn != len(self._names):
            self._fail(f"was built for another program ({params} parameter bytes, {arena} arena bytes, {nfn} functions)")

    # --- protocol ------------------------------------------------------------------------
    def _live(self) -> None:
        if self._proc is None:
            raise DeviceError(f"{' '.join(self.runner)} {self.library}: the device is closed (or stopped earlier)")

    def _read(self, n: int) -> bytes:
        self._live()
        out = bytearray()
        while len(out) < n:
            chunk = self._proc.stdout.read(n - len(out))
            if not chunk:
                self._fail("stopped")
            out += chunk
        return bytes(out)

    def _send(self, *parts: bytes) -> None:
        self._live()
        try:
            for p in parts:
                view = memoryview(p)
                while view:  # a raw pipe may take part of a large write
                    view = view[self._proc.stdin.write(view):]
        except (BrokenPipeError, OSError):
            self._fail("stopped")

    def _ack(self) -> None:
        if self._read(1) != b"k":
            self._fail("answered out of protocol")

    def _fail(self, what: str):
        proc = self._proc
        rc = proc.poll() if proc else None
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")[-2000:]
        self.close()
        raise DeviceError(f"{' '.join(self.runner)} {self.library}: the device program {what}"
                          f"{f' (exit status {rc})' if rc is not None else ''}{': ' + err if err else ''}")

    # --- Device ----------------------------------------------------------------------------
    def write_params(self, blob: np.ndarray) -> None:
        raw = np.ascontiguousarray(blob, np.uint8)
        if raw.size != self._blob_bytes:
            raise ValueError(f"parameter blob of {raw.size} bytes, the program's is {self._blob_bytes}")
        with self._lock:
            self._send(b"W", raw.tobytes())
            self._ack()

    def read_params(self) -> np.ndarray:
        with self._lock:
            self._send(b"R")
            self._ack()
            return np.frombuffer(self._read(self._blob_bytes), np.uint8).copy()

    def run(self, function: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
        sizes, outs = self._sig[function]
        for i, (a, n) in enumerate(zip(inputs, sizes)):
            if a.nbytes != n:
                raise ValueError(f"@{function} input {i}: {a.nbytes} bytes, the program takes {n}")
        with self._lock:
            self._send(b"C", struct.pack("<I", self._names.index(function)),
                       *(np.ascontiguousarray(a).tobytes() for a in inputs))
            self._ack()
            raw = self._read(sum(n for _, _, n in outs))
        res, at = [], 0
        for shape, dt, n in outs:
            res.append(np.frombuffer(raw[at:at + n], dt).reshape(shape).copy())
            at += n
        return res

    def profile(self) -> np.ndarray:
        with self._lock:
            self._send(b"T")
            self._ack()
            (n,) = struct.unpack("<I", self._read(4))
            return np.frombuffer(self._read(8 * n), np.float64).copy()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.stdin.write(b"Q")
                proc.stdin.close()
                proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout:
                proc.stdout.close()
            self._stderr.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
