"""The Metal target (`--target metal`): the data-parallel kernels (backends/gpu/) spelled
as Metal Shading Language (language.py), the step as a fixed launch schedule (host.py) run
by an Objective-C++ host that encodes each call into one command buffer (metal_host.mm).

No Apple compiler or GPU exists where this is built and tested: in-process
(`pockengine.compile(target="metal")`) the generated model.metal is compiled as C++ against
a shim of the metal_stdlib subset it uses and run over each launch's grid on the CPU with
the same schedule (emulator/); a written project builds the real thing on macOS.
"""

from __future__ import annotations

from ..target import Target


def project_files(target: Target) -> dict[str, str]:
    from ..gpu.host import runner_main

    return {"main.c": runner_main(), "Makefile": target.makefile()}


def target(simdgroup_gemm: bool = True) -> Target:
    """simdgroup_gemm=False keeps every GEMM on the base's scalar tiles (an A/B switch for
    timing the SIMD-group kernels on a Mac; backends/metal/gemm.py)."""
    from ..gpu.device import GpuDevice, data_parallel_library
    from .program import MetalProgram
    from .toolchain import MetalToolchain

    language = MetalProgram(simdgroup_gemm)
    return Target("metal", language, data_parallel_library(), MetalToolchain(),
                  lambda: GpuDevice(language.function_names), project_files)
