"""`train.fused`: ops that run as one kernel, made by the fusion pass (passes/fusion.py).

The region holds ordinary train ops on the group's inputs; `train.yield` names the values
the rest of the function uses. Its meaning is exactly that of the ops inside, so the
interpreter runs them as they are and every pass before and after fusion agrees:

    %y, %r = train.fused(%x, %gamma, %beta, %mean, %var) {kind = "elementwise"}
        : (tensor<8x16x4x4xf32>, tensor<16xf32>, ...) -> (tensor<8x16x4x4xf32>, tensor<8x16x4x4xf32>) {
    ^bb0(%a: tensor<8x16x4x4xf32>, %g: tensor<16xf32>, ...):
      %n = train.batch_norm %a, %g, %b, %m, %v : (...) -> tensor<8x16x4x4xf32>
      %c = train.clamp %n {min = 0.0, max = 6.0} : tensor<8x16x4x4xf32>
      train.yield %n, %c : tensor<8x16x4x4xf32>, tensor<8x16x4x4xf32>
    }

kind "elementwise": every op inside maps element to element over the results' shape (one
loop nest). kind "epilogue": one contraction (linear, matmul, conv2d) and elementwise ops
over its output's shape, applied to each block of the GEMM's output as it is finished. kind "update": a weight-gradient op whose only use is an SGD update, computed
straight into the optimizer's buffer (see backends/lowering/fused.py). kind
"linear_cross_entropy": a vocabulary head with its loss and backward, run chunk by chunk
over the rows (passes/fusion.py, backends/lowering/loss.py).
"""

from __future__ import annotations

from xdsl.dialects.builtin import StringAttr, TensorType
from xdsl.ir import Block, BlockArgument, Region
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    lazy_traits_def,
    opt_prop_def,
    region_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsTerminator, Pure
from xdsl.utils.exceptions import VerifyException

KINDS = ("elementwise", "epilogue", "update", "linear_cross_entropy")


@irdl_op_definition
class YieldOp(IRDLOperation):
    """train.yield %a, %b : T1, T2 — the results of the enclosing train.fused."""

    name = "train.yield"
    values = var_operand_def(TensorType)
    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(FusedOp), Pure()))  # FusedOp comes below

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_list(self.values, printer.print_operand)
        printer.print_string(" : ")
        printer.print_list([v.type for v in self.values], printer.print_attribute)

    @classmethod
    def parse(cls, parser: Parser) -> YieldOp:
        args = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_unresolved_operand)
        parser.parse_punctuation(":")
        types = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_type)
        return cls.create(operands=parser.resolve_operands(args, types, parser.pos))


@irdl_op_definition
class FusedOp(IRDLOperation):
    """Ops that run as one kernel; the region's block arguments are the inputs."""

    name = "train.fused"
    inputs = var_operand_def(TensorType)
    outputs = var_result_def(TensorType)
    kind = opt_prop_def(StringAttr)
    body = region_def("single_block")
    traits = traits_def(Pure())

    @classmethod
    def make(cls, inputs, result_types, block: Block, kind: str = "elementwise") -> FusedOp:
        return cls.create(operands=list(inputs), result_types=list(result_types),
                          properties={"kind": StringAttr(kind)}, regions=[Region(block)])

    @property
    def group_kind(self) -> str:
        return self.kind.data if self.kind is not None else "elementwise"

    @property
    def block(self) -> Block:
        return self.body.block

    def verify_(self) -> None:
        if self.group_kind not in KINDS:
            raise VerifyException(f"train.fused: kind must be one of {', '.join(KINDS)}, got {self.group_kind!r}")
        args = [a.type for a in self.block.args]
        if args != [o.type for o in self.operands]:
            raise VerifyException("train.fused: block argument types differ from the input types")
        last = self.block.last_op
        if not isinstance(last, YieldOp) or [v.type for v in last.operands] != list(self.result_types):
            raise VerifyException("train.fused: the region must end in train.yield of the result types")
        if self.group_kind == "epilogue":  # the contraction runs first, its elementwise work after it
            from .linalg import Conv2dOp, LinearOp, MatmulOp

            for op in self.block.ops:
                if isinstance(op, (LinearOp, MatmulOp, Conv2dOp)) and any(
                        not isinstance(v, BlockArgument) for v in op.operands):
                    raise VerifyException(f"train.fused (epilogue): {op.name} reads a value computed inside "
                                          f"the group; a contraction's operands must be the group's inputs")

    def print(self, printer: Printer) -> None:
        printer.print_string("(")
        printer.print_list(self.inputs, printer.print_operand)
        printer.print_string(f') {{kind = "{self.group_kind}"}} : ')
        printer.print_function_type(self.operand_types, self.result_types)
        printer.print_string(" ")
        printer.print_region(self.body)

    @classmethod
    def parse(cls, parser: Parser) -> FusedOp:
        pos = parser.pos
        args = parser.parse_comma_separated_list(parser.Delimiter.PAREN, parser.parse_unresolved_operand)
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        ftype = parser.parse_function_type()
        operands = parser.resolve_operands(args, ftype.inputs.data, pos)
        region = parser.parse_region()
        kind = attrs.pop("kind", StringAttr("elementwise"))
        return cls.create(operands=operands, result_types=list(ftype.outputs.data),
                          properties={"kind": kind}, attributes=attrs, regions=[region])


OPS = [FusedOp, YieldOp]
