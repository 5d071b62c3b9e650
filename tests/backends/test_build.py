"""The library build (backends/build.py): the precompiled prefix and the separately compiled
convolutions change how long a build takes, never what the step computes."""

import subprocess

import numpy as np
import programs as P
import pytest
from pockengine.backends.c import build as B
from pockengine.backends.runtime import Trainer
from pockengine.backends import get_target
from pockengine.backends.lower_to_kernels import lower_program

CALLS = """static const long pk_shape0[] = {1, 2};
static const long pk_shape1[] = {3, 4};
static const float pk_const0[1] PK_ALIGNED(64) = {0.5f};
    f(pk_shape0, (const float *)(A + 0), g(1, 2), NULL);
    f(pk_shape1, (const float *)(A + 64), g(1, 2), NULL);
    h(pk_shape0, (const float *)(A + 0));
    h(pk_shape1, (const float *)(A + 64));
    k(pk_shape1, (float *)(P + 8));
    u(pk_const0, 1);
    u(pk_const0, 2);
"""


@pytest.mark.parametrize("fn, specialized", [("f", True), ("h", False), ("k", True), ("u", True), ("none", False)],
                         ids=["same-NULL", "no-common-constant", "called-once", "same-table", "not-called"])
def test_a_kernel_stays_with_the_model_where_gcc_specializes_it(fn, specialized):
    assert B.specialized_in_model(CALLS, fn) is specialized


def test_call_args_split_at_top_level_commas():
    text = "f(pk_shape0, (const float *)(A + 0), g(1, 2));"
    assert B._call_args(text, text.index("(") + 1) == ["pk_shape0", "(const float *)(A + 0)", "g(1, 2)"]


def test_prefix_and_separate_convolutions_train_like_the_interpreter():
    progs = [P.trained(P.cnn(batch=b), P.SGD) for b in (2, 3)]
    kps = [lower_program(p) for p in progs]
    libs = [B.build_library(kp, get_target("c")) for kp in kps]  # the second one makes the prefix
    cache = B.cache_dir()  # the session's (conftest): made here or by earlier tests
    assert list(cache.glob("kobj-*/kernels.o")) and list(cache.glob("pch-*/pk_prefix.h.gch"))
    for prog, kp, lib in zip(progs, kps, libs):
        exported = subprocess.run(["nm", "-D", str(lib)], capture_output=True, text=True, check=True).stdout
        assert "pkx_pk_conv2d" in exported  # the conv forward comes from the shared object
        trainer, ref = Trainer(prog.copy(), kp, lib), prog.copy()
        for x, y in P.batches(prog, 3):
            assert trainer.step(x, y) == pytest.approx(float(ref.run("train_step", x, y)), rel=1e-4, abs=1e-5)
        for name, want in ref.weights.items():
            np.testing.assert_allclose(trainer.parameters()[name], want, rtol=1e-4, atol=1e-5, err_msg=name)
