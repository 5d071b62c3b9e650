"""lower-to-kernels: `train` functions → the kernel IR (backends/kernel_ir.py) that backends print.

Each op is lowered by one rule, found by its op class in `RULES` (backends/lowering/<family>.py,
mirroring ir/ops/<family>.py). A rule reads its operands' views, asks for result storage and
appends steps:

    @lowers(ReluOp)                      # elementwise ops become (fusable) loop nests
    def lower_relu(lw, op): lw.elementwise(op)

Values that are only a new name for the same bytes (reshape, train.get) become views of the
existing storage, so they cost nothing. After lowering, passes/memory_plan.py places every
storage: parameters updated in place, outputs written straight into the caller's buffers,
in-place elementwise steps, and arena offsets.

`lower_program(program)` returns a `KernelProgram`; the `lower-to-kernels` pass is the same
thing made visible in pock-opt: it annotates every value with its planned place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
import math

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, Float64Type, IntegerType, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from pockengine.backends.kernel_ir import (
    ITEMSIZE, Call, Instr, IntArray, KernelFunction, KernelProgram, Map, ParamSlot, Storage, View, align,
)

RULES: dict[type[Operation], Callable[[Lowerer, Operation], None]] = {}


class LoweringError(Exception):
    """An op the kernel backends cannot lower; the message names the op and where it is."""


def lowers(*op_types: type[Operation]):
    def register(fn):
        for t in op_types:
            RULES[t] = fn
        return fn

    return register


def _load_rules() -> None:
    """Import every rule module of backends/lowering/ (one per op family)."""
    import importlib
    import pkgutil

    from pockengine.backends import lowering

    for mod in pkgutil.iter_modules(lowering.__path__):
        importlib.import_module(f"{lowering.__name__}.{mod.name}")


def dtype_of(t) -> str:
    el = t.element_type if isinstance(t, TensorType) else t
    if isinstance(el, Float32Type):
        return "f32"
    if isinstance(el, Float64Type):
        return "f64"
    if isinstance(el, IntegerType):
        w = el.width.data
        if w in (1, 32, 64):
            return {1: "i1", 32: "i32", 64: "i64"}[w]
    raise LoweringError(f"no kernel element type for {el}")


def shape_of(v: SSAValue | TensorType) -> tuple[int, ...]:
    t = v.type if isinstance(v, SSAValue) else v
    return tuple(t.get_shape())


@dataclass
class SetRequest:
    """`train.set @p, %v`: the planner either makes %v's storage the parameter's own bytes
    (an in-place update) or keeps the copy step at `step`."""

    step: Map
    value: View
    slot: ParamSlot


class Lowerer:
    """Lowers one function. Rules call `view`, `result`, `scratch`, `call`, `map`, `alias`."""

    def __init__(self, owner: ProgramLowering, fn: func.FuncOp):
        self.owner, self.fn = owner, fn
        self.name = fn.sym_name.data
        self.env: dict[SSAValue, View] = {}
        self.steps: list = []
        self.sets: list[SetRequest] = []
        self.phase = "forward"
        self.loss_op = self._loss_op()
        self.loss_step = None
        self.current: Operation | None = None

    def _loss_op(self) -> Operation | None:
        """In a training step the op producing the returned loss splits forward from backward."""
        ret = self.fn.body.block.last_op
        if self.name != "train_step" or not isinstance(ret, func.ReturnOp) or not ret.operands:
            return None
        owner = ret.operands[0].owner
        return owner if isinstance(owner, Operation) else None

    # --- values ---------------------------------------------------------------------
    def view(self, value: SSAValue) -> View:
        return self.env[value]

    def bind(self, value: SSAValue, view: View) -> View:
        self.env[value] = view
        return view

    def alias(self, value: SSAValue, view: View) -> View:
        """`value` is the same bytes as `view`, read with its own shape (reshape, get)."""
        return self.bind(value, view if view.shape == shape_of(value) else view.reshaped(shape_of(value)))

    def result(self, value: SSAValue, category: str | None = None) -> View:
        """Fresh storage for an op result, bound to it."""
        shape, dt = shape_of(value), dtype_of(value.type)
        cat = category or ("gradients" if self.phase == "backward" else "activations")
        st = Storage("arena", max(math.prod(shape) * ITEMSIZE[dt], 1), cat, self.label(value))
        return self.bind(value, View(st, dt, shape))

    def scratch(self, elements: int, dtype: str = "f32") -> View:
        st = Storage("arena", max(elements * ITEMSIZE[dtype], 1), "workspace", f"workspace of {self.origin()}")
        return View(st, dtype, (elements,))

    def label(self, value: SSAValue) -> str:
        return value.name_hint or f"{self.current.name.removeprefix('train.') if self.current else 'v'}"

    def origin(self) -> str:
        return self.current.name if self.current is not None else ""

    # --- steps ----------------------------------------------------------------------
    def call(self, kernel: str, fn: str, args: Iterable, reads: Iterable[View], writes: Iterable[View],
             inplace: Iterable[tuple[int, int]] = ()) -> Call:
        c = Call(kernel, fn, [IntArray(tuple(a)) if isinstance(a, (tuple, list)) else a for a in args],
                 list(reads), list(writes), list(inplace), self.origin())
        self.steps.append(c)
        return c

    def map(self, shape, inputs: list[View], body: list[Instr], outputs: list[View], results: list[int]) -> Map:
        m = Map(tuple(shape), list(inputs), list(body), list(outputs), list(results), self.origin())
        self.steps.append(m)
        return m

    def copy(self, src: View, dst: View) -> Map:
        """dst[...] = src[...] (same shape; either side may be strided)."""
        return self.map(dst.shape, [src], [], [dst], [0])

    def contiguous(self, view: View) -> View:
        """`view` itself when its elements are dense and in order, else a packed copy."""
        if view.is_contiguous:
            return view
        st = Storage("arena", max(view.nbytes, 1), "gradients" if self.phase == "backward" else "activations",
                     f"packed {view.storage.label}")
        dst = View(st, view.dtype, view.shape)
        self.copy(view, dst)
        return dst

    def fill(self, dst: View, value: float) -> Map:
        return self.map(dst.shape, [], [Instr("const", (), dst.dtype, (float(value),))], [dst], [0])

    def elementwise(self, op: Operation) -> Map:
        """One elementwise op as a one-instruction map (fusion merges chains of these)."""
        ins = [self.view(v) for v in op.operands]
        body = [Instr(op.name, tuple(range(len(ins))), dtype_of(op.results[0].type), instr_attrs(op))]
        return self.map(shape_of(op.results[0]), ins, body, [self.result(op.results[0])], [len(ins)])

    # --- driving --------------------------------------------------------------------
    def run(self) -> KernelFunction:
        block = self.fn.body.block
        inputs = []
        for i, arg in enumerate(block.args):
            if not isinstance(arg.type, TensorType):
                raise LoweringError(f"@{self.name}: argument {i} is not a tensor ({arg.type})")
            st = Storage("input", math.prod(shape_of(arg)) * ITEMSIZE[dtype_of(arg.type)], "inputs", f"in{i}", index=i)
            inputs.append(self.bind(arg, View(st, dtype_of(arg.type), shape_of(arg))))
        outputs: list[View] = []
        for op in block.ops:
            self.current = op
            if isinstance(op, func.ReturnOp):
                outputs = [self.view(v) for v in op.operands]
                break
            rule = RULES.get(type(op))
            if rule is None:
                raise LoweringError(f"@{self.name}: {op.name} has no kernel lowering (known ops: see "
                                    f"backends/lowering/); op: {_short(op)}")
            try:
                rule(self, op)
            except LoweringError:
                raise
            except Exception as e:
                raise LoweringError(f"@{self.name}: lowering {op.name} failed: {e}; op: {_short(op)}") from e
            if op is self.loss_op:
                self.phase = "backward"
                self.loss_step = self.steps[-1] if self.steps else None
        self.current = None
        return KernelFunction(self.name, inputs, outputs, self.steps, self.sets, self.loss_step)


def instr_attrs(op: Operation) -> tuple:
    """The properties a scalar instruction needs, as a flat hashable tuple."""
    from pockengine.ir.ops import elementwise as E
    from pockengine.ir.ops import grad as G

    if isinstance(op, E.ClampOp):
        return (op.p.min, op.p.max)
    if isinstance(op, (E.GeluOp, G.GeluBackwardOp)):
        return (op.p.approximate,)
    return ()


def _short(op: Operation) -> str:
    text = str(op).strip().splitlines()[0]
    return text if len(text) < 160 else text[:157] + "..."


class ProgramLowering:
    """Shared state of one module's lowering: the parameter blob layout and constants."""

    def __init__(self, module: ModuleOp):
        from pockengine.ir.ops.state import ParamOp

        self.module = module
        self.params: dict[str, ParamSlot] = {}
        offset = 0
        for op in module.ops:
            if isinstance(op, ParamOp):
                name, shape = op.sym_name.data, tuple(op.type.get_shape())
                dt = dtype_of(op.type)
                nbytes = max(math.prod(shape) * ITEMSIZE[dt], 1)
                cat = "optimizer_state" if op.role.data == "optimizer_state" else "weights"
                st = Storage("params", nbytes, cat, name, offset=offset)
                self.params[name] = ParamSlot(name, dt, shape, offset, cat, st)
                offset = align(offset + nbytes)
        self.params_bytes = offset
        self.consts: list[Storage] = []

    def const(self, array: np.ndarray, dtype: str) -> Storage:
        st = Storage("const", max(array.nbytes, 1), "consts", f"c{len(self.consts)}", index=len(self.consts),
                     data=np.ascontiguousarray(array))
        self.consts.append(st)
        return st


def lower_program(program, functions: Iterable[str] | None = None, plan: bool = True) -> KernelProgram:
    """Lower `functions` (default: every func.func) of a Program or ModuleOp and plan memory."""
    from pockengine.passes.memory_plan import plan_program

    _load_rules()
    module = getattr(program, "module", program)
    owner = ProgramLowering(module)
    fns = {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}
    names = list(functions) if functions is not None else list(fns)
    for n in names:
        if n not in fns:
            raise LoweringError(f"no function @{n}; the module has: {', '.join(fns) or 'none'}")
    lowered = {}
    envs = {}
    for n in names:
        lw = Lowerer(owner, fns[n])
        lowered[n] = lw.run()
        envs[n] = lw.env
    kp = KernelProgram(lowered, owner.params, owner.params_bytes, 0, owner.consts)
    kp.envs = envs  # type: ignore[attr-defined]  (value → view, for annotating the train IR)
    if plan:
        plan_program(kp)
    return kp
