"""`Program`: an IR module plus the values of its parameters and state.

On disk a program is a directory with `model.mlir` (the IR, a readable page even for big
models), `weights.safetensors` (the model's weights and buffers, one tensor per `train.param`
symbol: the names of the PyTorch module's state_dict, so `load_state_dict(strict=True)` takes
it) and, for a training program, `optimizer.safetensors` (the `optimizer_state` parameters:
momentum, Adam moments, the step count). The directory is written whole or not at all
(pockengine.atomic).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from ..errors import UserError
from . import types as T
from .context import make_context
from .interpreter import Interpreter
from .ops.state import ParamOp

MODEL_FILE = "model.mlir"
WEIGHTS_FILE = "weights.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"


class ProgramError(UserError):
    """A program on disk or in memory is inconsistent; the message says where."""


# IR text is bounded: reading /dev/zero or a multi-gigabyte file as IR is an error, not an OOM
MAX_IR_BYTES = int(os.environ.get("POCKENGINE_MAX_IR_BYTES", str(256 * 2**20)))


def read_ir(path: str | os.PathLike, stream=None) -> str:
    """The text of an IR file (or of a binary `stream`, e.g. stdin), at most MAX_IR_BYTES, UTF-8
    and free of NUL bytes; anything else is a ProgramError naming the file."""
    name = str(path)
    f = open(path, "rb") if stream is None else stream  # noqa: SIM115 (closed below)
    try:
        head = f.read(min(MAX_IR_BYTES + 1, 1 << 20))
        if b"\0" in head:
            raise ProgramError(f"{name}: binary data (NUL bytes), not IR text")
        data = head + f.read(MAX_IR_BYTES + 1 - len(head)) if len(head) <= MAX_IR_BYTES else head
    finally:
        if stream is None:
            f.close()
    if len(data) > MAX_IR_BYTES:
        raise ProgramError(f"{name}: larger than {MAX_IR_BYTES:,} bytes, the limit for IR text "
                           "(set POCKENGINE_MAX_IR_BYTES to raise it)")
    if b"\0" in data:
        raise ProgramError(f"{name}: binary data (NUL bytes), not IR text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ProgramError(f"{name}:{line}: not UTF-8 text (byte {data[e.start]:#04x})") from None


NESTING_LIMIT = 100  # bracket levels the parser follows (it needs several Python frames per level)


def deep_nesting(text: str) -> tuple[int, int, int]:
    """(line, col, depth): where the nesting of brackets first gets deeper than NESTING_LIMIT
    (or is deepest), for the error about IR nested too deeply to parse."""
    depth, deepest, where = 0, 0, 0
    for m in re.finditer(r"[\[\]{}()<>]", text):
        depth += 1 if m.group() in "[{(<" else -1
        if depth > deepest:
            deepest, where = depth, m.start()
        if depth > NESTING_LIMIT:
            break
    return text.count("\n", 0, where) + 1, where - text.rfind("\n", 0, where), deepest


def nesting_message(depth: int) -> str:
    return f"nested too deeply to parse ({depth} levels of brackets here; IR may nest about {NESTING_LIMIT})"


def nesting_error(text: str, name: str) -> str:
    line, col, depth = deep_nesting(text)
    return f"{name}:{line}:{col}: {nesting_message(depth)}"


def parse_module(text: str, name: str = "<input>") -> ModuleOp:
    """Parse IR text; raises xDSL's ParseError (with file:line:col) on bad input, and a
    ProgramError for text nested too deeply to parse."""
    try:
        return Parser(make_context(), text, name).parse_module()
    except RecursionError:
        raise ProgramError(nesting_error(text, name)) from None


class Program:
    def __init__(self, module: ModuleOp, weights: dict[str, np.ndarray] | None = None):
        self.module = module
        self.weights: dict[str, np.ndarray] = dict(weights or {})

    # --- symbols ---------------------------------------------------------------
    def params(self) -> list[ParamOp]:
        return [op for op in self.module.ops if isinstance(op, ParamOp)]

    def param(self, name: str) -> ParamOp:
        for p in self.params():
            if p.sym_name.data == name:
                return p
        raise KeyError(name)

    def functions(self) -> dict[str, func.FuncOp]:
        return {op.sym_name.data: op for op in self.module.ops if isinstance(op, func.FuncOp)}

    def trainable(self) -> list[str]:
        return [p.sym_name.data for p in self.params() if p.is_trainable]

    def aliases(self) -> dict[str, str]:
        """Other name → param name, for tensors the model held under several names (tied
        weights: {"lm_head.weight": "transformer.wte.weight"}); a checkpoint writes each alias
        with its param's value. From the `aliases` of each `train.param`."""
        return {a: p.sym_name.data for p in self.params() for a in p.alias_names}

    # --- checks ----------------------------------------------------------------
    def verify(self) -> None:
        """IR verifier plus: every parameter has a value of its declared shape and dtype."""
        self.module.verify()
        for p in self.params():
            name = p.sym_name.data
            if name not in self.weights:
                raise ProgramError(f"parameter @{name} has no value in the weights")
            arr = self.weights[name]
            want = tuple(p.type.get_shape())
            if arr.shape != want:
                raise ProgramError(f"parameter @{name}: value has shape {T.fmt(arr.shape)}, IR declares {T.fmt(want)}")
            if arr.dtype != T.numpy_dtype(p.type.element_type):
                raise ProgramError(f"parameter @{name}: value is {arr.dtype}, IR declares {p.type.element_type}")

    # --- running -----------------------------------------------------------------
    def run(self, fn: str, *arrays: np.ndarray, dtype=np.float32):
        """Interpret function `fn`; a single result comes back as one array.

        train.set updates `self.weights` (in the weights' own dtype)."""
        interp = Interpreter(self.module, self.weights, dtype)
        if np.dtype(dtype) != np.float32:
            interp.weights = {k: interp.as_float(v) for k, v in self.weights.items()}
        outs = interp.call(fn, *[np.asarray(a) for a in arrays])
        if interp.weights is not self.weights:
            for k, v in interp.weights.items():
                self.weights[k] = v.astype(self.weights[k].dtype) if k in self.weights else v
        return outs[0] if len(outs) == 1 else tuple(outs)

    # --- text and files -----------------------------------------------------------
    def __str__(self) -> str:
        return str(self.module)

    def copy(self) -> Program:
        return Program(self.module.clone(), {k: v.copy() for k, v in self.weights.items()})

    @classmethod
    def parse(cls, text: str, weights: dict[str, np.ndarray] | None = None, name: str = "<input>") -> Program:
        return cls(parse_module(text, name), weights)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Program:
        d = Path(directory)
        model = d / MODEL_FILE
        if not model.is_file():
            raise ProgramError(f"{d}: no {MODEL_FILE}")
        weights = load_weights(d / WEIGHTS_FILE) if (d / WEIGHTS_FILE).is_file() else {}
        if (d / OPTIMIZER_FILE).is_file():  # a checkpoint's optimizer state, beside the model's weights
            weights.update(load_weights(d / OPTIMIZER_FILE))
        try:
            prog = cls(parse_module(read_ir(model), str(model)), weights)
        except ParseError as e:
            raise ProgramError(str(e)) from None
        prog.check_weights(str(d / WEIGHTS_FILE))
        return prog

    def check_weights(self, source: str = "weights") -> None:
        """Every value given for a declared parameter has its shape and dtype (a parameter
        without a value is left to `verify`)."""
        for p in self.params():
            name = p.sym_name.data
            if name not in self.weights:
                continue
            arr, want = self.weights[name], tuple(p.type.get_shape())
            if tuple(arr.shape) != want:
                raise ProgramError(f"{source}: tensor '{name}' has shape {T.fmt(arr.shape)}, "
                                   f"the program declares {T.fmt(want)}")
            if arr.dtype != T.numpy_dtype(p.type.element_type):
                raise ProgramError(f"{source}: tensor '{name}' is {arr.dtype}, "
                                   f"the program declares {p.type.element_type}")

    def save(self, directory: str | os.PathLike) -> None:
        """Write model.mlir, weights.safetensors and (optimizer state) optimizer.safetensors
        atomically: the directory is complete or untouched."""
        optimizer = [p.sym_name.data for p in self.params() if p.role.data == "optimizer_state"]
        save_program_files(directory, {MODEL_FILE: str(self.module) + "\n"}, self.weights, optimizer)


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A safetensors file's tensors; a truncated or garbage file is a ProgramError naming it."""
    try:
        return load_file(str(path))
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001  (safetensors raises SafetensorError and others for a bad header)
        raise ProgramError(f"{path}: not a readable safetensors file ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else 'corrupt'})") from None


def save_program_files(directory, texts: dict[str, str], weights: dict[str, np.ndarray],
                       optimizer: Iterable[str] = ()) -> None:
    """`texts` and the weights into a program directory, atomically: the names in `optimizer`
    go to optimizer.safetensors, the others to weights.safetensors. A directory that is not
    empty and holds no model.mlir is refused, not replaced."""
    from ..atomic import empty_or_marked, replaced_directory

    opt = set(optimizer) & set(weights)
    arrays = {k: np.asarray(v, order="C") for k, v in weights.items()}  # (ascontiguousarray makes 0-d 1-d)
    with replaced_directory(directory, check=empty_or_marked(MODEL_FILE, what="program directory")) as tmp:
        for name, text in texts.items():
            (tmp / name).write_text(text)
        save_file({k: v for k, v in arrays.items() if k not in opt}, str(tmp / WEIGHTS_FILE))
        if opt:
            save_file({k: arrays[k] for k in sorted(opt)}, str(tmp / OPTIMIZER_FILE))


def declare_params(module: ModuleOp, specs: Iterable[tuple[str, tuple[int, ...], str, bool]]) -> list[ParamOp]:
    """Insert `train.param` declarations at the top of a module."""
    ops = [ParamOp(name, T.tensor(shape), role, trainable) for name, shape, role, trainable in specs]
    first = module.body.block.first_op
    for op in ops:
        if first is None:
            module.body.block.add_op(op)
        else:
            module.body.block.insert_op_before(op, first)
    return ops


__all__ = ["Program", "ProgramError", "parse_module", "VerifyException"]
