"""Backends: one kernel IR, N targets.

    kernel_ir.py         the kernel-level IR: storages, views, library-op calls, loop nests
    lower_to_kernels.py  the `lower-to-kernels` pass: train IR → kernel IR (rules: lowering/)
    memory_plan.py       the `memory-plan` pass: one static arena, in-place updates, offsets
    target.py            Target = Language × KernelLibrary × Device × Toolchain (interfaces)
    cstyle.py            the C-style Language every C-like target subclasses
    c/                   the `c` and `arm64` targets (C99, the portable C kernels, GCC, ctypes)
    runtime.py           Trainer: a compiled program driven through its target's Device
    project.py           a written project (sources, Makefile, weights.bin, layout.json)
    cli.py               `pockengine compile` / `pockengine train`

The compile recipe itself (import → ... → build) is pockengine/pipeline.py. passes/ imports
nothing from here; nothing here imports passes/ but the few imports tests/backends/
test_layering.py lists with their reasons, and the recipe only from inside functions.
`get_all_targets()` maps target names to factories, `get_all_passes()` the backend passes;
both import lazily, like the pass registry in passes/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable

# name → "module:factory" relative to this package; a target family adds its line here
TARGETS: dict[str, str] = {
    "c": ".c:host",
    "arm64": ".c:arm64",
    "opencl": ".opencl:target",  # helper G: data-parallel targets (backends/gpu/)
    "cuda": ".cuda:target",
    "hexagon": ".hexagon:target",  # helper H: Hexagon v67 under qemu-hexagon
    "metal": ".metal:target",  # helper M: MSL spelling of backends/gpu/ (C++ emulator here, Metal on macOS)
}


def get_all_targets() -> dict[str, Callable]:
    """name → factory of a `Target` (backends/target.py), importing its folder when called."""
    import importlib

    def factory(ref: str) -> Callable:
        module, fn = ref.split(":")
        return lambda: getattr(importlib.import_module(module, __name__), fn)()

    return {name: factory(ref) for name, ref in TARGETS.items()}


def get_target(name: str):
    targets = get_all_targets()
    if name not in targets:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(targets)}")
    return targets[name]()


def _lower_to_kernels():
    from .lower_to_kernels import LowerToKernelsPass

    return LowerToKernelsPass


def _memory_plan():
    from .memory_plan import MemoryPlanPass

    return MemoryPlanPass


def get_all_passes() -> dict[str, Callable]:
    """The backend passes, name → factory of an xDSL ModulePass (pipeline.get_all_passes
    merges them with passes/'s)."""
    return {"lower-to-kernels": _lower_to_kernels, "memory-plan": _memory_plan}
