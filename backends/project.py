"""The emitted C project and its two file formats.

    OUT/model.c model.h     the generated step functions (forward, train_step) and layout
    OUT/pock.h kernels/*.c  the kernel library, only the kernels the program calls
    OUT/main.c Makefile     a runner: `make && ./model 20 data.bin` prints the loss per step
    OUT/weights.bin         the parameter blob (weights + optimizer state), see below
    OUT/layout.json         where each parameter lives in the blob, and the memory plan

weights.bin = b"PKWTS001" + u64 byte count + blob; data.bin = b"PKDATA01" + u64 batches +
u64 inputs + u64 bytes per input + the batches (each the train_step inputs back to back).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from .kernel_ir import NUMPY, KernelProgram

WEIGHTS_MAGIC = b"PKWTS001"
DATA_MAGIC = b"PKDATA01"


def blob_bytes(kp: KernelProgram) -> int:
    return max(kp.params_bytes, 64)


def pack_params(kp: KernelProgram, weights: dict[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """The parameter blob (uint8) holding every parameter and state tensor at its offset."""
    blob = out if out is not None else np.zeros(blob_bytes(kp), np.uint8)
    for name, slot in kp.params.items():
        if name not in weights:
            raise KeyError(f"parameter @{name} has no value")
        arr = np.asarray(weights[name], dtype=NUMPY[slot.dtype], order="C")
        if arr.shape != slot.shape:
            raise ValueError(f"parameter @{name}: value {arr.shape} but the program declares {slot.shape}")
        raw = np.frombuffer(arr.tobytes(), np.uint8)
        blob[slot.offset:slot.offset + raw.size] = raw
    return blob


def param_views(kp: KernelProgram, blob: np.ndarray) -> dict[str, np.ndarray]:
    """name → array viewing the blob (no copy)."""
    out = {}
    for name, slot in kp.params.items():
        n = int(np.prod(slot.shape, dtype=np.int64)) * np.dtype(NUMPY[slot.dtype]).itemsize
        out[name] = blob[slot.offset:slot.offset + n].view(NUMPY[slot.dtype]).reshape(slot.shape)
    return out


def write_weights(path, kp: KernelProgram, weights: dict[str, np.ndarray]) -> None:
    blob = pack_params(kp, weights)
    _atomic_write(path, WEIGHTS_MAGIC + struct.pack("<Q", blob.size) + blob.tobytes())


def read_weights(path, kp: KernelProgram) -> dict[str, np.ndarray]:
    raw = Path(path).read_bytes()
    if raw[:8] != WEIGHTS_MAGIC:
        raise ValueError(f"{path}: not a pockengine weights file")
    (n,) = struct.unpack("<Q", raw[8:16])
    if n != blob_bytes(kp):
        raise ValueError(f"{path}: {n} bytes of parameters, this program needs {blob_bytes(kp)}")
    blob = np.frombuffer(raw[16:16 + n], np.uint8).copy()
    return {k: v.copy() for k, v in param_views(kp, blob).items()}


def write_data(path, batches: list[list[np.ndarray]], dtypes: list[str]) -> None:
    """Batches of train_step inputs, cast to the kernel dtypes (`dtypes`)."""
    if not batches:
        raise ValueError("no batches")
    arrays = [[np.asarray(a, dtype=NUMPY[t], order="C") for a, t in zip(b, dtypes, strict=True)] for b in batches]
    sizes = [a.nbytes for a in arrays[0]]
    for b in arrays:
        if [a.nbytes for a in b] != sizes:
            raise ValueError("batches differ in size")
    head = DATA_MAGIC + struct.pack("<QQ", len(arrays), len(sizes)) + struct.pack(f"<{len(sizes)}Q", *sizes)
    _atomic_write(path, head + b"".join(a.tobytes() for b in arrays for a in b))


def _atomic_write(path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_weights_layout(path, layout: dict) -> dict[str, np.ndarray]:
    """A weights.bin read back with the layout.json written beside it."""
    raw = Path(path).read_bytes()
    if raw[:8] != WEIGHTS_MAGIC or struct.unpack("<Q", raw[8:16])[0] != layout["params_bytes"]:
        raise ValueError(f"{path}: not a weights file of this layout")
    blob = np.frombuffer(raw[16:], np.uint8)
    out = {}
    for name, p in layout["params"].items():
        dt = np.dtype(NUMPY[p["dtype"]])
        n = int(np.prod(p["shape"], dtype=np.int64)) * dt.itemsize
        out[name] = blob[p["offset"]:p["offset"] + n].view(dt).reshape(p["shape"]).copy()
    return out


def layout(kp: KernelProgram, target=None) -> dict:
    return {"target": getattr(target, "name", "c"), "runner": list(getattr(target, "runner", [])),
            "params_bytes": blob_bytes(kp), "arena_bytes": kp.arena_bytes,
            "params": {n: {"offset": s.offset, "dtype": s.dtype, "shape": list(s.shape), "category": s.category}
                       for n, s in kp.params.items()},
            "functions": {n: {"inputs": [{"dtype": v.dtype, "shape": list(v.shape)} for v in f.inputs],
                              "outputs": [{"dtype": v.dtype, "shape": list(v.shape)} for v in f.outputs]}
                          for n, f in kp.functions.items()},
            "memory": kp.memory}


def write_project(out_dir, kp: KernelProgram, target, weights: dict[str, np.ndarray] | None = None,
                  title: str = "model") -> Path:
    """Write the project for `target` (backends/target.py) into out_dir (replaced whole): the
    generated sources, the target's own files (runner, Makefile), layout.json, weights.bin."""
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = target.sources(kp, title)
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        for name, text in target.project_files(target).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        (tmp / "layout.json").write_text(json.dumps(layout(kp, target), indent=1) + "\n")
        if weights is not None:
            write_weights(tmp / "weights.bin", kp, weights)
        if out.exists():
            if any(out.iterdir()) and not (out / "layout.json").is_file():
                raise FileExistsError(f"{out} exists and is not a pockengine C project; not replacing it")
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
