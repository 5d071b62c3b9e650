"""Every name in `pockengine.__all__` works from a fresh interpreter (issue 12, item 4: the lazy
`__getattr__` once re-entered itself and `pockengine.search` raised RecursionError), and every
bad-input error type of the library derives from the one base class, pockengine.errors.UserError."""

from __future__ import annotations

import subprocess
import sys

import pockengine
import pytest

EXPECTED_KIND = {  # what each public name must be, checked in the child interpreter
    "Program": "isinstance(v, type)",
    "UserError": "issubclass(v, Exception)",
    "compile": "callable(v)",
    "from_onnx": "callable(v)",
    "from_torch": "callable(v)",
    "search": "callable(v) and callable(getattr(v, 'parse_size', None))",
    "__version__": "isinstance(v, str) and v.count('.') == 2",
}


def test_every_public_name_is_checked():
    assert sorted(pockengine.__all__) == sorted(EXPECTED_KIND)


@pytest.mark.parametrize("name", sorted(EXPECTED_KIND))
def test_public_name_from_a_fresh_interpreter(name):
    code = (
        "import pockengine\n"
        f"v = getattr(pockengine, {name!r})\n"
        f"assert {EXPECTED_KIND[name]}, repr(v)\n"
        f"assert getattr(pockengine, {name!r}) is v\n"  # a second access gives the same object
        f"from pockengine import {name}\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pockengine.nope  # noqa: B018


# every error class the library raises where it understands the input, by import path
INPUT_ERRORS = [
    ("pockengine.tools", "UserError"),
    ("pockengine.frontends", "FrontendError"),
    ("pockengine.frontends.onnx_importer", "OnnxImportError"),
    ("pockengine.ir.program", "ProgramError"),
    ("pockengine.ir.interpreter", "InterpretError"),
    ("pockengine.passes.scheme", "SchemeError"),
    ("pockengine.passes", "PipelineError"),
    ("pockengine.passes.vjp", "MissingRuleError"),
    ("pockengine.passes.sparse_backprop", "SparseBackpropError"),
]


@pytest.mark.parametrize("module, name", INPUT_ERRORS, ids=[n for _, n in INPUT_ERRORS])
def test_input_errors_derive_from_the_one_base_class(module, name):
    import importlib

    from pockengine.errors import UserError, is_user_error

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, UserError)
    assert is_user_error(cls.__new__(cls))


def test_lowering_error_is_a_user_error():
    import importlib

    from pockengine.errors import UserError

    for module in ("pockengine.backends.lower_to_kernels", "pockengine.passes.lower_to_kernels"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        assert issubclass(mod.LoweringError, UserError)
        return
    pytest.fail("LoweringError not found")


def test_the_boundary_formats_os_errors_and_keeps_bugs():
    import errno

    from pockengine.errors import is_user_error, one_line

    full = OSError(errno.ENOSPC, "No space left on device", "/out/weights.safetensors")
    assert is_user_error(full)
    assert one_line(full).startswith("/out/weights.safetensors: no space left on device")
    assert one_line(FileNotFoundError(errno.ENOENT, "No such file or directory", "x.npz")) == (
        "x.npz: No such file or directory"
    )
    assert not is_user_error(KeyError("a bug"))
    assert not is_user_error(IndexError("a bug"))
