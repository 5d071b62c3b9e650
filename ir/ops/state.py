"""Parameters, state and constants.

Parameters and state (BatchNorm statistics, optimizer moments) are module-level symbols;
their values live beside the IR in a safetensors file (see ir/program.py):

    train.param @features.0.weight : tensor<16x3x3x3xf32> {role = "weight", trainable = true}
    func.func @forward(%x : tensor<1x3x8x8xf32>) -> tensor<1x16x8x8xf32> {
      %w = train.get @features.0.weight : tensor<16x3x3x3xf32>
      ...
      train.set @features.0.weight, %w2 : tensor<16x3x3x3xf32>   // an in-place update
"""

from __future__ import annotations

import weakref

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    DenseIntOrFPElementsAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    BytesAttr,
    IntegerAttr,
    i64,
)
from xdsl.ir import Attribute
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import (
    ConstantLike,
    MemoryReadEffect,
    MemoryWriteEffect,
    Pure,
    SymbolOpInterface,
)
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, bool_prop, int_prop, str_prop

ROLES = ("weight", "bias", "norm", "embedding", "running_mean", "running_var", "buffer", "optimizer_state")


@irdl_op_definition
class ParamOp(IRDLOperation):
    """A named tensor living outside the IR: a parameter (trainable or frozen) or state.

    A tensor the model holds under several names (tied weights: GPT-2's `lm_head.weight` is
    `transformer.wte.weight`) is one param; its other names are listed in `aliases`
    (`{..., aliases = ["lm_head.weight"]}`), which schemes and checkpoints accept as well.
    """

    name = "train.param"
    sym_name = prop_def(StringAttr)
    type = prop_def(TensorType)
    role = str_prop("weight")
    trainable = bool_prop(True)
    aliases = opt_prop_def(ArrayAttr[StringAttr])
    traits = traits_def(SymbolOpInterface())

    def __init__(self, name: str, type: TensorType, role: str = "weight", trainable: bool = True):
        super().__init__(properties={"sym_name": StringAttr(name), "type": type, "role": StringAttr(role),
                                     "trainable": BoolAttr.from_bool(trainable)})

    @property
    def tensor_type(self) -> TensorType:
        return self.type

    @property
    def is_trainable(self) -> bool:
        return bool(self.trainable.value.data)

    @property
    def alias_names(self) -> tuple[str, ...]:
        return tuple(a.data for a in self.aliases.data) if self.aliases is not None else ()

    def add_alias(self, name: str) -> None:
        if name != self.sym_name.data and name not in self.alias_names:
            self.aliases = ArrayAttr([*(StringAttr(a) for a in self.alias_names), StringAttr(name)])

    def verify_(self) -> None:
        if self.role.data not in ROLES:
            raise VerifyException(f"train.param @{self.sym_name.data}: role {self.role.data!r} is not one of {', '.join(ROLES)}")
        if self.is_trainable and not T.is_float(self.type):
            raise VerifyException(f"train.param @{self.sym_name.data}: trainable but not float ({self.type})")
        if not isinstance(self.parent_op(), ModuleOp):
            raise VerifyException(f"train.param @{self.sym_name.data} must sit at module level")

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_symbol_name(self.sym_name.data)
        printer.print_string(" : ")
        printer.print_attribute(self.type)
        printer.print_string(f' {{role = "{self.role.data}", trainable = {str(self.is_trainable).lower()}')
        if self.alias_names:
            printer.print_string(", aliases = ")
            printer.print_attribute(self.aliases)
        printer.print_string("}")

    @classmethod
    def parse(cls, parser: Parser) -> ParamOp:
        name = parser.parse_symbol_name().data
        parser.parse_punctuation(":")
        ty = parser.parse_type()
        attrs = parser.parse_optional_attr_dict()
        role = attrs.pop("role", StringAttr("weight"))
        trainable = attrs.pop("trainable", BoolAttr.from_bool(True))
        aliases = attrs.pop("aliases", None)
        if attrs:
            parser.raise_error(f"train.param: unknown attributes {', '.join(attrs)} (known: role, trainable, aliases)")
        if not isinstance(ty, TensorType) or not isinstance(role, StringAttr):
            parser.raise_error("train.param expects `@name : tensor<...> {role = \"...\"}`")
        if aliases is not None and not (isinstance(aliases, ArrayAttr) and
                                        all(isinstance(a, StringAttr) for a in aliases.data)):
            parser.raise_error("train.param: aliases must be a list of strings")
        op = cls(name, ty, role.data)
        op.properties["trainable"] = trainable
        for a in aliases.data if aliases is not None else ():
            op.add_alias(a.data)
        return op


# module → {name: ParamOp}; entries are re-checked on use, so passes that add, remove or rename
# params just cause a rebuild. Verifying a model with N params and M gets is O(N + M), not O(N·M).
_PARAM_INDEX: weakref.WeakKeyDictionary[ModuleOp, dict[str, ParamOp]] = weakref.WeakKeyDictionary()


def lookup_param(op: IRDLOperation, sym: SymbolRefAttr) -> ParamOp:
    module = op.get_toplevel_object()
    name = sym.root_reference.data
    found = None
    if isinstance(module, ModuleOp):
        found = _PARAM_INDEX.get(module, {}).get(name)
        if found is None or found.parent_op() is not module or found.sym_name.data != name:
            index = {p.sym_name.data: p for p in module.ops if isinstance(p, ParamOp)}
            _PARAM_INDEX[module] = index
            found = index.get(name)
    if not isinstance(found, ParamOp):
        raise VerifyException(f"{op.name}: no train.param @{name}")
    return found


class _ParamAccess(IRDLOperation):
    """Shared print/parse for `train.get @p : T` and `train.set @p, %v : T`."""

    param = prop_def(SymbolRefAttr)

    def verify_(self) -> None:
        decl = lookup_param(self, self.param)
        t = self.operands[0].type if self.operands else self.results[0].type
        if t != decl.type:
            raise VerifyException(f"{self.name} @{decl.sym_name.data}: type {t} differs from declared {decl.type}")

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.param)
        for o in self.operands:
            printer.print_string(", ")
            printer.print_operand(o)
        printer.print_string(" : ")
        printer.print_attribute(self.operands[0].type if self.operands else self.results[0].type)

    @classmethod
    def parse(cls, parser: Parser):
        sym = parser.parse_attribute()
        if not isinstance(sym, SymbolRefAttr):
            parser.raise_error(f"{cls.name} expects a symbol like @name")
        args = []
        while parser.parse_optional_punctuation(",") is not None:
            args.append(parser.parse_unresolved_operand())
        parser.parse_punctuation(":")
        ty = parser.parse_type()
        operands = [parser.resolve_operand(a, ty) for a in args]
        results = [] if operands else [ty]
        return cls.create(operands=operands, result_types=results, properties={"param": sym})


@irdl_op_definition
class GetOp(_ParamAccess):
    """%v = train.get @p : T — read a parameter or state tensor."""

    name = "train.get"
    result = result_def(TensorType)
    traits = traits_def(MemoryReadEffect())

    @classmethod
    def of(cls, param: ParamOp) -> GetOp:
        return cls.create(result_types=[param.type], properties={"param": SymbolRefAttr(param.sym_name)})


@irdl_op_definition
class SetOp(_ParamAccess):
    """train.set @p, %v : T — overwrite a parameter or state tensor (an in-place update)."""

    name = "train.set"
    value = operand_def(TensorType)
    traits = traits_def(MemoryWriteEffect())

    @classmethod
    def of(cls, param: ParamOp | str, value) -> SetOp:
        name = param if isinstance(param, str) else param.sym_name.data
        return cls.create(operands=[value], properties={"param": SymbolRefAttr(name)})


@irdl_op_definition
class SetSliceOp(IRDLOperation):
    """train.set_slice @p, %v {axis = 1, start = 0} : T — overwrite p[.., start:start+len, ..]
    along `axis` in place (a channel-ratio update: only the updated channels are written, so the
    optimizer and its state work on the slice alone; see passes/sparse_backprop.py)."""

    name = "train.set_slice"
    param = prop_def(SymbolRefAttr)
    value = operand_def(TensorType)
    axis = int_prop()
    start = int_prop(0)
    traits = traits_def(MemoryWriteEffect())

    @classmethod
    def of(cls, param: str, value, axis: int, start: int = 0) -> SetSliceOp:
        props = {"param": SymbolRefAttr(param), "axis": IntegerAttr(axis, i64), "start": IntegerAttr(start, i64)}
        return cls.create(operands=[value], properties=props)

    @property
    def slice_axis(self) -> int:
        return self.axis.value.data

    @property
    def slice_start(self) -> int:
        return self.start.value.data if self.start is not None else 0

    def verify_(self) -> None:
        decl = lookup_param(self, self.param)
        full, part = decl.type.get_shape(), self.value.type.get_shape()
        ax, st = self.slice_axis, self.slice_start
        ok = len(full) == len(part) and 0 <= ax < len(full) and self.value.type.element_type == decl.type.element_type
        ok = ok and all(f == p for i, (f, p) in enumerate(zip(full, part)) if i != ax) and 0 <= st <= full[ax] - part[ax]
        if not ok:
            raise VerifyException(f"train.set_slice @{decl.sym_name.data}: {self.value.type} at axis {ax}, start {st} "
                                  f"does not fit the declared {decl.type}")

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.param)
        printer.print_string(", ")
        printer.print_operand(self.value)
        printer.print_string(f" {{axis = {self.slice_axis}, start = {self.slice_start}}} : ")
        printer.print_attribute(self.value.type)

    @classmethod
    def parse(cls, parser: Parser) -> SetSliceOp:
        sym = parser.parse_attribute()
        if not isinstance(sym, SymbolRefAttr):
            parser.raise_error("train.set_slice expects a symbol like @name")
        parser.parse_punctuation(",")
        arg = parser.parse_unresolved_operand()
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        ty = parser.parse_type()
        axis, start = attrs.pop("axis", None), attrs.pop("start", IntegerAttr(0, i64))
        if not isinstance(axis, IntegerAttr) or not isinstance(start, IntegerAttr) or attrs:
            parser.raise_error("train.set_slice expects `@p, %v {axis = A, start = S} : T`")
        return cls.of(sym.root_reference.data, parser.resolve_operand(arg, ty), axis.value.data, start.value.data)


@irdl_op_definition
class ConstantOp(TrainOp):
    """%c = train.constant dense<...> : tensor<...> — a literal tensor (scalars are rank 0)."""

    name = "train.constant"
    value = prop_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure(), ConstantLike())

    @classmethod
    def infer(cls, types, p):
        return [p.value.type]

    @classmethod
    def from_array(cls, array, element: Attribute | None = None) -> ConstantOp:
        arr = np.asarray(array)
        el = element or T.element_of(arr.dtype)
        return cls.create(result_types=[T.tensor(arr.shape, el)],
                          properties={"value": dense(arr, el)})

    @classmethod
    def scalar(cls, value: float, element: Attribute = T.f32) -> ConstantOp:
        return cls.from_array(np.asarray(value, dtype=T.numpy_dtype(element)), element)

    def array(self) -> np.ndarray:
        return dense_to_numpy(self.value)

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.value)

    @classmethod
    def parse(cls, parser: Parser) -> ConstantOp:
        value = parser.parse_attribute()
        if not isinstance(value, DenseIntOrFPElementsAttr):
            parser.raise_error("train.constant expects dense<...> : tensor<...>")
        return cls.create(result_types=[value.type], properties={"value": value})


def dense(arr: np.ndarray, el: Attribute) -> DenseIntOrFPElementsAttr:
    """numpy → dense attribute, through raw bytes (fast for big arrays)."""
    ty = T.tensor(np.shape(arr), el)
    np_dt = T.numpy_dtype(el)
    if np_dt == np.bool_:
        return DenseIntOrFPElementsAttr.from_list(ty, [int(v) for v in np.ravel(arr)]) if np.size(arr) else \
            DenseIntOrFPElementsAttr(ty, BytesAttr(b""))
    data = np.ascontiguousarray(arr, dtype=np_dt.newbyteorder("<"))
    return DenseIntOrFPElementsAttr(ty, BytesAttr(data.tobytes()))


def dense_to_numpy(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    ty = attr.get_type()
    shape = tuple(ty.get_shape())
    np_dt = T.numpy_dtype(ty.element_type)
    if np_dt == np.bool_:
        return np.array(attr.get_values(), dtype=np.bool_).reshape(shape)
    arr = np.frombuffer(attr.data.data, dtype=np_dt.newbyteorder("<"))
    if arr.size == 1 and np.prod(shape) != 1:  # splat
        return np.full(shape, arr[0], dtype=np_dt)
    return arr.reshape(shape).astype(np_dt, copy=True)


OPS = [ParamOp, GetOp, SetOp, SetSliceOp, ConstantOp]
