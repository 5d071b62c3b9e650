"""The cuda target, checked without a GPU: the generated program of several models compiles
with nvcc for sm_90 (H100) and sm_87 (Jetson Orin) with no warning; every kernel's CUDA and
OpenCL spellings come from one description (same body, only the language's own lines
differ), so what PoCL checks of the OpenCL spelling holds for the CUDA one; the cuBLAS
calls that replace GEMM launches address the same elements as the own GEMM."""

import shutil

import numpy as np
import programs as P
import pytest
from pockengine.backends import get_target
from pockengine.backends.cuda.blas import operand
from pockengine.backends.cuda.language import CUDALanguage
from pockengine.backends.gpu import gemm as G
from pockengine.backends.gpu import kernels as K
from pockengine.backends.gpu.language import body_of
from pockengine.backends.gpu.schedule import build_schedule
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.backends.opencl.language import OpenCLLanguage
from pockengine.passes import run_pipeline

SPARSE_CNN = f'{P.SGD},sparse-backprop{{scheme="{P.CNN_SCHEME}"}},dead-gradient-elimination'
MODELS = {"mlp-adamw": (P.mlp, P.ADAMW), "cnn-sparse": (P.cnn, SPARSE_CNN), "attention": (P.attention, P.SGD)}


def kernel_program(name, target="cuda"):
    make, spec = MODELS[name]
    prog = P.trained(make(), spec)
    run_pipeline(prog, "operator-reordering,fusion")
    return lower_program(prog, library=get_target(target).library)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed (the CUDA toolkit)")
@pytest.mark.parametrize("name", list(MODELS))
def test_generated_cuda_compiles_for_h100_and_orin_without_warnings(name, tmp_path):
    tgt = get_target("cuda")
    files = tgt.sources(kernel_program(name))
    rc, messages = tgt.toolchain.compile_only(files, ("90", "87"), tmp_path)
    assert rc == 0 and "warning" not in messages.lower(), messages[-3000:]


def test_both_spellings_come_from_one_description():
    cl, cu = OpenCLLanguage(), CUDALanguage()
    kernels = list(K.LIBRARY) + [f.kernel() for f in G.GEMM_FORMS]
    for name in MODELS:
        kernels += build_schedule(kernel_program(name, "opencl")).kernels
    assert len({k.name for k in kernels}) > 40
    for k in kernels:
        a, b = cl.render(k), cu.render(k)
        assert a != b and body_of(a) == body_of(b), k.name
        assert "__kernel void" in a and "__global__" in b
        for line in k.body.strip().splitlines():  # the description's body, verbatim in both
            assert line.strip() in a and line.strip() in b, (k.name, line)
    # and the program texts share the prelude's helpers
    assert cl.prelude().count("PK_FN") == cu.prelude().count("PK_FN")


@pytest.mark.parametrize("rows,cols,rs,cs,want", [
    (4, 6, 6, 1, (0, 6)),      # row-major: its transpose is column-major
    (4, 6, 1, 4, (1, 4)),      # column-major: transposed
    (4, 6, 8, 1, (0, 8)),      # padded rows
    (1, 6, 0, 1, (0, 6)),      # one row: any row stride
    (4, 1, 1, 0, (0, 1)),      # one column
    (4, 6, 12, 2, None),       # neither stride 1: the own GEMM
])
def test_cublas_operand_views(rows, cols, rs, cs, want):
    assert operand(rows, cols, rs, cs) == want
    if want is not None:  # the column-major matrix cuBLAS reads is X's transpose, element for element
        x = np.arange(200, dtype=np.float32)
        X = np.array([[x[r * rs + c * cs] for c in range(cols)] for r in range(rows)])
        trans, ld = want
        if trans == 0:  # Xᵀ stored column-major (cols × rows, ld)
            got = np.array([[x[c + r * ld] for r in range(rows)] for c in range(cols)])
        else:  # X stored column-major (rows × cols, ld), read transposed
            got = np.array([[x[r + c * ld] for c in range(cols)] for r in range(rows)]).T
        np.testing.assert_array_equal(got, X.T)


def test_cuda_project_files(tmp_path):
    from pockengine.backends.project import write_project

    tgt = get_target("cuda")
    kp = kernel_program("mlp-adamw")
    out = write_project(tmp_path / "proj", kp, tgt)
    text = (out / "model.cu").read_text()
    assert "cudaGraphLaunch" in (out / "host.cu").read_text() and "pk_blas" in text
    assert "ARCH ?= 90" in (out / "Makefile").read_text()
    assert "pock_device_read_params(P)" in (out / "main.c").read_text()
    assert "double" not in text.split("static const pk_arg")[0]  # no double on the device


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed (the CUDA toolkit)")
def test_cuda_trainer_builds_loads_and_runs_or_says_why():
    """The host library links and loads here; without a GPU, opening the device is a clear
    error (no crash); with one, the first steps equal the host C build."""
    from pockengine.backends.runtime import Trainer

    make, spec = MODELS["mlp-adamw"]
    prog = P.trained(make(), spec)
    run_pipeline(prog, "operator-reordering,fusion")
    tgt = get_target("cuda")
    kp = lower_program(prog, library=tgt.library)
    artifact = tgt.build(kp)
    try:
        device = tgt.open(kp, artifact)
    except RuntimeError as e:
        assert "no CUDA device" in str(e)
        return
    gpu = Trainer(prog.copy(), kp, device)
    ckp = lower_program(prog, library=get_target("c").library)
    host = Trainer(prog.copy(), ckp, get_target("c").load(ckp))
    for x, y in P.batches(make(), 3):
        assert gpu.step(x, y) == pytest.approx(host.step(x, y), rel=1e-4)
