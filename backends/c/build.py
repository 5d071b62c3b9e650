"""Build the emitted C into a shared library, cached by content, in as little compile time
as keeps the step as fast.

    lib = build_library(kp, get_target("c"))   # ~/.cache/pockengine/<key>/libmodel.so

(the `c` and `arm64` targets' Toolchain.build, backends/c/toolchain.py).

Every model.c includes the kernels it uses (static, so GCC can propagate the constants its
calls share into them) and the system headers they need. Two things are done once and
reused across models, each only where it leaves the step's code as fast:

- the system headers (the intrinsics headers alone are ~46k lines) go into a GCC
  precompiled header per compiler and flags: the generated code is byte-identical;
- the convolutions, with the gemm, im2col and depthwise code they call, go into one object
  per kernel library, compiler and flags, linked into every model that convolves. Each conv
  call passes its own shapes, so nothing is lost: W1 and W2 steps within the A/A noise
  (±2%). gemm, linear and matmul stay in model.c: compiled apart, BERT-mini's step is 6%
  slower (its linear layers' shared strides and scalars no longer reach gemm). The first
  model that needs the object compiles it beside its model.c, in a second process, so that
  build takes about the longer of the two (W1's cold build: 3.9 → 2.3 s on 2 idle cores).

Both are skipped, and model.c built whole, where the compiler cannot make them (no GCC).
The cache lives in $POCKENGINE_CACHE, else ~/.cache/pockengine. Each entry is published whole
(pockengine.atomic) with a manifest of its files' sha256; an entry that no longer matches it
(truncated, damaged) is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from ...atomic import cache_entry as _building
from ...atomic import verified_entry as _verified
from ..kernel_ir import KernelProgram
from ..target import BuildError, Target, cache_dir

# compiled apart from the model (see the module docstring for why these and no others)
SEPARATE_KERNELS = ("conv2d", "conv2d_backward_input", "conv2d_backward_weight")
_SEPARATE = "|".join(SEPARATE_KERNELS)
KOBJ_FORMAT = 3  # of the kernel object's and declarations' folders, part of their keys
# a static function defined in one of them, as `gcc -aux-info` lists it
SEPARATE_ENTRY = re.compile(rf"/\* kernels/({_SEPARATE})\.c:\d+:\w+ \*/ static (?!inline)(.*?\b(pk_\w+) \(.*?\));")

# the system headers a precompiled prefix adds to model.c's own first lines
INTRINSICS = """#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif
#include <time.h>
"""


def build_library(kp: KernelProgram, target: Target, title: str = "model", openmp: bool = False,
                  extra_cflags: tuple[str, ...] = ()) -> Path:
    """Compile the program into libmodel.so (or reuse the cached one); returns its path."""
    return build_files(target.sources(kp, title), target, openmp, extra_cflags)


def build_files(files: dict[str, str], target: Target, openmp: bool = False, extra_cflags: tuple[str, ...] = ()) -> Path:
    """libmodel.so of generated files (Language.render's), cached by their content. A
    kernel object not yet in the cache compiles beside model.c, on another core."""
    flags = [*target.cflags, *(["-fopenmp"] if openmp else []), *extra_cflags, "-fPIC"]
    final = cache_dir() / _key(files, flags, target.cc)
    lib = final / "libmodel.so"
    if _verified(final, "libmodel.so"):
        return lib
    with _building(final) as tmp:
        prefix = precompiled_prefix(files, target.cc, flags)
        include = ["-include", str(prefix)] if prefix else []
        separate = separate_kernels(files, target, flags, include)
        whole = files
        if separate:
            files = dict(files, **{"model.c": separate.model_c, "pk_separate.h": separate.prototypes})
        _write(tmp, files)
        obj = separate.object() if separate else None  # in the cache already, or None
        if separate and obj is None:  # compile model.c while the kernel object compiles
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(separate.build)
                _cc(target.cc, flags, *include, "-c", "-o", "model.o", "model.c", cwd=tmp)
                obj = pending.result()
            if obj is not None:
                _cc(target.cc, flags, "-shared", "-o", "libmodel.so", "model.o", str(obj), "-lm", cwd=tmp)
                (tmp / "model.o").unlink()
                return lib
            (tmp / "model.o").unlink()
            (tmp / "model.c").write_text(whole["model.c"])  # the object failed to build: model.c whole
        _cc(target.cc, flags, *include, "-shared", "-o", "libmodel.so", "model.c", *([str(obj)] if obj else []),
            "-lm", cwd=tmp)
    return lib


def precompiled_prefix(files: dict[str, str], cc: str, flags: list[str]) -> Path | None:
    """A header for `cc -include`: model.c's first lines (the feature macro, pock.h) and
    INTRINSICS, with its precompiled form beside it. None until the second build with the
    same compiler and flags (a one-off build would pay more than it saves), or where the
    compiler cannot precompile. A stale .gch is skipped by the compiler, which then reads
    the header itself: the library never depends on it."""
    text = "\n".join([*_head(files["model.c"]), INTRINSICS])
    final = cache_dir() / f"pch-{_key([text, files['pock.h']], flags, cc)}"
    if _verified(final, "pk_prefix.h.gch"):
        return final / "pk_prefix.h"
    seen, failed = final.with_suffix(".seen"), final.with_suffix(".failed")
    if failed.exists():
        return None
    if not seen.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        seen.touch()
        return None
    try:
        with _building(final) as tmp:
            (tmp / "pk_prefix.h").write_text(text)
            (tmp / "pock.h").write_text(files["pock.h"])
            _cc(cc, flags, "-x", "c-header", "-o", "pk_prefix.h.gch", "pk_prefix.h", cwd=tmp)
    except BuildError:
        failed.touch()
        return None
    return final / "pk_prefix.h"


def separate_kernels(files: dict[str, str], target: Target, flags: list[str], include: list[str]):
    """The SEPARATE_KERNELS this model calls that GCC would not specialize for it, and model.c
    calling them in the kernel object: (model_c, prototypes, object(), build()), or None when
    there are none or the compiler cannot list their prototypes (GCC's -aux-info).
    `object()` is the cached kernels.o or None; `build()` compiles it (None if it cannot)."""
    text = files["model.c"]
    moved = [k for k in SEPARATE_KERNELS if f'#include "kernels/{k}.c"\n' in text
             and not specialized_in_model(text, f"pk_{k}")]
    unit = kernel_unit(files, target, flags) if moved else None
    decl = unit and kernel_declarations(unit, target, flags, include)
    if decl is None:
        return None
    lines = re.compile(r'^#include "kernels/({})\.c"\n'.format("|".join(moved)), re.MULTILINE)
    first = lines.search(text).start()
    model_c = text[:first] + '#include "pk_separate.h"\n' + lines.sub("", text[first:])
    internal = {name for line in (decl / "internal.txt").read_text().splitlines()
                for kernel, name in [line.split()] if kernel in moved}
    kept = model_c + "".join(text for name, text in files.items() if f'#include "{name}"' in model_c)
    if set(re.findall(r"\b(pk_\w+)\s*\(", kept)) & internal:
        return None  # model.c or a kernel it keeps calls a helper of theirs that the object does not export
    prototypes = [line for line in (decl / "pk_separate.h").read_text().splitlines(keepends=True)
                  if any(f'"pkx_pk_{k}"' in line for k in moved)]
    obj = cache_dir() / f"kobj-{unit.key}"
    if obj.with_suffix(".failed").exists():
        return None  # it did not build with this compiler and flags: model.c stays whole
    return SimpleNamespace(model_c=model_c, prototypes="".join(prototypes),
                           object=lambda: obj / "kernels.o" if _verified(obj, "kernels.o") else None,
                           build=lambda: kernel_object(unit, decl, target, flags, include))


def specialized_in_model(model_c: str, fn: str) -> bool:
    """Whether GCC specializes the static kernel `fn` for this model.c (IPA constant
    propagation; the targets forbid cloning): when it is called once (inlined), or when every
    call passes the same constant (a `static const` table, NULL, a number) for one argument.
    Compiled apart it would lose that (W2's layer4 weight gradients share one shape table:
    GCC folds it into a kernel a quarter the size)."""
    calls = [_call_args(model_c, m.end()) for m in re.finditer(rf"\b{fn}\(", model_c)]
    if len(calls) == 1:
        return True
    tables = set(re.findall(r"\bstatic const [\w ]+?\b(\w+)\s*\[", model_c))
    return any(len(set(column)) == 1 and (column[0] in tables or re.fullmatch(r"NULL|[-+]?[\d.]+[\w.+-]*", column[0]))
               for column in zip(*calls))


def kernel_unit(files: dict[str, str], target: Target, flags: list[str]):
    """The translation unit of SEPARATE_KERNELS and what they require (`text`: kernels.c;
    `files`: its sources and pock.h) and the cache key of what is built from it with this
    compiler and flags (`key`), or None when the library has no such sources."""
    lib = target.library
    try:
        order = lib.sources(SEPARATE_KERNELS)
        sources = {f"kernels/{k}{lib.suffix}": lib.source_path(k).read_text() for k in order}
    except OSError:
        return None
    unit = "\n".join([*_head(files["model.c"]), *(f'#include "{name}"' for name in sources), ""])
    return SimpleNamespace(text=unit, files={**sources, "pock.h": files["pock.h"]},
                           key=_key([unit, files["pock.h"], sources, KOBJ_FORMAT], flags, target.cc))


def kernel_declarations(unit, target: Target, flags: list[str], include: list[str]) -> Path | None:
    """The folder holding pk_separate.h (the prototypes of the entry points `pk_<kernel>`,
    bound to the names the kernel object exports them by, `pkx_pk_<kernel>`), aliases.c (the
    lines of kernels.c that export them) and internal.txt (`kernel function` lines: the other
    functions of those files, not exported, as that would keep GCC from inlining them where
    they are called once); from `gcc -aux-info`, once per kernel sources, compiler and flags."""
    final = cache_dir() / f"kdecl-{unit.key}"
    failed = final.with_suffix(".failed")
    if _verified(final, "pk_separate.h"):
        return final
    if failed.exists():
        return None
    try:
        with _building(final) as tmp:
            _write(tmp, {**unit.files, "kernels.c": unit.text})
            _cc(target.cc, flags, *include, "-fsyntax-only", "-aux-info", "kernels.aux", "kernels.c", cwd=tmp)
            aux = (tmp / "kernels.aux").read_text().splitlines()
            defined = [m.groups() for line in aux if (m := SEPARATE_ENTRY.match(line))]
            found = [(decl, name) for kernel, decl, name in defined if name == f"pk_{kernel}"]
            if len(found) != len(SEPARATE_KERNELS):
                raise BuildError(f"-aux-info lists {[n for _, n in found]}, not every entry point")
            (tmp / "internal.txt").write_text("".join(f"{kernel} {name}\n" for kernel, _, name in defined
                                                      if name != f"pk_{kernel}"))
            (tmp / "aliases.c").write_text("".join(
                f'__typeof__({name}) pkx_{name} __attribute__((alias("{name}")));\n' for _, name in found))
            (tmp / "pk_separate.h").write_text("".join(f'{decl} __asm__("pkx_{name}");\n' for decl, name in found))
    except BuildError:
        failed.touch()
        return None
    return final


def kernel_object(unit, decl: Path, target: Target, flags: list[str], include: list[str]) -> Path | None:
    """kernels.o: the kernel unit with the entry points exported as kernel_declarations says,
    built once per kernel sources, compiler and flags (None where it cannot be)."""
    final = cache_dir() / f"kobj-{unit.key}"
    failed = final.with_suffix(".failed")
    if _verified(final, "kernels.o"):
        return final / "kernels.o"
    if failed.exists():
        return None
    try:
        with _building(final) as tmp:
            _write(tmp, {**unit.files, "kernels.c": unit.text + (decl / "aliases.c").read_text()})
            _cc(target.cc, flags, *include, "-c", "-o", "kernels.o", "kernels.c", cwd=tmp)
    except BuildError:
        failed.touch()
        return None
    return final / "kernels.o"


# --- helpers -----------------------------------------------------------------------------


def _call_args(text: str, start: int) -> list[str]:
    """The argument texts of the call whose `(` ends just before `start`."""
    args, depth, begin = [], 0, start
    for i in range(start, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif c in ",)" and not depth:
            args.append(text[begin:i].strip())
            begin = i + 1
            if c == ")":
                return args
    return args


def _head(model_c: str) -> list[str]:
    """model.c's preprocessor lines before its first kernel: the feature macro and pock.h."""
    head = []
    for line in model_c.splitlines():
        if line.startswith(('#include "kernels/', '#include "model.h"')) or not line.startswith(("#", "/*")):
            break
        if line.startswith("#"):
            head.append(line)
    return head


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def _key(what, flags: list[str], cc: str) -> str:
    return hashlib.sha256(json.dumps([what, flags, cc], sort_keys=True).encode()).hexdigest()[:20]


def _cc(cc: str, flags: list[str], *args: str, cwd: Path) -> None:
    cmd = [cc, "-std=c99", *flags, *args]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed in {cwd}:\n{res.stderr[-4000:]}")


