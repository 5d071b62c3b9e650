"""The compile recipe (pockengine/pipeline.py): every stage is a stop point that prints its IR
or source, the compiled step at every train-IR stop trains like the interpreter, the printed
recipe is a pipeline `pock-opt -p` accepts (and gives the same kernel IR), and the CLIs'
`--emit STAGE` print the same text as `pipeline.run`."""

from __future__ import annotations

import pytest
from pockengine import Program
from pockengine import pipeline as PL
from pockengine.pipeline import STAGES, Recipe
from programs import MLP_SCHEME, batches, mlp

RECIPE = Recipe("cross_entropy", "sgd", MLP_SCHEME, {"lr": 0.05, "momentum": 0.9})
TRAIN_IR = [s for s in STAGES if s in PL.TRAIN_IR_STAGES]


@pytest.fixture(scope="module")
def stops():
    prog = mlp()
    return prog, {s: PL.run(prog, RECIPE, stop=s) for s in STAGES[:-1]}


def test_every_stage_is_a_stop_point(stops):
    _, rs = stops
    texts = {s: r.text() for s, r in rs.items()}
    for s in TRAIN_IR:  # train IR that parses back
        parsed = Program.parse(texts[s], name=s)
        assert ("train_step" in parsed.functions()) == (STAGES.index(s) >= STAGES.index("autodiff")), s
    # each IR-rewriting stage changed something on this model
    for a, b in zip(TRAIN_IR[1:], TRAIN_IR[2:]):
        assert texts[a] != texts[b], f"{b} left the IR of {a} unchanged"
    assert "train.fused" in texts["fusion"] and "train.fused" not in texts["operator-reordering"]
    # kernel IR: unplanned offsets (%a?) until memory-plan places them
    assert texts["lower-to-kernels"].startswith("// kernel program") and "%a?" in texts["lower-to-kernels"]
    assert "%a?" not in texts["memory-plan"] and "call linear" in texts["memory-plan"]
    assert "===== model.c =====" in texts["emit"] and "void pock_train_step(" in texts["emit"]


@pytest.mark.parametrize("stage", [s for s in TRAIN_IR if s != "import"])
def test_compiled_matches_interpreted_at_each_train_ir_stop(stops, stage):
    """The program at the stop, compiled (the rest of the recipe: no autodiff again, but
    lowering etc.), trains like the interpreter runs it; before autodiff, the forward."""
    prog, rs = stops
    at = rs[stage].program
    data = batches(prog, 3)
    if "train_step" not in at.functions():
        trainer = PL.compile(at)
        for x, _ in data:
            got, want = trainer.forward(x), at.run("forward", x)
            assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
        return
    trainer, ref = PL.compile(at), at.copy()
    for x, y in data:
        assert trainer.step(x, y) == pytest.approx(float(ref.run("train_step", x, y)), rel=1e-4, abs=1e-5), stage


def test_pock_opt_accepts_the_printed_recipe(stops, tmp_path, capsys):
    from pockengine.tools import pock_opt

    prog, rs = stops
    src = tmp_path / "mlp.mlir"
    src.write_text(str(prog.module) + "\n")
    spec = RECIPE.pipeline()
    assert spec.split(",")[0] == "slice-propagation" and "memory-plan{target=c}" in spec
    # the parsed pipeline prints back to a string that parses to the same passes
    again = PL.print_pipeline(PL.parse_pipeline(spec))
    assert PL.print_pipeline(PL.parse_pipeline(again)) == again
    for emit, stage in [("kernels", "memory-plan"), ("lower-to-kernels", "lower-to-kernels"), ("fusion", "fusion")]:
        assert pock_opt.main([str(src), "-p", again, "--emit", emit]) == 0
        out = capsys.readouterr().out
        if stage in PL.TRAIN_IR_STAGES:  # the IR after that pass (value names may differ): same ops
            ops = lambda text: [ln.split("=")[-1].split("(")[0].strip() for ln in text.splitlines() if "train." in ln]
            assert ops(out) == ops(rs[stage].text()), emit
        else:
            assert out == rs[stage].text(), emit
    assert pock_opt.main(["--print-pipeline"]) == 0
    printed = capsys.readouterr().out.strip()
    assert pock_opt.main([str(src), "-p", printed, "--emit", "c"]) == 0
    assert "void pock_train_step(" in capsys.readouterr().out


def test_pock_opt_emit_of_a_stage_the_pipeline_lacks_is_a_clear_error(stops, tmp_path, capsys):
    from pockengine.tools import pock_opt

    src = tmp_path / "mlp.mlir"
    src.write_text(str(stops[0].module) + "\n")
    assert pock_opt.main([str(src), "-p", "slice-propagation", "--emit", "fusion"]) == 2
    assert "does not run fusion" in capsys.readouterr().err


def test_pockengine_compile_emits_every_stage(stops, tmp_path, capsys):
    from pockengine.tools import driver

    prog, rs = stops
    prog.save(tmp_path / "mlp")
    opts = ["--scheme", MLP_SCHEME, "--lr", "0.05", "--momentum", "0.9"]
    for stage in ("autodiff", "memory-plan", "emit"):
        assert driver.main(["compile", str(tmp_path / "mlp"), *opts, "--emit", stage]) == 0
        out = capsys.readouterr().out
        if stage == "emit":  # the title is the model's folder name
            assert out == rs[stage].text().replace("from model.", "from mlp.")
        elif stage in PL.TRAIN_IR_STAGES:
            assert Program.parse(out, name=stage).functions().keys() == rs[stage].program.functions().keys()
        else:
            assert out == rs[stage].text()
    assert driver.main(["compile", str(tmp_path / "mlp"), *opts, "--print-pipeline"]) == 0
    spec = capsys.readouterr().out.strip()
    assert [p.name for p in PL.parse_pipeline(spec).passes] == [
        "slice-propagation", "autodiff", "sparse-backprop", "dead-gradient-elimination", "operator-reordering",
        "fusion", "lower-to-kernels", "memory-plan"]
    assert driver.main(["compile", str(tmp_path / "mlp"), "--emit", "nonsense"]) == 2
    assert "not a stage" in capsys.readouterr().err


def test_unknown_stop_is_an_error():
    with pytest.raises(PL.StageError, match="unknown stage 'fuse'"):
        PL.run(mlp(), RECIPE, stop="fuse")


@pytest.mark.parametrize("target", ["hexagon", "opencl"])
def test_threads_on_a_target_without_cpu_threads_is_a_user_error(target):
    """threads=/openmp= on a target whose toolchain does not thread the C kernels is refused as a
    user error naming the option and the target, before anything is built (it was a plain
    ValueError from inside the Hexagon toolchain's build)."""
    from pockengine import compile
    from pockengine.errors import UserError

    with pytest.raises(UserError, match=f"threads/openmp: target '{target}'"):
        compile(mlp(), loss="cross_entropy", optimizer="sgd", lr=0.05, target=target, threads=2)
