"""The cost report counts what a step performs, whatever the grouping (issue 12, item 3: ops
inside `train.fused` were not counted, 10,816 → 320 forward FLOPs on examples/mlp.mlir), and it
has an explicit rule for every op of the dialect instead of a silent 1 per element."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import sparse_models as M
from pockengine import Program, passes
from pockengine.ir.dialect import OPS
from pockengine.passes import run_pipeline
from pockengine.passes.cost import FLOPS, NoCostRule, flops

ROOT = Path(__file__).parents[2]


def test_every_op_of_the_dialect_has_a_cost_rule():
    missing = sorted(op.name for op in OPS if op.name not in FLOPS)
    assert not missing, f"ops without a FLOP rule in passes/cost.py: {missing}"


def _phases(prog):
    c = passes.cost(prog)["train_step"]
    return c.forward_flops, c.backward_flops, c.optimizer_flops, c.saved_bytes, c.trained_elements


MODELS = {
    "mlp.mlir": lambda: Program.parse((ROOT / "examples" / "mlp.mlir").read_text()),
    "cnn": M.cnn,
    "mlp": M.mlp,
}


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fusion_changes_no_phase_of_the_cost(model, optimizer):
    prog = MODELS[model]()
    run_pipeline(prog, f"autodiff{{optimizer={optimizer} lr=0.1}}")
    before = _phases(prog)
    ops_before = passes.cost(prog)["train_step"].ops
    run_pipeline(prog, "operator-reordering,fusion")
    after = passes.cost(prog)["train_step"]
    assert after.fused_groups > 0, "the test needs a program that fusion groups"
    assert _phases(prog) == before
    for op in prog.functions()["train_step"].walk():  # a group's FLOPs are its ops' FLOPs
        if op.name == "train.fused":
            inner = [o for o in op.regions[0].block.ops if o.name != "train.yield"]
            assert flops(op) == sum(flops(o) for o in inner) > 0
    # the ops performed are the same ones, counted inside their groups
    compute = lambda ops: {k: v for k, v in ops.items() if k not in ("train.fused", "train.yield")}
    assert compute(after.ops) == compute(ops_before)


def test_examples_mlp_numbers_after_fusion(capsys):
    from pockengine.tools import pock_opt

    assert pock_opt.main([str(ROOT / "examples" / "mlp.mlir"), "-p", "autodiff,fusion", "--stats"]) == 0
    err = capsys.readouterr().err
    assert "forward 10,816  backward 13,248  optimizer 1,352" in err
    assert "fused groups" in err


def test_an_op_without_a_rule_is_reported_not_guessed(monkeypatch):
    prog = M.mlp()
    monkeypatch.delitem(FLOPS, "train.relu")
    relus = [op for op in prog.functions()["forward"].walk() if op.name == "train.relu"]
    with pytest.raises(NoCostRule, match="train.relu"):
        flops(relus[0])
    report = passes.cost(prog)
    assert report["forward"].uncounted == {"train.relu": len(relus)}
    assert f"FLOPs exclude ops without a cost rule: train.relu ×{len(relus)}" in str(report)
