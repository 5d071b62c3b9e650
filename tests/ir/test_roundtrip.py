"""print → parse → print is a fixed point for every op, in the custom and the generic format."""

from io import StringIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import all_cases, cases, examples
from pockengine.ir.context import make_context
from pockengine.ir.dialect import OPS
from pockengine.ir.interpreter import IMPLS, _load_impls
from pockengine.ir.ops.fused import YieldOp
from pockengine.ir.ops.state import ParamOp
from xdsl.parser import Parser
from xdsl.printer import Printer

# train.param is a module-level declaration; train.yield ends a train.fused, whose
# implementation runs the region up to it
NOT_RUN_ALONE = (ParamOp, YieldOp)


def render(module, generic: bool) -> str:
    out = StringIO()
    Printer(stream=out, print_generic_format=generic).print_op(module)
    return out.getvalue()


def parse(text: str):
    module = Parser(make_context(), text, "roundtrip.mlir").parse_module()
    module.verify()
    return module


def test_every_op_has_a_generator():
    known = all_cases()
    missing = [op.name for op in OPS if op not in known]
    assert not missing, f"add a generator to tests/ir/op_cases.py or train_cases.py for {missing}"


def test_every_op_has_an_interpreter_implementation():
    _load_impls()
    missing = [op.name for op in OPS if op not in IMPLS and op not in NOT_RUN_ALONE]
    assert not missing, f"no run_<op> in ir/interpreter/ for {missing}"


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip(op, data):
    case = data.draw(cases(op))
    module = case.module()
    module.verify()
    assert any(isinstance(o, op) for o in module.walk())
    custom = render(module, generic=False)
    assert render(parse(custom), generic=False) == custom
    generic = render(module, generic=True)
    assert render(parse(generic), generic=True) == generic
    # both spellings denote the same op
    assert render(parse(generic), generic=False) == custom
