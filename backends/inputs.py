"""Checks of the arrays a compiled function is called with, the same for every entry point.

    specs = label_inputs(kp)["train_step"]      # {input index: LabelSpec(classes, ignore_index)}
    check_input(kp, "train_step", 1, y)         # InputError naming the input and what is wrong

A compiled step has fixed shapes and dtypes, and its loss kernels trust their labels (an
out-of-range label would read outside the logits row, and the kernels cannot raise). So
every entry point checks the inputs first, cheaply (a min/max per label array):

- `Trainer.call` / `Trainer.step` (backends/runtime.py), with the input's index and name;
- `pockengine train` (backends/cli.py), naming the array of the .npz and the sample;
- the project's runner (backends/c/main.c), from the tables `label_inputs` puts in model.h
  (`pock_train_step_in_classes`, `..._in_ignore`, `..._in_label_size`).

Label inputs are found in the kernel program itself: the `labels` operand of each
cross_entropy, cross_entropy_backward and linear_cross_entropy call that views a function
input (directly, or through a copy or cast into the arena), with the class count of that
call. Floats given for an integer input are refused unless all are whole numbers (0.7 would
be truncated to class 0), as is a shape other than the compiled one (the batch size is fixed
at compile time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .kernel_ir import NUMPY, Call, KernelProgram, Map


class InputError(UserError, ValueError):
    """An array given to a compiled function does not fit it (shape, dtype, label range)."""


@dataclass(frozen=True)
class LabelSpec:
    classes: int
    ignore_index: int

    def describe(self) -> str:
        return f"[0, {self.classes})" + (f" or {self.ignore_index} (ignore_index)" if not
                                          0 <= self.ignore_index < self.classes else "")


def _label_source(fn, view) -> int | None:
    """The function input a labels view reads, following copies/casts into the arena."""
    seen = 0
    while seen < 8:
        s = view.storage.resolve()
        if s.region == "input":
            return s.index
        if s.region != "arena":
            return None
        writer = None
        for st in fn.steps:
            if isinstance(st, Map) and any(o.storage.resolve() is s for o in st.outputs):
                writer = st
        if writer is None or len(writer.inputs) != 1 or any(i.op not in ("train.cast",) for i in writer.body):
            return None
        view = writer.inputs[0]
        seen += 1
    return None


def label_inputs(kp: KernelProgram) -> dict[str, dict[int, LabelSpec]]:
    """function → {input index: LabelSpec} for the inputs that hold class labels."""
    out: dict[str, dict[int, LabelSpec]] = {}
    for name, fn in kp.functions.items():
        specs: dict[int, LabelSpec] = {}
        for st in fn.steps:
            if not isinstance(st, Call) or "labels" not in st.operands:
                continue
            if st.op in ("cross_entropy", "cross_entropy_backward"):
                spec = LabelSpec(int(st.operands["c"]), int(st.operands["ignore_index"]))
            elif st.op == "linear_cross_entropy":
                g = st.operands["geometry"].values
                spec = LabelSpec(int(g[2]), int(g[9]))
            else:
                continue
            index = _label_source(fn, st.operands["labels"])
            if index is None:
                continue
            old = specs.get(index)
            if old is not None and old != spec:  # two losses over one input: the tighter range
                spec = LabelSpec(min(old.classes, spec.classes), old.ignore_index)
            specs[index] = spec
        out[name] = specs
    return out


def check_labels(values: np.ndarray, spec: LabelSpec, what: str) -> None:
    """InputError unless every value is in [0, classes) or the ignore index."""
    a = np.asarray(values)
    if a.size == 0:
        return
    lo, hi = a.min(), a.max()
    if lo >= 0 and hi < spec.classes:
        return
    bad = (a != spec.ignore_index) & ((a < 0) | (a >= spec.classes))
    if not bad.any():
        return
    at = tuple(int(i) for i in np.argwhere(bad)[0])
    raise InputError(f"{what}: label {int(a[at])} at {at if len(at) != 1 else at[0]} is outside the valid range "
                     f"{spec.describe()}: this model has {spec.classes} classes")


def check_integer_dtype(a: np.ndarray, what: str) -> None:
    """InputError for floats given where integers go, unless every one is a whole number (the
    rule of pockengine/data.py's .npz reader): 0.7 would be truncated to class 0."""
    if a.dtype.kind in "iub":
        return
    if a.dtype.kind != "f":
        raise InputError(f"{what}: {a.dtype} values where integers are expected (class labels or indices)")
    bad = ~np.isfinite(a) | (a != np.round(a)) if a.size else np.zeros(0, bool)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{what}: {a[at].item()!r} at {at if len(at) != 1 else at[0]} where integers are expected "
                         f"(class labels or indices); a fraction would be truncated: give integers")


def check_input(kp: KernelProgram, function: str, index: int, array, what: str | None = None,
                labels: dict[int, LabelSpec] | None = None) -> np.ndarray:
    """`array` as the contiguous array input `index` of `function` takes, or InputError."""
    v = kp.functions[function].inputs[index]
    what = what or f"@{function} input {index}"
    a = np.asarray(array)
    want = np.dtype(NUMPY[v.dtype])
    if want.kind in "iu" and a.dtype.kind not in "iub":
        check_integer_dtype(a, what)
    if a.shape != tuple(v.shape):
        hint = ""
        if a.ndim == len(v.shape) and a.ndim and a.shape[1:] == tuple(v.shape[1:]):
            hint = (f": the batch size ({v.shape[0]}) is fixed at compile time; drop a last partial batch "
                    f"(DataLoader(..., drop_last=True), `pockengine train --drop-last`) or compile for batch {a.shape[0]}")
        raise InputError(f"{what}: shape {a.shape}, the program was compiled for {tuple(v.shape)}{hint}")
    spec = (labels if labels is not None else label_inputs(kp).get(function, {})).get(index)
    if spec is not None:
        check_labels(a, spec, what)
    return np.asarray(a, dtype=want, order="C")


def header_tables(kp: KernelProgram, function: str, symbol: str) -> tuple[list[str], list[str]]:
    """model.h declarations and model.c definitions of `function`'s label tables (main.c's
    check of a data file); empty when it has no label inputs."""
    specs = label_inputs(kp).get(function, {})
    if not specs:
        return [], []
    fn = kp.functions[function]
    classes = [specs[i].classes if i in specs else 0 for i in range(len(fn.inputs))]
    ignore = [specs[i].ignore_index if i in specs else 0 for i in range(len(fn.inputs))]
    size = [np.dtype(NUMPY[v.dtype]).itemsize if i in specs else 0 for i, v in enumerate(fn.inputs)]
    decl = [f"#define {symbol.upper()}_HAS_LABELS 1",
            f"extern const long {symbol}_in_classes[], {symbol}_in_ignore[], {symbol}_in_label_size[];"]
    defs = [f"const long {symbol}_in_classes[] = {{{', '.join(map(str, classes))}}};",
            f"const long {symbol}_in_ignore[] = {{{', '.join(map(str, ignore))}}};",
            f"const long {symbol}_in_label_size[] = {{{', '.join(map(str, size))}}};"]
    return decl, defs


__all__ = ["InputError", "LabelSpec", "check_input", "check_integer_dtype", "check_labels", "header_tables",
           "label_inputs"]
