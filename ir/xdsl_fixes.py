"""Fixes to xDSL 0.74 that pockengine's IR relies on, applied once on import (by ir/base.py).

Hexadecimal elements of float `dense<...>` literals. xDSL (like mlir-opt) prints a float that
has no exact short decimal form, and every inf and nan, as its bit pattern: `dense<0x7f800000>
: tensor<f32>` is +inf. xDSL's parser reads such an element as the integer 2139095040 and
converts that to a float, so printing and parsing a constant with -inf (attention masks) or a
7-digit integer value (16777216.0) silently changes it. MLIR reads the bit pattern; so do we.
(Scalar `FloatAttr`s are parsed correctly upstream: xdslproject/xdsl#3370.)

Unterminated string literals. The lexer's string regex nests `+` inside `*`, so a `"` that is
not closed on its line makes it backtrack exponentially: 30 characters after the quote take
seconds, and a Python file given to pock-opt by mistake hangs it. The same regex with
possessive quantifiers (Python 3.11) matches the same strings in linear time.
"""

from __future__ import annotations

import re

from xdsl.dialects.builtin import AnyFloat
from xdsl.parser.attribute_parser import AttrParser
from xdsl.utils.mlir_lexer import MLIRLexer

_Element = AttrParser._TensorLiteralElement
_to_type = _Element.to_type


def _to_type_reading_hex_floats(self, parser, type):
    if (isinstance(type, AnyFloat) and isinstance(self.value, int) and not isinstance(self.value, bool)
            and self.span.text[:2] in ("0x", "0X")):
        try:
            raw = self.value.to_bytes(type.compile_time_size, "little")
        except OverflowError:
            parser.raise_error(f"hexadecimal float {self.span.text} does not fit {type}", at_position=self.span)
        return next(type.iter_unpack(raw))
    return _to_type(self, parser, type)


if not getattr(_to_type, "_pockengine_fix", False):
    _to_type_reading_hex_floats._pockengine_fix = True
    _Element.to_type = _to_type_reading_hex_floats

MLIRLexer._unescaped_characters_regex = re.compile(r'"(?:[^"\\\n\v\f]++|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+"')
