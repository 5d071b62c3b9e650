"""The opencl target trains for real on PoCL (the CPU OpenCL implementation): 20 steps of the
MLP, the CNN and the attention block, full and sparse, give the host C build's losses and
parameters within 1e-4; `pockengine.compile(target="opencl")` returns a Trainer with the C
target's API; `pockengine compile --target opencl` writes a project that `make` builds and
that trains from the same weights and data files."""

import os
import re
import subprocess
import tempfile

import numpy as np
import programs as P
import pytest
from pockengine.backends import get_target
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.backends.project import read_weights, write_data, write_project
from pockengine.backends.runtime import Trainer
from pockengine.passes import run_pipeline
from targets import needs

# PoCL compiles each program with LLVM (~1.5 s) and caches it here, not in $HOME
os.environ.setdefault("POCL_CACHE_DIR", tempfile.mkdtemp(prefix="pocl-cache-"))


pytestmark = needs("opencl")

SPARSE = {"mlp": f'{P.ADAMW},sparse-backprop{{scheme="{P.MLP_SCHEME}"}},dead-gradient-elimination',
          "cnn": f'{P.SGD},sparse-backprop{{scheme="{P.CNN_SCHEME}"}},dead-gradient-elimination',
          "attention": f'{P.SGD},sparse-backprop{{scheme="default frozen; ffn.*: full; ln.*: full; classifier.*: full"}},'
                       "dead-gradient-elimination"}


def trainer_for(prog, target: str) -> Trainer:
    tgt = get_target(target)
    kp = lower_program(prog, library=tgt.library)
    return Trainer(prog.copy(), kp, tgt.load(kp))


@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "attention"])
def test_trains_like_the_host_c_build(name, sparse):
    prog = getattr(P, name)()
    trained = P.trained(prog, SPARSE[name] if sparse else P.SGD)
    run_pipeline(trained, "operator-reordering,fusion")
    gpu, host = trainer_for(trained, "opencl"), trainer_for(trained, "c")
    for i, (x, y) in enumerate(P.batches(prog, 20)):
        got, want = gpu.step(x, y), host.step(x, y)
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6), f"loss of step {i}"
    want = host.parameters()
    for k, v in gpu.parameters().items():
        np.testing.assert_allclose(v, want[k], rtol=1e-4, atol=1e-5, err_msg=k)
    x = P.batches(prog, 1, seed=5)[0][0]
    np.testing.assert_allclose(gpu.forward(x), host.forward(x), rtol=1e-4, atol=1e-5)
    gpu.close()


def test_compile_api_returns_a_trainer(tmp_path):
    import pockengine

    prog = P.mlp()
    trainer = pockengine.compile(prog, loss="cross_entropy", optimizer="sgd", lr=0.05, momentum=0.9, target="opencl")
    ref = P.trained(prog, P.SGD)
    for x, y in P.batches(prog, 3):
        assert trainer.step(x, y) == pytest.approx(float(ref.run("train_step", x, y)), rel=1e-4)
    params = trainer.parameters()
    for k, v in ref.weights.items():  # the device's parameters, read back on request
        np.testing.assert_allclose(params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)
    trainer.load_parameters({"fc1.bias": np.zeros(10, np.float32)})
    assert not trainer.parameters()["fc1.bias"].any()
    assert trainer.memory["arena"] > 0
    trainer.save(tmp_path / "saved")
    from pockengine import Program

    assert not Program.load(tmp_path / "saved").weights["fc1.bias"].any()


def test_project_builds_with_make_and_trains(tmp_path):
    prog = P.cnn()
    trained = P.trained(prog, P.SGD)
    run_pipeline(trained, "operator-reordering,fusion")
    tgt = get_target("opencl")
    kp = lower_program(trained, library=tgt.library)
    out = write_project(tmp_path / "proj", kp, tgt, trained.weights)
    batches = P.batches(prog, 3)
    write_data(out / "data.bin", [list(b) for b in batches], [v.dtype for v in kp.functions["train_step"].inputs])
    res = subprocess.run(["make", "-s", "-C", str(out), "model"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run(["./model", "6", "data.bin", "-o", "trained.bin"], cwd=out, capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    losses = [float(m) for m in re.findall(r"^step \d+ loss (\S+)$", res.stdout, re.MULTILINE)]
    ref = P.trained(prog, P.SGD)
    want = [float(ref.run("train_step", *batches[i % 3])) for i in range(6)]
    assert losses == pytest.approx(want, rel=1e-4)
    back = read_weights(out / "trained.bin", kp)  # read back from the device before saving
    for k, v in ref.weights.items():
        np.testing.assert_allclose(back[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_cli_compile_target_opencl(tmp_path):
    from pockengine.tools.driver import main as driver

    prog = P.mlp()
    prog.save(tmp_path / "mlp")
    out = tmp_path / "mlp-opencl"
    assert driver(["compile", str(tmp_path / "mlp"), "--target", "opencl", "-o", str(out), "--lr", "0.05"]) == 0
    assert {"Makefile", "main.c", "model.c", "model.h", "host.c", "kernels.cl", "weights.bin"} <= {
        p.name for p in out.iterdir()}
    assert "__kernel void pk_gemm(" in (out / "kernels.cl").read_text()
