"""The emitted C project: `pockengine compile` writes it, its Makefile builds it, main.c trains
on a data file and prints the losses the interpreter computes; the arm64 build under
qemu-aarch64 prints the same; an ASan/UBSan build runs clean; model-given names cannot
change the program."""

import platform
import re
import shutil
import subprocess

import numpy as np
import programs as P
import pytest
from pockengine import Program
from pockengine.backends.project import read_weights, write_data, write_project
from pockengine.backends import get_target
from pockengine.passes import run_pipeline
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.tools.driver import main as driver

STEPS = 8


def losses_of(output: str) -> list[float]:
    return [float(m) for m in re.findall(r"^step \d+ loss (\S+)$", output, re.MULTILINE)]


def reference_losses(prog, batches, steps=STEPS):
    ref = P.trained(prog, P.SGD)
    return [float(ref.run("train_step", *batches[i % len(batches)])) for i in range(steps)], ref


def make_project(tmp_path, prog, target="c"):
    trained = P.trained(prog, P.SGD)
    run_pipeline(trained, "operator-reordering,fusion")
    kp = lower_program(trained)
    out = write_project(tmp_path / f"proj-{target}", kp, get_target(target), trained.weights)
    batches = P.batches(prog, 3)
    write_data(out / "data.bin", [list(b) for b in batches], [v.dtype for v in kp.functions["train_step"].inputs])
    return out, kp, batches


def run_make(project, *extra):
    res = subprocess.run(["make", "-s", "-C", str(project), "model", *extra], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]


def test_cli_compile_then_train(tmp_path, capsys):
    prog = P.cnn()
    prog.save(tmp_path / "cnn")
    out = tmp_path / "cnn-c"
    assert driver(["compile", str(tmp_path / "cnn"), "-o", str(out), "--lr", "0.05", "--momentum", "0.9"]) == 0
    assert (out / "Makefile").is_file() and (out / "main.c").is_file() and (out / "weights.bin").is_file()
    kernels = sorted(p.name for p in (out / "kernels").iterdir())
    assert "conv2d.c" in kernels and "layer_norm.c" not in kernels  # only the kernels it uses
    batches = P.batches(prog, 2)
    np.savez(tmp_path / "data.npz", x=np.concatenate([b[0] for b in batches]), y=np.concatenate([b[1] for b in batches]))
    capsys.readouterr()
    assert driver(["train", str(out), "--data", str(tmp_path / "data.npz"), "--steps", "4",
                   "-o", str(tmp_path / "trained")]) == 0
    want, ref = reference_losses(prog, batches, 4)
    got = subprocess.run([str(out / "model"), "4", "data.bin"], cwd=out, capture_output=True, text=True, check=False)
    assert losses_of(got.stdout) == pytest.approx(want, rel=1e-4)
    back = Program.load(tmp_path / "trained")
    for k, v in ref.weights.items():
        np.testing.assert_allclose(back.weights[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert driver(["compile", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err
    assert driver(["train", str(tmp_path), "--data", "x.npz"]) == 2


def test_main_trains_and_saves_weights(tmp_path):
    out, kp, batches = make_project(tmp_path, P.mlp())
    run_make(out)
    res = subprocess.run(["./model", str(STEPS), "data.bin", "-o", "trained.bin"], cwd=out, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr
    want, ref = reference_losses(P.mlp(), batches)
    assert losses_of(res.stdout) == pytest.approx(want, rel=1e-4)
    trained = read_weights(out / "trained.bin", kp)
    for k, v in ref.weights.items():
        np.testing.assert_allclose(trained[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_main_rejects_bad_files(tmp_path):
    out, _, _ = make_project(tmp_path, P.mlp())
    run_make(out)
    (out / "bad.bin").write_bytes(b"nonsense")
    res = subprocess.run(["./model", "1", "bad.bin"], cwd=out, capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "not a data file" in res.stderr


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64") is None,
                    reason="aarch64-linux-gnu-gcc and qemu-aarch64 not installed (apt: gcc-aarch64-linux-gnu qemu-user)")
def test_arm64_under_qemu_equals_host(tmp_path):
    prog = P.cnn()
    host, _, batches = make_project(tmp_path, prog, "c")
    arm, _, _ = make_project(tmp_path, prog, "arm64")
    run_make(host)
    run_make(arm)
    assert "ARM aarch64" in subprocess.run(["file", str(arm / "model")], capture_output=True, text=True, check=False).stdout \
        or shutil.which("file") is None
    h = subprocess.run(["./model", str(STEPS), "data.bin"], cwd=host, capture_output=True, text=True, check=False)
    a = subprocess.run(["qemu-aarch64", "./model", str(STEPS), "data.bin"], cwd=arm, capture_output=True, text=True, check=False)
    assert a.returncode == 0, a.stderr
    want, _ = reference_losses(prog, batches)
    assert losses_of(a.stdout) == pytest.approx(losses_of(h.stdout), rel=1e-5)
    assert losses_of(a.stdout) == pytest.approx(want, rel=1e-4)


def test_sanitizers_run_clean(tmp_path):
    out, _, batches = make_project(tmp_path, P.cnn())
    arch = " -march=native" if platform.machine() == "x86_64" else ""  # the AVX2 kernels too
    flags = "-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" + arch
    run_make(out, f"CFLAGS={flags}", f"LDFLAGS={flags}")
    res = subprocess.run(["./model", "3", "data.bin"], cwd=out, capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "runtime error" not in res.stderr and "Sanitizer" not in res.stderr, res.stderr
    want, _ = reference_losses(P.cnn(), batches, 3)
    assert losses_of(res.stdout) == pytest.approx(want, rel=1e-4)


def test_model_names_cannot_change_the_program(tmp_path):
    """A parameter named like C code only ever reaches comments, filtered."""
    evil = 'x"; system("touch pwned"); /* */ #include <stdlib.h>\n'
    plain, named = P.mlp(), P.mlp()
    text = str(named.module).replace("@fc2.weight", '@"' + evil.replace('"', '\\"').replace("\n", "\\n") + '"')
    named = Program.parse(text, {k if k != "fc2.weight" else evil: v for k, v in named.weights.items()})
    sources = []
    for prog in (plain, named):
        trained = P.trained(prog, P.SGD)
        kp = lower_program(trained)
        sources.append(get_target("c").sources(kp)["model.c"])
    assert "system(" not in sources[1] and "pwned" not in sources[1]
    strip = lambda s: re.sub(r"/\*.*?\*/", "", s)
    assert strip(sources[0]) == strip(sources[1])


def test_openmp_build_trains_the_same(tmp_path):
    """`make OPENMP=1` threads the GEMM's column panels; the losses stay the interpreter's."""
    out, _, batches = make_project(tmp_path, P.mlp())
    run_make(out, "OPENMP=1")
    res = subprocess.run(["./model", "4", "data.bin"], cwd=out, capture_output=True, text=True, check=False,
                         env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    want, _ = reference_losses(P.mlp(), batches, 4)
    assert losses_of(res.stdout) == pytest.approx(want, rel=1e-4)
