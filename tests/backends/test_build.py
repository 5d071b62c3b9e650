"""The library build (backends/build.py): the precompiled prefix and the separately compiled
convolutions change how long a build takes, never what the step computes."""

import subprocess

import numpy as np
import programs as P
import pytest
from pockengine.backends import get_target
from pockengine.backends.c import build as B
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.backends.runtime import Trainer

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


# --- the kernel object: built beside model.c, reused, rebuilt when anything it is made of changes


def _cnn(batch: int):
    prog = P.trained(P.cnn(batch=batch), P.SGD)
    return prog, lower_program(prog)


def _trains_like_the_interpreter(prog, kp, lib) -> None:
    trainer, ref = Trainer(prog.copy(), kp, lib), prog.copy()
    for x, y in P.batches(prog, 2):
        assert trainer.step(x, y) == pytest.approx(float(ref.run("train_step", x, y)), rel=1e-4, abs=1e-5)


def _compiles(monkeypatch) -> list[tuple[str, ...]]:
    """What the compiler makes in the builds that follow (the file each command writes)."""
    seen = []
    real = B._cc

    def cc(cc_, flags, *args, cwd):
        out = "-o" if "-o" in args else "-aux-info"
        seen.append(args[args.index(out) + 1])
        return real(cc_, flags, *args, cwd=cwd)

    monkeypatch.setattr(B, "_cc", cc)
    return seen


def _exports(lib) -> str:
    return subprocess.run(["nm", "-D", str(lib)], capture_output=True, text=True, check=True).stdout


def test_the_kernel_object_builds_beside_the_first_model_and_serves_the_next(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKENGINE_CACHE", str(tmp_path))
    seen = _compiles(monkeypatch)
    prog, kp = _cnn(2)
    lib = B.build_library(kp, get_target("c"))
    assert sorted(seen) == ["kernels.aux", "kernels.o", "libmodel.so", "model.o"]  # object ∥ model.o, then link
    assert "pkx_pk_conv2d" in _exports(lib) and not list(tmp_path.glob("*/model.o"))
    _trains_like_the_interpreter(prog, kp, lib)
    seen.clear()
    prog, kp = _cnn(3)
    lib = B.build_library(kp, get_target("c"))
    assert seen == ["pk_prefix.h.gch", "libmodel.so"]  # the next model: itself (and, once, the headers)
    _trains_like_the_interpreter(prog, kp, lib)


def test_a_changed_flag_or_kernel_source_rebuilds_the_object(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKENGINE_CACHE", str(tmp_path))
    seen = _compiles(monkeypatch)
    target = get_target("c")
    _, kp = _cnn(2)
    B.build_library(kp, target)
    seen.clear()
    B.build_library(kp, target, extra_cflags=("-DPK_UNUSED_FLAG=1",))  # a flag: everything again
    assert "kernels.o" in seen and "kernels.aux" in seen
    conv = target.library.source_path("conv2d")
    edited = tmp_path / "conv2d.c"
    edited.write_text(conv.read_text() + "\n/* edited */\n")
    real = type(target.library).source_path
    monkeypatch.setattr(type(target.library), "source_path",
                        lambda self, k: edited if k == "conv2d" else real(self, k))
    seen.clear()
    B.build_library(kp, target)  # a kernel source: the object again (model.c is the same text)
    assert "kernels.o" in seen
    assert len(list(tmp_path.glob("kobj-*/kernels.o"))) == 3 == len(list(tmp_path.glob("kdecl-*/pk_separate.h")))


def test_a_truncated_kernel_object_is_rebuilt_not_linked(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKENGINE_CACHE", str(tmp_path))
    _, kp = _cnn(2)
    B.build_library(kp, get_target("c"))
    (obj,) = tmp_path.glob("kobj-*/kernels.o")
    size = obj.stat().st_size
    obj.write_bytes(obj.read_bytes()[: size // 2])
    seen = _compiles(monkeypatch)
    prog, kp = _cnn(3)
    lib = B.build_library(kp, get_target("c"))
    assert "kernels.o" in seen and obj.stat().st_size == size
    _trains_like_the_interpreter(prog, kp, lib)


def test_a_kernel_object_that_fails_to_build_leaves_model_c_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKENGINE_CACHE", str(tmp_path))
    real = B._cc

    def cc(cc_, flags, *args, cwd):
        if "kernels.o" in args and "-c" in args:
            raise B.BuildError("no object today")
        return real(cc_, flags, *args, cwd=cwd)

    monkeypatch.setattr(B, "_cc", cc)
    prog, kp = _cnn(2)
    lib = B.build_library(kp, get_target("c"))
    assert "pkx_pk_conv2d" not in _exports(lib) and list(tmp_path.glob("kobj-*.failed"))
    _trains_like_the_interpreter(prog, kp, lib)
    seen = _compiles(monkeypatch)
    B.build_library(_cnn(3)[1], get_target("c"))
    assert seen == ["pk_prefix.h.gch", "libmodel.so"]  # known to fail: not tried again, model.c whole at once
