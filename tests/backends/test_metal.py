"""The metal target, checked without an Apple machine (backends/metal/, docs/backend.md "Metal").

What the generated MSL computes is checked by running it: model.metal compiled as C++17
against backends/metal/emulator/metal_stdlib and executed over every launch's grid with the
schedule the Metal host replays (threadgroups of fibers meeting at barriers). 10-step losses
and parameters equal the host C build's within 1e-4 on the MLP (SGD and sparse AdamW: the
float bias corrections), the CNN and the attention block. What is Metal-specific and cannot
run here is checked on the text: no construct Metal forbids (check.py, itself tested on bad
sources), every kernel argument bound, the same body as the OpenCL spelling of each kernel
(which PoCL runs for real), and `pockengine compile --target metal` writes a project whose
Makefile's emulator build trains from weights.bin and data.bin. The SIMD-group GEMMs
(backends/metal/gemm.py) run in the emulator with SIMD-group operations collective over 32
lanes, and match the interpreter on every GEMM family; the Objective-C++ host compiles for
arm64 macOS against declarations of the Foundation / Metal API it uses."""

import re
import shutil
import subprocess

import numpy as np
import programs as P
import pytest
from pockengine.backends import get_target
from pockengine.backends.lower_to_kernels import lower_program
from pockengine.backends.metal.check import violations
from pockengine.backends.project import write_data
from pockengine.backends.runtime import Trainer
from pockengine.passes import run_pipeline
from targets import needs

pytestmark = needs("metal")

CASES = {
    "mlp-sgd": (P.mlp, P.SGD),
    "mlp-sparse-adamw": (P.mlp, f'{P.ADAMW},sparse-backprop{{scheme="{P.MLP_SCHEME}"}},dead-gradient-elimination'),
    "cnn-sgd": (P.cnn, P.SGD),
    "attention-sgd": (P.attention, P.SGD),
}


def _program(case):
    make, spec = CASES[case]
    prog = make()
    trained = P.trained(prog, spec)
    run_pipeline(trained, "operator-reordering,fusion")
    return prog, trained


def _trainer(prog, target):
    tgt = get_target(target)
    kp = lower_program(prog, library=tgt.library)
    return Trainer(prog.copy(), kp, tgt.load(kp))


def _sources(case):
    _, trained = _program(case)
    tgt = get_target("metal")
    kp = lower_program(trained, library=tgt.library)
    return tgt, kp, tgt.sources(kp, case)


@pytest.mark.parametrize("case", list(CASES))
def test_emulated_msl_trains_like_the_host_c_build(case):
    prog, trained = _program(case)
    metal, host = _trainer(trained, "metal"), _trainer(trained, "c")
    for i, (x, y) in enumerate(P.batches(prog, 10)):
        got, want = metal.step(x, y), host.step(x, y)
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6), f"loss of step {i}"
    want = host.parameters()
    for k, v in metal.parameters().items():
        np.testing.assert_allclose(v, want[k], rtol=1e-4, atol=1e-5, err_msg=k)
    metal.close()


@pytest.mark.parametrize("case", ["mlp-sparse-adamw", "cnn-sgd", "attention-sgd"])
def test_generated_msl_obeys_metal_rules_and_compiles_as_cpp(case, tmp_path):
    _, _, files = _sources(case)
    src = files["model.metal"]
    assert violations(src) == []
    assert "double" not in src and "kernel void" in src
    assert "threadgroup_barrier(mem_flags::mem_threadgroup" in src
    if "adamw" in case:  # the bias corrections in float, as on every data-parallel target
        assert re.search(r"kernel void[^}]*-pk_expm1f\(", src, re.DOTALL)
    # every kernel's arguments are bound: buffers, the scalar block, the grid positions
    for sig in re.findall(r"kernel void \w+\((.*?)\) \{", src, re.DOTALL):
        for p in sig.split(",\n"):
            assert re.search(r"\[\[\w+(\(\w+\))?\]\]", p), p
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    compilers = [c for c in ("g++", "clang++") if shutil.which(c)]
    assert compilers
    for cxx in compilers:
        quiet = "-Wno-attributes" if cxx == "g++" else "-Wno-unknown-attributes"
        for unit in (["-x", "c++", "model.metal"], ["emu_model.cpp"]):
            res = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", quiet,
                                  "-Wno-unused-parameter", "-Iemulator", *unit], cwd=tmp_path, capture_output=True,
                                 text=True, check=False)
            assert res.returncode == 0, f"{cxx} {unit}:\n{res.stderr[-3000:]}"


def test_the_rule_check_rejects_what_metal_forbids():
    bad = {
        "double": "PK_FN float f(float x) { double y = x; return y; }",
        "no f suffix": "PK_FN float f(float x) { return x * 0.5; }",
        "recursion": "PK_FN float f(float x) { return g(x); }\nPK_FN float g(float x) { return f(x); }",
        "pointer to a pointer": "kernel void k(device float **p [[buffer(0)]]) { }",
        "no address space": "kernel void k(float *p [[buffer(0)]]) { }",
        "no [[...]] binding": "kernel void k(device float *p [[buffer(0)]], long n) { }",
        "used twice": "kernel void k(device float *p [[buffer(0)]], device float *q [[buffer(0)]]) { }",
        "`throw`": "PK_FN void f(void) { throw 1; }",
        "only <metal_stdlib>": "#include <stdio.h>\n",
        "reserved in MSL": "PK_FN float f(float half) { return half; }",
    }
    for what, src in bad.items():
        found = violations(src)
        assert any(what in v for v in found), (what, found)
    ok = "#include <metal_stdlib>\n#define PK_LOCAL threadgroup\nPK_FN float f(PK_LOCAL float *r) { return r[0] * 0.5f; }"
    assert violations(ok) == []


def test_metal_and_opencl_spell_the_same_bodies():
    from pockengine.backends.gpu.language import body_of
    from pockengine.backends.metal.language import MSLLanguage
    from pockengine.backends.opencl.language import OpenCLLanguage

    _, trained = _program("attention-sgd")
    tgt = get_target("metal")
    sched = tgt.language.schedule(lower_program(trained, library=tgt.library))
    msl, ocl = MSLLanguage(), OpenCLLanguage()
    assert len(sched.kernels) > 5
    for k in sched.kernels:
        assert body_of(msl.render(k)) == body_of(ocl.render(k)), k.name


def test_cli_writes_a_metal_project_whose_emulator_build_trains(tmp_path):
    from pockengine.tools.driver import main as driver

    prog = P.mlp()
    prog.save(tmp_path / "mlp")
    out = tmp_path / "mlp-metal"
    assert driver(["compile", str(tmp_path / "mlp"), "--target", "metal", "-o", str(out), "--lr", "0.05",
                   "--momentum", "0.9"]) == 0
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"Makefile", "main.c", "model.metal", "schedule.h", "model.h", "model.mm", "metal_host.mm",
            "emu_model.cpp", "emulator/host.cpp", "emulator/metal_stdlib", "weights.bin"} <= names
    host = (out / "metal_host.mm").read_text()
    assert "computeCommandEncoderWithDispatchType:MTLDispatchTypeSerial" in host and "commit" in host
    dry = subprocess.run(["make", "-n", "-C", str(out), "model"], capture_output=True, text=True, check=False)
    assert dry.returncode == 0 and "xcrun -sdk macosx metal" in dry.stdout and "-framework Metal" in dry.stdout
    if not shutil.which("clang++"):
        pytest.skip("clang++ missing: the project's emulator build uses it")
    tgt = get_target("metal")
    kp = lower_program(P.trained(prog, P.SGD), library=tgt.library)
    batches = P.batches(prog, 3)
    write_data(out / "data.bin", [list(b) for b in batches], [v.dtype for v in kp.functions["train_step"].inputs])
    res = subprocess.run(["make", "-s", "-C", str(out), "model-emu"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run(["./model-emu", "6", "data.bin"], cwd=out, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    losses = [float(m) for m in re.findall(r"^step \d+ loss (\S+)$", res.stdout, re.MULTILINE)]
    ref = P.trained(prog, P.SGD)
    assert losses == pytest.approx([float(ref.run("train_step", *batches[i % 3])) for i in range(6)], rel=1e-4)


def test_every_kernel_matches_the_interpreter():
    """Every op's random case (tests/ir/op_cases.py via test_kernels.py's harness) through the
    emulated MSL, as test_opencl_kernels.py runs them on PoCL."""
    import sys
    from pathlib import Path

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    sys.path.insert(0, str(Path(__file__).parent.parent / "ir"))
    import test_kernels as TK

    run = given(cases=TK.one_case_per_op(), seed=st.integers(0, 2**16))(
        lambda cases, seed: TK.check_kernels("metal", cases, seed))
    settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))(run)()


def _emulate(body: str, n: int = 192, flags: tuple[str, ...] = ()):
    """One hand-written kernel (y: f32[n], long n; a 64-float threadgroup array `red`) run by
    the emulator over 3 threadgroups of 64: (y, error)."""
    import ctypes

    from pockengine.backends.gpu.device import build_cached
    from pockengine.backends.gpu.grid import Grid
    from pockengine.backends.gpu.language import KernelDef, params
    from pockengine.backends.gpu.schedule import FunctionSchedule, Launch, Schedule
    from pockengine.backends.metal.host import emulator_stubs, tables
    from pockengine.backends.metal.language import MSLLanguage
    from pockengine.backends.metal.program import HERE

    k = KernelDef("pk_t", params("f32* y, long n"), body, local=(("float", "red", 64),), group=(64, 1, 1))
    launch = Launch("pk_t", Grid((3, 1, 1), (64, 1, 1)), [("buf", 1, 0, 4), ("long", n)])
    sched = Schedule([k], {"f": FunctionSchedule("f", [launch], [], [(0, 4 * n)])}, 64, 8192, 4096, b"\0", 4160)
    files = {"model.metal": MSLLanguage().program([k]), "schedule.h": tables(sched),
             "emulator/host.cpp": (HERE / "emulator" / "host.cpp").read_text(),
             "emulator/metal_stdlib": (HERE / "emulator" / "metal_stdlib").read_text(),
             "emulator/metal_simdgroup_matrix": (HERE / "emulator" / "metal_simdgroup_matrix").read_text(),
             "emu.cpp": "\n".join(['#include "schedule.h"', '#include "model.metal"', emulator_stubs([k]),
                                   '#include "emulator/host.cpp"', "static unsigned char P0[PK_PARAMS_BYTES];",
                                   'extern "C" void run(void *y) { void *o[1] = {y}; pk_run(0, P0, 0, o); }'])}
    cxx = get_target("metal").toolchain
    lib = ctypes.CDLL(str(build_cached(files, [cxx.cc, *cxx.cflags, *flags, "-Iemulator", "-fPIC", "-shared", "-o",
                                               "t.so", "emu.cpp"], "t.so")))
    lib.pock_device_error.restype = ctypes.c_char_p
    y = np.zeros(n, np.float32)
    lib.run(ctypes.c_void_p(y.ctypes.data))
    err = lib.pock_device_error()
    return y, err and err.decode()


def test_the_emulator_runs_threadgroups_as_metal_does():
    # a barrier orders the group's writes before its reads: the row comes back reversed
    y, err = _emulate("red[LID(0)] = (float)LID(0);\nBARRIER();\ny[GID(0)] = red[63 - LID(0)] + 100.0f * GRP(0);")
    assert err is None
    np.testing.assert_array_equal(y, np.concatenate([np.arange(63, -1, -1) + 100 * g for g in range(3)]))
    # threadgroup memory starts uninitialized (NaN here), not zero
    y, err = _emulate("y[GID(0)] = red[LID(0)];")
    assert err is None and np.isnan(y).all()
    # a barrier that only part of the group reaches is undefined in Metal: refused
    _, err = _emulate("if (LID(0) == 0) return;\nBARRIER();\ny[GID(0)] = 1.0f;")
    assert err and "divergent barrier" in err


def test_make_check_compares_with_a_host_c_build(tmp_path):
    """`make check REF=...` with the emulator build standing in for ./model (no Mac here):
    agrees with the host C project of the same model, refuses one trained differently."""
    from pockengine.tools.driver import main as driver

    if not shutil.which("clang++"):
        pytest.skip("clang++ missing: the project's emulator build uses it")
    prog = P.mlp()
    prog.save(tmp_path / "mlp")
    for name, target, lr in (("metal", "metal", "0.05"), ("c", "c", "0.05"), ("c-other", "c", "0.5")):
        assert driver(["compile", str(tmp_path / "mlp"), "--target", target, "-o", str(tmp_path / name), "--lr", lr,
                       "--momentum", "0.9"]) == 0
    out = tmp_path / "metal"
    tgt = get_target("metal")
    kp = lower_program(P.trained(prog, P.SGD), library=tgt.library)
    write_data(out / "data.bin", [list(b) for b in P.batches(prog, 3)],
               [v.dtype for v in kp.functions["train_step"].inputs])
    res = subprocess.run(["make", "-s", "-C", str(out), "model-emu"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    shutil.copy(out / "model-emu", out / "model")
    check = lambda ref: subprocess.run(["make", "-s", "-C", str(out), "-o", "model", "check", f"REF={ref}", "STEPS=5"],
                                       capture_output=True, text=True, check=False)
    res = check(tmp_path / "c")
    assert res.returncode == 0 and "5 losses agree within 1e-4" in res.stdout, res.stdout + res.stderr[-2000:]
    res = check(tmp_path / "c-other")
    assert res.returncode != 0 and "host C" in res.stdout, res.stdout


def test_nan_in_means_nan_out():
    prog, trained = _program("mlp-sgd")
    metal = _trainer(trained, "metal")
    x, y = P.batches(prog, 1)[0]
    x = np.array(x, copy=True)
    x.reshape(-1)[3] = np.nan
    with pytest.warns(Warning, match="nan"):
        assert np.isnan(metal.step(x, y))
    metal.close()


def _t(*shape):
    from xdsl.dialects.builtin import TensorType, f32

    return TensorType(f32, shape)


def test_simdgroup_gemm_families_match_the_interpreter_on_shapes_no_tile_divides():
    """Every GEMM form the library uses (strided batched matmul, x·wᵀ linear, a transposed
    operand, the weight gradient, conv forward / dx / dw as implicit GEMMs, grouped, strided,
    dilated, padded) on the SIMD-group kernels, shapes that 8, 16 and 64 do not divide, and
    one too thin for a tile (the scalar fallback), against the numpy interpreter."""
    from pockengine import Program
    from pockengine.ir.ops import grad as Gr
    from pockengine.ir.ops import linalg as L
    from pockengine.ir.ops import shape as S
    from xdsl.dialects import func
    from xdsl.dialects.builtin import ModuleOp
    from xdsl.ir import Block, Region

    conv = {"stride": (2, 1), "padding": (1, 2, 1, 2), "dilation": (1, 2), "groups": 2}
    cases = [
        ("matmul", [_t(2, 70, 65), _t(2, 65, 33)], lambda a: [L.MatmulOp.build(a[0], a[1])]),
        ("linear", [_t(37, 130), _t(67, 130)], lambda a: [L.LinearOp.build(a[0], a[1])]),
        ("transposed", [_t(45, 29), _t(45, 70)], lambda a: [t := S.TransposeOp.build(a[0], perm=[1, 0]),
                                                             L.MatmulOp.build(t.results[0], a[1])]),
        ("linear_dw", [_t(3, 11, 41), _t(3, 11, 19)], lambda a: [Gr.LinearBackwardWeightOp.build(a[0], a[1])]),
        ("conv", [_t(2, 16, 9, 11), _t(18, 8, 3, 3)], lambda a: [L.Conv2dOp.build(a[0], a[1], **conv)]),
        ("conv_dx", [_t(2, 18, 5, 11), _t(18, 8, 3, 3)],
         lambda a: [Gr.Conv2dBackwardInputOp.build(a[0], a[1], input_size=(9, 11), **conv)]),
        ("conv_dw", [_t(2, 16, 9, 11), _t(2, 18, 5, 11)],
         lambda a: [Gr.Conv2dBackwardWeightOp.build(a[0], a[1], kernel=(3, 3), **conv)]),
        ("thin", [_t(3, 130), _t(67, 130)], lambda a: [L.LinearOp.build(a[0], a[1])]),
    ]
    fns = []
    for i, (_, types, build) in enumerate(cases):
        block = Block(arg_types=types)
        ops = build(list(block.args))
        block.add_ops([*ops, func.ReturnOp(*ops[-1].results)])
        fns.append(func.FuncOp(f"f{i}", (types, [r.type for r in ops[-1].results]), Region(block)))
    prog = Program(ModuleOp(fns))
    tgt = get_target("metal")
    kp = lower_program(prog, library=tgt.library)
    sched = tgt.language.schedule(kp)
    kernels = {f: [ln.kernel for ln in fs.launches if "gemm" in ln.kernel or "conv" in ln.kernel]
               for f, fs in sched.functions.items()}
    for i, (name, _, _) in enumerate(cases):
        assert kernels[f"f{i}"] and all(k.endswith("_sg") == (name != "thin") for k in kernels[f"f{i}"]), (name, kernels)
    trainer = Trainer(prog, kp, tgt.load(kp))
    rng = np.random.default_rng(0)
    for i, (name, types, _) in enumerate(cases):
        xs = [rng.standard_normal(ty.get_shape()).astype(np.float32) for ty in types]
        np.testing.assert_allclose(trainer.call(f"f{i}", *xs)[0], prog.run(f"f{i}", *xs), rtol=2e-4, atol=2e-5,
                                   err_msg=name)
    trainer.close()


def test_simdgroup_operations_are_collective_in_the_emulator():
    """A SIMD-group matrix operation is a meeting point of its SIMD-group's 32 lanes: the
    result of a load / multiply-accumulate / store is the collective one, and divergent or
    non-uniform use (undefined in Metal) fails the run."""
    body = """simdgroup_float8x8 a, b, c = make_filled_simdgroup_matrix<float, 8, 8>(1.0f);
long s = (long)pk_sgi;
red[LID(0)] = (float)(LID(0) % 32);  /* both SIMD-groups load the same 8x8 from red */
BARRIER();
simdgroup_load(a, red, 8, ulong2(0, 0));       /* a[r][c] = (8r + c) % 32 */
simdgroup_load(b, red, 8, ulong2(0, 0));
simdgroup_multiply_accumulate(c, a, b, c);    /* c = a·b + 1 */
BARRIER();
if (s == 0) simdgroup_store(c, red, 8, ulong2(0, 0));
BARRIER();
y[GID(0)] = red[LID(0)];
@EXTRA@"""
    import re as _re

    def run(extra):
        src = body.replace("@EXTRA@", extra)
        return _emulate(_re.sub(r"/\*.*?\*/", "", src))

    y, err = run("")
    assert err is None, err
    a = (np.arange(64) % 32).reshape(8, 8).astype(np.float32)
    np.testing.assert_array_equal(y[:64], (a @ a + 1).reshape(-1))
    # a lane-dependent operand: the lanes of a SIMD-group disagree
    _, err = run("if (LID(0) % 2) { simdgroup_load(a, red, 8, ulong2(0, 8)); } else { simdgroup_load(a, red, 8, ulong2(0, 0)); }")
    assert err and "non-uniform SIMD-group operation" in err, err
    # part of a SIMD-group at a SIMD-group operation, the rest at a barrier
    _, err = run("if (LID(0) % 32 < 16) simdgroup_load(a, red, 8, ulong2(0, 0));\nBARRIER();")
    assert err and "divergent SIMD-group operation" in err, err
    # an operand past the threadgroup array
    _, err = run("simdgroup_load(a, red, 8, ulong2(0, 1));")
    assert err and "outside the launch's threadgroup memory" in err, err


HOST_SYMBOLS = {  # what the host may need at link time: Metal, Foundation, the ObjC runtime, libSystem, libc++abi
    "_MTLCreateSystemDefaultDevice", "_OBJC_CLASS_$_NSBundle", "_OBJC_CLASS_$_NSString", "_OBJC_CLASS_$_NSURL",
    "___CFConstantStringClassReference", "_objc_msgSend", "_objc_release", "_objc_retain", "_objc_storeStrong",
    "_objc_retainAutoreleasedReturnValue", "_objc_autoreleasePoolPush", "_objc_autoreleasePoolPop",
    "_objc_claimAutoreleasedReturnValue", "_objc_autoreleaseReturnValue", "_objc_retainAutoreleaseReturnValue",
    "_getenv", "_memcpy", "_memset", "_snprintf", "__Unwind_Resume", "___cxa_atexit", "___dso_handle",
    "___gxx_personality_v0"}


def _host_compile(out, host_text=None):
    """model.mm (schedule + metal_host.mm + entry points) compiled by clang as Objective-C++
    with ARC for arm64 macOS, against the declaration subsets of Foundation, Metal and libc in
    backends/metal/emulator/apple_*.h: (returncode, stderr, undefined symbols)."""
    from pockengine.backends.metal.program import HERE

    sdk = out / "sdk"
    for name, src in (("Foundation/Foundation.h", "apple_foundation.h"), ("Metal/Metal.h", "apple_metal.h"),
                      ("stdio.h", "apple_libc.h"), ("string.h", "apple_libc.h"), ("stdlib.h", "apple_libc.h")):
        (sdk / name).parent.mkdir(parents=True, exist_ok=True)
        (sdk / name).write_text((HERE / "emulator" / src).read_text())
    if host_text is not None:
        (out / "metal_host.mm").write_text(host_text)
    resource = subprocess.run(["clang", "-print-resource-dir"], capture_output=True, text=True, check=True).stdout.strip()
    res = subprocess.run(["clang++", "--target=arm64-apple-macos13", "-x", "objective-c++", "-std=c++17", "-fobjc-arc",
                          "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-nostdinc", "-nostdinc++",
                          "-isystem", f"{resource}/include", "-Isdk", "-c", "model.mm", "-o", "model.o"],
                         cwd=out, capture_output=True, text=True, check=False)
    syms = set()
    if res.returncode == 0:
        nm = shutil.which("llvm-nm") or shutil.which("llvm-nm-14")
        syms = set(subprocess.run([nm, "-u", "model.o"], cwd=out, capture_output=True, text=True, check=True).stdout.split())
    return res.returncode, res.stderr, syms


def test_the_objective_c_host_compiles_for_arm64_macos_against_the_api_it_uses(tmp_path):
    """metal_host.mm type-checks against Apple's documented signatures of every Foundation
    and Metal call it makes (ARC on: a selector no protocol declares is an error), compiles
    to an arm64 Mach-O object, and needs nothing at link time but Metal, Foundation, the
    Objective-C runtime and libSystem. A misspelled selector or a wrong argument type fails."""
    if not shutil.which("clang++") or not (shutil.which("llvm-nm") or shutil.which("llvm-nm-14")):
        pytest.skip("clang++ and llvm-nm needed")
    _, _, files = _sources("cnn-sgd")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    rc, err, syms = _host_compile(tmp_path)
    assert rc == 0, err[-3000:]
    assert {"_MTLCreateSystemDefaultDevice", "_objc_msgSend", "_OBJC_CLASS_$_NSString"} <= syms
    assert syms <= HOST_SYMBOLS, syms - HOST_SYMBOLS
    host = files["metal_host.mm"]
    for wrong, right in (("setBuffer:(g->buf == 0 ? pk.P : pk.A) offset:", "setBuffer:(g->buf == 0 ? pk.P : pk.A) at:"),
                         ("[enc setComputePipelineState:pk.pso[l->fn]]", "[enc setComputePipelineState:pk.P]"),
                         ("[cb waitUntilCompleted];", "[cb waitUntilScheduled];")):
        assert wrong in host
        rc, err, _ = _host_compile(tmp_path, host.replace(wrong, right))
        assert rc != 0 and "error" in err, (right, err[-1500:])


def test_the_simdgroup_switch_trains_the_same_on_the_scalar_gemm():
    """target(simdgroup_gemm=False): every GEMM on the base's scalar tiles, the same losses."""
    from pockengine.backends.metal import target

    prog, trained = _program("attention-sgd")
    runs = []
    for sg in (True, False):
        tgt = target(simdgroup_gemm=sg)
        kp = lower_program(trained, library=tgt.library)
        names = {k.name for k in tgt.language.schedule(kp).kernels}
        assert ("pk_gemm_sg" in names) == sg
        tr = Trainer(trained.copy(), kp, tgt.load(kp))
        runs.append([tr.step(x, y) for x, y in P.batches(prog, 3)])
        tr.close()
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)


def test_the_reverse_order_build_exposes_a_missing_barrier_and_trains_the_same():
    """Work-items run one after another between meeting points, so a read of another
    work-item's write with no barrier between them passes in one order; the -DPK_EMU_REVERSE
    build runs threadgroups and work-items in reverse order and catches the other half. The
    generated kernels give the same results in both orders."""
    racy = "red[LID(0)] = (float)LID(0);\ny[GID(0)] = LID(0) > 0 ? red[LID(0) - 1] : -1.0f;"
    want = np.tile(np.arange(-1, 63), 3).astype(np.float32)
    y, err = _emulate(racy)
    assert err is None and np.array_equal(y, want)  # forward order: the race goes unseen
    y, err = _emulate(racy, flags=("-DPK_EMU_REVERSE",))
    assert err is None and np.isnan(y[1:64]).all()  # reverse order: stale (NaN) reads
    y, err = _emulate(racy.replace("\ny", "\nBARRIER();\ny"), flags=("-DPK_EMU_REVERSE",))
    assert err is None and np.array_equal(y, want)
    prog, trained = _program("attention-sgd")
    tgt = get_target("metal")
    kp = lower_program(trained, library=tgt.library)
    rev, host = Trainer(trained.copy(), kp, tgt.load(kp, extra_cflags=("-DPK_EMU_REVERSE",))), _trainer(trained, "c")
    for x, y_ in P.batches(prog, 3):
        assert rev.step(x, y_) == pytest.approx(host.step(x, y_), rel=1e-4, abs=1e-6)
    rev.close()
