"""The C-style Language: one printer for the kernel IR; C-like languages are subclasses
that override hooks (after tinygrad's renderer/cstyle.py).

The printer decides nothing: a library call prints as a call of the symbol the target's
kernel library gives for its op (backends/target.py: KernelLibrary), its operands in that
entry's order; maps print as loop nests whose body comes from `SCALAR_OPS` (one format per scalar
instruction, keyed by the train op name), and every pointer is its region base plus the
planned offset. A call's epilogue (kernel_ir.Epilogue) prints as a block function of its
own, from the same scalar formats, passed to the kernel through a `pk_epilogue`. Hooks a
language overrides: `restrict`, `type_map`, `scalar_ops`, `int_ops`,
`loop_prefix` (a pragma before a loop nest), `function_qualifier`, `prefix` (of the step
functions' names), `preamble` (lines before the kernels: feature macros, includes),
`tile_transposes` (walk transposing maps in tiles).

Names that come from the model (parameter names, value names) never reach C as code: they
appear only in comments, filtered by `c_comment`, and function names pass `c_identifier`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .inputs import header_tables
from .kernel_ir import (
    C_TYPES,
    Call,
    Epilogue,
    Instr,
    IntArray,
    KernelFunction,
    KernelProgram,
    Map,
    View,
    broadcast_strides,
    collapse,
)
from .target import KernelLibrary, Language

# How each scalar instruction prints; {0}.. are operands, {a0}.. attributes. Float forms;
# INT_OPS overrides where integers differ.
SCALAR_OPS: dict[str, str] = {
    "train.neg": "(-{0})", "train.abs": "fabsf({0})", "train.sqrt": "sqrtf({0})",
    "train.rsqrt": "(1.0f / sqrtf({0}))", "train.reciprocal": "(1.0f / {0})", "train.exp": "pk_expf({0})",
    "train.log": "logf({0})", "train.tanh": "pk_tanhf({0})", "train.sin": "sinf({0})", "train.cos": "cosf({0})",
    "train.erf": "pk_erff({0})", "train.sigmoid": "pk_sigmoidf({0})",
    # NaN in, NaN out (numpy's maximum/minimum/clip): each select keeps x unless a comparison that is
    # false for NaN holds, and maximum/minimum take a NaN first operand explicitly (a NaN second one
    # wins by itself); tests/backends/test_nan.py checks every form against the interpreter
    "train.relu": "pk_selectf({0} < 0.0f, 0.0f, {0})",
    "train.relu6": "pk_selectf({0} > 6.0f, 6.0f, pk_selectf({0} < 0.0f, 0.0f, {0}))",
    "train.silu": "({0} * pk_sigmoidf({0}))",
    "train.add": "({0} + {1})", "train.sub": "({0} - {1})", "train.mul": "({0} * {1})", "train.div": "({0} / {1})",
    "train.pow": "powf({0}, {1})", "train.maximum": "pk_selectf(({0} > {1}) | ({0} != {0}), {0}, {1})",
    "train.minimum": "pk_selectf(({0} < {1}) | ({0} != {0}), {0}, {1})", "train.and": "({0} & {1})", "train.or": "({0} | {1})",
    "train.eq": "({0} == {1})", "train.ne": "({0} != {1})", "train.lt": "({0} < {1})", "train.le": "({0} <= {1})",
    "train.gt": "({0} > {1})", "train.ge": "({0} >= {1})", "train.where": "({0} ? {1} : {2})",
    "train.logical_not": "(!{0})",
    "train.silu_backward": "({1} * pk_silu_grad({0}))",
    # optimizer scalars, computed in double like torch.optim's Python floats
    "optim.adam_step_size": "((float)({a0} / (1.0 - pow({a1}, (double){0}))))",
    "optim.adam_bias2_sqrt": "((float)sqrt(1.0 - pow({a0}, (double){0})))",
}
INT_OPS: dict[str, str] = {
    "train.abs": "({0} < 0 ? -{0} : {0})", "train.div": "pk_floordiv({0}, {1})",
    "train.relu": "({0} > 0 ? {0} : 0)", "train.relu6": "({0} < 0 ? 0 : ({0} > 6 ? 6 : {0}))",
    "train.maximum": "({0} > {1} ? {0} : {1})", "train.minimum": "({0} < {1} ? {0} : {1})",
}


# -DPK_PROFILE times every step (pock_profile() returns the milliseconds per step, summed
# over calls, in the order of the steps of each function); otherwise PK_STEP is the step.
PROFILE_SUPPORT = """#ifdef PK_PROFILE
#include <time.h>
static double pk_profile_ms[PK_PROFILE_SLOTS];
static double pk_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
#define PK_STEP(slot, stmt) do { double t0_ = pk_now_ms(); stmt; pk_profile_ms[slot] += pk_now_ms() - t0_; } while (0)
double *pock_profile(void) { return pk_profile_ms; }
#else
#define PK_STEP(slot, stmt) stmt
#endif
"""


def c_identifier(name: str) -> str:
    """A model-given name as a C identifier: letters, digits and _ only, never a keyword."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if s and not s[0].isdigit() else f"_{s}"


def c_comment(text: str) -> str:
    """Text safe inside /* */: printable ASCII without comment or line breaks."""
    s = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return s.replace("*/", "*?").replace("/*", "/?").replace("\\", "?")[:120]


def c_float(x: float) -> str:
    x = float(np.float32(x))
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INFINITY" if x > 0 else "(-INFINITY)"
    return f"{x!r}f" if "e" in repr(x) or "." in repr(x) else f"{x!r}.0f"


@dataclass
class CStyleLanguage(Language):
    """Prints a KernelProgram as one C translation unit (plus its header) calling the
    kernels of a KernelLibrary, whose sources ship beside it (kernels/<stem>.c, pock.h)."""

    name = "c-style"

    restrict: str = "restrict"
    function_qualifier: str = ""
    loop_prefix: str = ""
    type_map: dict = field(default_factory=lambda: dict(C_TYPES))
    scalar_ops: dict = field(default_factory=lambda: dict(SCALAR_OPS))
    int_ops: dict = field(default_factory=lambda: dict(INT_OPS))
    preamble: tuple = ("#define _POSIX_C_SOURCE 200809L",)
    prefix: str = "pock_"
    steps_per_part: int = 24
    tile_transposes: bool = True
    parallel_maps: bool = True  # PK_PARALLEL_FOR (pock.h) on a map's outer loop (issue 19)
    TILE = 16  # columns of a tiled transpose: the lines the strided side touches stay in L1

    # --- names ------------------------------------------------------------------------
    def function_names(self, kp: KernelProgram) -> dict[str, str]:
        out, used = {}, set()
        for name in kp.functions:
            c = self.prefix + c_identifier(name)
            while c in used:
                c += "_"
            used.add(c)
            out[name] = c
        return out

    # --- pointers -----------------------------------------------------------------------
    def pointer(self, v: View, const: bool = False) -> str:
        s = v.storage.resolve()
        ty = self.type_map[v.dtype]
        q = "const " if const else ""
        if s.region == "arena":
            base = f"({q}{ty} *)(A + {s.offset})"
        elif s.region == "params":
            base = f"({q}{ty} *)(P + {s.offset})"
        elif s.region == "input":
            base = f"(({q}{ty} *)in[{s.index}])"
        elif s.region == "output":
            base = f"(({ty} *)out[{s.index}])"
        else:
            base = f"(({q}{ty} *){self.const_name(s.index)})"
        return base if v.offset == 0 else f"({base} + {v.offset})"

    def const_name(self, i: int) -> str:
        return f"pk_const{i}"

    # --- whole program ------------------------------------------------------------------
    def render(self, kp: KernelProgram, library: KernelLibrary, title: str = "model") -> dict[str, str]:
        """model.c, model.h, pock.h and kernels/<stem>.c of every kernel the program calls."""
        files = {"model.c": self.source(kp, library, title), "model.h": self.header(kp),
                 "pock.h": (library.kernel_dir / "pock.h").read_text()}
        for k in library.program_sources(kp):
            files[f"kernels/{k}{library.suffix}"] = library.source_path(k).read_text()
        return files

    def header(self, kp: KernelProgram) -> str:
        names = self.function_names(kp)
        lines = ["/* Generated by pockengine: the model's training step, forward and state layout. */",
                 "#ifndef POCK_MODEL_H", "#define POCK_MODEL_H", "",
                 f"#define POCK_PARAMS_BYTES {max(kp.params_bytes, 64)}L",
                 f"#define POCK_ARENA_BYTES {max(kp.arena_bytes, 64)}L", ""]
        for name, fn in kp.functions.items():
            lines.append(f"void {names[name]}(unsigned char *P, unsigned char *A, void *const *in, void *const *out);")
            lines.append(f"extern const long {names[name]}_in_bytes[], {names[name]}_out_bytes[];")
            lines.append(f"#define {names[name].upper()}_N_IN {len(fn.inputs)}")
            lines.append(f"#define {names[name].upper()}_N_OUT {len(fn.outputs)}")
            lines += header_tables(kp, name, names[name])[0]  # label ranges, for main.c's data check
        if "train_step" in kp.functions:
            lines.append("#define POCK_HAS_TRAIN_STEP 1")
        lines += ["", "#endif", ""]
        return "\n".join(lines)

    def source(self, kp: KernelProgram, library: KernelLibrary, title: str = "model") -> str:
        names = self.function_names(kp)
        self.library = library
        out = [f"/* Generated by pockengine from {c_comment(title)}. Do not edit: regenerate. */",
               *self.preamble, '#include "pock.h"']
        out += [f'#include "kernels/{k}{library.suffix}"' for k in library.program_sources(kp)]
        out += ['#include "model.h"', ""]
        self._tables: dict[tuple, str] = {}
        self._maps: dict[tuple, str] = {}
        self._map_sources: list[str] = []
        self._slots = 0
        body = []
        for name, fn in kp.functions.items():
            body.append(self.function(fn, names[name]))
        out += self.consts(kp)
        out += [f"static const long {n}[] = {{{', '.join(map(str, vals))}}};" for vals, n in self._tables.items()]
        for name, fn in kp.functions.items():
            ins = ", ".join(str(v.nbytes) for v in fn.inputs) or "0"
            outs = ", ".join(str(v.nbytes) for v in fn.outputs) or "0"
            out.append(f"const long {names[name]}_in_bytes[] = {{{ins}}};")
            out.append(f"const long {names[name]}_out_bytes[] = {{{outs}}};")
            out += header_tables(kp, name, names[name])[1]
        out += [f"#define PK_PROFILE_SLOTS {max(self._slots, 1)}", PROFILE_SUPPORT]
        return "\n".join(out + self._map_sources + body)

    def consts(self, kp: KernelProgram) -> list[str]:
        lines = []
        for st in kp.consts:
            arr = np.asarray(st.data).reshape(-1)
            dt = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64", np.dtype(np.int32): "i32",
                  np.dtype(np.bool_): "i1", np.dtype(np.float64): "f32", np.dtype(np.int8): "i8",
                  np.dtype(np.uint8): "u8"}[arr.dtype]
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            vals = [c_float(x) for x in arr] if dt == "f32" else [str(int(x)) for x in arr]
            body = ",\n  ".join(", ".join(vals[i:i + 8]) for i in range(0, len(vals), 8))
            lines.append(f"static const {self.type_map[dt]} {self.const_name(st.index)}[{max(len(vals), 1)}] "
                         f"PK_ALIGNED(64) = {{\n  {body or '0'}}};")
        return lines

    def table(self, values) -> str:
        key = tuple(int(v) for v in values)
        if key not in self._tables:
            self._tables[key] = f"pk_shape{len(self._tables)}"
        return self._tables[key]

    def function(self, fn: KernelFunction, cname: str) -> str:
        """The function, split into parts of `steps_per_part` steps: compilers optimize many
        small functions far faster than one huge one (GCC's PRE is superlinear)."""
        r = self.restrict
        params = f"unsigned char *{r} P, unsigned char *{r} A, void *const *in, void *const *out"
        parts, chunks = [], [fn.steps[i:i + self.steps_per_part]
                             for i in range(0, len(fn.steps), self.steps_per_part)] or [[]]
        for k, chunk in enumerate(chunks):
            lines = [f"PK_NOINLINE static void {cname}_part{k}({params}) {{",
                     "    PK_UNUSED(P); PK_UNUSED(A); PK_UNUSED(in); PK_UNUSED(out);"]
            for i, step in enumerate(chunk, start=k * self.steps_per_part):
                lines.append(f"    /* {i}: {c_comment(step.origin or 'step')} */")
                stmt = self.call(step) if isinstance(step, Call) else self.map(step)[0].rstrip(";")
                lines.append(f"    PK_STEP({self._slots}, {stmt});")
                self._slots += 1
            parts.append("\n".join(lines + ["}", ""]))
        calls = [f"    {cname}_part{k}(P, A, in, out);" for k in range(len(chunks))]
        parts.append("\n".join([f"{self.function_qualifier}void {cname}({params}) {{", *calls, "}", ""]))
        return "\n".join(parts)

    # --- steps --------------------------------------------------------------------------
    def call(self, c: Call) -> str:
        """The library kernel's symbol with the call's operands in the kernel's order."""
        kernel = self.library.kernel(c)
        written = {id(v) for v in c.writes}
        args = []
        for name in kernel.args:
            if name.startswith("*"):  # an int tuple spread as scalars
                args += [str(int(x)) for x in c.operands[name[1:]].values]
                continue
            a = c.operands[name]
            if a is None:
                args.append("NULL")
            elif isinstance(a, View):
                args.append(self.pointer(a, const=id(a) not in written))
            elif isinstance(a, Epilogue):
                args.append(self.epilogue(a))
            elif isinstance(a, IntArray):
                args.append(self.table(a.values))
            elif isinstance(a, float):
                args.append(c_float(a))
            else:
                args.append(str(int(a)))
        return f"{kernel.symbol}({', '.join(args)})"

    def map(self, m: Map) -> list[str]:
        """A call of the loop-nest template that fits this map (templates are shared by every
        map with the same body, types, rank and innermost access pattern)."""
        splat = {i: v for i, v in enumerate(m.inputs) if self._splat(v, broadcast_strides(v, m.shape))}
        ops = [v for i, v in enumerate(m.inputs) if i not in splat] + list(m.outputs)
        dims, sts = collapse(m.shape, [broadcast_strides(v, m.shape) for v in ops])
        # restrict where no other pointer of this loop touches the same storage (an in-place
        # output shares its input's), so compilers vectorize without alias checks
        written = {id(o.storage.resolve()) for o in m.outputs}
        count: dict[int, int] = {}
        for v in ops:
            count[id(v.storage.resolve())] = count.get(id(v.storage.resolve()), 0) + 1
        quals = tuple(count[id(v.storage.resolve())] == 1 or id(v.storage.resolve()) not in written for v in ops)
        inner = tuple((st[-1] if st[-1] in (0, 1) else "n") if dims else None for st in sts)
        literals = tuple(self._literal(splat[i]) if i in splat else None for i in range(len(m.inputs)))
        # a transpose (one operand walks the last dim with a stride and the one before
        # contiguously) runs in tiles: no alias, so the order of the elements is free
        tiled = (self.tile_transposes and len(dims) >= 2 and not m.reverse and all(quals)
                 and any(st[-1] not in (0, 1) and st[-2] == 1 for st in sts))
        key = (tuple(m.body), tuple(m.results), tuple(v.dtype for v in m.inputs),
               tuple(o.dtype for o in m.outputs), literals, len(dims), inner, quals, m.reverse, tiled,
               self._threadable(m))
        name = self._maps.get(key)
        if name is None:
            name = self._maps[key] = f"pk_map{len(self._maps)}"
            self._map_sources.append(self.map_template(name, m, literals, len(dims), inner, quals, tiled))
        args = [str(d) for d in dims]
        for k, v in enumerate(ops):
            args.append(self.pointer(v, const=k < len(ops) - len(m.outputs)))
            args += [str(st) for d, st in enumerate(sts[k]) if d < len(dims) - 1 or inner[k] == "n"]
        return [f"{name}({', '.join(args)});"]

    def _threadable(self, m: Map) -> bool:
        """Whether threads may split the map's outer loop: every output element written once
        (no broadcast output, no two outputs in one storage) and read, where an output shares
        an input's storage, only at its own index (in place), so no order between iterations."""
        if not self.parallel_maps or self.loop_prefix or m.reverse:
            return False
        places = [o.storage.resolve() for o in m.outputs]
        if len({id(s) for s in places}) < len(places):
            return False
        for o in m.outputs:
            if any(st == 0 and d > 1 for st, d in zip(o.elem_strides(), o.shape)):
                return False
            if any(v.storage.resolve() is o.storage.resolve() and not v.same_place(o) for v in m.inputs):
                return False
        return True

    def _splat(self, v: View, strides) -> bool:
        """`v` is a constant read as one value everywhere (printed as a literal)."""
        s = v.storage.resolve()
        return s.region == "const" and not any(strides) and s.data is not None

    def _literal(self, v: View) -> str:
        x = np.asarray(v.storage.resolve().data).reshape(-1)[0]
        return c_float(x) if v.dtype == "f32" else str(int(x))

    def map_template(self, name: str, m: Map, literals, nd: int, inner, quals, tiled: bool = False) -> str:
        params = [f"long d{d}" for d in range(nd)]
        ptrs: list[tuple[str, str]] = []  # (pointer name, value name or "")
        for i, v in enumerate(m.inputs):
            if literals[i] is None:
                ptrs.append((f"i{i}", f"const {self.type_map[v.dtype]}"))
        for i, o in enumerate(m.outputs):
            ptrs.append((f"o{i}", self.type_map[o.dtype]))

        def index(k: int) -> str:
            p = ptrs[k][0]
            terms = [f"j{d} * {p}s{d}" for d in range(nd - 1)]
            if nd:
                terms.append({0: None, 1: f"j{nd - 1}"}.get(inner[k], f"j{nd - 1} * {p}s{nd - 1}"))
            return " + ".join(t for t in terms if t) or "0"

        for k, (p, ty) in enumerate(ptrs):
            q = f" {self.restrict}" if quals[k] and self.restrict else ""
            params.append(f"{ty} *{q} {p}")
            params += [f"long {p}s{d}" for d in range(nd) if d < nd - 1 or inner[k] == "n"]
        lines = [f"PK_NOINLINE static void {name}({', '.join(params)}) {{"]
        ind = "    "
        if self.loop_prefix and nd:
            lines.append(ind + self.loop_prefix)
        elif nd and self._threadable(m):  # threads own slices of the outer loop when it pays
            lines.append(f"{ind}PK_PARALLEL_FOR(d0 > 1 && {' * '.join(f'd{d}' for d in range(nd))} >= PK_PAR_MIN)")
        for d in range(nd - 2 if tiled else nd):  # a reverse map runs from the last element down
            lines.append(f"{ind}for (long j{d} = d{d} - 1; j{d} >= 0; j{d}--)" if m.reverse else
                         f"{ind}for (long j{d} = 0; j{d} < d{d}; j{d}++)")
        if tiled:  # TILE columns of the last dim at a time, each walked down all rows
            a, b, t = nd - 2, nd - 1, self.TILE
            lines += [f"{ind}for (long t{b} = 0; t{b} < d{b}; t{b} += {t})",
                      f"{ind}for (long j{a} = 0; j{a} < d{a}; j{a}++)",
                      f"{ind}for (long j{b} = t{b}; j{b} < (d{b} < t{b} + {t} ? d{b} : t{b} + {t}); j{b}++)"]
        lines.append(ind + "{")
        pointer_of = [sum(lit is None for lit in literals[:i]) for i in range(len(m.inputs))]
        n_read = sum(lit is None for lit in literals)
        lines += self.map_body(m, literals, lambda i: f"i{i}[{index(pointer_of[i])}]",
                               lambda i: f"o{i}[{index(n_read + i)}]", ind + "    ")
        lines += [ind + "}", "}", ""]
        body = ", ".join(i.op.removeprefix("train.") for i in m.body) or "copy"
        return f"/* map: {c_comment(body)} */\n" + "\n".join(lines)

    def map_body(self, m: Map, literals, load, store, ind: str) -> list[str]:
        """One element of a map: read each input (`load(i)`: its element, or a literal),
        compute the body, write each output (`store(i)`: its element)."""
        lines, vals, types = [], [], []
        for i, v in enumerate(m.inputs):
            if literals[i] is not None:
                vals.append(literals[i])
            else:
                lines.append(f"{ind}{self.type_map[v.dtype]} v{i} = {load(i)};")
                vals.append(f"v{i}")
            types.append(v.dtype)
        n_in = len(m.inputs)
        for j, ins in enumerate(m.body):
            expr = self.scalar(ins, [vals[a] for a in ins.operands], [types[a] for a in ins.operands])
            lines.append(f"{ind}{self.type_map[ins.dtype]} v{n_in + j} = {expr};")
            vals.append(f"v{n_in + j}")
            types.append(ins.dtype)
        for i, (res, o) in enumerate(zip(m.results, m.outputs)):
            v = vals[res] if types[res] == o.dtype else f"({self.type_map[o.dtype]}){vals[res]}"
            lines.append(f"{ind}{store(i)} = {v};")
        return lines

    # --- epilogues ----------------------------------------------------------------------
    def epilogue(self, ep: Epilogue) -> str:
        """A contraction's epilogue (gemm.c's pk_epilogue) as the call's argument: a block
        function shared by every epilogue of the same body and walk, and the bases of its
        operands. The map walks the output as (b, row, column); inputs[0] is the raw product,
        which the kernel hands over as the block itself (c, rows rs apart); an output in the
        same place is written there."""
        m = ep.map
        raw = m.inputs[0]
        literals = tuple(self._literal(v) if i and self._splat(v, v.elem_strides()) else None
                         for i, v in enumerate(m.inputs))
        ins = [i for i in range(1, len(m.inputs)) if literals[i] is None]
        in_place = tuple(o.same_place(raw) for o in m.outputs)
        outs = [i for i, same in enumerate(in_place) if not same]
        key = ("epilogue", tuple(m.body), tuple(m.results), tuple(v.dtype for v in m.inputs),
               tuple(o.dtype for o in m.outputs), literals, in_place,
               tuple(m.inputs[i].elem_strides() for i in ins), tuple(m.outputs[i].elem_strides() for i in outs))
        name = self._maps.get(key)
        if name is None:
            name = self._maps[key] = f"pk_epilogue{len(self._maps)}"
            self._map_sources.append(self.epilogue_template(name, m, literals, ins, in_place))
        ptrs = [self.pointer(m.inputs[i], const=True) for i in ins] + [self.pointer(m.outputs[i]) for i in outs]
        table = f"(void *const []){{{', '.join(f'(void *){p}' for p in ptrs)}}}" if ptrs else "NULL"
        # parenthesized: one macro argument
        return f"(&(pk_epilogue){{{name}, {table}, 0, 0, 0}})"

    def epilogue_template(self, name: str, m: Map, literals, ins: list[int], in_place) -> str:
        """The block function: per row, a row function whose pointers are restrict parameters
        (so compilers vectorize it without alias checks)."""
        r = f" {self.restrict}" if self.restrict else ""
        outs = [i for i, same in enumerate(in_place) if not same]
        ty = lambda v: self.type_map[v.dtype]
        walks = [(f"i{i}", m.inputs[i], "const ") for i in ins] + [(f"o{i}", m.outputs[i], "") for i in outs]

        def term(x: str, s: int) -> str:
            return "" if not s else x if s == 1 else f"{x} * {s}"

        col = lambda v: term("j", v.elem_strides()[2]) or "0"
        params = ["long n", f"float *{r} c"] + [f"{q}{ty(v)} *{r} {p}" for p, v, q in walks]
        lines = [f"PK_INLINE void {name}_row({', '.join(params)}) {{", "    for (long j = 0; j < n; j++) {"]
        lines += self.map_body(m, literals, lambda i: "c[j]" if i == 0 else f"i{i}[{col(m.inputs[i])}]",
                               lambda i: "c[j]" if in_place[i] else f"o{i}[{col(m.outputs[i])}]", "        ")
        lines += ["    }", "}", "",
                  f"static void {name}(const pk_epilogue *e, float *c, long rs, long b, long i0, long j0, long m, long n) {{"]
        for k, (p, v, q) in enumerate(walks):
            sb, sr, sc = v.elem_strides()
            base = " + ".join(t for t in (term("b", sb), term("i0", sr), term("j0", sc)) if t) or "0"
            lines.append(f"    {q}{ty(v)} *{p} = ({q}{ty(v)} *)e->args[{k}] + {base};")
        rows = ["c + i * rs"] + [f"{p} + {term('i', v.elem_strides()[1])}" if v.elem_strides()[1] else p
                                 for p, v, _ in walks]
        lines += ["    PK_UNUSED(e); PK_UNUSED(b); PK_UNUSED(i0); PK_UNUSED(j0);",
                  f"    for (long i = 0; i < m; i++) {name}_row(n, {', '.join(rows)});", "}", ""]
        body = ", ".join(i.op.removeprefix("train.") for i in m.body) or "copy"
        return f"/* epilogue: {c_comment(body)} */\n" + "\n".join(lines)

    def scalar(self, ins: Instr, args: list[str], types: list[str]) -> str:
        op = ins.op
        if op == "const":
            return c_float(ins.attrs[0]) if ins.dtype == "f32" else str(int(ins.attrs[0]))
        if op == "train.cast":
            if ins.dtype == "i1":
                return f"({args[0]} != 0)"
            return f"({self.type_map[ins.dtype]}){args[0]}"
        if op == "train.clamp":
            lo, hi = ins.attrs
            x = args[0]
            # floats select through their bits (pk_selectf): chained float selects against
            # constants stop GCC's vectorizer
            sel = "pk_selectf({c}, {a}, {b})" if ins.dtype == "f32" else "({c} ? {a} : {b})"
            if math.isfinite(lo):
                x = sel.format(c=f"{x} < {c_float(lo)}", a=c_float(lo), b=x)
            if math.isfinite(hi):
                x = sel.format(c=f"{x} > {c_float(hi)}", a=c_float(hi), b=x)
            return x
        if op == "train.where" and ins.dtype == "f32":
            return f"pk_selectf({args[0]}, {args[1]}, {args[2]})"
        if op == "train.gelu":
            return f"pk_gelu_tanhf({args[0]})" if ins.attrs and ins.attrs[0] == "tanh" else f"pk_geluf({args[0]})"
        if op == "train.gelu_backward":
            grad = "pk_gelu_tanh_grad" if ins.attrs and ins.attrs[0] == "tanh" else "pk_gelu_grad"
            return f"({args[1]} * {grad}({args[0]}))"
        if op == "train.pow" and args[1] in ("2.0f", "0.5f", "1.0f", "3.0f"):
            x = args[0]
            return {"2.0f": f"({x} * {x})", "0.5f": f"sqrtf({x})", "1.0f": x, "3.0f": f"({x} * {x} * {x})"}[args[1]]
        is_int = types and types[-1] != "f32"
        fmt = (self.int_ops.get(op) if is_int else None) or self.scalar_ops.get(op)
        if fmt is None:
            raise KeyError(f"no C form for scalar {op}")
        attrs = {f"a{i}": repr(float(a)) if isinstance(a, float) else a for i, a in enumerate(ins.attrs)}
        return fmt.format(*args, **attrs)
