"""ONNX → `train` dialect: `from_onnx(path_or_ModelProto) -> Program`.

    prog = pockengine.from_onnx("resnet50.onnx")       # initializers keep their ONNX names
    logits = prog.run("forward", image)

The graph is walked once, in order. Each ONNX node goes through one small translation
function, chosen by op type and the model's opset (`@translates("Softmax", 1, 12)` holds
for opsets 1..12), so opset-dependent semantics live in one place per op; the
translations are in onnx_ops.py (tensors, elementwise) and onnx_nn_ops.py (layers).

Values are either SSA values in `@forward` or `Known` numpy arrays. An op whose operands
are all known is evaluated at import with the interpreter's own implementation of that op
(the one semantics every pass is checked against), so Shape→Gather→Concat→Reshape chains,
ConstantOfShape and Range disappear. A known value that must enter the IR becomes a
`train.constant` (integers, masks, scalars) or, for float tensors, a `train.param` named
after its ONNX value. Initializers that feed a layer keep their names and get a role from
the slot they feed (see `ROLE_SLOTS`); those are never folded, so they stay trainable.

Every translated node is checked against onnx.shape_inference where ONNX knows the shape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Block, Region, SSAValue
from xdsl.transforms.dead_code_elimination import dce
from xdsl.utils.exceptions import VerifyException

from ..ir import types as T
from ..ir.interpreter import IMPLS, Interpreter
from ..ir.ops.state import ConstantOp, GetOp, ParamOp
from ..ir.program import Program
from . import FrontendError
from .canonical import canonicalize

MIN_OPSET, MAX_OPSET = 6, 28


class OnnxImportError(FrontendError):
    """The model cannot be imported; the message names the node and what is missing."""


# --- the translation table ---------------------------------------------------------

Translation = Callable[["Importer", "Node"], Any]
TRANSLATIONS: dict[str, list[tuple[int, int, Translation]]] = {}


def translates(op_type: str, since: int = 1, until: int = MAX_OPSET):
    """Register a translation of `op_type` valid for default-domain opsets since..until."""

    def register(fn: Translation) -> Translation:
        TRANSLATIONS.setdefault(op_type, []).append((since, until, fn))
        return fn

    return register


def supported_ops() -> list[str]:
    _load_translations()
    return sorted(TRANSLATIONS)


def _load_translations() -> None:
    from . import onnx_layer_ops, onnx_math_ops, onnx_nn_ops, onnx_ops, onnx_quant_ops  # noqa: F401  (registering is the import)


def node_ref(proto, index: int | None = None) -> str:
    """How errors name a node: `node 'name'`, or for an unnamed node its position in the graph
    and its outputs (`node #3 (outputs 'y')`): exporters often leave names empty."""
    if proto.name:
        return f"node {proto.name!r}"
    at = f"#{index} " if index is not None else ""
    outs = ", ".join(repr(o) for o in proto.output if o)
    return f"node {at}(unnamed; outputs {outs or 'none'})"


def translation_for(proto, opset: int, index: int | None = None) -> Translation:
    """The translation of a node at this opset, or an error naming the node and listing the ops."""
    where = f"in {node_ref(proto, index)}; supported ops: " + ", ".join(supported_ops())
    if proto.domain not in ("", "ai.onnx"):
        raise OnnxImportError(f"unsupported ONNX op {proto.op_type!r} of domain {proto.domain!r} {where}")
    spans = TRANSLATIONS.get(proto.op_type)
    if not spans:
        raise OnnxImportError(f"unsupported ONNX op {proto.op_type!r} {where}")
    for since, until, fn in spans:
        if since <= opset <= until:
            return fn
    ranges = ", ".join(f"{a}..{b}" for a, b, _ in sorted(spans, key=lambda t: t[:2]))
    raise OnnxImportError(f"{node_ref(proto, index)} ({proto.op_type}): not supported at opset {opset} "
                          f"(translated for opsets {ranges})")


# --- element types -------------------------------------------------------------------

def _onnx_elements() -> dict[int, Any]:
    from onnx import TensorProto as P

    return {P.FLOAT: T.f32, P.DOUBLE: T.f64, P.FLOAT16: T.f16, P.INT64: T.i64, P.INT32: T.i32, P.BOOL: T.i1,
            P.INT8: T.i8, P.UINT8: T.ui8}  # 8-bit: quantized tensors (onnx_quant_ops.py)


def element_of_onnx(code: int) -> Any:
    el = _onnx_elements().get(code)
    if el is None:
        import onnx

        raise OnnxImportError(f"element type {onnx.TensorProto.DataType.Name(code)} is not supported "
                              "(float, double, float16, int64, int32, int8, uint8, bool are)")
    return el


# --- values ----------------------------------------------------------------------------

@dataclass(eq=False)
class Known:
    """A tensor whose value is known at import; `name` is the ONNX value it came from."""

    array: np.ndarray
    name: str | None = None

    @property
    def type(self) -> TensorType:
        try:
            return T.tensor(self.array.shape, T.element_of(self.array.dtype))
        except NotImplementedError:
            raise OnnxImportError(f"value {self.name!r}: dtype {self.array.dtype} is not supported") from None


Value = SSAValue | Known


def shape(v: Value) -> tuple[int, ...]:
    return T.shape(v.type)


def element(v: Value):
    return v.type.element_type


# --- parameter roles from the slot an initializer feeds --------------------------------

# ops that only move or retype data: look through them to the consumer that gives the role
VIEW_OPS = {"Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose", "Identity", "Cast"}
ROLE_SLOTS = {
    ("Conv", 1): "weight", ("Conv", 2): "bias",
    ("Gemm", 0): "weight", ("Gemm", 1): "weight", ("Gemm", 2): "bias",
    ("MatMul", 0): "weight", ("MatMul", 1): "weight",
    ("BatchNormalization", 1): "norm", ("BatchNormalization", 2): "norm",
    ("BatchNormalization", 3): "running_mean", ("BatchNormalization", 4): "running_var",
    ("LayerNormalization", 1): "norm", ("LayerNormalization", 2): "norm",
    ("Gather", 0): "embedding",
}
# a 1-D tensor added to (or scaling) activations is a bias (or a norm scale)
VECTOR_ROLES = {"Add": "bias", "Sub": "bias", "Mul": "norm"}
TRAINABLE_ROLES = {"weight", "bias", "norm", "embedding"}
WEIGHT_SOURCES = {"Constant", "ConstantOfShape"}


def infer_roles(graph, ranks: dict[str, int]) -> dict[str, str]:
    """Role of every value that reaches a parameter slot (through view ops)."""
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))

    def role(name: str, rank: int, seen: frozenset) -> str | None:
        for node, i in consumers.get(name, []):
            if node.op_type in VIEW_OPS and i == 0 and node.output[0] not in seen:
                found = role(node.output[0], rank, seen | {node.output[0]})
            elif node.op_type in VECTOR_ROLES and rank == 1:
                found = VECTOR_ROLES[node.op_type]
            else:
                found = ROLE_SLOTS.get((node.op_type, i))
            if found:
                return found
        return None

    out = {}
    for name, rank in ranks.items():
        r = role(name, rank, frozenset([name]))
        if r:
            out[name] = r
    return out


# --- the importer ------------------------------------------------------------------------

class Node:
    """One ONNX node as translations see it: inputs, constant inputs, attributes, errors."""

    def __init__(self, g: Importer, proto, index: int | None = None):
        self.g, self.proto, self.index = g, proto, index
        self.op_type, self.name = proto.op_type, proto.name
        self.opset = g.opset

    def __len__(self) -> int:
        return len(self.proto.input)

    def has(self, i: int) -> bool:
        return i < len(self.proto.input) and self.proto.input[i] != ""

    def input(self, i: int) -> Value | None:
        return self.g.lookup(self.proto.input[i]) if self.has(i) else None

    def inputs(self) -> list[Value]:
        return [self.input(i) for i in range(len(self)) if self.has(i)]

    def const(self, i: int, default=None) -> np.ndarray | None:
        """An input that must be known at import (a shape, axes, pads...)."""
        if not self.has(i):
            return default
        name = self.proto.input[i]
        if name in self.g.initializers:
            return self.g.initializers[name]
        v = self.g.lookup(name)
        if not isinstance(v, Known):
            raise self.error(f"input {i} ({name!r}) must be known at import (no dynamic shapes)")
        return v.array

    def ints(self, i: int, default=None) -> list[int] | None:
        a = self.const(i)
        return default if a is None else [int(x) for x in np.ravel(a)]

    def attr(self, name: str, default: Any = None) -> Any:
        from onnx import helper

        for a in self.proto.attribute:
            if a.name == name:
                v = helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def wants(self, i: int) -> bool:
        """Whether output i exists and is used by the graph."""
        return i < len(self.proto.output) and self.proto.output[i] != ""

    def error(self, message: str) -> OnnxImportError:
        return OnnxImportError(f"{node_ref(self.proto, self.index)} ({self.op_type}, opset {self.opset}): {message}")


class Importer:
    """Builds `@forward` node by node; translations call `emit` and read `Node`s."""

    def __init__(self, model, initializers: dict[str, np.ndarray], inferred,
                 input_shapes: dict[str, Sequence[int]] | None = None):
        self.opset = default_opset(model)
        graph = model.graph
        self.initializers = initializers
        self.onnx_types = {v.name: v.type for v in [*inferred.graph.value_info, *inferred.graph.output]}
        # parameters come from initializers and from constant nodes (how some exporters, and the
        # onnx wheel's light models, store weights); computed values are never parameters
        ranks = {n: a.ndim for n, a in self.initializers.items()}
        for node in graph.node:
            t = self.onnx_types.get(node.output[0]) if node.op_type in WEIGHT_SOURCES else None
            if t is not None and t.HasField("tensor_type") and t.tensor_type.HasField("shape"):
                ranks[node.output[0]] = len(t.tensor_type.shape.dim)
        self.roles = infer_roles(graph, ranks)
        self.env: dict[str, Value] = {}
        self.trust_onnx_shapes = True
        self.block = Block()
        self.params: dict[str, ParamOp] = {}
        self.weights: dict[str, np.ndarray] = {}
        self._materialized: dict[int, tuple[Known, SSAValue]] = {}
        self._interp = Interpreter(ModuleOp([]))
        self.graph = graph
        self._args(graph, input_shapes or {})

    # --- graph inputs ------------------------------------------------------------------
    def _args(self, graph, input_shapes) -> None:
        types = []
        names = [v.name for v in graph.input if v.name not in self.initializers]
        for v in graph.input:
            if v.name in self.initializers:
                continue
            if not v.type.HasField("tensor_type"):
                kind = v.type.WhichOneof("value") or "no"
                raise OnnxImportError(f"graph input {v.name!r} has {kind} type; only tensors are supported")
            tt = v.type.tensor_type
            dims = input_shapes.get(v.name)
            if dims is None:
                dims = []
                for d in tt.shape.dim:
                    if not d.HasField("dim_value"):
                        raise OnnxImportError(
                            f"graph input {v.name!r} has a dynamic dimension {d.dim_param or '?'!r}; "
                            f"pass input_shapes={{{v.name!r}: [...]}}")
                    dims.append(d.dim_value)
            try:
                types.append(T.tensor(dims, element_of_onnx(tt.elem_type)))
            except OnnxImportError as e:
                raise OnnxImportError(f"graph input {v.name!r}: {e}") from None
        self.block = Block(arg_types=types)
        for name, arg in zip(names, self.block.args):
            arg.name_hint = _hint(name)
            self.env[name] = arg

    # --- values ----------------------------------------------------------------------
    def lookup(self, name: str) -> Value:
        if name in self.env:
            return self.env[name]
        if name in self.initializers:
            arr = self.initializers[name]
            if self.roles.get(name) and arr.dtype.kind == "f":
                self.env[name] = self._get(name, arr, self.roles[name])
            else:
                self.env[name] = Known(arr, name)
            return self.env[name]
        raise OnnxImportError(f"value {name!r} is used before it is defined")

    def _get(self, name: str, arr: np.ndarray, role: str) -> SSAValue:
        """Declare `train.param @name` (once) and read it here."""
        if name not in self.params:
            self.params[name] = ParamOp(name, T.tensor(arr.shape, T.element_of(arr.dtype)), role,
                                        role in TRAINABLE_ROLES)
            self.weights[name] = np.ascontiguousarray(arr)
        get = GetOp.of(self.params[name])
        self.block.add_op(get)
        get.result.name_hint = _hint(name)
        return get.result

    def materialize(self, v: Value) -> SSAValue:
        """A known value entering the IR: a parameter for float tensors, else a constant."""
        if isinstance(v, SSAValue):
            return v
        if id(v) in self._materialized:
            return self._materialized[id(v)][1]
        a = v.array
        role = self.roles.get(v.name or "", "buffer")
        splat = a.size > 0 and bool((a == a.flat[0]).all())
        if a.dtype.kind == "f" and a.size > 1 and (role != "buffer" or not splat):
            name = v.name or "constant"
            unique, k = name, 1
            while unique in self.params:
                unique, k = f"{name}.{k}", k + 1
            ssa = self._get(unique, a, role)
        else:
            op = ConstantOp.from_array(a, v.type.element_type)
            self.block.add_op(op)
            ssa = op.result
        self._materialized[id(v)] = (v, ssa)  # holding v keeps its id unique
        return ssa

    def known(self, array, like: Value | None = None) -> Known:
        """A constant of the element type of `like` (or the array's own)."""
        a = np.asarray(array)
        if like is not None:
            a = a.astype(T.numpy_dtype(element(like)))
        return Known(a)

    # --- building ops -------------------------------------------------------------------
    def emit(self, op_type, *operands: Value, **props) -> Value:
        """Build `op_type` on the operands; evaluate it now when all are known."""
        if operands and all(isinstance(v, Known) for v in operands):
            scratch = Block(arg_types=[v.type for v in operands])
            op = op_type.build(*scratch.args, **props)
            outs = IMPLS[op_type](self._interp, op, *[v.array for v in operands])
            outs = outs if isinstance(outs, tuple) else (outs,)
            vals = [Known(np.asarray(o).astype(T.numpy_dtype(r.type.element_type)).reshape(T.shape(r)))
                    for o, r in zip(outs, op.results)]
            return vals[0] if len(vals) == 1 else vals
        op = op_type.build(*[self.materialize(v) for v in operands], **props)
        self.block.add_op(op)
        return op.results[0] if len(op.results) == 1 else list(op.results)

    # --- the walk ------------------------------------------------------------------------
    def translate(self, proto, index: int | None = None) -> None:
        node = Node(self, proto, index)
        fn = translation_for(proto, self.opset, index)
        try:
            outs = fn(self, node)
        except OnnxImportError as e:
            if str(e).startswith(("node ", "value ")):
                raise
            raise node.error(str(e)) from None  # e.g. an element type: say which node asked for it
        except (VerifyException, NotImplementedError, ValueError) as e:
            raise node.error(str(e)) from None
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, name in enumerate(proto.output):
            if name == "":
                continue
            if i >= len(outs) or outs[i] is None:
                raise node.error(f"output {i} ({name!r}) is not supported")
            v = outs[i]
            if isinstance(v, Known) and v.array.dtype.kind == "f" and name in self.roles:
                v = self._get(name, v.array, self.roles[name])  # a computed weight: a parameter, unfolded
            elif isinstance(v, Known) and v.name is None:
                v.name = name
            elif isinstance(v, SSAValue) and v.name_hint is None:
                v.name_hint = _hint(name)
            self._check_type(node, name, v)
            self.env[name] = v

    def _check_type(self, node: Node, name: str, v: Value) -> None:
        """Our inferred type must agree with ONNX shape inference where it has one."""
        t = self.onnx_types.get(name)
        if t is None or not t.HasField("tensor_type"):
            return
        tt = t.tensor_type
        el = _onnx_elements().get(tt.elem_type)
        if el is not None and el != element(v):
            raise node.error(f"output {name!r} is {v.type}, ONNX infers element type {el}")
        if self.trust_onnx_shapes and tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            onnx_shape = tuple(d.dim_value for d in tt.shape.dim)
            if onnx_shape != shape(v) and node.op_type in ("MaxPool", "AveragePool") and self.opset < 22:
                # before opset 22 ONNX's inference keeps a ceil_mode window that starts in the
                # padding; onnxruntime (and opset 22) drop it, as we do: later shapes are off too
                self.trust_onnx_shapes = False
            elif onnx_shape != shape(v):
                raise node.error(f"output {name!r} has shape {T.fmt(shape(v))}, "
                                 f"ONNX shape inference says {T.fmt(onnx_shape)}")

    def finish(self) -> Program:
        outs = [self.materialize(self.lookup(v.name)) for v in self.graph.output]
        self.block.add_op(func.ReturnOp(*outs))
        fn = func.FuncOp("forward", ([a.type for a in self.block.args], [o.type for o in outs]),
                         Region(self.block))
        module = ModuleOp([*self.params.values(), fn])
        canonicalize(module)  # the layer-level spellings both frontends share (canonical.py)
        dce(module)
        used = {op.param.root_reference.data for op in fn.walk() if isinstance(op, GetOp)}
        for name, p in list(self.params.items()):
            if name not in used:
                p.detach()
                p.erase()
                del self.weights[name]
        # ops were built with inferred types, so they verify by construction; Program.verify()
        # looks every train.get up linearly (quadratic on 800-parameter models), callers may run it
        return Program(module, self.weights)


def _hint(name: str) -> str | None:
    s = re.sub(r"[^A-Za-z0-9_.$-]", "_", name).strip("_") or None
    if s and s[0].isdigit():
        s = "v" + s
    return s


def default_opset(model) -> int:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        if not model.opset_import and not model.graph.node:
            raise OnnxImportError("an empty ONNX model: no graph and no opset_import (an empty or non-ONNX file?)")
        imports = ", ".join(f"{o.domain!r} version {o.version}" for o in model.opset_import) or "none"
        raise OnnxImportError(f"the model imports no default-domain (ai.onnx) opset, which pockengine "
                              f"translates (opsets {MIN_OPSET} through {MAX_OPSET}); it imports: {imports}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxImportError(f"default-domain opset {opset} is not supported "
                              f"(opsets {MIN_OPSET} through {MAX_OPSET} are)")
    return opset


def load_model(model) -> tuple[Any, str]:
    """(ModelProto, directory of its external data). Weights stored as external data
    stay on disk until read once into numpy."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, ""
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise OnnxImportError(f"{path}: no such ONNX file")
    from google.protobuf.message import DecodeError

    if os.path.getsize(path) == 0:
        raise OnnxImportError(f"{path}: empty file, not an ONNX model")
    try:
        return onnx.load(path, load_external_data=False), os.path.dirname(os.path.abspath(path))
    except (DecodeError, OSError, ValueError) as e:
        raise OnnxImportError(f"{path}: not an ONNX model ({e})") from None


def _read_initializers(model, base_dir: str) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {}
    for t in model.graph.initializer:
        try:
            out[t.name] = numpy_helper.to_array(t, base_dir)
        except (OSError, ValueError) as e:
            raise OnnxImportError(f"initializer {t.name!r}: cannot read its data ({e})") from None
    return out


def from_onnx(model, *, input_shapes: dict[str, Sequence[int]] | None = None) -> Program:
    """Import an ONNX model (a path or a ModelProto) as a Program with `@forward`.

    Graph inputs become the arguments of `@forward` (static shapes; `input_shapes` fixes
    dynamic ones), graph outputs its results, initializers `train.param`s with their ONNX
    names. Raises OnnxImportError naming the node for anything unsupported.
    """
    _load_translations()
    model, base_dir = load_model(model)
    if input_shapes:
        model = _with_input_shapes(model, input_shapes)
    opset = default_opset(model)
    for i, proto in enumerate(model.graph.node):  # refuse unsupported ops before any work
        translation_for(proto, opset, i)
    arrays = _read_initializers(model, base_dir)
    g = Importer(model, arrays, _infer_shapes(model, arrays), input_shapes)
    for i, proto in enumerate(model.graph.node):
        g.translate(proto, i)
    return g.finish()


def _infer_shapes(model, arrays: dict[str, np.ndarray], big: int = 4096):
    """onnx.shape_inference on a copy without the big initializers (declared as inputs
    instead): inference serializes the model, which costs seconds for 100 M weights."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.ir_version = max(model.ir_version, 4)
    m.opset_import.extend(model.opset_import)
    m.functions.extend(model.functions)
    g = m.graph
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    g.value_info.extend(model.graph.value_info)
    declared = {v.name for v in model.graph.input}
    for t in model.graph.initializer:
        if arrays[t.name].size <= big:
            g.initializer.append(numpy_helper.from_array(arrays[t.name], t.name)
                                 if t.data_location == onnx.TensorProto.EXTERNAL else t)
        elif t.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    try:
        return onnx.shape_inference.infer_shapes(m, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as e:
        raise OnnxImportError(f"ONNX shape inference failed: {e}") from None


def _with_input_shapes(model, input_shapes):
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for v in m.graph.input:
        if v.name in input_shapes:
            dims = v.type.tensor_type.shape.dim
            del dims[:]
            for d in input_shapes[v.name]:
                dims.add().dim_value = int(d)
    return m
