"""Shared by the torch frontend tests: import a module and compare it with PyTorch eager."""

from __future__ import annotations

import collections
import time

import numpy as np
import torch
from pockengine.frontends import from_torch
from torch.utils import _pytree as pytree


def flat_outputs(out) -> list[np.ndarray]:
    """The tensors of a module's output, in torch.export's order (a cache is a leaf: skipped)."""
    return [t.detach().numpy() for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def compare(program, module, args, rtol=1e-4):
    """Run `forward` on args in the interpreter and in eager PyTorch; returns (max abs, max rel)
    error, asserting |out - ref| <= rtol * max|ref| elementwise (exact for integers and masks)."""
    with torch.no_grad():
        refs = flat_outputs(module(*args))
    outs = program.run("forward", *[a.numpy() for a in args])
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    assert len(outs) == len(refs)
    worst_abs = worst_rel = 0.0
    for i, (o, r) in enumerate(zip(outs, refs)):
        assert o.shape == r.shape, f"output {i}: shape {o.shape} vs eager {r.shape}"
        if r.dtype.kind != "f":
            np.testing.assert_array_equal(o, r, err_msg=f"output {i}")
            assert o.dtype == r.dtype, f"output {i}: dtype {o.dtype} vs eager {r.dtype}"
            continue
        scale = max(float(np.abs(r).max()), 1e-30)
        err = float(np.abs(o.astype(np.float64) - r).max())
        np.testing.assert_allclose(o, r, rtol=rtol, atol=rtol * scale, err_msg=f"output {i}")
        worst_abs, worst_rel = max(worst_abs, err), max(worst_rel, err / scale)
    return worst_abs, worst_rel


def check(module, args, rtol=1e-4):
    """Import module(args) and compare; returns the program."""
    t, cpu = time.perf_counter(), time.process_time()
    program = from_torch(module, args)
    program.import_seconds = time.perf_counter() - t
    program.import_cpu_seconds = time.process_time() - cpu  # robust to a busy machine
    program.errors = compare(program, module, args, rtol)
    return program


def op_counts(program) -> collections.Counter:
    return collections.Counter(op.name for op in program.module.walk())
