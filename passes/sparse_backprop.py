"""`sparse-backprop{scheme=...}`: apply a sparse update scheme to the training step.

`autodiff` emits one update per trainable parameter:

    %p1, %m1 = train.sgd %p, %g, %m, %t {lr = 0.05, momentum = 0.9} : (...) -> (...)
    train.set @w, %p1 : tensor<16x8x1x1xf32>
    train.set @w.momentum, %m1 : tensor<16x8x1x1xf32>

This pass resolves the scheme (passes/scheme.py) against the program and rewrites each update:

- frozen: the optimizer op, its `train.set`s and its state parameters disappear, and the
  parameter becomes `trainable = false`. The gradient is left dead for
  dead-gradient-elimination to remove.
- ratio r on a weight with C channels on the scheme's axis (conv: input channels, depthwise:
  channels, linear: input features): only the first k = ceil(r·C) channels are updated.
  The optimizer runs on slices, its state parameters shrink to the slice, and the result is
  written back with `train.set_slice`:

    %ps = train.slice %p {axes = [1], starts = [0], ends = [4], steps = [1]}
    %gs = train.slice %g {axes = [1], starts = [0], ends = [4], steps = [1]}
    %p1, %m1 = train.sgd %ps, %gs, %m, %t {...}          // %m: tensor<16x4x1x1xf32> now
    train.set_slice @w, %p1 {axis = 1, start = 0} : tensor<16x4x1x1xf32>
    train.set @w.momentum, %m1 : tensor<16x4x1x1xf32>

  Why a sliced write instead of a functional update of the whole tensor: the optimizer's work
  and its state then scale with k, not C, and a backend writes k channels in place instead of
  copying the full weight. The sliced gradient `slice(conv2d_backward_weight(x, dy))` is what
  dead-gradient-elimination turns into `conv2d_backward_weight(slice(x), dy)`.

`scheme` is a path to a scheme file (text or `.json`) or inline scheme text; in a pipeline
string quote it: `sparse-backprop{scheme="examples/mobilenet_tte.pock"}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pockengine.ir import types as T
from pockengine.ir.ops.shape import SliceOp
from pockengine.ir.ops.state import GetOp, ParamOp, SetOp, SetSliceOp
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import BoolAttr, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import DiagnosticException

from ..errors import UserError
from .scheme import Loc, Scheme, SchemeError, Update
from .scheme_layers import params


class SparseBackpropError(DiagnosticException, UserError):
    """The scheme cannot be applied to this program (message says why)."""


@dataclass
class ParamUpdate:
    """One parameter's update in the step: the optimizer op and the sets it feeds."""

    param: str
    optimizer: Operation
    param_set: SetOp
    state_sets: list[SetOp]


def find_updates(fn: func.FuncOp, module: ModuleOp) -> dict[str, ParamUpdate]:
    """Every `train.set @p, %v` on a non-state parameter whose %v comes from an op, with the
    state sets fed by the same op."""
    decls = params(module)
    out: dict[str, ParamUpdate] = {}
    for op in fn.walk():
        if not isinstance(op, SetOp):
            continue
        name = op.param.root_reference.data
        decl = decls.get(name)
        if decl is None or decl.role.data == "optimizer_state" or not isinstance(op.value.owner, Operation):
            continue
        opt = op.value.owner
        state = [use.operation for r in opt.results for use in r.uses
                 if isinstance(use.operation, SetOp) and use.operation is not op]
        out[name] = ParamUpdate(name, opt, op, state)
    return out


def train_step(module: ModuleOp) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == "train_step":
            return op
    raise SparseBackpropError("sparse-backprop needs @train_step: run autodiff first")


def sparse_backprop(module: ModuleOp, scheme: Scheme) -> dict[str, Update]:
    """Apply `scheme` to @train_step in place; returns the per-parameter decisions."""
    fn = train_step(module)
    decisions = scheme.resolve(module)
    updates = find_updates(fn, module)
    # a parameter the loss does not depend on has no update: fine by default, not when a rule asks for it
    missing = [(p, u.by) for p, u in decisions.items() if u.mode != "frozen" and p not in updates and u.by]
    if missing:
        p, rule = missing[0]
        raise SparseBackpropError((rule.loc or Loc(scheme.source)).error(
            f"`{rule.to_text()}` trains @{p}, but @train_step has no update for it (the loss does not depend on it)"))
    if all(u.mode == "frozen" or p not in updates for p, u in decisions.items()):
        raise SparseBackpropError(f"{scheme.source}: the scheme trains no parameter that @train_step updates")
    decls = params(module)
    for name, upd in decisions.items():
        if name not in updates:
            continue
        if upd.mode == "frozen":
            _freeze(updates[name], decls)
        elif upd.mode == "ratio":
            _slice_update(updates[name], upd, decls)
    _drop_unused_state(module, fn)
    return decisions


def _freeze(u: ParamUpdate, decls: dict[str, ParamOp]) -> None:
    for s in [u.param_set, *u.state_sets]:
        Rewriter.erase_op(s)
    if all(not r.uses for r in u.optimizer.results):
        Rewriter.erase_op(u.optimizer)
    decls[u.param].properties["trainable"] = BoolAttr.from_bool(False)


def _slice_update(u: ParamUpdate, upd: Update, decls: dict[str, ParamOp]) -> None:
    opt, axis, k = u.optimizer, upd.axis, upd.channels
    full = decls[u.param].type
    sliced = T.tensor([k if i == axis else d for i, d in enumerate(full.get_shape())], full.element_type)
    state_names = {s.param.root_reference.data for s in u.state_sets}
    operands: list[SSAValue] = []
    for v in opt.operands:
        if v.type != full:
            operands.append(v)
        elif isinstance(v.owner, GetOp) and v.owner.param.root_reference.data in state_names:
            operands.append(_shrink_state(v.owner, decls, sliced))
        else:
            cut = SliceOp.build(v, axes=[axis], starts=[0], ends=[k])
            Rewriter.insert_op(cut, InsertPoint.before(opt))
            operands.append(cut.results[0])
    new_opt = type(opt).create(operands=operands, result_types=[sliced if t == full else t for t in opt.result_types],
                               properties=dict(opt.properties), attributes=dict(opt.attributes))
    Rewriter.insert_op(new_opt, InsertPoint.before(opt))
    for old, new in zip(opt.results, new_opt.results):
        for use in list(old.uses):
            user = use.operation
            if user is u.param_set:
                Rewriter.replace_op(user, SetSliceOp.of(u.param, new, axis, 0))
            elif isinstance(user, SetOp):
                Rewriter.replace_op(user, SetOp.of(user.param.root_reference.data, new))
            else:
                raise SparseBackpropError(f"{opt.name} for @{u.param}: result used by {user.name}, "
                                          "cannot slice the update")
    Rewriter.erase_op(opt)


def _shrink_state(get: GetOp, decls: dict[str, ParamOp], sliced: TensorType) -> SSAValue:
    name = get.param.root_reference.data
    decls[name].properties["type"] = sliced
    new = GetOp.of(decls[name])
    Rewriter.replace_op(get, new)
    return new.result


def _drop_unused_state(module: ModuleOp, fn: func.FuncOp) -> None:
    """Erase reads nobody uses and state parameters nobody reads or writes any more."""
    for op in reversed(list(fn.walk())):
        if isinstance(op, GetOp) and not op.result.uses:
            Rewriter.erase_op(op)
    used = {op.param.root_reference.data for op in module.walk() if isinstance(op, (GetOp, SetOp, SetSliceOp))}
    for name, decl in params(module).items():
        if decl.role.data == "optimizer_state" and name not in used:
            Rewriter.erase_op(decl)


def fit_state_values(program) -> None:
    """Make `program.weights` match the declarations after this pass: state that shrank keeps
    its leading slice (the channels still trained), removed parameters lose their values."""
    decls = params(program.module)
    for name in [n for n in program.weights if n not in decls]:
        del program.weights[name]
    for name, decl in decls.items():
        value, shape = program.weights.get(name), tuple(decl.type.get_shape())
        if value is not None and value.shape != shape and value.ndim == len(shape) and \
                all(a >= b for a, b in zip(value.shape, shape)):
            program.weights[name] = np.ascontiguousarray(value[tuple(slice(0, d) for d in shape)])


@dataclass(frozen=True)
class SparseBackprop(ModulePass):
    """Apply a sparse update scheme: freeze parameters, slice channel-ratio updates."""

    name = "sparse-backprop"

    scheme: str = ""  # a scheme file (.pock text or .json) or inline scheme text

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.scheme.strip():
            raise SparseBackpropError("sparse-backprop needs a scheme: sparse-backprop{scheme=\"FILE or text\"}")
        try:
            sparse_backprop(op, Scheme.load(self.scheme))
        except SchemeError as e:
            raise SparseBackpropError(str(e)) from None
