"""The one data format of `pockengine train` and `pockengine search`: an .npz file.

    numpy.savez("data.npz", x=inputs, y=labels)                       # pockengine train
    numpy.savez("data.npz", x=inputs, y=labels, x_val=xv, y_val=yv)   # pockengine search

- `x`: the samples, one per row of axis 0, numeric (converted to the step's dtype, f32);
- `y`: the targets, one per sample: integer class indices for a cross-entropy loss (any integer
  dtype; floats are accepted only when they hold whole numbers), or floats for mse;
- `x_val`, `y_val`: a held-out split in the same layout. `pockengine search` needs it to measure
  contributions; `pockengine train` ignores it.
- `x_train`, `y_train` are other names of `x`, `y` (what `python -m pockengine.search.task` writes).
- A step that takes other than two inputs reads them in order from `arr_0`, `arr_1`, ... (what
  `numpy.savez(path, a, b, c)` writes).

Arrays are read without pickle: object arrays are refused, as are strings and booleans. Every
mistake is a `DataError` (a UserError) naming the file and the array.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError

HELP = ("an .npz with arrays x (samples) and y (labels), one row per sample"
        " (search also needs x_val, y_val; x_train/y_train are accepted for x/y)")
ALIASES = {"x": ("x", "x_train"), "y": ("y", "y_train"), "x_val": ("x_val",), "y_val": ("y_val",)}


class DataError(UserError):
    """A data file that is not in the format above; the message names the file and the array."""


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, loaded (no pickle), each checked to be numeric."""
    path = str(path)
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such data file")
    if not p.is_file():
        raise DataError(f"{path}: not a file (expected an .npz: {HELP})")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise DataError(f"{path}: not an .npz file (no zip header); expected {HELP}")
    try:
        f = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not an .npz file ({e}); expected {HELP}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not an .npz; expected {HELP}")
    arrays = {}
    with f:
        for name in f.files:
            try:
                arrays[name] = f[name]
            except ValueError as e:  # object arrays need pickle
                if "allow_pickle" in str(e):
                    raise DataError(f"{path}: array '{name}' holds Python objects; save numeric arrays "
                                    "(e.g. np.asarray(a, dtype=np.float32))") from None
                raise DataError(f"{path}: array '{name}' cannot be read ({e})") from None
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(f"{path}: array '{name}' is truncated or corrupt ({e})") from None
    for name, a in arrays.items():
        if a.dtype.kind not in "iuf":
            kind = {"U": "strings", "S": "bytes", "b": "booleans", "O": "objects", "c": "complex numbers"}
            raise DataError(f"{path}: array '{name}' holds {kind.get(a.dtype.kind, a.dtype)}; "
                            "expected numbers (class labels as integers)")
    return arrays


def _pick(path: str, arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
    for name in ALIASES[key]:
        if name in arrays:
            return arrays[name]
    spelled = " or ".join(f"'{n}'" for n in ALIASES[key])
    raise DataError(f"{path}: missing array {spelled} (has {', '.join(sorted(arrays)) or 'none'}; expected {HELP})")


def _pair(path: str, arrays, xkey: str, ykey: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _pick(path, arrays, xkey), _pick(path, arrays, ykey)
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{path}: '{xkey}' and '{ykey}' need one row per sample (got shapes {x.shape}, {y.shape})")
    if len(x) != len(y):
        raise DataError(f"{path}: '{xkey}' has {len(x)} samples but '{ykey}' has {len(y)}")
    if len(x) == 0:
        raise DataError(f"{path}: '{xkey}' holds no samples")
    return x, y


def step_arrays(path: str | Path, n_inputs: int) -> list[np.ndarray]:
    """The arrays feeding a step's inputs, in order: (x, y) for a two-input step, else arr_0..."""
    path = str(path)
    arrays = read_npz(path)
    if n_inputs == 2:
        _require(path, arrays, ("x", "y"))
        return list(_pair(path, arrays, "x", "y"))
    names = [f"arr_{i}" for i in range(n_inputs)]
    if missing := [n for n in names if n not in arrays]:
        raise DataError(f"{path}: missing array '{missing[0]}': a step of {n_inputs} inputs reads "
                        f"{', '.join(names)} (has {', '.join(sorted(arrays)) or 'none'})")
    return [arrays[n] for n in names]


def splits(path: str | Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x, y), (x_val, y_val)) for `pockengine search`."""
    path = str(path)
    arrays = read_npz(path)
    _require(path, arrays, ("x", "y", "x_val", "y_val"))
    return _pair(path, arrays, "x", "y"), _pair(path, arrays, "x_val", "y_val")


def _require(path: str, arrays, keys) -> None:
    missing = [k for k in keys if not any(n in arrays for n in ALIASES[k])]
    if missing:
        raise DataError(f"{path}: missing arrays {', '.join(missing)} (has {', '.join(sorted(arrays)) or 'none'}; "
                        f"expected {HELP})")


def as_input(path: str, name: str, a: np.ndarray, dtype: str) -> np.ndarray:
    """`a` converted to a step input's dtype ("f32", "i64", numpy names too): integer inputs
    refuse fractional values instead of truncating them."""
    target = np.dtype({"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64", "i1": "bool"}.get(dtype, dtype))
    if target.kind in "iu" and a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a)) if a.size else np.zeros(0, bool)
        if bad.any():
            i = tuple(int(k) for k in np.argwhere(bad)[0])
            raise DataError(f"{path}: array '{name}' feeds an integer input but holds {a[i].item()!r} at {list(i)}; "
                            "labels must be whole numbers")
    return a.astype(target, copy=False)


__all__ = ["HELP", "DataError", "as_input", "read_npz", "splits", "step_arrays"]
