"""The OpenCL target (`--target opencl`): the data-parallel kernels (backends/gpu/) spelled
as OpenCL C 1.2, run by a small C host over libOpenCL (host.c) from a launch schedule the
compiler writes. Runs for real here on PoCL (the CPU OpenCL implementation)."""

from __future__ import annotations

from ..target import Target


def project_files(target: Target) -> dict[str, str]:
    """The C target's runner (backends/c/main.c), reading the parameters back from the
    device before it saves them, and the Makefile."""
    from ..gpu.host import runner_main

    return {"main.c": runner_main(), "Makefile": target.makefile()}


def target() -> Target:
    from ..gpu.device import GpuDevice, data_parallel_library
    from .language import OpenCLProgram
    from .toolchain import OpenCLToolchain

    language = OpenCLProgram()
    return Target("opencl", language, data_parallel_library(), OpenCLToolchain(),
                  lambda: GpuDevice(language.function_names), project_files)
