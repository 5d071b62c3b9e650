"""Build the emitted C as a shared library (cached by content) and drive it from Python.

    trainer = pockengine.compile(program, loss="cross_entropy", optimizer="sgd", lr=0.05,
                                 momentum=0.9, scheme="scheme.pock", target="c")
    loss = trainer.step(x, labels)        # one training step in C; returns the loss
    logits = trainer.forward(x)           # the eval function
    trainer.parameters()                  # name → array (weights and optimizer state)
    trainer.save("trained/")              # a Program directory, written atomically
    trainer.memory                        # planned bytes by category

The library (backends/build.py) is keyed by a hash of everything that goes into it (generated sources, kernel
library, compiler and flags), so compiling the same IR twice builds once. The cache lives in
$POCKENGINE_CACHE, else ~/.cache/pockengine.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

import numpy as np
from pockengine.backends.build import BuildError, build_library, cache_dir  # noqa: F401  (the runtime's API)
from pockengine.backends.kernel_ir import NUMPY, KernelProgram
from pockengine.backends.project import blob_bytes, pack_params, param_views
from pockengine.backends.targets import Target, get_target


class Trainer:
    """A compiled program loaded into this process. Parameters and optimizer state live in
    one blob owned here (the C code updates it in place); the arena is allocated once."""

    def __init__(self, program, kp: KernelProgram, library: Path, profiled: bool = False):
        self.program, self.kernels, self.profiled = program, kp, profiled
        self._lib = ctypes.CDLL(str(library))
        from pockengine.backends.c_renderer import CStyleRenderer

        names = CStyleRenderer().function_names(kp)
        self._fns = {}
        for name, cname in names.items():
            fn = getattr(self._lib, cname)
            fn.argtypes = [ctypes.c_void_p] * 4
            fn.restype = None
            self._fns[name] = fn
        self._blob = pack_params(kp, program.weights)
        self._arena = np.zeros(max(kp.arena_bytes, 64), np.uint8)
        self.library = library

    # --- running ----------------------------------------------------------------------
    def call(self, function: str, *arrays) -> list[np.ndarray]:
        kf = self.kernels.functions.get(function)
        if kf is None:
            raise KeyError(f"no function @{function}; compiled: {', '.join(self.kernels.functions)}")
        if len(arrays) != len(kf.inputs):
            raise TypeError(f"@{function} takes {len(kf.inputs)} inputs, got {len(arrays)}")
        ins = []
        for i, (a, v) in enumerate(zip(arrays, kf.inputs)):
            a = np.asarray(a, dtype=NUMPY[v.dtype], order="C")
            if a.shape != v.shape:
                raise ValueError(f"@{function} input {i}: shape {a.shape}, the program was compiled for {v.shape}")
            ins.append(a)
        outs = [np.empty(v.shape, NUMPY[v.dtype]) for v in kf.outputs]
        in_ptrs = (ctypes.c_void_p * max(len(ins), 1))(*[a.ctypes.data for a in ins])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[a.ctypes.data for a in outs])
        self._fns[function](self._blob.ctypes.data, self._arena.ctypes.data, in_ptrs, out_ptrs)
        return outs

    def step(self, *inputs) -> float:
        """One training step (forward, loss, backward, updates); returns the loss."""
        return float(self.call("train_step", *inputs)[0])

    def forward(self, *inputs):
        outs = self.call("forward", *inputs)
        return outs[0] if len(outs) == 1 else tuple(outs)

    # --- state ------------------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """Every parameter and state tensor, as copies."""
        return {k: v.copy() for k, v in param_views(self.kernels, self._blob).items()}

    def load_parameters(self, weights: dict[str, np.ndarray]) -> None:
        pack_params(self.kernels, {**self.parameters(), **weights}, self._blob)

    def save(self, directory) -> None:
        """The program with its current weights, as a Program directory (atomic)."""
        prog = self.program.copy()
        prog.weights = self.parameters()
        prog.save(directory)

    @property
    def memory(self) -> dict[str, int]:
        from pockengine.passes.memory_plan import memory_summary

        fn = "train_step" if "train_step" in self.kernels.functions else next(iter(self.kernels.functions))
        return memory_summary(self.kernels, fn)

    def profile(self) -> list[tuple[str, int, str, float]]:
        """(function, step, what, milliseconds summed over calls) per step; needs a library
        built with profile=True."""
        if not self.profiled:
            raise RuntimeError("compile with profile=True to time the steps")
        slots = sum(len(f.steps) for f in self.kernels.functions.values())
        fn = self._lib.pock_profile
        fn.restype = ctypes.POINTER(ctypes.c_double)
        ms = np.ctypeslib.as_array(fn(), (max(slots, 1),))
        out, k = [], 0
        for name, f in self.kernels.functions.items():
            for i, step in enumerate(f.steps):
                what = f"{step.kernel}" if hasattr(step, "kernel") else "map"
                out.append((name, i, f"{what}: {step.origin}", float(ms[k])))
                k += 1
        return out

    @property
    def blob_bytes(self) -> int:
        return blob_bytes(self.kernels)


def compile(program, loss: str | None = None, optimizer: str | None = None, scheme=None, target: str = "c",
            optimize: bool = True, openmp: bool = False, profile: bool = False, **hyper) -> Trainer:
    """Compile a Program into a Trainer. Without a @train_step the program first goes through
    autodiff (loss, optimizer, hyper-parameters such as lr, momentum) and, given a scheme,
    sparse-backprop and dead-gradient-elimination; then operator-reordering and fusion."""
    from pockengine.passes import get_all_passes, run_pipeline
    from pockengine.passes.lower_to_kernels import lower_program

    if "train_step" not in program.functions() and (loss or optimizer):
        prog = training_program(program, loss or "cross_entropy", optimizer or "sgd", scheme, **hyper)
    elif scheme is not None:
        raise ValueError("a scheme needs autodiff: pass a program without @train_step, with loss= and optimizer=")
    else:
        prog = program.copy()
    available = get_all_passes()
    if optimize:
        spec = ",".join(p for p in ("operator-reordering", "fusion") if p in available)
        if spec:
            run_pipeline(prog, spec)
    kp = lower_program(prog)
    tgt = get_target(target)
    if not tgt.can_load:
        raise ValueError(f"target {target!r} does not run in this process; write a project with "
                         f"`pockengine compile --target {target}` instead")
    flags = ("-DPK_PROFILE",) if profile else ()
    return Trainer(prog, kp, build_library(kp, tgt, openmp=openmp, extra_cflags=flags), profiled=profile)


def training_program(program, loss: str, optimizer: str, scheme=None, **hyper):
    """A copy of `program` with its @train_step: slice-propagation and autodiff, then, given a
    scheme (a `Scheme`, a scheme file or scheme text), sparse-backprop and
    dead-gradient-elimination. The same steps as `training_pipeline`, without passing a
    `Scheme` object through pipeline text."""
    from pockengine.passes import run_pipeline
    from pockengine.passes.scheme import Scheme
    from pockengine.passes.sparse_backprop import sparse_backprop

    prog = program.copy()
    run_pipeline(prog, training_pipeline(loss, optimizer, **hyper))
    if scheme is not None:
        sparse_backprop(prog.module, scheme if isinstance(scheme, Scheme) else Scheme.load(scheme))
        run_pipeline(prog, "dead-gradient-elimination")  # also fits optimizer state to the scheme
    return prog


def training_pipeline(loss: str, optimizer: str, scheme=None, **hyper) -> str:
    """The pipeline string of `training_program` (for pock-opt and the printed recipe);
    `scheme` is a `Scheme`, a scheme file or scheme text."""
    from pockengine.passes.scheme import Scheme

    opts = " ".join(f"{k}={_opt(v)}" for k, v in {"loss": loss, "optimizer": optimizer, **hyper}.items())
    spec = f"slice-propagation,autodiff{{{opts}}}"
    if scheme is not None:
        text = scheme.to_text() if isinstance(scheme, Scheme) else str(scheme)
        if "\n" in text or '"' in text:  # a pipeline option is one line: pass the text as a file
            fd, path = tempfile.mkstemp(suffix=".pock", prefix="scheme-")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            text = path
        spec += f',sparse-backprop{{scheme="{text}"}},dead-gradient-elimination'
    return spec


def _opt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def as_target(name: str) -> Target:
    return get_target(name)
