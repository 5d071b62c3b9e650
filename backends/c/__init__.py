"""The C targets: C99 (language.py) calling the portable C kernel library (library.py,
kernels/*.c), built by GCC (toolchain.py, build.py) and run in this process (device.py).

    c      host C99, `cc -O3 -march=native` (AVX2/FMA kernels where the CPU has them)
    arm64  C99 cross-compiled with aarch64-linux-gnu-gcc (NEON kernels), static, run under
           qemu-aarch64 when the host is not arm64 (a written project; in-process on arm64)
"""

from __future__ import annotations

import platform
from pathlib import Path

from ..target import Target
from .device import HostDevice
from .language import C99
from .library import CKernelLibrary
from .toolchain import COMMON_FLAGS, GccToolchain

MAIN_C = Path(__file__).parent / "main.c"


def project_files(target: Target) -> dict[str, str]:
    """A written project's own files: the runner (main.c) and its Makefile."""
    return {"main.c": MAIN_C.read_text(), "Makefile": target.makefile()}


def c_target(name: str, toolchain: GccToolchain) -> Target:
    language = C99()
    device = (lambda: HostDevice(language.function_names)) if toolchain.can_load else None
    return Target(name, language, CKernelLibrary(), toolchain, device, project_files)


def host() -> Target:
    arch = ["-march=native"] if platform.machine() in ("x86_64", "AMD64") else ["-mcpu=native"]
    return c_target("c", GccToolchain("cc", [*COMMON_FLAGS, *arch]))


def arm64() -> Target:
    native = platform.machine() in ("aarch64", "arm64")
    cc = "cc" if native else "aarch64-linux-gnu-gcc"
    return c_target("arm64", GccToolchain(cc, [*COMMON_FLAGS, "-march=armv8-a"], ["-static"] if not native else [],
                                          [] if native else ["qemu-aarch64"], can_load=native))
