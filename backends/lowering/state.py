"""train.get / train.set / train.constant: parameters are views of the params blob."""

from __future__ import annotations

import numpy as np

from ...ir.ops.state import ConstantOp, GetOp, SetOp, SetSliceOp
from ..kernel_ir import Storage, View
from ..lower_to_kernels import SetRequest, dtype_of, lowers, shape_of


@lowers(GetOp)
def lower_get(lw, op):
    slot = lw.owner.params[op.param.root_reference.data]
    lw.bind(op.result, View(slot.storage, slot.dtype, slot.shape))


def snapshot_old_values(lw, op, slot) -> None:
    """Values read from the parameter before this write (train.get and views of it) keep the
    old contents in the IR; if one is still used after the write, copy the old contents
    aside first and read them from there."""
    ps = slot.storage.resolve()
    later = [v for v, view in lw.env.items() if view.storage.resolve() is ps
             and (lw.used_after(v, op) or v is op.operands[0])]
    if not later:
        return
    snap = Storage("arena", slot.storage.nbytes, "activations", f"old {slot.name}")
    lw.copy(View(slot.storage, slot.dtype, slot.shape), View(snap, slot.dtype, slot.shape))
    for v in later:
        old = lw.env[v]
        lw.env[v] = View(snap, old.dtype, old.shape, old.offset, old.strides)


@lowers(SetOp)
def lower_set(lw, op):
    slot = lw.owner.params[op.param.root_reference.data]
    value = lw.view(op.value)
    dst = View(slot.storage, slot.dtype, slot.shape)
    if not value.same_place(dst):
        snapshot_old_values(lw, op, slot)
        value = lw.view(op.value)
    if value.same_place(dst):
        return  # set @p, (get @p): nothing moves
    step = lw.copy(value, dst)
    lw.sets.append(SetRequest(step, value, slot))


@lowers(ConstantOp)
def lower_constant(lw, op):
    arr = op.array()
    dt = dtype_of(op.result.type)
    shape = shape_of(op.result)
    flat = arr.reshape(-1)
    if flat.size > 1 and np.all(flat == flat[0]):  # a splat is one element read with stride 0
        st = lw.owner.const(flat[:1], dt)
        lw.bind(op.result, View(st, dt, shape, 0, (0,) * len(shape)))
        return
    lw.bind(op.result, View(lw.owner.const(arr.reshape(shape), dt), dt, shape))


@lowers(SetSliceOp)
def lower_set_slice(lw, op):
    """A channel-ratio update writes its slice of the parameter (always a copy: the slice of
    an OIHW weight along I is not contiguous)."""
    slot = lw.owner.params[op.param.root_reference.data]
    value = lw.view(op.value)
    snapshot_old_values(lw, op, slot)
    value = lw.view(op.value)
    full = View(slot.storage, slot.dtype, slot.shape)
    st = full.elem_strides()
    lw.copy(value, full.with_strides(value.shape, st, op.slice_start * st[op.slice_axis]))
