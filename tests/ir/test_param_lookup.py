"""train.get/set resolve their symbol through a cached index that must never go stale."""

import pytest
from pockengine import Program
from pockengine.ir.ops.state import ParamOp
from xdsl.utils.exceptions import VerifyException

MLP = open(__file__.replace("tests/ir/test_param_lookup.py", "examples/mlp.mlir")).read()


def test_removed_param_is_reported_after_a_cached_verify():
    prog = Program.parse(MLP)
    prog.module.verify()  # fills the index
    prog.param("fc2.bias").detach()
    with pytest.raises(VerifyException, match="no train.param @fc2.bias"):
        prog.module.verify()


def test_added_param_is_found_after_a_cached_verify():
    prog = Program.parse(MLP)
    prog.module.verify()
    old = prog.param("fc2.bias")
    renamed = ParamOp("fc2.bias", old.type, "bias")
    old.detach()
    prog.module.body.block.insert_op_before(renamed, prog.module.body.block.first_op)
    prog.module.verify()
