"""The base class every `train` op derives from: shape inference, verification,
a Python builder and one readable assembly format shared by all ops.

    %y = train.conv2d %x, %w {stride = [2, 2], padding = [1, 1]} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x4x4xf32>
    %z = train.relu %y : tensor<1x4x4x4xf32>

An op declares its operands, results and properties with xDSL's IRDL and implements
`infer(types, p)`: result types from operand types and properties (`p.stride` reads a
property as a plain Python value). `Op.build(*operands, **props)` uses it, so frontends
and passes never compute shapes by hand, and `verify_` checks stored results against it.
When every operand and result has one type, the type is printed once (`: T`).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    DenseArrayBase,
    FloatAttr,
    FunctionType,
    IntegerAttr,
    IntegerType,
    StringAttr,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import IRDLOperation, prop_def, traits_def
from xdsl.irdl.constraints import VerificationContext
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from . import types as T
from . import xdsl_fixes  # noqa: F401  (hex floats in dense literals)

# --- property helpers: declare a property by its Python kind ----------------------


def ints_prop(default: Sequence[int] | None = None):
    return prop_def(DenseArrayBase, default_value=None if default is None else _ints(default))


def int_prop(default: int | None = None):
    return prop_def(IntegerAttr, default_value=None if default is None else IntegerAttr(default, i64))


def float_prop(default: float | None = None):
    return prop_def(FloatAttr, default_value=None if default is None else FloatAttr(float(default), f64))


def bool_prop(default: bool | None = None):
    return prop_def(IntegerAttr, default_value=None if default is None else BoolAttr.from_bool(default))


def str_prop(default: str | None = None):
    return prop_def(StringAttr, default_value=None if default is None else StringAttr(default))


def same_type(what: str, a: Attribute, other: str, b: Attribute) -> Attribute:
    """`a`, when operand types that must agree do (`x` and `dy`, a prediction and its target)."""
    if a != b:
        raise VerifyException(f"{what} {a} and {other} {b} differ")
    return a


def _ints(v: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, [int(x) for x in v])


def to_python(a: Attribute) -> Any:
    """A property attribute as the plain Python value ops and passes work with."""
    if isinstance(a, DenseArrayBase):
        return tuple(a.get_values())
    if isinstance(a, IntegerAttr):
        if isinstance(a.type, IntegerType) and a.type.width.data == 1:
            return bool(a.value.data)
        return int(a.value.data)
    if isinstance(a, FloatAttr):
        return float(a.value.data)
    if isinstance(a, StringAttr):
        return a.data
    if isinstance(a, ArrayAttr):
        return tuple(to_python(x) for x in a.data)
    return a


def _candidates(value: Any) -> list[Attribute]:
    """Attributes a Python or parsed value may stand for, most specific first."""
    if isinstance(value, Attribute):
        if isinstance(value, ArrayAttr) and all(isinstance(x, IntegerAttr) for x in value.data):
            return [_ints([to_python(x) for x in value.data]), value]
        if isinstance(value, IntegerAttr) and not to_python(value) in (True, False):
            n = to_python(value)
            return [value, IntegerAttr(n, i64), FloatAttr(float(n), f64)]
        if isinstance(value, FloatAttr):
            return [FloatAttr(to_python(value), f64), value]
        return [value]
    if isinstance(value, (bool, np.bool_)):
        return [BoolAttr.from_bool(bool(value))]
    if isinstance(value, numbers.Integral):  # numpy integers too
        return [IntegerAttr(int(value), i64), FloatAttr(float(value), f64)]
    if isinstance(value, numbers.Real):
        return [FloatAttr(float(value), f64)]
    if isinstance(value, str):
        return [StringAttr(value)]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_ints(value)]
    raise TypeError(f"cannot turn {value!r} into a property")


class Props:
    """Read-only view of an op's properties as Python values (defaults filled in)."""

    def __init__(self, cls: type[TrainOp], props: dict[str, Attribute]):
        self._cls, self._props = cls, props

    def __getattr__(self, name: str) -> Any:
        props = self.__dict__["_props"]
        if name in props:
            return to_python(props[name])
        pdef = self._cls.get_irdl_definition().properties.get(name)
        if pdef is None:
            raise AttributeError(f"{self._cls.name} has no property {name!r}")
        if pdef.default_value is None:
            raise VerifyException(f"{self._cls.name}: missing property {name!r}")
        return to_python(pdef.default_value)


# attributes passes attach to ops for the listings (memory-plan's `mem`, the kernel lowering's `kernel`)
ANNOTATIONS = frozenset({"kernel", "mem"})


class TrainOp(IRDLOperation):
    """Base of all `train` ops (not registered itself)."""

    traits = traits_def(Pure())
    # element types the first operand may have (checked on build and verify): "any", "float",
    # "numeric" (not i1), "integer" (integers and i1 masks) or "i1"; FLOAT_ONLY = True is "float"
    ELEMENTS: ClassVar[str] = "any"
    FLOAT_ONLY: ClassVar[bool] = False

    @classmethod
    def infer(cls, types: list[Attribute], p: Props) -> list[Attribute]:
        raise NotImplementedError(f"{cls.name} does not infer its result types")

    # --- building -------------------------------------------------------------
    @classmethod
    def coerce_props(cls, raw: dict[str, Any]) -> dict[str, Attribute]:
        """Python or parsed values → the attributes the op's property defs accept."""
        defs = cls.get_irdl_definition().properties
        out: dict[str, Attribute] = {}
        for key, value in raw.items():
            if key not in defs:
                known = ", ".join(defs) or "none"
                raise VerifyException(f"{cls.name}: unknown property {key!r} (known: {known})")
            for cand in _candidates(value):
                try:
                    defs[key].constr.verify(cand, VerificationContext())
                except VerifyException:
                    continue
                if cand != defs[key].default_value:  # defaults stay implicit: one spelling per op
                    out[key] = cand
                break
            else:
                shown = str(value) if isinstance(value, Attribute) else repr(value)
                expects = _EXPECTS.get(getattr(defs[key].constr, "attr", None), "another kind of value")
                raise VerifyException(f"{cls.name}: bad value {shown} for property {key!r} (expects {expects})")
        return out

    @classmethod
    def build(cls, *operands: SSAValue, **props: Any):
        """Create the op, inferring its result types. Properties are Python values."""
        attrs = cls.coerce_props({k: v for k, v in props.items() if v is not None})
        types = [o.type for o in operands]
        try:
            results = cls.checked_infer(types, Props(cls, attrs))
        except VerifyException as e:
            raise _named(cls.name, e) from None
        return cls.create(operands=list(operands), result_types=list(results), properties=attrs)

    @classmethod
    def checked_infer(cls, types: list[Attribute], p: Props) -> list[Attribute]:
        """`infer` after checking the first operand's element type against ELEMENTS."""
        kind = "float" if cls.FLOAT_ONLY else cls.ELEMENTS
        if kind != "any" and types:
            el = T.element(types[0])
            ok = {"float": T.is_float(el), "numeric": el != i1, "i1": el == i1,
                  "integer": isinstance(el, IntegerType)}[kind]
            if not ok:
                raise VerifyException(f"expects {_KIND_TEXT[kind]} tensor, got {types[0]}")
        return list(cls.infer(types, p))

    @property
    def p(self) -> Props:
        return Props(type(self), dict(self.properties))

    # --- verification ---------------------------------------------------------
    def verify_(self) -> None:
        self._verify_attributes()
        types = [o.type for o in self.operands]
        try:
            expected = self.checked_infer(types, self.p)
        except VerifyException as e:
            raise _named(self.name, e) from None
        actual = list(self.result_types)
        if expected != actual:
            raise VerifyException(
                f"{self.name}: result types {_types(actual)} do not match the inferred "
                f"{_types(expected)} for operands {_types(types)}"
            )

    def _verify_attributes(self) -> None:
        """Only properties carry meaning; an attribute that is not one is a mistake
        (`train.relu {alpha = 3.0}`) unless it is a pass's annotation (ANNOTATIONS) or
        dialect-prefixed like MLIR's discardable attributes (`pock.note = ...`)."""
        for key in self.attributes:
            if key in ANNOTATIONS or "." in key:
                continue
            defs = self.get_irdl_definition().properties
            raise VerifyException(f"{self.name}: unknown attribute {key!r} (properties: {', '.join(defs) or 'none'}; "
                                  f"other attributes need a dialect prefix, e.g. 'pock.{key}')")

    # --- assembly format ------------------------------------------------------
    def print(self, printer: Printer) -> None:
        if self.operands:
            printer.print_string(" ")
            printer.print_list(self.operands, printer.print_operand)
        self._print_props(printer)
        printer.print_string(" : ")
        types = [*self.operand_types, *self.result_types]
        if all(t == types[0] for t in types) and len(self.results) == 1 and self.operands:
            printer.print_attribute(types[0])
        else:
            printer.print_function_type(self.operand_types, self.result_types)

    def _print_props(self, printer: Printer) -> None:
        defs = self.get_irdl_definition().properties
        items = [(k, v) for k, v in self.properties.items() if k not in defs or v != defs[k].default_value]
        items += list(self.attributes.items())
        if not items:
            return
        printer.print_string(" {")
        for i, (key, attr) in enumerate(items):
            if i:
                printer.print_string(", ")
            printer.print_identifier_or_string_literal(key)
            printer.print_string(" = ")
            value = to_python(attr) if key in self.properties else attr
            if isinstance(value, tuple):
                printer.print_string("[" + ", ".join(str(v) for v in value) + "]")
            elif isinstance(value, bool):
                printer.print_string("true" if value else "false")
            elif isinstance(value, int):
                printer.print_string(repr(value))
            elif isinstance(value, float) and math.isfinite(value):
                printer.print_string(_float_literal(value))
            else:
                printer.print_attribute(attr)
        printer.print_string("}")

    @classmethod
    def parse(cls, parser: Parser):
        pos = parser.pos
        args = []
        if (first := parser.parse_optional_unresolved_operand()) is not None:
            args.append(first)
            while parser.parse_optional_punctuation(",") is not None:
                args.append(parser.parse_unresolved_operand())
        raw = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        if parser.parse_optional_punctuation("(") is not None:
            ins = _rest_of_type_list(parser)
            parser.parse_punctuation("->")
            if parser.parse_optional_punctuation("(") is not None:
                outs = _rest_of_type_list(parser)
            else:
                outs = [parser.parse_type()]
        else:
            one = parser.parse_type()
            ins, outs = [one] * len(args), [one]
        operands = parser.resolve_operands(args, ins, pos)
        defs = cls.get_irdl_definition().properties
        for key in raw:
            # a key close to a property's name is a typo; other keys are discardable attributes
            if key not in defs and (close := difflib.get_close_matches(key, defs, n=1, cutoff=0.75)):
                parser.raise_error(f"{cls.name}: unknown property {key!r}; did you mean {close[0]!r}? "
                                   f"(known: {', '.join(defs)})", pos, parser.pos)
        try:
            props = cls.coerce_props({k: v for k, v in raw.items() if k in defs})
        except VerifyException as e:
            parser.raise_error(str(e), pos, parser.pos)
        attrs = {k: v for k, v in raw.items() if k not in defs}
        return cls.create(operands=operands, result_types=outs, properties=props, attributes=attrs)


_EXPECTS = {DenseArrayBase: "a list of integers", IntegerAttr: "an integer or true/false",
            FloatAttr: "a number", StringAttr: "a string"}

_KIND_TEXT = {"float": "a float", "numeric": "a numeric (non-i1)", "integer": "an integer or i1",
              "i1": "an i1"}


def _rest_of_type_list(parser: Parser) -> list[Attribute]:
    """`T, T)` or `)`: the types of a parenthesized list whose `(` was just read."""
    if parser.parse_optional_punctuation(")") is not None:
        return []
    types = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_type)
    parser.parse_punctuation(")")
    return types


def _named(op_name: str, e: VerifyException) -> VerifyException:
    """The error prefixed with the op's name (once)."""
    msg = str(e)
    return VerifyException(msg if msg.startswith(op_name + ":") else f"{op_name}: {msg}")


def _float_literal(v: float) -> str:
    """Shortest exact spelling that MLIR's float-literal grammar accepts (`1e-06` needs `1.0e-06`)."""
    r = repr(v)
    if "e" in r and "." not in r:
        mantissa, exp = r.split("e")
        r = f"{mantissa}.0e{exp}"
    return r


def _types(ts: Sequence[Attribute]) -> str:
    return "(" + ", ".join(str(t) for t in ts) + ")"


def function_type(op: IRDLOperation) -> FunctionType:
    return FunctionType.from_lists(op.operand_types, op.result_types)
