"""The kernel-level IR: what backends print.

Below the `train` dialect a function is a straight list of steps over typed *views* of
*storages*. A storage is one planned allocation in a region: the static `arena` (offsets
from the memory planner), `params` (weights and optimizer state, one blob saved and loaded
as a file), a function `input`/`output` argument, or a `const` table. Steps are

    call conv2d(geometry=[..], x=%a0[1x16x8x8xf32], w=@conv.weight[..], ...)  a library op
    map [8x32] (%s4, @fc1.bias[b]) -> (%s5) { add; relu }                 a generated loop nest

(a copy is a map with an empty body, a fill a map of one constant). A call names a library
op and its operands, not a symbol: the target's kernel library (backends/target.py) maps it
to a kernel and an argument order. A backend is a printer over these two step kinds plus
that library; it makes no decisions of its own. `str(program)` gives the
listing that `pock-opt --emit kernels` and `pockengine compile --emit kernels` show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

REGIONS = ("arena", "params", "input", "output", "const")
# categories of planned bytes, as the memory report splits them
CATEGORIES = ("weights", "optimizer_state", "saved_activations", "activations", "gradients", "workspace")
ITEMSIZE = {"f32": 4, "f64": 8, "i64": 8, "i32": 4, "i1": 1, "i8": 1, "u8": 1}
C_TYPES = {"f32": "float", "f64": "double", "i64": "int64_t", "i32": "int32_t", "i1": "uint8_t", "i8": "int8_t",
           "u8": "uint8_t"}
NUMPY = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "i32": np.int32, "i1": np.bool_, "i8": np.int8,
         "u8": np.uint8}
ALIGN = 64


def align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass(eq=False)
class Storage:
    """One allocation. `offset` is in bytes into its region (arena: set by the planner);
    input/output storages are the function's `index`-th argument."""

    region: str
    nbytes: int
    category: str
    label: str
    index: int = 0
    offset: int | None = None
    data: np.ndarray | None = None  # const contents
    alias: Storage | None = None  # set when the planner merges this storage into another

    def resolve(self) -> Storage:
        s = self
        while s.alias is not None:
            s = s.alias
        return s

    def __repr__(self) -> str:
        where = f"{self.offset}" if self.offset is not None else "?"
        return f"<{self.region}[{where}] {self.nbytes}B {self.label}>"


@dataclass(frozen=True, eq=False)
class View:
    """A typed, strided window into a storage. `offset` and `strides` count elements."""

    storage: Storage
    dtype: str
    shape: tuple[int, ...]
    offset: int = 0
    strides: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * ITEMSIZE[self.dtype]

    def elem_strides(self) -> tuple[int, ...]:
        return self.strides if self.strides is not None else contiguous_strides(self.shape)

    @property
    def is_contiguous(self) -> bool:
        return self.strides is None or self.strides == contiguous_strides(self.shape)

    def reshaped(self, shape) -> View:
        assert self.is_contiguous, "reshape of a strided view"
        return View(self.storage, self.dtype, tuple(shape), self.offset)

    def with_strides(self, shape, strides, offset: int = 0) -> View:
        return View(self.storage, self.dtype, tuple(shape), self.offset + offset, tuple(strides))

    def same_place(self, other: View) -> bool:
        """Both views address the same elements in the same order (in-place safe)."""
        return (self.storage.resolve() is other.storage.resolve() and self.offset == other.offset and self.shape == other.shape
                and self.elem_strides() == other.elem_strides() and self.dtype == other.dtype)

    def __str__(self) -> str:
        s = self.storage.resolve()
        head = f"@{s.label}" if s.region == "params" else (
            f"%in{s.index}" if s.region == "input" else f"%out{s.index}" if s.region == "output" else
            f"%c{s.index}" if s.region == "const" else f"%a{s.offset if s.offset is not None else '?'}")
        extra = "" if self.offset == 0 and self.is_contiguous else f"+{self.offset}:{list(self.elem_strides())}"
        return f"{head}{extra}[{'x'.join(map(str, self.shape)) or 'scalar'}x{self.dtype}]"


def contiguous_strides(shape) -> tuple[int, ...]:
    out, acc = [], 1
    for d in reversed(tuple(shape)):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def broadcast_strides(view: View, shape) -> tuple[int, ...]:
    """Strides of `view` read over the (numpy-broadcast) domain `shape`; broadcast dims get 0."""
    vs, st = view.shape, view.elem_strides()
    pad = len(shape) - len(vs)
    out = []
    for i, d in enumerate(shape):
        j = i - pad
        out.append(0 if j < 0 or vs[j] == 1 and d != 1 else st[j])
    return tuple(out)


def collapse(shape, strides_list) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours that every operand walks as one."""
    dims: list[int] = []
    sts: list[list[int]] = [[] for _ in strides_list]
    for i, d in enumerate(shape):
        if d == 1:
            continue
        if dims and all(s[-1] == st[i] * d for s, st in zip(sts, strides_list)):
            dims[-1] *= d
            for s, st in zip(sts, strides_list):
                s[-1] = st[i]
            continue
        dims.append(d)
        for s, st in zip(sts, strides_list):
            s.append(st[i])
    return dims, sts


@dataclass(frozen=True)
class IntArray:
    """A small constant int64 array argument (shapes, strides) printed as a static table."""

    values: tuple[int, ...]


@dataclass(eq=False)
class Call:
    """A library op: `op` names what it computes (`conv2d`, `linear`, `softmax`, ...),
    `variant` a form of it (an index dtype `i32`, `log` softmax, an epilogue `ep`), and
    `operands` its named operands. Which kernel implements it, under which symbol and with
    which argument order, is the target's kernel library's business (backends/target.py)."""

    op: str
    operands: dict  # name → View | int | float | IntArray | None | Epilogue
    reads: list[View]
    writes: list[View]
    inplace: list[tuple[int, int]] = field(default_factory=list)  # (write i, read j) may share storage
    origin: str = ""
    variant: str = ""

    @property
    def name(self) -> str:
        return f"{self.op}.{self.variant}" if self.variant else self.op

    def __str__(self) -> str:
        return f"call {self.name}({', '.join(f'{k}={_arg(a)}' for k, a in self.operands.items())})"


@dataclass(frozen=True)
class Instr:
    """One scalar instruction of a map body: `op` is the train op name (train.add, ...);
    operands index the map inputs then earlier instructions; attrs hold properties."""

    op: str
    operands: tuple[int, ...]
    dtype: str
    attrs: tuple = ()


@dataclass(eq=False)
class Map:
    """A loop nest over `shape`: read inputs (strided, broadcast), compute `body`,
    write `results[i]` (an index into inputs + body) to outputs[i]."""

    shape: tuple[int, ...]
    inputs: list[View]
    body: list[Instr]
    outputs: list[View]
    results: list[int]
    origin: str = ""
    reverse: bool = False  # iterate from the last element down (an expanding copy in place)

    @property
    def reads(self) -> list[View]:
        return self.inputs

    @property
    def writes(self) -> list[View]:
        return self.outputs

    @property
    def inplace(self) -> list[tuple[int, int]]:
        """An output may overwrite an input it reads at the same index, element for element."""
        pairs = []
        for i, o in enumerate(self.outputs):
            for j, v in enumerate(self.inputs):
                if broadcast_strides(v, self.shape) == broadcast_strides(o, self.shape) and \
                        o.storage.resolve() is not v.storage.resolve() and o.dtype == v.dtype and 0 not in broadcast_strides(v, self.shape):
                    pairs.append((i, j))
        return pairs

    def __str__(self) -> str:
        body = "; ".join(i.op.removeprefix("train.") for i in self.body) or "copy"
        ins = ", ".join(str(v) for v in self.inputs)
        outs = ", ".join(str(v) for v in self.outputs)
        return f"map [{'x'.join(map(str, self.shape)) or 'scalar'}] ({ins}) -> ({outs}) {{ {body} }}"


Step = Call | Map


@dataclass(eq=False)
class Epilogue:
    """A contraction call's argument: the elementwise `map` its kernel runs on each block of
    its output as the block is finished (gemm.c's pk_epilogue). The map walks the output as
    (b, row, column); its input 0 is the raw product."""

    map: Map

    def __str__(self) -> str:
        return f"epilogue {self.map}"


def _arg(a) -> str:
    if a is None:
        return "null"
    if isinstance(a, Epilogue):
        return str(a)
    if isinstance(a, IntArray):
        return "[" + ", ".join(map(str, a.values)) + "]"
    return str(a)


@dataclass(eq=False)
class KernelFunction:
    name: str
    inputs: list[View]
    outputs: list[View]
    steps: list[Step]
    sets: list = field(default_factory=list)  # parameter updates the planner may make in place
    loss_step: Step | None = None  # last step of the loss: forward before, backward after

    def storages(self) -> list[Storage]:
        seen: dict[int, Storage] = {}
        for s in self.steps:
            for v in (*s.reads, *s.writes):
                seen.setdefault(id(v.storage.resolve()), v.storage.resolve())
        return list(seen.values())

    def __str__(self) -> str:
        sig = ", ".join(f"%in{i}: {_ty(v)}" for i, v in enumerate(self.inputs))
        res = ", ".join(_ty(v) for v in self.outputs)
        lines = [f"func @{self.name}({sig}) -> ({res})"]
        lines += ["  " + str(s) for s in self.steps]
        return "\n".join(lines)


def _ty(v: View) -> str:
    return f"{'x'.join(map(str, v.shape)) or 'scalar'}x{v.dtype}"


@dataclass
class ParamSlot:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    category: str
    storage: Storage


@dataclass(eq=False)
class KernelProgram:
    """Everything a backend needs: functions, the params blob layout, the arena size,
    constants and the memory report."""

    functions: dict[str, KernelFunction]
    params: dict[str, ParamSlot]
    params_bytes: int
    arena_bytes: int
    consts: list[Storage]
    memory: dict = field(default_factory=dict)

    def ops_used(self) -> list[tuple[str, str]]:
        """(library op, variant) of every call, in first-use order."""
        names = []
        for f in self.functions.values():
            for s in f.steps:
                if isinstance(s, Call) and (s.op, s.variant) not in names:
                    names.append((s.op, s.variant))
        return names

    def __str__(self) -> str:
        head = [f"// kernel program: params {self.params_bytes} B, arena {self.arena_bytes} B"]
        head += [f"param @{p.name} : {'x'.join(map(str, p.shape)) or 'scalar'}x{p.dtype} at {p.offset}"
                 for p in self.params.values()]
        return "\n".join(head + [str(f) for f in self.functions.values()]) + "\n"
