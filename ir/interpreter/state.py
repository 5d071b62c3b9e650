"""train.get / train.set / train.constant."""

import numpy as np

from ..ops.state import ConstantOp, GetOp, SetOp, SetSliceOp
from . import InterpretError, impl


@impl(GetOp)
def run_get(interp, op):
    name = op.param.root_reference.data
    if name not in interp.weights:
        raise InterpretError(f"train.get @{name}: no value in the weights")
    return interp.weights[name]


@impl(SetOp)
def run_set(interp, op, value):
    name = op.param.root_reference.data
    old = interp.weights.get(name)
    # keep the stored dtype unless the interpreter runs wider (float64 checks)
    interp.weights[name] = np.array(value, dtype=old.dtype if old is not None and old.dtype.itemsize >= value.dtype.itemsize else value.dtype)
    return ()


@impl(SetSliceOp)
def run_set_slice(interp, op, value):
    name = op.param.root_reference.data
    if name not in interp.weights:
        raise InterpretError(f"train.set_slice @{name}: no value in the weights")
    new = np.array(interp.weights[name])  # a copy: weights may be read-only views
    idx = [slice(None)] * new.ndim
    idx[op.slice_axis] = slice(op.slice_start, op.slice_start + value.shape[op.slice_axis])
    new[tuple(idx)] = value
    interp.weights[name] = new
    return ()


@impl(ConstantOp)
def run_constant(interp, op):
    return op.array()
