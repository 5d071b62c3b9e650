"""pock-opt next to xdsl-opt (issue 12): xdsl-opt's option spellings work in pock-opt, the
`train` dialect and pockengine's passes load into xdsl-opt itself (the `xdsl.universe` entry
point), `--list-passes` gives whole sentences, and `pockengine compile/train --help` show the
choices and defaults."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from pockengine.tools import pock_opt

REPO = Path(__file__).resolve().parents[2]
MLP = str(REPO / "examples" / "mlp.mlir")
BIN = Path(sys.executable).parent


def test_xdsl_opt_spellings(tmp_path, capsys):
    out = tmp_path / "o.mlir"
    assert pock_opt.main([MLP, "-p", "canonicalize,cse", "--print-op-generic", "--output-file", str(out),
                          "--print-ir-before", "cse", "--print-between-passes", "--disable-verify"]) == 0
    err = capsys.readouterr().err
    assert out.read_text().startswith('"builtin.module"() ({')  # generic form
    assert "IR Dump Before cse" in err and "IR Dump Before canonicalize" not in err
    assert "IR Dump After canonicalize" in err and "IR Dump After cse" in err
    assert pock_opt.main([MLP, "-p", "cse", "--print-ir-before-all"]) == 0
    assert "IR Dump Before cse" in capsys.readouterr().err
    assert pock_opt.main([MLP, "--print-ir-before", "nope"]) == 2
    assert "--print-ir-before: unknown pass 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        pock_opt.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("pock-opt (pockengine ")


def test_disable_verify_skips_the_verifier(tmp_path, capsys):
    bad = tmp_path / "bad.mlir"
    bad.write_text("""func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = train.relu %x {alpha = 3.0} : tensor<4xf32>
  func.return %y : tensor<4xf32>
}
""")
    assert pock_opt.main([str(bad)]) == 2
    capsys.readouterr()
    assert pock_opt.main([str(bad), "--disable-verify"]) == 0


def test_xdsl_opt_loads_the_train_dialect_and_passes():
    xdsl_opt = BIN / "xdsl-opt"
    if not xdsl_opt.exists():
        pytest.skip("xdsl-opt is not installed beside this interpreter")
    r = subprocess.run([str(xdsl_opt), MLP, "-p", "autodiff"], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "func.func @train_step" in r.stdout and "train.sgd" in r.stdout


def test_the_universe_names_the_dialect_and_only_pockengine_passes():
    from pockengine.pipeline import get_all_passes  # passes/ and the backends' passes
    from pockengine.tools.universe import UNIVERSE
    from xdsl.transforms import get_all_passes as xdsl_passes

    assert UNIVERSE.all_dialects["train"]().name == "train"
    assert set(UNIVERSE.all_passes) == set(get_all_passes()) - set(xdsl_passes())
    assert "autodiff" in UNIVERSE.all_passes


def test_list_passes_gives_whole_sentences(capsys):
    assert pock_opt.main(["--list-passes"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith(" ")]
    assert lines
    for line in lines:
        description = line.split(None, 1)[1]
        assert description.endswith((".", ")")), f"cut mid-sentence: {line!r}"


def test_first_sentence_keeps_wrapped_lines_and_abbreviations():
    doc = """Group chains (e.g. bias + relu) into one
    kernel, and more. Second sentence.

    Details."""
    assert pock_opt.first_sentence(doc) == "Group chains (e.g. bias + relu) into one kernel, and more."


def _help(prog: str, module) -> str:
    parser = argparse.ArgumentParser(prog=prog)
    module.add_arguments(parser)
    return " ".join(parser.format_help().split())


def test_compile_help_shows_choices_and_defaults():
    from pockengine.backends import cli
    from pockengine.passes.autodiff import LOSSES, OPTIMIZERS

    assert cli.LOSSES == LOSSES and cli.OPTIMIZERS == OPTIMIZERS  # the CLI's copy stays in step
    text = _help("pockengine compile", cli)
    assert "{cross_entropy,mse,next_token}" in text and "(default cross_entropy)" in text
    assert "{sgd,adam,adamw}" in text and "(default sgd)" in text
    assert "learning rate (default 0.01)" in text
    assert "(default 10)" in _help("pockengine train", cli)
