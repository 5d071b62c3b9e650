"""Cost report of a program, counted on the IR: what a training step computes and keeps.

    from pockengine import passes
    print(passes.cost(program))               # or: pock-opt m.mlir -p ... --stats

Per function:
- op counts by op name;
- FLOPs in three phases. *forward* is every op up to the loss (the op defining the returned
  value; a function without updates is all forward), *optimizer* is every op whose result is
  written by `train.set`/`train.set_slice` (the updates and the step counter), *backward* is the rest;
- saved bytes: activations kept from the forward part for the backward part — values that
  depend on the function's inputs, are defined at or before the loss, and are read after it
  (parameters and constants are not activations);
- trained parameters: elements written by updates (a `train.set_slice` counts its slice).

FLOPs come from one table, `FLOPS`, keyed by op name: a multiply-add counts 2, an elementwise
op 1 per output element, data movement 0. Every op of the `train` dialect has an entry
(tests/passes/test_cost.py checks it). `train.fused` counts the ops in its region, so a step
costs the same before and after fusion; each op inside is put in the phase it would have
outside. An op without a rule is not guessed: `flops` raises `NoCostRule`, and the report counts
such ops apart and says so (`FunctionCost.uncounted`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pockengine.ir import types as T
from pockengine.ir.ops.state import ConstantOp, GetOp, ParamOp, SetOp, SetSliceOp
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue


def numel(v: SSAValue | TensorType) -> int:
    return math.prod(T.shape(v))


def nbytes(v: SSAValue | TensorType) -> int:
    el = T.element(v)
    width = getattr(el, "bitwidth", None) or getattr(getattr(el, "width", None), "data", 32)
    return numel(v) * max(int(width), 8) // 8


def _in(i: int) -> Callable[[Operation], int]:
    return lambda op: numel(op.operands[i])


def _out(k: float) -> Callable[[Operation], int]:
    return lambda op: int(k * numel(op.results[0]))


def _conv_macs(out: SSAValue, weight_shape) -> int:
    """N·O·Ho·Wo output elements, each a dot product over C/g·kh·kw."""
    return numel(out) * math.prod(weight_shape[1:])


def _conv(op):  # y = conv2d(x, w)
    return 2 * _conv_macs(op.results[0], T.shape(op.operands[1]))


def _conv_dx(op):  # dx = conv2d_backward_input(dy, w): the forward's MACs again
    return 2 * _conv_macs(op.operands[0], T.shape(op.operands[1]))


def _conv_dw(op):  # dw = conv2d_backward_weight(x, dy)
    return 2 * _conv_macs(op.operands[1], T.shape(op.results[0]))


def _linear(op):  # y = x·wᵀ: each output element is a dot product over `in`
    return 2 * numel(op.results[0]) * T.shape(op.operands[1])[1]


def _linear_dw(op):  # dw[out, in] = Σ over rows of dyᵀ·x
    return 2 * numel(op.results[0]) * (numel(op.operands[0]) // T.shape(op.operands[0])[-1])


def _matmul(op):
    return 2 * numel(op.results[0]) * T.shape(op.operands[0])[-1]


def _window(op):  # pooling: one op per window tap per output
    return numel(op.results[0]) * math.prod(op.p.kernel)


def _window_backward(op):
    return numel(op.operands[-1 if op.name == "train.max_pool2d_backward" else 0]) * math.prod(op.p.kernel)


def _sgd(op):
    p = op.p
    per = 2 + 2 * (p.weight_decay != 0) + (3 if p.momentum else 0) + 2 * bool(p.nesterov)
    return per * numel(op.results[0])


class NoCostRule(LookupError):
    """An op with no entry in FLOPS (a new op, or one from another dialect)."""


ZERO = ("train.reshape", "train.transpose", "train.broadcast", "train.slice", "train.concat", "train.gather",
        "train.pad", "train.get", "train.set", "train.set_slice", "train.constant", "train.cast",
        "train.slice_backward", "train.gather_elements", "train.param", "train.yield", "func.return", "func.call")

# one FLOP per output element (comparisons, selects and clamps included)
ELEMENTWISE = ("train.neg", "train.abs", "train.sqrt", "train.rsqrt", "train.reciprocal", "train.exp", "train.log",
               "train.tanh", "train.sin", "train.cos", "train.erf", "train.sigmoid", "train.relu", "train.relu6",
               "train.clamp", "train.logical_not", "train.add", "train.sub", "train.mul", "train.div", "train.pow",
               "train.maximum", "train.minimum", "train.and", "train.or", "train.eq", "train.ne", "train.lt",
               "train.le", "train.gt", "train.ge", "train.where")

FLOPS: dict[str, Callable[[Operation], int]] = {
    **{name: (lambda op: 0) for name in ZERO},
    **{name: _out(1) for name in ELEMENTWISE},
    "train.fused": lambda op: sum(flops(inner) for inner in _region_ops(op)),
    "train.gather_elements_backward": _in(0),  # one scatter-add per dy element
    "train.conv2d": _conv,
    "train.conv2d_backward_input": _conv_dx,
    "train.conv_transpose2d": _conv_dx,  # conv2d's input gradient with x as dy
    "train.conv2d_backward_weight": _conv_dw,
    "train.linear": _linear,
    "train.linear_backward_weight": _linear_dw,
    "train.matmul": _matmul,
    "train.max_pool2d": _window,
    "train.avg_pool2d": _window,
    "train.max_pool2d_backward": _window_backward,
    "train.avg_pool2d_backward": _window_backward,
    "train.global_avg_pool": _in(0),
    "train.sum": _in(0),
    "train.mean": _in(0),
    "train.max": _in(0),
    "train.any": _in(0),
    "train.cumsum": _out(1),
    "train.softmax": _out(5),  # max, sub, exp, sum, div
    "train.log_softmax": _out(5),
    "train.softmax_backward": _out(4),
    "train.log_softmax_backward": _out(4),
    "train.batch_norm": _out(2),  # per-channel scale and shift precomputed: one multiply-add
    "train.layer_norm": _out(7),
    "train.rms_norm": _out(5),
    "train.layer_norm_backward": _out(10),
    "train.layer_norm_backward_gamma": _in(0),
    "train.rms_norm_backward": _out(8),
    "train.rms_norm_backward_gamma": _in(0),
    "train.cross_entropy": _in(0),
    "train.cross_entropy_backward": _out(5),
    "train.mse": _in(0),
    "train.gelu": _out(8),
    "train.gelu_backward": _out(12),
    "train.silu": _out(4),
    "train.silu_backward": _out(6),
    "train.gather_backward": _in(0),
    "train.sgd": _sgd,
    "train.adam": _out(12),
    # quantization (ir/ops/quant.py): divide, round, add z, clamp (+ subtract z, scale back)
    "train.quantize": _out(4),
    "train.dequantize": _out(2),
    "train.fake_quantize": _out(6),
    "train.fake_quantize_backward": _out(5),
    "train.matmul_integer": _matmul,  # integer multiply-adds, counted like float ones
    "train.conv_integer": _conv,
}


def flops(op: Operation) -> int:
    """FLOPs of one op (a `train.fused` op: of the ops in its region); NoCostRule if unknown."""
    rule = FLOPS.get(op.name)
    if rule is None:
        raise NoCostRule(f"no FLOP rule for '{op.name}': add one to FLOPS in passes/cost.py")
    return rule(op)


def _region_ops(op: Operation) -> list[Operation]:
    return [inner for region in op.regions for block in region.blocks for inner in block.ops]


def performed_ops(ops) -> list[Operation]:
    """The ops a step performs: those in `train.fused` regions in place of the group (nested
    groups included), without the region terminators."""
    out = []
    for op in ops:
        if op.regions and op.name == "train.fused":
            out += [i for i in performed_ops(_region_ops(op)) if i.name != "train.yield"]
        else:
            out.append(op)
    return out


@dataclass
class FunctionCost:
    name: str
    ops: Counter = field(default_factory=Counter)
    forward_flops: int = 0
    backward_flops: int = 0
    optimizer_flops: int = 0
    saved_bytes: int = 0
    saved: list[tuple[str, int]] = field(default_factory=list)  # (value, bytes), largest first
    trained_elements: int = 0
    trained_tensors: int = 0
    fused_groups: int = 0  # train.fused ops; `ops` counts the ops inside them instead
    uncounted: Counter = field(default_factory=Counter)  # ops without a FLOP rule, by name

    @property
    def compute_ops(self) -> int:
        """Ops that compute (not data movement, state access or constants)."""
        return sum(n for name, n in self.ops.items() if name not in ZERO)

    @property
    def total_flops(self) -> int:
        return self.forward_flops + self.backward_flops + self.optimizer_flops


@dataclass
class CostReport:
    functions: dict[str, FunctionCost]
    state_bytes: int = 0  # optimizer state held beside the parameters

    def __getitem__(self, fn: str) -> FunctionCost:
        return self.functions[fn]

    def __str__(self) -> str:
        lines = []
        for c in self.functions.values():
            lines.append(f"// @{c.name}: {sum(c.ops.values())} ops")
            lines.append(f"//   FLOPs       forward {_n(c.forward_flops)}  backward {_n(c.backward_flops)}  "
                         f"optimizer {_n(c.optimizer_flops)}")
            if c.uncounted:
                lines.append("//   FLOPs exclude ops without a cost rule: "
                             + ", ".join(f"{n} ×{k}" for n, k in sorted(c.uncounted.items())))
            if c.fused_groups:
                lines.append(f"//   in {c.fused_groups} fused groups (their ops are counted one by one below)")
            if c.trained_tensors or c.saved_bytes:
                lines.append(f"//   saved for backward {_b(c.saved_bytes)} in {len(c.saved)} values;  trained "
                             f"{c.trained_elements:,} elements in {c.trained_tensors} tensors")
            lines += [f"//   {n:<32} {k:>6}" for n, k in sorted(c.ops.items(), key=lambda kv: (-kv[1], kv[0]))]
        if self.state_bytes:
            lines.append(f"// optimizer state: {_b(self.state_bytes)}")
        return "\n".join(lines) or "// no functions"


def _n(x: int) -> str:
    return f"{x:,}"


def _b(x: int) -> str:
    return f"{x:,} B"


def function_cost(fn: func.FuncOp, decls: dict[str, ParamOp]) -> FunctionCost:
    c = FunctionCost(fn.sym_name.data)
    ops = [op for op in fn.body.block.ops]
    c.ops = Counter(op.name for op in performed_ops(ops))
    c.fused_groups = sum(1 for op in fn.walk() if op.name == "train.fused")
    ret = ops[-1] if ops and isinstance(ops[-1], func.ReturnOp) else None
    writes = any(isinstance(op, (SetOp, SetSliceOp)) for op in ops)
    loss = ret.operands[0].owner if ret is not None and writes and ret.operands else None
    boundary = ops.index(loss) if isinstance(loss, Operation) and loss in ops else len(ops) - 1
    position = {op: i for i, op in enumerate(ops)}
    data = set(fn.body.block.args)  # values that depend on the inputs: activations
    for op in ops:
        if any(o in data for o in op.operands):
            data.update(op.results)
    for i, op in enumerate(ops):
        loss_value = ret.operands[0] if loss is op else None
        for phase, f in _phased_flops(op, i, boundary, loss_value, c.uncounted):
            setattr(c, f"{phase}_flops", getattr(c, f"{phase}_flops") + f)
        if isinstance(op, (SetOp, SetSliceOp)):
            decl = decls.get(op.param.root_reference.data)
            if decl is not None and decl.role.data != "optimizer_state":
                c.trained_elements += numel(op.operands[0])
                c.trained_tensors += 1
    values = [*fn.body.block.args, *(r for op in ops[:boundary + 1] for r in op.results)]
    for v in values:
        if v in data and isinstance(v.type, TensorType) and not isinstance(v.owner, (GetOp, ConstantOp)) and \
                any(position.get(u.operation, -1) > boundary and not isinstance(u.operation, func.ReturnOp) for u in v.uses):
            c.saved.append((_value_name(v, ops), nbytes(v)))
    c.saved.sort(key=lambda s: -s[1])
    c.saved_bytes = sum(b for _, b in c.saved)
    return c


def _writes_state(value: SSAValue) -> bool:
    return any(isinstance(u.operation, (SetOp, SetSliceOp)) for u in value.uses)


def _phased_flops(op: Operation, i: int, boundary: int, loss_value, uncounted: Counter):
    """(phase, FLOPs) of a top-level op; a `train.fused` op is split over its ops: one whose
    yielded value is written by train.set is optimizer, one the loss depends on is forward,
    the rest take the group's place (before the loss: forward, after it: backward)."""
    if op.name != "train.fused":
        try:
            f = flops(op)
        except NoCostRule:
            uncounted[op.name] += 1
            return []
        if i <= boundary:
            return [("forward", f)]
        return [("optimizer" if any(_writes_state(r) for r in op.results) else "backward", f)]
    inner = _region_ops(op)
    yielded = {}  # inner value → the fused result it becomes
    if inner and inner[-1].name == "train.yield":
        yielded = dict(zip(inner[-1].operands, op.results))
    loss_deps: set = set()
    if loss_value is not None:
        (k,) = [j for j, r in enumerate(op.results) if r is loss_value]
        work = [inner[-1].operands[k]]
        while work:
            v = work.pop()
            if isinstance(v.owner, Operation) and v.owner not in loss_deps and v.owner.parent_op() is op:
                loss_deps.add(v.owner)
                work += list(v.owner.operands)
    out = []
    for o in inner:
        if o.name == "train.yield":
            continue
        if i < boundary or o in loss_deps:
            phase = "forward"
        elif any(r in yielded and _writes_state(yielded[r]) for r in o.results):
            phase = "optimizer"
        else:
            phase = "backward"
        for inner_op in performed_ops([o]):  # a nested group: its ops, in this op's phase
            try:
                out.append((phase, flops(inner_op)))
            except NoCostRule:
                uncounted[inner_op.name] += 1
    return out


def _value_name(v: SSAValue, ops: list[Operation]) -> str:
    if v.name_hint:
        return f"%{v.name_hint}"
    owner = v.owner
    return f"{owner.name}#{ops.index(owner)}" if isinstance(owner, Operation) else "%arg"


def cost(program) -> CostReport:
    """Cost report of a Program (or a bare module): one FunctionCost per function."""
    module: ModuleOp = getattr(program, "module", program)
    decls = {op.sym_name.data: op for op in module.ops if isinstance(op, ParamOp)}
    fns = [op for op in module.ops if isinstance(op, func.FuncOp) and op.body.blocks]
    state = sum(nbytes(d.type) for d in decls.values() if d.role.data == "optimizer_state")
    return CostReport({f.sym_name.data: function_cost(f, decls) for f in fns}, state)


def report(module) -> str:
    """The `pock-opt --stats` text."""
    return str(cost(module))


def compare(before: CostReport, after: CostReport, fn: str = "train_step") -> str:
    """A before/after table of one function's numbers (e.g. around sparse-backprop + DGE)."""
    a, b = before[fn], after[fn]
    rows = [("ops", sum(a.ops.values()), sum(b.ops.values())),
            ("compute ops", a.compute_ops, b.compute_ops),
            ("forward FLOPs", a.forward_flops, b.forward_flops),
            ("backward FLOPs", a.backward_flops, b.backward_flops),
            ("optimizer FLOPs", a.optimizer_flops, b.optimizer_flops),
            ("saved activation bytes", a.saved_bytes, b.saved_bytes),
            ("trained parameters", a.trained_elements, b.trained_elements),
            ("trained tensors", a.trained_tensors, b.trained_tensors),
            ("optimizer state bytes", before.state_bytes, after.state_bytes)]
    out = [f"| @{fn} | before | after | after/before |", "|---|---:|---:|---:|"]
    out += [f"| {name} | {x:,} | {y:,} | {y / x:.3f} |" if x else f"| {name} | {x:,} | {y:,} | - |"
            for name, x, y in rows]
    return "\n".join(out)


class _CallableModule(type(math)):
    """Lets `pockengine.passes.cost(program)` call `cost` while `pockengine.passes.cost.report`
    etc. stay reachable as module attributes."""

    def __call__(self, program) -> CostReport:
        return cost(program)


import sys

sys.modules[__name__].__class__ = _CallableModule
