"""Bad input through the CLIs' one error boundary (pockengine.errors): exit 2, one located line,
never a traceback (issue 12 §Tracebacks). Each case is an example of a class: schemes, IR text,
program directories and weights, output paths, data files, a full disk."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import pytest
from pockengine import Program
from pockengine.tools import driver, pock_opt
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-input")
    prog = Program.parse((REPO / "examples" / "mlp.mlir").read_text())
    rng = np.random.default_rng(0)
    prog.weights = {p.sym_name.data: rng.standard_normal(p.type.get_shape()).astype(np.float32)
                    for p in prog.params()}
    prog.save(d / "model")
    return d / "model"


def one_line_error(capsys, rc: int, *contains: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for c in contains:
        assert c in err, err
    return err


SCHEMES = {
    "unknown layer": ("default frozen\nnope.*: full\n", "s.pock:2:1:", "matches no parameter"),
    "ratio 0": ("default frozen\nfc1.weight: ratio 0\n", "s.pock:2:", "outside (0, 1]"),
    "ratio -1": ("default frozen\nfc1.weight: ratio -1\n", "s.pock:2:", "unexpected '-1'"),
    "ratio 2": ("default frozen\nfc1.weight: ratio 2\n", "s.pock:2:", "outside (0, 1]"),
    "ratio nan": ("default frozen\nfc1.weight: ratio nan\n", "s.pock:2:", "unexpected 'nan'"),
    "syntax": ("default frozen\nfc1.weight: rati 1/2\n", "s.pock:2:", "unexpected 'rati'"),
}


@pytest.mark.parametrize("case", sorted(SCHEMES))
def test_bad_scheme_is_one_located_line(case, model_dir, tmp_path, capsys):
    text, *contains = SCHEMES[case]
    (tmp_path / "s.pock").write_text(text)
    rc = driver.main(["compile", str(model_dir), "--scheme", str(tmp_path / "s.pock"), "-o", str(tmp_path / "b")])
    one_line_error(capsys, rc, *contains)
    assert not (tmp_path / "b").exists()


def test_missing_scheme_file(model_dir, tmp_path, capsys):
    rc = driver.main(["compile", str(model_dir), "--scheme", str(tmp_path / "nope.pock"), "-o", str(tmp_path / "b")])
    one_line_error(capsys, rc, "nope.pock: no such scheme file")


def _ir(tmp_path, body: str) -> str:
    path = tmp_path / "in.mlir"
    path.write_text(body)
    return str(path)


RELU = """func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = train.relu %x {ATTR} : tensor<4xf32>
  func.return %y : tensor<4xf32>
}
"""


@pytest.mark.parametrize("attr, ok", [("alpha = 3.0", False), ("pock.note = 3.0", True), ("mem = \"arena\"", True)])
def test_unknown_attributes_on_ops_are_rejected(tmp_path, capsys, attr, ok):
    rc = pock_opt.main([_ir(tmp_path, RELU.replace("ATTR", attr))])
    err = capsys.readouterr().err
    if ok:
        assert rc == 0, err
    else:
        assert rc == 2 and "in.mlir:2:3: error: train.relu: unknown attribute 'alpha'" in err, err


def test_integer_attribute_beyond_i64(tmp_path, capsys):
    ir = """func.func @forward(%x: tensor<4xf32>) -> tensor<2x2xf32> {
  %y = train.reshape %x {shape = [99999999999999999999, 2]} : (tensor<4xf32>) -> tensor<2x2xf32>
  func.return %y : tensor<2x2xf32>
}
"""
    rc = pock_opt.main([_ir(tmp_path, ir)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "out of range" in err, err


@pytest.mark.parametrize("depth", [150, 5000])
def test_deeply_nested_ir_is_a_located_error(tmp_path, capsys, depth, model_dir):
    ir = RELU.replace("ATTR", "pock.a = " + "[" * depth + "]" * depth)
    rc = pock_opt.main([_ir(tmp_path, ir)])
    err = capsys.readouterr().err
    assert rc == 2 and "in.mlir:2:" in err and "nested too deeply to parse" in err and "Traceback" not in err
    # the same text as a program directory's model.mlir, through `pockengine compile`
    d = tmp_path / "deep"
    d.mkdir()
    (d / "model.mlir").write_text(ir)
    one_line_error(capsys, driver.main(["compile", str(d), "-o", str(tmp_path / "b")]),
                   "model.mlir:2:", "nested too deeply")


def test_moderate_nesting_still_parses(tmp_path, capsys):
    assert pock_opt.main([_ir(tmp_path, RELU.replace("ATTR", "pock.a = " + "[" * 40 + "]" * 40))]) == 0


def test_dev_zero_and_binary_input_are_refused_quickly(tmp_path, capsys):
    one_line_error(capsys, pock_opt.main(["/dev/zero"]), "/dev/zero: binary data")
    (tmp_path / "b.mlir").write_bytes(b"func.func @f() {\xff\xfe}")
    one_line_error(capsys, pock_opt.main([str(tmp_path / "b.mlir")]), "b.mlir:1: not UTF-8")


def test_ir_size_is_bounded(tmp_path, capsys, monkeypatch):
    from pockengine.ir import program

    monkeypatch.setattr(program, "MAX_IR_BYTES", 64)
    one_line_error(capsys, pock_opt.main([_ir(tmp_path, RELU.replace("ATTR", ""))]), "larger than 64 bytes")


def test_autodiff_without_parameters(tmp_path, capsys):
    ir = RELU.replace(" {ATTR}", "").replace("tensor<4xf32>", "tensor<4x3xf32>")
    rc = pock_opt.main([_ir(tmp_path, ir), "-p", "autodiff"])
    err = capsys.readouterr().err
    assert rc == 2 and "nothing to train" in err and "Traceback" not in err, err


def _broken_copy(model_dir, tmp_path, name, edit) -> str:
    d = tmp_path / name
    shutil.copytree(model_dir, d)
    edit(d / "weights.safetensors")
    return str(d)


def _reweigh(path, change):
    w = load_file(str(path))
    save_file(change(w), str(path))


WEIGHTS = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "not a readable safetensors"),
    "garbage": (lambda p: p.write_bytes(b"\x07" * 300), "not a readable safetensors"),
    "empty": (lambda p: p.write_bytes(b""), "not a readable safetensors"),
    "wrong shape": (lambda p: _reweigh(p, lambda w: {**w, "fc1.weight": np.zeros((3, 3), np.float32)}),
                    "tensor 'fc1.weight' has shape 3x3, the program declares 32x16"),
    "wrong dtype": (lambda p: _reweigh(p, lambda w: {**w, "fc1.weight": w["fc1.weight"].astype(np.float64)}),
                    "tensor 'fc1.weight' is float64, the program declares f32"),
}


@pytest.mark.parametrize("case", sorted(WEIGHTS))
def test_bad_weights_are_refused_on_load(case, model_dir, tmp_path, capsys):
    edit, message = WEIGHTS[case]
    d = _broken_copy(model_dir, tmp_path, "m", edit)
    one_line_error(capsys, driver.main(["compile", d, "-o", str(tmp_path / "b")]),
                   "weights.safetensors: ", message)
    from pockengine.ir.program import ProgramError

    with pytest.raises(ProgramError, match="weights.safetensors"):
        Program.load(d)


def test_output_paths_that_are_not_projects(model_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    one_line_error(capsys, driver.main(["compile", str(model_dir), "-o", str(tmp_path / "file")]))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    one_line_error(capsys, driver.main(["compile", str(model_dir), "-o", str(tmp_path / "notes")]))
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_a_full_disk_is_a_message(model_dir, tmp_path, capsys, monkeypatch):
    from pockengine.backends import project

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "b" / "weights.bin"))

    monkeypatch.setattr(project, "write_project", full)
    one_line_error(capsys, driver.main(["compile", str(model_dir), "-o", str(tmp_path / "b")]),
                   "weights.bin: no space left on device")


@pytest.fixture(scope="module")
def project_dir(model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("proj") / "p"
    assert driver.main(["compile", str(model_dir), "-o", str(out)]) == 0
    return out


DATA = {
    "not an npz": (lambda p: p.write_text("hello"), "not an .npz file"),
    "objects": (lambda p: np.savez(p, x=np.array([1, "a"], dtype=object), y=np.arange(2)), "holds Python objects"),
    "string labels": (lambda p: np.savez(p, x=np.zeros((8, 16), np.float32), y=np.array(["a"] * 8)),
                      "array 'y' holds strings"),
    "missing labels": (lambda p: np.savez(p, x=np.zeros((8, 16), np.float32)), "missing arrays y"),
}


@pytest.mark.parametrize("case", sorted(DATA))
def test_bad_data_for_train(case, project_dir, tmp_path, capsys):
    make, message = DATA[case]
    make(tmp_path / "d.npz")
    capsys.readouterr()
    one_line_error(capsys, driver.main(["train", str(project_dir), "--data", str(tmp_path / "d.npz"), "--steps", "1"]),
                   "d.npz: ", message)


def test_bad_input_from_a_subprocess_has_no_traceback(tmp_path):
    import subprocess
    import sys

    (tmp_path / "s.pock").write_text("default frozen\nfc1.weight: ratio 2\n")
    r = subprocess.run([str(Path(sys.executable).with_name("pock-opt")), "/dev/zero"], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
