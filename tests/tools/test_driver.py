"""The `pockengine` driver: --version, the subcommand table, one-line user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pockengine
from pockengine.tools import driver

REPO = Path(__file__).resolve().parents[2]
POCKENGINE = Path(sys.executable).with_name("pockengine")


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(POCKENGINE), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_version_and_help_start_without_loading_xdsl():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"pockengine {pockengine.__version__} (xdsl 0.74")
    probe = (
        "import sys; from pockengine.tools import driver; driver.build_parser(['--help']); "
        "print('xdsl' in sys.modules)"
    )
    probed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert probed.stdout.strip() == "False"


def test_opt_subcommand_runs_pock_opt_and_bad_input_exits_2():
    r = run("opt", REPO / "examples" / "mlp.mlir", "-p", "canonicalize")
    assert r.returncode == 0 and "train.linear" in r.stdout and "%w1b" not in r.stdout
    r = run("opt", REPO / "missing.mlir")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = run()
    assert r.returncode == 2 and "opt" in r.stderr  # no command: usage listing the commands
    r = run("no-such-command")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_a_new_command_is_one_table_entry_and_user_errors_are_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "fake_cmd.py").write_text(
        "from pockengine.tools import UserError\n"
        "def add_arguments(p):\n"
        "    p.add_argument('name')\n    p.add_argument('--loud', action='store_true')\n"
        "def run(args):\n"
        "    if args.name == 'bad':\n        raise UserError('no model called bad\\n(more detail)')\n"
        "    if args.name == 'gone':\n        open('/nonexistent/file')\n"
        "    if args.name == 'bug':\n        raise RuntimeError('a bug')\n"
        "    print('hello', args.name, args.loud)\n    return 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(driver.COMMANDS, "greet", driver.Command("fake_cmd", "say hello"))
    assert driver.main(["greet", "world", "--loud"]) == 0
    assert capsys.readouterr().out == "hello world True\n"
    assert driver.main(["greet", "bad"]) == 2
    assert capsys.readouterr().err == "pockengine greet: error: no model called bad\n"
    assert driver.main(["greet", "gone"]) == 2
    assert "No such file" in capsys.readouterr().err
    try:  # a bug is not a user error: it keeps its traceback
        driver.main(["greet", "bug"])
        raise AssertionError("RuntimeError swallowed")
    except RuntimeError:
        pass


def test_parse_errors_from_a_command_are_located_on_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "load_cmd.py").write_text(
        "def add_arguments(p):\n    p.add_argument('path')\n"
        "def run(args):\n    from pockengine.ir.program import parse_module\n"
        "    parse_module(open(args.path).read(), args.path)\n    return 0\n"
    )
    bad = tmp_path / "bad.mlir"
    bad.write_text("builtin.module {\n  %x = train.relu %x, : tensor<2xf32>\n}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(driver.COMMANDS, "load", driver.Command("load_cmd", "load a program"))
    assert driver.main(["load", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"pockengine load: error: {bad}:2:23: operand expected\n"
