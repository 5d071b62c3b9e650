"""`pock-opt` end to end: the installed console script run as a subprocess, plus a few
in-process checks (a pass that breaks the IR, --stats, option listing) that need a fake pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pockengine.ir.program import parse_module

REPO = Path(__file__).resolve().parents[2]
MLP = REPO / "examples" / "mlp.mlir"
POCK_OPT = Path(sys.executable).with_name("pock-opt")

DUPLICATES = """builtin.module {
  train.param @w : tensor<4xf32> {role = "weight", trainable = true}
  func.func @f(%x : tensor<4xf32>) -> tensor<4xf32> {
    %a = train.get @w : tensor<4xf32>
    %b = train.get @w : tensor<4xf32>
    %s = train.add %a, %b : tensor<4xf32>
    train.set @w, %s : tensor<4xf32>
    %c = train.get @w : tensor<4xf32>
    %u = train.add %s, %c : tensor<4xf32>
    func.return %u : tensor<4xf32>
  }
}
"""

BAD_SHAPES = """builtin.module {
  func.func @f(%x : tensor<8x16xf32>, %w : tensor<4x32xf32>) -> tensor<8x4xf32> {
    %y = train.linear %x, %w : (tensor<8x16xf32>, tensor<4x32xf32>) -> tensor<8x4xf32>
    func.return %y : tensor<8x4xf32>
  }
}
"""


def pock_opt(*args, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(POCK_OPT), *map(str, args)], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120
    )


def _lists_all_passes(message: str) -> bool:
    from pockengine.pipeline import get_all_passes  # passes/ + the backend passes

    return "valid passes: " + ", ".join(sorted(get_all_passes())) in message


def ops_named(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if f"= {name} " in line or line.strip().startswith(f"{name} ")]


def test_canonicalize_cse_on_the_mlp_drops_the_dead_get():
    r = pock_opt(MLP, "-p", "canonicalize,cse")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    gets = ops_named(r.stdout, "train.get")
    assert len(gets) == 4 and not any("%w1b" in g for g in gets)
    assert len(ops_named(MLP.read_text(), "train.get")) == 5
    parse_module(r.stdout).verify()  # the output is valid IR again


def test_cse_merges_reads_but_not_across_a_write_from_stdin():
    r = pock_opt("-p", "cse", stdin=DUPLICATES)
    assert r.returncode == 0, r.stderr
    gets = ops_named(r.stdout, "train.get")
    assert [g.split("=")[0].strip() for g in gets] == ["%a", "%c"]  # %b merged into %a; %c follows a set
    assert "train.add %a, %a" in r.stdout


def test_output_file_is_written_whole_or_not_at_all(tmp_path):
    out = tmp_path / "out.mlir"
    r = pock_opt(MLP, "-p", "cse", "-o", out)
    assert r.returncode == 0 and r.stdout == ""
    assert out.read_text() == pock_opt(MLP, "-p", "cse").stdout
    out.write_text("previous contents\n")
    bad = tmp_path / "bad.mlir"
    bad.write_text(BAD_SHAPES)
    assert pock_opt(bad, "-o", out).returncode == 2
    assert out.read_text() == "previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mlir", "out.mlir"]  # no temp files left


def test_list_passes_names_and_describes_every_pass():
    from pockengine.pipeline import get_all_passes  # passes/ + the backend passes

    r = pock_opt("--list-passes")
    assert r.returncode == 0
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if not line.startswith(" ")}
    assert set(lines) == set(get_all_passes())
    assert "canonicalization" in lines["canonicalize"]
    assert all("(no description)" not in line for line in lines.values())


def test_print_ir_after_all_and_after_one_pass():
    r = pock_opt(MLP, "-p", "canonicalize,cse", "--print-ir-after-all")
    assert r.returncode == 0
    headers = [line for line in r.stderr.splitlines() if "IR Dump After" in line]
    assert headers == [
        "// -----// IR Dump After canonicalize //----- //",
        "// -----// IR Dump After cse //----- //",
    ]
    assert "%w1b" not in r.stderr  # canonicalize already removed it
    r = pock_opt(MLP, "-p", "canonicalize,cse", "--print-ir-after=cse")
    assert [line for line in r.stderr.splitlines() if "IR Dump After" in line] == headers[1:]
    r = pock_opt(MLP, "-p", "cse", "--print-ir-after=nonsense")
    assert r.returncode == 2 and "unknown pass 'nonsense'" in r.stderr and _lists_all_passes(r.stderr)


def test_generic_form_round_trips_to_the_same_custom_form():
    custom = pock_opt(MLP).stdout
    generic = pock_opt(MLP, "--generic").stdout
    assert '"train.linear"(' in generic and "train.linear %" not in generic
    assert pock_opt("-", stdin=generic).stdout == custom
    assert pock_opt("--generic", stdin=generic).stdout == generic


@pytest.mark.parametrize(
    "text, where, words",
    [
        (
            "builtin.module {\n  func.func @f() {\n    %x = train.relu %y : tensor<2xf32>\n",
            ":4:1:",
            ["end of input"],
        ),
        ("builtin.module {\n  %x = train.relu %y : tensor<2xf32>\n}\n", ":2:19:", ["not defined", "%y"]),
        ("builtin.module {\n  %x = train.relu %x, : tensor<2xf32>\n}\n", ":2:", ["expected"]),
        (
            "builtin.module {\n  %x = train.frobnicate : tensor<2xf32>\n}\n",
            ":2:",
            ["unknown op 'train.frobnicate'", "relu"],
        ),
        (
            "builtin.module {\n  %x = nodialect.op : tensor<2xf32>\n}\n",
            ":2:",
            ["no dialect 'nodialect'", "train"],
        ),
        ('builtin.module {\n  %x = "train.relu' + "x" * 60 + "\n}\n", ":2:8:", ["closing string literal"]),
        (BAD_SHAPES, ":3:5:", ["train.linear", "8x16", "4x32"]),
    ],
    ids=[
        "truncated",
        "undefined-value",
        "malformed",
        "unknown-op",
        "unknown-dialect",
        "unclosed-string",
        "verifier",
    ],
)
def test_bad_input_is_a_located_error_with_exit_2(tmp_path, text, where, words):
    bad = tmp_path / "bad.mlir"
    bad.write_text(text)
    r = pock_opt(bad)
    assert r.returncode == 2 and r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"{bad}{where}") and ": error: " in first, r.stderr
    assert all(w in first for w in words), first
    assert "Traceback" not in r.stderr


def test_missing_file_and_bad_pipelines_exit_2_listing_valid_names():
    r = pock_opt(REPO / "no_such_file.mlir")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = pock_opt(MLP, "-p", "canonicalize,frob")
    assert r.returncode == 2 and "unknown pass 'frob'" in r.stderr and _lists_all_passes(r.stderr)
    r = pock_opt(MLP, "-p", "cse{depth=3}")
    assert r.returncode == 2 and "no option 'depth'" in r.stderr
    r = pock_opt(MLP, "-p", "cse{")
    assert r.returncode == 2 and "Traceback" not in r.stderr


INVALID = """// expected-error @+3 {{does not fit weight 4x32}}
builtin.module {
  func.func @f(%x : tensor<8x16xf32>, %w : tensor<4x32xf32>) -> tensor<8x4xf32> {
    %y = train.linear %x, %w : (tensor<8x16xf32>, tensor<4x32xf32>) -> tensor<8x4xf32>
    func.return %y : tensor<8x4xf32>
  }
}
// -----
builtin.module {
  %x = train.frobnicate : tensor<2xf32>  // expected-error {{unknown op 'train.frobnicate'}}
}
// -----
builtin.module {
  func.func @g(%x : tensor<2x3xf32>) -> tensor<3x2xf32> {
    %y = train.transpose %x {perm = [1, 0]} : (tensor<2x3xf32>) -> tensor<3x2xf32>
    func.return %y : tensor<3x2xf32>
  }
}
"""


def test_verify_diagnostics_accepts_right_and_rejects_wrong_expectations(tmp_path):
    good = tmp_path / "invalid.mlir"
    good.write_text(INVALID)
    r = pock_opt(good, "--split-input-file", "--verify-diagnostics")
    assert r.returncode == 0, r.stderr
    assert "func.func @g" in r.stdout  # the valid case still prints

    wrong = tmp_path / "wrong.mlir"
    wrong.write_text(INVALID.replace("does not fit weight 4x32", "some other message"))
    r = pock_opt(wrong, "--split-input-file", "--verify-diagnostics")
    assert r.returncode == 1
    assert f"{wrong}:4:5: error: unexpected error: train.linear" in r.stderr
    assert f'{wrong}:1:4: error: expected error "some other message" at line 4 was not produced' in r.stderr

    unmet = tmp_path / "unmet.mlir"
    unmet.write_text(
        INVALID.replace(
            "    func.return %y : tensor<3x2xf32>",
            "    func.return %y : tensor<3x2xf32>  // expected-error {{never}}",
        )
    )
    r = pock_opt(unmet, "--split-input-file", "--verify-diagnostics")
    assert r.returncode == 1 and 'expected error "never" at line 16 was not produced' in r.stderr

    r = pock_opt(good, "--split-input-file")  # without the flag: all errors, exit 2
    assert r.returncode == 2 and f"{good}:4:5: error:" in r.stderr and f"{good}:10:" in r.stderr


# --- in-process: fake passes -------------------------------------------------------------


def _register(monkeypatch, **extra):
    import pockengine.passes as registry

    stock = registry.get_all_passes
    monkeypatch.setattr(registry, "get_all_passes", lambda: {**stock(), **extra})


def test_a_pass_that_breaks_the_ir_is_reported_at_the_op_with_the_pass_name(monkeypatch, capsys):
    from dataclasses import dataclass

    from pockengine.ir.ops.elementwise import ReluOp
    from pockengine.tools.pock_opt import main
    from xdsl.dialects.builtin import TensorType, f32
    from xdsl.passes import ModulePass

    @dataclass(frozen=True)
    class BreakRelu(ModulePass):
        """Gives every relu a wrong result type (a buggy pass)."""

        name = "break-relu"

        def apply(self, ctx, op):
            for o in op.walk():
                if isinstance(o, ReluOp):
                    o.results[0]._type = TensorType(f32, [1])

    _register(monkeypatch, **{"break-relu": lambda: BreakRelu})
    assert main([str(MLP), "-p", "cse,break-relu"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"{MLP}:12:5: error: train.relu: result types") and "(after pass 'break-relu')" in err
    )


def test_list_passes_shows_options_with_types_and_defaults(monkeypatch, capsys):
    from dataclasses import dataclass

    from pockengine.tools.pock_opt import main
    from xdsl.passes import ModulePass

    @dataclass(frozen=True)
    class Knobs(ModulePass):
        """Does nothing, with options.

        More text that --list-passes leaves out."""

        name = "knobs"
        ratio: float = 0.5
        layers: int | None = None

        def apply(self, ctx, op):
            pass

    _register(monkeypatch, knobs=lambda: Knobs)
    assert main(["--list-passes"]) == 0
    out = capsys.readouterr().out.splitlines()
    i = next(i for i, line in enumerate(out) if line.startswith("knobs "))
    assert out[i].split(None, 1)[1] == "Does nothing, with options."
    assert out[i + 1 : i + 3] == ["    ratio: float = 0.5", "    layers: int | None = None"]
    assert main([str(MLP), "-p", "knobs{ratio=0.25 layers=2}"]) == 0
    assert main([str(MLP), "-p", "knobs{ratio=fast}"]) == 2
    assert "pass 'knobs'" in capsys.readouterr().err


def test_stats_prints_the_cost_report_or_op_counts_per_function(capsys):
    import re

    from pockengine.tools.pock_opt import main, op_counts

    want = {"train.get": 4, "train.linear": 2, "train.add": 2, "train.relu": 1, "func.return": 1}
    assert main([str(MLP), "-p", "canonicalize", "--stats"]) == 0
    captured = capsys.readouterr()
    module = parse_module(captured.out)
    for report in (captured.err, op_counts(module)):  # the hook's report (passes/cost.py) and the fallback
        lines = report.splitlines()
        assert lines[0] == "// @forward: 10 ops"
        counts = {m[1]: int(m[2]) for line in lines if (m := re.fullmatch(r"//\s+(\S+)\s+(\d+)", line))}
        assert counts == want


def test_emit_formats_come_from_the_emitters_table(monkeypatch, capsys):
    from pockengine.tools import pock_opt

    monkeypatch.setitem(pock_opt.EMITTERS, "counts", ("pockengine.tools.pock_opt", "op_counts"))
    assert pock_opt.main([str(MLP), "-p", "canonicalize", "--emit", "counts"]) == 0
    assert capsys.readouterr().out.startswith("// @forward: 10 ops\n")
