"""PyTorch → `train`: `from_torch(module, example_args)` imports a module through torch.export.

    program = from_torch(model.eval(), (torch.randn(1, 3, 96, 96),))
    program.run("forward", x.numpy())

The module is exported (`torch.export.export`) and decomposed to core ATen
(`run_decompositions()`); every node is then lowered by the function registered for its ATen
overload in frontends/torch_ops.py. Parameters keep their PyTorch names as `train.param`
(trainable unless `requires_grad=False`); buffers (BatchNorm statistics, rotary `inv_freq`,
...) become non-trainable state. Whatever depends only on shapes and constants (causal masks,
position ids, `arange`s) is folded at import by running the interpreter's own implementation
of each op, so there is one semantics. Finally the canonical forms of frontends/canonical.py
are recognised (Linear, RMSNorm, cross-entropy) and dead ops removed; docs/frontends.md.
"""

from __future__ import annotations

import gc
import math
import operator
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseIntOrFPElementsAttr,
    FunctionType,
    ModuleOp,
    TensorType,
)
from xdsl.ir import Block, Region, SSAValue
from xdsl.utils.exceptions import VerifyException

from ..ir import types as T
from ..ir.interpreter import IMPLS, Interpreter
from ..ir.ops.state import ConstantOp, GetOp, ParamOp, SetOp
from ..ir.program import Program
from . import FrontendError
from .canonical import assign_roles, canonicalize

FOLD_LIMIT = 1 << 20  # elements: larger constant results stay as ops instead of dense literals

ELEMENT_OF_DTYPE = {torch.float32: T.f32, torch.float64: T.f64, torch.float16: T.f16, torch.bfloat16: T.bf16,
                    torch.int64: T.i64, torch.int32: T.i32, torch.bool: T.i1}
DTYPE_OF_ELEMENT = {v: k for k, v in ELEMENT_OF_DTYPE.items()}


# BatchNorm statistics updates and dropout only export from a module in training mode
TRAINING_MODE_HINT = " (the module is in training mode: import module.eval())"


class Unsupported(Exception):
    """Raised by a lowering for an argument combination it cannot express (e.g. a transposed
    convolution); from_torch turns it into a located FrontendError."""


def element_of(dtype: torch.dtype):
    if dtype not in ELEMENT_OF_DTYPE:
        raise Unsupported(f"dtype {dtype} (supported: {', '.join(str(d) for d in ELEMENT_OF_DTYPE)})")
    return ELEMENT_OF_DTYPE[dtype]


@dataclass
class Unavailable:
    """An output of a multi-result ATen op that has no lowering (max_pool2d's indices, ...)."""

    what: str


class Builder:
    """Appends `train` ops to the forward block, folding ops whose operands are all known.

    Values known at import (constants, `arange`, folded masks) are *virtual*: SSA values with a
    type but no defining op, their array kept in `known`. They become `train.constant` ops only
    when a runtime op consumes them (`materialize`), so a chain of folded ops leaves no trace.
    """

    def __init__(self, block: Block):
        self.block = block
        self.known: dict[SSAValue, np.ndarray] = {}
        self._materialized: dict[SSAValue, SSAValue] = {}
        self._interp = Interpreter(ModuleOp([]))
        self.node: torch.fx.Node | None = None  # the node being lowered

    # --- constants ------------------------------------------------------------------
    def const(self, array, element=None) -> SSAValue:
        """A virtual value holding `array` (element type from the array's dtype unless given)."""
        arr = np.asarray(array)
        el = element if element is not None else T.element_of(arr.dtype)
        arr = np.require(arr, dtype=T.numpy_dtype(el), requirements="C")  # keeps rank 0
        v = Block(arg_types=[T.tensor(arr.shape, el)]).args[0]
        self.known[v] = arr
        return v

    def scalar(self, value, element) -> SSAValue:
        return self.const(np.asarray(value), element)

    def array(self, v) -> np.ndarray | None:
        """The import-time value of v, or None when it is only known at run time."""
        return self.known.get(v) if isinstance(v, SSAValue) else None

    def materialize(self, v: SSAValue) -> SSAValue:
        if v not in self.known:
            return v
        if v not in self._materialized:
            op = ConstantOp.create(result_types=[v.type], properties={"value": _dense(self.known[v], v.type)})
            self.block.add_op(op)
            self._materialized[v] = op.result
        return self._materialized[v]

    # --- ops ----------------------------------------------------------------------------
    def op(self, cls, *operands: SSAValue, **props):
        """Build `cls` (result types inferred); fold it when every operand is known."""
        op = cls.build(*operands, **props)
        if all(o in self.known for o in operands) and _size(op) <= FOLD_LIMIT:
            outs = IMPLS[cls](self._interp, op, *[self.known[o] for o in operands])
            outs = outs if isinstance(outs, tuple) else (outs,)
            vals = [self.const(np.asarray(a).reshape(r.type.get_shape()), r.type.element_type)
                    for a, r in zip(outs, op.results, strict=True)]
            op.drop_all_references()
            return vals[0] if len(vals) == 1 else tuple(vals)
        op.operands = [self.materialize(o) for o in operands]
        self.block.add_op(op)
        if self.node is not None:  # %convolution_3 etc.: values keep the exported node's name
            hint = self.node.name if not self.node.name.startswith("_") else op.name.split(".")[-1]
            for r in op.results:
                r.name_hint = hint
        return op.results[0] if len(op.results) == 1 else tuple(op.results)

    def add(self, op):
        """Append an op built elsewhere (train.get / train.set)."""
        self.block.add_op(op)
        return op.results[0] if op.results else None

    # --- the current node -------------------------------------------------------------
    def out_element(self, i: int | None = None):
        """Element type PyTorch computed for the current node's result (its i-th, for tuples)."""
        val = self.node.meta["val"]
        return element_of((val[i] if i is not None else val).dtype)

    def out_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.node.meta["val"].shape)


def _size(op) -> int:
    return sum(math.prod(r.type.get_shape()) for r in op.results)


def _dense(arr: np.ndarray, ty: TensorType) -> DenseIntOrFPElementsAttr:
    """numpy → dense attribute; uniform arrays become splats (full_like, masks of one value)."""
    flat = arr.reshape(-1)
    if arr.dtype == np.bool_:  # xDSL stores i1 as one byte, 0xFF for true (never as a splat)
        return DenseIntOrFPElementsAttr(ty, BytesAttr((flat.astype(np.uint8) * 255).tobytes()))
    if flat.size > 1 and (flat == flat[0]).all():
        flat = flat[:1]
    return DenseIntOrFPElementsAttr(ty, BytesAttr(flat.astype(arr.dtype.newbyteorder("<")).tobytes()))


# --- the exported program → a train module ----------------------------------------------


# ATen ops lowered here as they are, not through torch's decompositions: attention (its
# decomposition breaks on GPT-2's views: "Cannot view a tensor with shape ... strides ...", and
# the op is the unit a fused attention kernel wants) and softplus (whose decomposition
# overflows exp in the branch `where` drops, making NaN gradients).
KEEP = ("scaled_dot_product_attention", "softplus")


# Lower the exported training IR as it is when it can be (torch_training_ir.lowers_directly);
# False always decomposes to core ATen first (tests compare both paths).
DIRECT = True


def decompositions() -> dict:
    """torch.export's core-ATen decomposition table without the ops of KEEP."""
    table = torch.export.default_decompositions()
    for op in list(table):
        if op.name().split("::")[-1].split(".")[0] in KEEP:
            del table[op]
    return table


def from_torch(module: torch.nn.Module, example_args, *, dynamic: bool = False) -> Program:
    """Import `module` called on `example_args` (a tuple) as a Program with `func.func @forward`.

    Shapes are specialized to the example inputs: the train dialect compiles for static shapes
    (PockEngine compiles the training graph ahead of time for one deployment shape), so
    `dynamic=True` is refused with a clear error rather than silently specialized. Outputs that
    are not tensors (a Hugging Face `DynamicCache` of keys and values) are dropped with a
    warning: training does not read them. Tied parameters (GPT-2's `lm_head.weight` is
    `transformer.wte.weight`) become one `train.param` that lists its other names (`aliases`).
    `program.import_phases` holds the seconds of each import phase (Phases).
    """
    if dynamic:
        raise FrontendError("from_torch(dynamic=True): the train dialect has static shapes only; "
                            "import once per deployment shape (example_args fix every dimension)")
    args = tuple(example_args) if isinstance(example_args, (tuple, list)) else (example_args,)
    warned: set[str] = set()
    with _gc_paused():
        try:  # without the source line of each node: torch spends ~30% of its trace recording them
            return _import(module, args, warned, stack_traces=False)
        except FrontendError:
            pass  # export again with them, so the error says where (an error costs two traces)
        return _import(module, args, warned, stack_traces=True)


def _import(module, args: tuple, warned: set[str], stack_traces: bool) -> Program:
    """One export (with or without the nodes' stack traces) and its import."""
    times = Phases()
    try:
        with warnings.catch_warnings():  # torch-internal deprecation notices, not the user's
            warnings.simplefilter("ignore", FutureWarning)
            wrapper = _DropCaches(module)
            with _stack_traces(stack_traces):
                ep = torch.export.export(wrapper, args)
    except Exception as e:  # export errors are long; keep the first lines
        raise _export_error(module, e) from e
    times.lap("torch.export")
    for path, kind in wrapper.dropped.items():
        if path not in warned:
            warned.add(path)
            warnings.warn(f"from_torch: dropped output {path} ({kind}): training does not use it "
                          "(Hugging Face models: use_cache=False returns none)", stacklevel=4)
    from .torch_training_ir import lowers_directly

    if DIRECT and lowers_directly(ep):  # skip the second trace (frontends/torch_training_ir.py)
        try:
            program = _Importer(ep, module, times).run()
            times.skip("decompositions")
            return times.attach(program)
        except FrontendError:  # a training-IR lowering refused: the decomposed program decides
            pass
    times.lap(None)  # a refused direct lowering's time counts nowhere
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            with _stack_traces(stack_traces):
                ep = ep.run_decompositions(decompositions())
    except Exception as e:
        raise _export_error(module, e) from e
    times.lap("decompositions")
    return times.attach(_Importer(ep, module, times).run())


@contextmanager
def _stack_traces(record: bool):
    """torch.fx records each node's Python stack (`node.meta["stack_trace"]`) unless told not to."""
    before = torch.fx.config.do_not_emit_stack_traces
    torch.fx.config.do_not_emit_stack_traces = not record
    try:
        yield
    finally:
        torch.fx.config.do_not_emit_stack_traces = before


@contextmanager
def _gc_paused():
    """No cyclic garbage collection while importing: torch.export makes many objects, and each
    full collection then walks torch's whole heap (0.1-0.5 s of an import, for a few MB kept a
    little longer). The garbage is collected as usual afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Phases:
    """Wall and CPU seconds of the import phases, lap by lap; `program.import_phases` (wall) and
    `program.import_cpu_phases` (CPU time of this process) once attached."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._last = (time.perf_counter(), time.process_time())

    def lap(self, name: str | None) -> None:
        now = (time.perf_counter(), time.process_time())
        if name is not None:
            self.wall[name] = self.wall.get(name, 0.0) + now[0] - self._last[0]
            self.cpu[name] = self.cpu.get(name, 0.0) + now[1] - self._last[1]
        self._last = now

    def skip(self, name: str) -> None:
        self.wall[name] = self.cpu[name] = 0.0

    def attach(self, program: Program) -> Program:
        program.import_phases, program.import_cpu_phases = self.wall, self.cpu
        return program


def _export_error(module, e: Exception) -> FrontendError:
    msg = "\n".join(str(e).strip().splitlines()[:6])
    return FrontendError(f"torch.export failed for {type(module).__name__}: {msg}")


class _Dropped(dict):
    """Survives torch.export restoring the module's state after tracing (a copy is itself)."""

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class _DropCaches(torch.nn.Module):
    """Calls the module and replaces outputs torch.export cannot flatten (caches) by None.

    The module is held outside the attribute tree (`_module_ref`): its parameters keep their
    own names (`transformer.wte.weight`, not `module.transformer.wte.weight`)."""

    def __init__(self, module):
        super().__init__()
        for shared in ("_modules", "_parameters", "_buffers", "_non_persistent_buffers_set"):
            object.__setattr__(self, shared, getattr(module, shared))  # the same dicts: export swaps entries
        object.__setattr__(self, "_module_ref", module)
        object.__setattr__(self, "dropped", _Dropped())  # output path → type name
        self.training = module.training

    def forward(self, *args):
        from torch.utils import _pytree as pytree

        out = self._module_ref(*args)
        leaves, spec = pytree.tree_flatten_with_path(out)
        kept = []
        for path, leaf in leaves:
            if leaf is None or isinstance(leaf, (torch.Tensor, int, float, bool)):
                kept.append(leaf)
                continue
            self.dropped[pytree.keystr(path) or "(the result)"] = type(leaf).__name__
            kept.append(None)
        return pytree.tree_unflatten(kept, spec)


class _Importer:
    def __init__(self, ep, module: torch.nn.Module, times: Phases | None = None):
        from . import torch_nn_ops, torch_training_ir  # noqa: F401  (register their lowerings in ATEN)
        from .torch_ops import ATEN, DROPPED

        self.ep, self.aten, self.dropped = ep, ATEN, DROPPED
        self.times = times if times is not None else Phases()
        self.frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
        self.canonical = tied_names(module)
        self.params: dict[str, ParamOp] = {}
        self.weights: dict[str, np.ndarray] = {}
        self.env: dict[torch.fx.Node, object] = {}
        self.gets: dict[str, SSAValue] = {}

    def run(self) -> Program:
        kinds = {s.arg.name: s for s in self.ep.graph_signature.input_specs}
        block = Block()
        self.b = Builder(block)
        for node in self.ep.graph.nodes:
            if node.op != "placeholder":
                continue
            spec = kinds[node.name]
            kind = spec.kind.name
            if kind in ("PARAMETER", "BUFFER"):
                name = self.canonical.get(spec.target, spec.target)
                if name not in self.params:
                    self._declare(name, kind == "PARAMETER", spec.target)
                if name != spec.target:
                    self.params[name].add_alias(spec.target)
                self.env[node] = _Param(name)
            elif kind == "CONSTANT_TENSOR":
                self.env[node] = self.b.const(_numpy(self.ep.constants[spec.target]))
            elif kind == "USER_INPUT":
                val = node.meta.get("val")
                if isinstance(val, torch.Tensor):
                    ty = T.tensor(tuple(int(d) for d in val.shape), self._element(val.dtype, node))
                    self.env[node] = block.insert_arg(ty, len(block.args))
                    self.env[node].name_hint = node.name
                else:  # ints/floats are specialized by torch.export
                    self.env[node] = val
            else:
                raise FrontendError(f"input {node.name}: {kind} inputs are not supported")
        arg_types = [a.type for a in block.args]
        results = []
        for node in self.ep.graph.nodes:
            if node.op == "call_function":
                self._lower(node)
            elif node.op == "output":
                results = self._outputs(node)
        block.add_op(func.ReturnOp(*results))
        fn = func.FuncOp("forward", FunctionType.from_lists(arg_types, [r.type for r in results]), Region(block))
        module = ModuleOp([*self.params.values(), fn])
        self.times.lap("lowering")  # weights to numpy included
        canonicalize(module)
        assign_roles(module)
        self.times.lap("canonical forms")
        program = Program(module, self.weights)
        try:
            program.verify()
        except VerifyException as e:  # a lowering built wrong IR: a frontend bug, say where
            raise FrontendError(f"imported IR does not verify: {e}") from e
        self.times.lap("verification")
        return program

    # --- state ----------------------------------------------------------------------------
    def _declare(self, name: str, is_param: bool, source: str | None = None) -> None:
        """A train.param `name` holding the exported tensor `source` (another name of it when tied)."""
        source = source or name
        tensor = self.ep.state_dict.get(source)
        if tensor is None:
            tensor = self.ep.constants[source]  # non-persistent buffers live here
        arr = _numpy(tensor)
        el = self._element(tensor.dtype, None, name)
        trainable = is_param and name not in self.frozen and T.is_float(el)
        role = "weight" if is_param else "buffer"  # refined by assign_roles from the uses
        self.params[name] = ParamOp(name, T.tensor(arr.shape, el), role, trainable)
        self.weights[name] = arr

    def _element(self, dtype, node, name=None):
        try:
            return element_of(dtype)
        except Unsupported as e:
            raise FrontendError(f"{name or node.name}: {e}") from None

    # --- nodes ----------------------------------------------------------------------------
    def _value(self, node, user):
        v = self.env[node]
        if isinstance(v, _Param):
            if v.name not in self.gets:
                self.gets[v.name] = self.b.add(GetOp.of(self.params[v.name]))
                if SSAValue.is_valid_name(v.name):
                    self.gets[v.name].name_hint = v.name
            return self.gets[v.name]
        if isinstance(v, Unavailable):
            raise FrontendError(f"{_describe(user)} uses {v.what}, which has no lowering{_where(user)}")
        return v

    def _lower(self, node: torch.fx.Node) -> None:
        if node.target in self.dropped:
            return
        if node.target is operator.getitem:
            seq, i = node.args
            out = self.env[seq][i]
            self.b.node = node
            self.env[node] = out() if callable(out) else out
            return
        fn = self.aten.get(node.target)
        if fn is None:
            hint = TRAINING_MODE_HINT if "functional" in str(node.target) or "dropout" in str(node.target) else ""
            raise FrontendError(f"unsupported op {node.target} (node '{node.name}'){_where(node)}{hint}; "
                                f"pockengine.frontends.supported_ops('torch') lists the {len(self.aten)} "
                                "supported ATen ops")
        args = torch.fx.node.map_arg(node.args, lambda n: self._value(n, node))
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: self._value(n, node))
        self.b.node = node
        try:
            self.env[node] = fn(self.b, *args, **kwargs)
        except (Unsupported, VerifyException) as e:
            raise FrontendError(f"cannot lower {node.target} (node '{node.name}'){_where(node)}: {e}") from e

    def _outputs(self, node) -> list[SSAValue]:
        results = []
        specs = self.ep.graph_signature.output_specs
        for spec, arg in zip(specs, node.args[0], strict=True):
            if arg is None:  # HF ModelOutputs may hold None
                continue
            v = self._value(arg, node) if isinstance(arg, torch.fx.Node) else self.b.const(np.asarray(arg))
            if not isinstance(v, SSAValue):
                v = self.b.const(np.asarray(v))
            v = self.b.materialize(v)
            kind = spec.kind.name
            if kind == "BUFFER_MUTATION":
                self.b.add(SetOp.of(spec.target, v))
            elif kind in ("USER_OUTPUT", "LOSS_OUTPUT"):
                results.append(v)
            elif kind == "USER_INPUT_MUTATION":  # nn.ReLU(inplace=True) on the input: the forward's
                continue  # own uses see the new value; the caller's tensor is not an output
            else:
                raise FrontendError(f"output {spec.arg.name}: {kind} outputs are not supported")
        return results


@dataclass(frozen=True)
class _Param:
    name: str


def tied_names(module: torch.nn.Module) -> dict[str, str]:
    """Every name of a tensor the module holds under several names → its first name (the one
    `named_parameters()` keeps); tied names across parameters and buffers alike."""
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    for name, t in named:
        if t is None:
            continue
        out[name] = first.setdefault(id(t), name)
    return {n: c for n, c in out.items() if n != c}


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        raise FrontendError("bfloat16 weights: convert the module to float32 before importing")
    return np.ascontiguousarray(t.numpy()).copy()


def _describe(node) -> str:
    return f"{node.target} (node '{node.name}')" if node.op == "call_function" else f"output '{node.name}'"


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')


def _where(node) -> str:
    """' at model.py:12 in forward: `y = self.act(x)`' from the node's recorded stack trace."""
    frames = _FRAME.findall(node.meta.get("stack_trace") or "")
    if not frames:
        return ""
    path, line, fn, code = frames[-1]
    return f" at {path}:{line} in {fn}: `{code.strip()}`"
