"""Threads across the compiled step (issue 19). pock.h's PK_PARALLEL_FOR splits the outer loops of the row kernels
(softmax, norms, cross-entropy backward, the chunked lm_head's softmax and bias gradient). PK_SPLIT gives each
thread a range of a map's outer loop (or of a max-pool's planes), run by a serial function with restrict operands. PK_REGION runs one parallel
region per GEMM K block, per convolution block (each thread packs and computes its own column panels), per
depthwise call (planes or channels, a workspace slot per thread). In every case a thread owns
whole output elements.

Built with the thresholds at zero, so every such loop is threaded even on these small programs, 20 steps at 1, 2
and 4 threads (3 for the convolution paths) give bitwise the same losses. They are within 1e-5 of the build without
OpenMP, and those are the interpreter's (or torch's). The written project threads with `make THREADS=N` /
POCK_THREADS (x86, arm64 under qemu-aarch64, an ASan build)."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess

import pytest
import programs as P
from test_project import losses_of, make_project, reference_losses

from pockengine.backends.runtime import Trainer
from pockengine.pipeline import Recipe, check_threads, compile, run

FORCE = ("-DPK_PAR_MIN=1", "-DPK_PAR_GEMM_MIN=0")  # thread every threadable loop
STEPS = 20
MODELS = {"mlp": P.mlp, "cnn": P.cnn, "attention": P.attention}


def _trainer(prog, threads: int | None, spec) -> Trainer:
    r = run(prog, Recipe("cross_entropy", *spec, True, "c"), "emit")
    art = r.target.toolchain.build(r.sources, r.target, openmp=threads is not None, extra_cflags=FORCE)
    dev = r.target.open(r.kernels, art)
    if threads is not None:
        dev.set_threads(threads)
    return Trainer(r.program, r.kernels, dev)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_losses_do_not_depend_on_threads(name):
    prog = MODELS[name]()
    spec = ("adamw", None, dict(lr=0.01, weight_decay=0.1)) if name == "attention" else ("sgd", None, dict(lr=0.05))
    batches = P.batches(prog, STEPS)
    runs = {}
    for threads in (None, 1, 2, 4):  # None: built without OpenMP
        tr = _trainer(prog, threads, spec)
        runs[threads] = [tr.step(x, y) for x, y in batches]
    assert runs[2] == runs[1] and runs[4] == runs[1]  # bitwise: each output element computed as on 1 thread
    # the build without OpenMP may vectorize a sum in another order (an outlined loop body
    # knows less about alignment): float reassociation only
    assert runs[1] == pytest.approx(runs[None], rel=1e-5)
    ref = P.trained(prog, P.ADAMW if name == "attention" else "autodiff{optimizer=sgd lr=0.05}")
    want = [float(ref.run("train_step", x, y)) for x, y in batches[:5]]
    assert runs[2][:5] == pytest.approx(want, rel=1e-4)


def test_threaded_source_marks_the_loops():
    r = run(P.attention(), Recipe("cross_entropy", "adamw", None, dict(lr=0.01), True, "c"), "emit")
    maps = re.findall(r"PK_NOINLINE static void pk_map\d+\(.*?\n}\n", r.sources["model.c"], re.S)
    assert maps and any("PK_SPLIT" in m for m in maps)
    # a threaded map is a range split over a serial function with restrict operands: no omp loop
    # (its outlined body would lose restrict and the hoisting of loop-invariant work)
    assert not any("PK_PARALLEL_FOR" in m for m in maps)
    for m in maps:
        if "PK_SPLIT" in m:
            run_fn = re.search(r"(pk_map\d+)\(", m).group(1) + "_run("
            assert run_fn in m and run_fn in r.sources["model.c"].split(m)[0]
    for stem in ("softmax", "layer_norm", "cross_entropy_backward", "gemm"):
        src = r.sources[f"kernels/{stem}.c"]
        assert "PK_PARALLEL_FOR" in src or "PK_REGION" in src, stem


def test_compile_threads_argument():
    assert check_threads(None) >= 1 and check_threads(3) == 3
    for bad in (0, -1, 2.5, True, "2"):
        with pytest.raises(ValueError, match="threads="):
            check_threads(bad)
    prog = P.mlp()
    x, y = P.batches(prog, 1)[0]
    a = compile(prog, loss="cross_entropy", optimizer="sgd", lr=0.05, threads=1).step(x, y)
    b = compile(prog, loss="cross_entropy", optimizer="sgd", lr=0.05, threads=2).step(x, y)
    assert a == b


def _forced_make(out, threads: int, extra: str = "") -> None:
    cflags = re.search(r"^CFLAGS = (.*)$", (out / "Makefile").read_text(), re.M).group(1)
    flags = f"{cflags} -fopenmp -DPK_THREADS={threads} {' '.join(FORCE)} {extra}"
    res = subprocess.run(["make", "-s", "-C", str(out), "model", f"CFLAGS={flags}", f"LDFLAGS={extra}"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]


def _model(out, *runner, env=None):
    res = subprocess.run([*runner, "./model", "6", "data.bin"], cwd=out, capture_output=True, text=True, check=False,
                         env={"PATH": "/usr/bin:/bin", **(env or {})})
    assert res.returncode == 0 and "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, res.stderr
    return losses_of(res.stdout)


def test_project_threads_and_env(tmp_path):
    out, _, batches = make_project(tmp_path, P.cnn())
    _forced_make(out, 2)
    want, _ = reference_losses(P.cnn(), batches, 6)
    two = _model(out)
    assert two == pytest.approx(want, rel=1e-4)
    assert _model(out, env={"POCK_THREADS": "3"}) == two
    res = subprocess.run(["./model", "1", "data.bin"], cwd=out, capture_output=True, text=True, check=False,
                         env={"POCK_THREADS": "zero"})
    assert res.returncode == 2 and "POCK_THREADS" in res.stderr
    assert "THREADS ?=" in (out / "Makefile").read_text()


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64") is None,
                    reason="aarch64-linux-gnu-gcc and qemu-aarch64 not installed")
def test_arm64_threaded_under_qemu(tmp_path):
    out, _, batches = make_project(tmp_path, P.cnn(), "arm64")
    _forced_make(out, 4)
    want, _ = reference_losses(P.cnn(), batches, 6)
    got = _model(out, "qemu-aarch64", "-L", "/usr/aarch64-linux-gnu")
    assert got == pytest.approx(want, rel=1e-4)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="ASan build checked on x86-64")
def test_threaded_asan_build(tmp_path):
    """Out-of-bounds or use-after-free in a threaded loop: one ASan+UBSan step at 4 threads."""
    out, _, batches = make_project(tmp_path, P.attention())
    _forced_make(out, 4, "-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all")
    assert len(_model(out, env={"ASAN_OPTIONS": "detect_leaks=0"})) == 6


def test_cli_train_threads(tmp_path, capsys):
    import numpy as np

    from pockengine.tools.driver import main as driver

    prog = P.mlp()
    prog.save(tmp_path / "mlp")
    out = tmp_path / "mlp-c"
    assert driver(["compile", str(tmp_path / "mlp"), "-o", str(out), "--lr", "0.05"]) == 0
    batches = P.batches(prog, 2)
    np.savez(tmp_path / "d.npz", x=np.concatenate([b[0] for b in batches]), y=np.concatenate([b[1] for b in batches]))
    assert driver(["train", str(out), "--data", str(tmp_path / "d.npz"), "--steps", "2", "--threads", "0"]) == 2
    assert "--threads 0" in capsys.readouterr().err
    assert driver(["train", str(out), "--data", str(tmp_path / "d.npz"), "--steps", "2", "--threads", "2"]) == 0
    assert "-fopenmp" in subprocess.run(["make", "-n", "-B", "-C", str(out), "model", "OPENMP=1"], capture_output=True,
                                        text=True, check=False).stdout


_FORK = r"""
import multiprocessing as mp, sys, warnings
sys.path[:0] = [{tests!r}, {passes!r}]
import programs as P
from test_threads import _trainer
from pockengine.pipeline import check_threads

prog = P.attention()
spec = ("sgd", None, dict(lr=0.05))
batches = P.batches(prog, 3)
parent = [_trainer(prog, 2, spec).step(x, y) for x, y in batches]  # libgomp's threads now run


def child(q):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        q.put((check_threads(None), check_threads(2), len(w),
               [_trainer(prog, check_threads(None), spec).step(x, y) for x, y in batches]))


q = mp.get_context("fork").Queue()
p = mp.get_context("fork").Process(target=child, args=(q,))
p.start()
p.join(120)
assert p.exitcode == 0, f"forked child hung or died (exit {{p.exitcode}})"
default, explicit, warned, losses = q.get(timeout=5)
assert (default, explicit, warned) == (1, 1, 1), (default, explicit, warned)
assert losses == parent, (losses, parent)
print("ok")
"""


def test_a_process_forked_after_a_threaded_step_trains_on_one_thread(tmp_path):
    """libgomp hangs in a child forked after its threads started (a search's process pool, a
    DataLoader-style worker): such a child runs on one thread, with the same losses."""
    import sys
    from pathlib import Path

    script = tmp_path / "fork.py"
    here = Path(__file__).parent
    script.write_text(_FORK.format(tests=str(here), passes=str(here.parent / "passes")))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]


def _conv_net():
    """Convolutions on each path of conv2d*.c (direct and buffered output, two K blocks, two dcol
    row blocks, strided), depthwise ones on the flat and the padded-plane path (depthwise.c:
    planes per thread slot), a max-pool and its gradient, a 1×1 convolution and a residual."""
    import torch
    import torch.nn as nn

    from pockengine.frontends import from_torch

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 32, 3, padding=1)
            self.pool = nn.MaxPool2d(3, 2, 1)
            self.c2 = nn.Conv2d(32, 32, 3, padding=1)  # K = 288: two K blocks, two dcol row blocks
            self.c3 = nn.Conv2d(32, 16, 3, stride=2, padding=1)  # 3×3 outputs: the buffered block
            self.c4 = nn.Conv2d(16, 16, 1)
            self.d1 = nn.Conv2d(32, 32, 3, padding=1, groups=32)  # flat path
            self.d2 = nn.Conv2d(32, 32, 3, stride=3, padding=1, groups=32)  # padded planes
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            h = self.pool(torch.relu(self.c1(x)))
            h = torch.relu(self.c2(h)) + h
            h = torch.relu(self.d1(h)) + self.d2(h).mean((2, 3), keepdim=True)
            h = torch.relu(self.c3(h))
            return self.fc((self.c4(h) + h).mean((2, 3)))

    torch.manual_seed(0)
    m = Net().eval()
    x = torch.randn(4, 3, 12, 12)
    return m, x, from_torch(m, (x,))


def test_conv_paths_threaded_bitwise_and_like_torch():
    import numpy as np
    import torch
    import torch.nn.functional as F

    m, x, prog = _conv_net()
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal(x.shape).astype(np.float32), rng.integers(0, 5, 4)) for _ in range(4)]
    runs = {}
    for t in (1, 2, 3):  # every threadable loop forced on (FORCE): 3 threads split panels unevenly
        tr = _trainer(prog, t, ("sgd", None, dict(lr=0.05)))
        runs[t] = [tr.step(a, y) for a, y in batches]
    assert runs[2] == runs[1] and runs[3] == runs[1]
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    want = []
    for a, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(m(torch.from_numpy(a)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        want.append(float(loss.detach()))
    assert runs[1] == pytest.approx(want, rel=1e-4)


def test_norm_gains_threaded_bitwise():
    """The layer/RMS-norm γ (and β) gradients: threads own 16-column strips of dγ, each recomputing
    the row statistics; rows of 40 (a strip split unevenly at 3 threads)."""
    import numpy as np
    import sparse_models as M
    from pockengine.ir.ops import linalg as L
    from pockengine.ir.ops import norm as N

    n = M.Net((8, 40), 0)
    g = n.param("rms.weight", (40,), "norm", 1 + 0.1 * n.rng.standard_normal(40))
    h = n.op(N.RmsNormOp.build(n.op(L.LinearOp.build(n.x, n.param("fc.weight", (40, 40)))), g))
    g2 = n.param("ln.weight", (40,), "norm", 1 + 0.1 * n.rng.standard_normal(40))
    b2 = n.param("ln.bias", (40,), "bias", 0.1 * n.rng.standard_normal(40))
    n.x = n.op(L.LinearOp.build(n.op(N.LayerNormOp.build(h, g2, b2)), n.param("head.weight", (3, 40))))
    prog = n.program()
    batches = P.batches(prog, 6)
    runs = {}
    for t in (1, 2, 3):
        tr = _trainer(prog, t, ("sgd", None, dict(lr=0.05)))
        runs[t] = [tr.step(x, y) for x, y in batches]
    assert runs[2] == runs[1] and runs[3] == runs[1]
    ref = P.trained(prog, "autodiff{optimizer=sgd lr=0.05}")
    want = [float(ref.run("train_step", x, y)) for x, y in batches]
    assert runs[1] == pytest.approx(want, rel=1e-4)
    assert np.isfinite(runs[1]).all()
