"""The emitted C project and its two file formats.

    OUT/model.c model.h     the generated step functions (forward, train_step) and layout
    OUT/pock.h kernels/*.c  the kernel library, only the kernels the program calls
    OUT/main.c Makefile     a runner: `make && ./model 20 data.bin` prints the loss per step
    OUT/weights.bin         the parameter blob (weights + optimizer state), see below
    OUT/layout.json         where each parameter lives in the blob, the label inputs, the memory plan
    OUT/model.mlir          the training program (what `pockengine train -o` saves the weights with)

weights.bin = b"PKWTS001" + u64 byte count + blob; data.bin = b"PKDATA01" + u64 batches +
u64 inputs + u64 bytes per input + the batches (each the train_step inputs back to back).
Every file and the project directory itself are written atomically (pockengine.atomic).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..atomic import empty_or_marked, replaced_directory, write_bytes
from .inputs import label_inputs
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
    write_bytes(path, WEIGHTS_MAGIC + struct.pack("<Q", blob.size) + blob.tobytes())


def write_weights_layout(path, layout: dict, weights: dict[str, np.ndarray], source: str = "weights") -> None:
    """A weights.bin for the project of `layout` (layout.json) from named values (a
    checkpoint's): every parameter of the layout must be there, with its shape."""
    from ..errors import UserError

    blob = np.zeros(layout["params_bytes"], np.uint8)
    missing = [n for n in layout["params"] if n not in weights]
    if missing:
        raise UserError(f"{source}: no value for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                        f"(the project needs {len(layout['params'])} parameters and optimizer state tensors)")
    for name, p in layout["params"].items():
        arr = np.asarray(weights[name], dtype=NUMPY[p["dtype"]], order="C")
        if list(arr.shape) != list(p["shape"]):
            raise UserError(f"{source}: {name} has shape {list(arr.shape)}, the project has {p['shape']}")
        raw = np.frombuffer(arr.tobytes(), np.uint8)
        blob[p["offset"]:p["offset"] + raw.size] = raw
    write_bytes(path, WEIGHTS_MAGIC + struct.pack("<Q", blob.size) + blob.tobytes())


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
    write_bytes(path, head + b"".join(a.tobytes() for b in arrays for a in b), durable=False)


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
            "labels": {n: {str(i): {"classes": s.classes, "ignore_index": s.ignore_index} for i, s in specs.items()}
                       for n, specs in label_inputs(kp).items() if specs},
            "memory": kp.memory}


def write_project(out_dir, kp: KernelProgram, target, weights: dict[str, np.ndarray] | None = None,
                  title: str = "model", extra: dict[str, str] | None = None) -> Path:
    """Write the project for `target` (backends/target.py) into out_dir (replaced whole, in
    one step): the generated sources, the target's own files (runner, Makefile),
    layout.json, weights.bin and the `extra` files (model.mlir). An existing out_dir that is
    not empty and not a project (no layout.json) is refused."""
    out = Path(out_dir).resolve()
    with replaced_directory(out, check=empty_or_marked("layout.json", what="pockengine project")) as tmp:
        files = {**target.sources(kp, title), **target.project_files(target), **(extra or {})}
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        (tmp / "layout.json").write_text(json.dumps(layout(kp, target), indent=1) + "\n")
        if weights is not None:
            write_weights(tmp / "weights.bin", kp, weights)
    return out
