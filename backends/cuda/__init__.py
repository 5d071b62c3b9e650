"""The CUDA target (`--target cuda`): the data-parallel kernels (backends/gpu/) spelled as
CUDA C, run by a small host (host.cu) that captures the whole step as a CUDA graph once and
replays it; GEMMs through cuBLAS by default, the own tiled GEMM as the fallback."""

from __future__ import annotations

from ..target import Target


def project_files(target: Target) -> dict[str, str]:
    from ..gpu.host import runner_main

    return {"main.c": runner_main(), "Makefile": target.makefile()}


def target(allow_tf32: bool = False, cublas: bool = True, arch: str = "90") -> Target:
    """The cuda target: TF32 off unless allow_tf32 (fp32 parity with the host build);
    GEMMs through cuBLAS when it is found (the own tiled GEMM otherwise, or with
    POCK_CUDA_GEMM=own at run time)."""
    from ..gpu.device import GpuDevice, data_parallel_library
    from .language import CUDAProgram
    from .toolchain import CUDAToolchain

    language = CUDAProgram()
    return Target("cuda", language, data_parallel_library(),
                  CUDAToolchain(arch=arch, allow_tf32=allow_tf32, cublas=cublas),
                  lambda: GpuDevice(language.function_names), project_files)
