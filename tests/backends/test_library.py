"""The C kernel library's table (backends/c/library.py) against the kernel sources: every row's
symbol is defined in its source file, with as many parameters as the row lists arguments
(rows that spread an int tuple are checked against the calls the lowering makes), and every
(op, variant) the lowering emits for the test programs has a row."""

from __future__ import annotations

import re

import programs as P
import pytest
from pockengine.backends.c.library import KERNEL_DIR, KERNELS, CKernelLibrary
from pockengine.backends.kernel_ir import Call
from pockengine.pipeline import Recipe, run


def _parameters(source: str, symbol: str) -> int | None:
    """The parameter count of `symbol`'s definition in C source text, or None when the file
    defines it through a macro (PK_DEFINE_REDUCE(symbol, ...))."""
    m = re.search(rf"^(?:static\s+)?(?:inline\s+)?void\s+{symbol}\s*\(([^)]*)\)\s*\{{", source, re.MULTILINE)
    if m is None:
        return None
    return len([p for p in m.group(1).split(",") if p.strip() and p.strip() != "void"])


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"{k.op}.{k.variant}" if k.variant else k.op)
def test_every_row_names_a_kernel_that_exists(kernel):
    path = KERNEL_DIR / f"{kernel.source}.c"
    text = path.read_text()
    assert re.search(rf"\b{kernel.symbol}\b", text), f"{kernel.symbol} is not in {path.name}"
    n = _parameters(text, kernel.symbol)
    if n is not None and not any(a.startswith("*") for a in kernel.args):
        assert n == len(kernel.args), f"{kernel.symbol}: {n} C parameters, the row lists {kernel.args}"
    for w, r in kernel.inplace:
        assert w in kernel.args and r in kernel.args


def test_calls_of_the_test_programs_have_rows_and_full_operands():
    lib = CKernelLibrary()
    seen = set()
    for make, scheme in ((P.mlp, P.MLP_SCHEME), (P.cnn, P.CNN_SCHEME), (P.attention, None)):
        kp = run(make(), Recipe("cross_entropy", "sgd", scheme, {"lr": 0.1}), stop="memory-plan").kernels
        for f in kp.functions.values():
            for s in f.steps:
                if isinstance(s, Call):
                    k = lib.kernel(s)
                    names = {a.lstrip("*") for a in k.args}
                    assert names == set(s.operands), (s.name, sorted(names ^ set(s.operands)))
                    seen.add(s.name)
    assert {"linear.ep", "conv2d", "cross_entropy", "softmax"} <= seen


def test_an_op_the_library_lacks_is_a_clear_error():
    call = Call("fft", {}, [], [], variant="i32")
    with pytest.raises(KeyError, match=r"kernel library 'c' has no fft.i32; it has: .*conv2d"):
        CKernelLibrary().kernel(call)
