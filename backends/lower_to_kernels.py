"""lower-to-kernels: `train` functions → the kernel IR (backends/kernel_ir.py) that backends print.

Each op is lowered by one rule, found by its op class in `RULES` (backends/lowering/<family>.py,
mirroring ir/ops/<family>.py). A rule reads its operands' views, asks for result storage and
appends steps:

    @lowers(ReluOp)                      # elementwise ops become (fusable) loop nests
    def lower_relu(lw, op): lw.elementwise(op)

Values that are only a new name for the same bytes (reshape, train.get) become views of the
existing storage, so they cost nothing. After lowering, backends/memory_plan.py places every
storage: parameters updated in place, outputs written straight into the caller's buffers,
in-place elementwise steps, and arena offsets.

The lowering is per kernel library (`lw.library`: tiles, workspace sizes, which kernels run
in place), so a kernel program belongs to one target's library.

`lower_program(program)` returns a `KernelProgram`; the `lower-to-kernels` pass is the same
thing made visible in pock-opt: it annotates every op with the steps it became
(`kernel = "call conv2d"`, `"map"`, `"view"`); `pock-opt --emit lower-to-kernels` prints
the kernel IR itself. Memory planning is the next stage (backends/memory_plan.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, Float64Type, IntegerType, ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from ..errors import UserError
from .kernel_ir import (
    ITEMSIZE,
    Call,
    Instr,
    IntArray,
    KernelFunction,
    KernelProgram,
    Map,
    ParamSlot,
    Storage,
    View,
    align,
)

RULES: dict[type[Operation], Callable[[Lowerer, Operation], None]] = {}
# ops that are one loop nest: their scalar form, shared by the single-op and the fused lowering
MAP_FORMS: dict[type[Operation], Callable[[MapBuilder, Operation, Operands], list]] = {}


class LoweringError(UserError):
    """An op the kernel backends cannot lower; the message names the op and where it is."""


def lowers(*op_types: type[Operation]):
    def register(fn):
        for t in op_types:
            RULES[t] = fn
        return fn

    return register


def map_form(*op_types: type[Operation]):
    """Register an op's scalar form: `form(mb, op, operands) -> [ref per result]`. The op is
    then lowered as a loop nest, alone or inside a fused group."""

    def register(fn):
        for t in op_types:
            MAP_FORMS[t] = fn
            RULES[t] = lambda lw, op: lw.map_op(op)
        return fn

    return register


class MapBuilder:
    """Builds one Map: external inputs and scalar instructions, referenced symbolically as
    ("in", k) / ("instr", j) until `finish` numbers them (inputs first)."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.inputs: list[View] = []
        self.instrs: list[tuple] = []

    def input(self, view: View) -> tuple:
        for k, v in enumerate(self.inputs):
            if v is view or (v.same_place(view) and v.dtype == view.dtype):
                return ("in", k)
        self.inputs.append(view)
        return ("in", len(self.inputs) - 1)

    def emit(self, op: str, operands, dtype: str = "f32", attrs: tuple = ()) -> tuple:
        self.instrs.append((op, tuple(operands), dtype, tuple(attrs)))
        return ("instr", len(self.instrs) - 1)

    def const(self, value: float, dtype: str = "f32") -> tuple:
        return self.emit("const", (), dtype, (float(value),))

    def bin(self, op: str, a: tuple, b: tuple) -> tuple:
        return self.emit(f"train.{op}", (a, b))

    def finish(self, outputs: list[View], results: list[tuple], origin: str) -> Map:
        n = len(self.inputs)
        num = lambda ref: ref[1] if ref[0] == "in" else n + ref[1]
        body = [Instr(op, tuple(num(r) for r in ops), dt, attrs) for op, ops, dt, attrs in self.instrs]
        return Map(self.shape, list(self.inputs), body, list(outputs), [num(r) for r in results], origin)


class Operands:
    """An op's operands as a map form sees them: `ref(i)` (a value in the loop, reading the
    operand as an input when it comes from outside) and `view(i)` (its storage)."""

    def __init__(self, mb: MapBuilder, views: list[View | None], refs: list[tuple | None]):
        self.mb, self.views, self.refs = mb, views, refs

    def ref(self, i: int) -> tuple:
        if self.refs[i] is None:
            self.refs[i] = self.mb.input(self.views[i])
        return self.refs[i]

    def view(self, i: int) -> View:
        if self.views[i] is None:
            raise LoweringError("this operand must come from outside the fused group")
        return self.views[i]

    def __len__(self) -> int:
        return len(self.views)


def _load_rules() -> None:
    """Import every rule module of backends/lowering/ (one per op family)."""
    import importlib
    import pkgutil

    from . import lowering

    for mod in pkgutil.iter_modules(lowering.__path__):
        importlib.import_module(f"{lowering.__name__}.{mod.name}")


def dtype_of(t) -> str:
    el = t.element_type if isinstance(t, TensorType) else t
    if isinstance(el, Float32Type):
        return "f32"
    if isinstance(el, Float64Type):
        raise LoweringError("the kernel backends compute in f32; this value is f64 (interpret it instead)")
    if isinstance(el, IntegerType):
        w = el.width.data
        if w in (1, 32, 64):
            return {1: "i1", 32: "i32", 64: "i64"}[w]
        if w == 8:  # quantized tensors (ir/ops/quant.py)
            return "u8" if el.signedness.data.name == "UNSIGNED" else "i8"
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
        self.position = {op: i for i, op in enumerate(fn.body.block.ops)}
        self.current: Operation | None = None
        self.spans: dict[Operation, tuple[int, int]] = {}  # op → [first, end) of its steps

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

    def used_after(self, value: SSAValue, op: Operation) -> bool:
        """Some use of `value` comes later in the function than `op`."""
        at = self.position[op]
        return any(self.position.get(u.operation, -1) > at for u in value.uses)

    def label(self, value: SSAValue) -> str:
        return value.name_hint or f"{self.current.name.removeprefix('train.') if self.current else 'v'}"

    def origin(self) -> str:
        return self.current.name if self.current is not None else ""

    # --- steps ----------------------------------------------------------------------
    @property
    def library(self):
        """The target's kernel library: tiles and workspace sizes, which ops run in place."""
        return self.owner.library

    def call(self, op: str, operands: dict, reads: Iterable[View], writes: Iterable[View],
             variant: str = "") -> Call:
        """A library op with its named operands (tuples become IntArray tables). The pairs
        the library's kernel may run in place come from its table entry."""
        ops = {k: IntArray(tuple(a)) if isinstance(a, (tuple, list)) else a for k, a in operands.items()}
        c = Call(op, ops, list(reads), list(writes), [], self.origin(), variant)
        for w, r in self.library.kernel(c).inplace:
            wi = next(i for i, v in enumerate(c.writes) if v is ops[w])
            ri = next(i for i, v in enumerate(c.reads) if v is ops[r])
            c.inplace.append((wi, ri))
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

    def map_op(self, op: Operation) -> Map:
        """An op with a scalar form (MAP_FORMS) as one loop nest over its result's shape."""
        mb = MapBuilder(shape_of(op.results[0]))
        refs = MAP_FORMS[type(op)](mb, op, Operands(mb, [self.view(v) for v in op.operands], [None] * len(op.operands)))
        m = mb.finish([self.result(r) for r in op.results], refs, op.name)
        self.steps.append(m)
        return m

    # --- driving --------------------------------------------------------------------
    def run(self) -> KernelFunction:
        block = self.fn.body.block
        inputs = []
        for i, arg in enumerate(block.args):
            if not isinstance(arg.type, TensorType):
                raise LoweringError(f"@{self.name}: argument {i} is not a tensor ({arg.type})")
            try:
                dtype_of(arg.type)
            except LoweringError as e:
                raise LoweringError(f"@{self.name}: argument {i}: {e}") from None
            st = Storage("input", math.prod(shape_of(arg)) * ITEMSIZE[dtype_of(arg.type)], "inputs", f"in{i}", index=i)
            inputs.append(self.bind(arg, View(st, dtype_of(arg.type), shape_of(arg))))
        outputs: list[View] = []
        for op in block.ops:
            self.current = op
            if isinstance(op, func.ReturnOp):
                outputs = [self.view(v) for v in op.operands]
                break
            start = len(self.steps)
            rule = RULES.get(type(op))
            if rule is None:
                raise LoweringError(f"@{self.name}: {op.name} has no kernel lowering (known ops: see "
                                    f"backends/lowering/); op: {_short(op)}")
            try:
                rule(self, op)
            except LoweringError as e:
                if str(e).startswith("@"):
                    raise
                raise LoweringError(f"@{self.name}: {op.name}: {e}; op: {_short(op)}") from None
            except Exception as e:
                raise LoweringError(f"@{self.name}: lowering {op.name} failed: {e}; op: {_short(op)}") from e
            self.spans[op] = (start, len(self.steps))
            if op is self.loss_op:
                self.phase = "backward"
                self.loss_step = self.steps[-1] if self.steps else None
        self.current = None
        return KernelFunction(self.name, inputs, outputs, self.steps, self.sets, self.loss_step)


def instr_attrs(op: Operation) -> tuple:
    """The properties a scalar instruction needs, as a flat hashable tuple."""
    from ..ir.ops import elementwise as E
    from ..ir.ops import grad as G

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

    def __init__(self, module: ModuleOp, library):
        from ..ir.ops.state import ParamOp

        self.module, self.library = module, library
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


def lower_program(program, functions: Iterable[str] | None = None, plan: bool = True,
                  library=None) -> KernelProgram:
    """Lower `functions` (default: every func.func) of a Program or ModuleOp for `library`
    (a KernelLibrary; default: the `c` target's) and, with `plan`, plan memory
    (backends/memory_plan.py)."""
    from .memory_plan import plan_program

    if library is None:
        from . import get_target

        library = get_target("c").library
    _load_rules()
    module = getattr(program, "module", program)
    owner = ProgramLowering(module, library)
    fns = {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}
    names = list(functions) if functions is not None else list(fns)
    for n in names:
        if n not in fns:
            raise LoweringError(f"no function @{n}; the module has: {', '.join(fns) or 'none'}")
    lowered, envs, spans = {}, {}, {}
    for n in names:
        lw = Lowerer(owner, fns[n])
        lowered[n] = lw.run()
        envs[n], spans[n] = lw.env, lw.spans
    kp = KernelProgram(lowered, owner.params, owner.params_bytes, 0, owner.consts)
    kp.envs = envs  # type: ignore[attr-defined]  (value → view, for annotating the train IR)
    kp.spans = spans  # type: ignore[attr-defined]  (op → its steps, for the same)
    if plan:
        plan_program(kp)
    return kp


@dataclass(frozen=True)
class LowerToKernelsPass(ModulePass):
    """Lower every function to the kernel IR of a target's library; annotate each op with
    the steps it became (`kernel`). The IR's meaning does not change."""

    name = "lower-to-kernels"

    target: str = "c"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from . import get_target

        kp = lower_program(op, plan=False, library=get_target(self.target).library)
        for name, spans in kp.spans.items():
            steps = kp.functions[name].steps
            for owner, (a, b) in spans.items():
                what = [s.name if isinstance(s, Call) else "map" for s in steps[a:b]]
                owner.attributes["kernel"] = StringAttr("; ".join(
                    f"call {w}" if w != "map" else w for w in what) or "view")
