"""The Hexagon DSP target (`--target hexagon`): the C language (language.py: freestanding,
32-bit address checks, a function table), the portable C kernels (library.py: plain-C
tiles), the emulated device (device.py: a long-lived qemu-hexagon process behind a pipe)
and the toolchain (toolchain.py: clang for Hexagon v67 + HVX, the freestanding runtime in
runtime/, the project's Makefile). docs/backend.md walks through it as the example of
adding a target."""

from __future__ import annotations

from pathlib import Path

from ..target import Target
from .device import QemuDevice
from .language import HexagonC
from .library import HexagonLibrary
from .toolchain import HexagonToolchain, runtime_files

HERE = Path(__file__).parent
MAIN_C = HERE.parent / "c" / "main.c"  # the C project's runner: same weights.bin / data.bin


def project_files(target: Target) -> dict[str, str]:
    """The runner (the C project's main.c), the device server, the runtime and the Makefile."""
    return {"main.c": MAIN_C.read_text(), "serve.c": (HERE / "serve.c").read_text(), **runtime_files(),
            "Makefile": target.makefile()}


def target() -> Target:
    toolchain = HexagonToolchain()
    return Target("hexagon", HexagonC(), HexagonLibrary(), toolchain, lambda: QemuDevice(toolchain.runner),
                  project_files)
