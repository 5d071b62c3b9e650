"""The Hexagon toolchain entry: how a freestanding Hexagon program is built and run here.

    clang --target=hexagon-unknown-linux-musl -mv67 -mhvx -mhvx-length=128b -O2
          -ffreestanding -nostdlibinc -isystem runtime/include -nostdlib -fuse-ld=lld -static
    qemu-hexagon ./model ...

v67 is the newest Hexagon qemu 7.2 runs (v68 binaries are refused); its HVX is integer-only,
so fp32 math runs on the scalar core. There is no libc for this target here: runtime/
(the freestanding runtime: `_start`, system calls, files, printf, malloc, libm, the
compiler's division helpers) is compiled into every program. A written project's Makefile
names the compiler in HEXAGON_CC, so `make HEXAGON_CC=.../hexagon-clang` builds the same
sources with the Hexagon SDK (docs/backend.md says what a real cDSP adds: QuRT, FastRPC).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ...atomic import cache_entry, verified_entry
from ..target import BuildError, Target, Toolchain, cache_dir

HERE = Path(__file__).parent
RUNTIME = HERE / "runtime"
CC = "clang"
RUNNER = "qemu-hexagon"
TRIPLE = "--target=hexagon-unknown-linux-musl"
ARCH = ["-mv67", "-mhvx", "-mhvx-length=128b"]


def cflags(hvx: bool = True) -> list[str]:
    """-ffp-contract=off: no fused multiply-adds the C source does not spell (GCC's -std=c99
    default on the host), so the emulated step rounds as the host's does. hvx=False builds
    for the scalar core alone (benchmarks/hexagon_hvx.py compares)."""
    arch = ARCH if hvx else ["-mv67"]
    return [TRIPLE, *arch, "-O2", "-ffreestanding", "-nostdlibinc", "-ffp-contract=off", "-fno-math-errno"]


CFLAGS = cflags()
LDFLAGS = ["-nostdlib", "-fuse-ld=lld", "-static"]
BUILD_FORMAT = 1  # of the cached build folder, part of its key


def runtime_sources() -> list[Path]:
    return sorted(RUNTIME.glob("pk_*.c"))


def runtime_files() -> dict[str, str]:
    """The runtime as project files (relative path → text)."""
    out = {f"runtime/{p.name}": p.read_text() for p in sorted(RUNTIME.glob("pk_*.[ch]"))}
    for p in sorted((RUNTIME / "include").rglob("*.h")):
        out[f"runtime/include/{p.relative_to(RUNTIME / 'include')}"] = p.read_text()
    return out


def available() -> str | None:
    """None when clang (with its Hexagon backend), ld.lld and qemu-hexagon are here, else
    what is missing."""
    missing = [t for t in (CC, "ld.lld", RUNNER) if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    res = subprocess.run([CC, "--print-targets"], capture_output=True, text=True, check=False)
    if "hexagon" not in res.stdout.lower():
        return f"{CC} has no Hexagon backend"
    return None


def build(sources: list[Path | str], out: Path, cwd: Path | None = None, extra: tuple[str, ...] = (),
          flags: list[str] | None = None) -> Path:
    """Compile and link `sources` with the runtime into the static executable `out`."""
    cmd = [CC, "-std=c99", *(CFLAGS if flags is None else flags), "-isystem", str(RUNTIME / "include"), *extra, *LDFLAGS,
           "-o", str(out), *map(str, sources), *map(str, runtime_sources())]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{res.stderr[-4000:]}")
    return out


@dataclass
class HexagonToolchain(Toolchain):
    """clang for Hexagon v67 + the runtime; `build` makes the device server (serve.c linked
    with the model), cached by content; `makefile` the written project's."""

    cc: str = CC
    cflags: list[str] = field(default_factory=lambda: list(CFLAGS))
    ldflags: list[str] = field(default_factory=lambda: list(LDFLAGS))
    runner: list[str] = field(default_factory=lambda: [RUNNER])
    can_load: bool = False

    def available(self) -> str | None:
        return available()

    def build(self, files: dict[str, str], target: Target, openmp: bool = False,
              extra_cflags: tuple[str, ...] = ()) -> Path:
        if openmp:
            raise ValueError("target hexagon: no OpenMP (one hardware thread in this runtime)")
        files = {**files, "serve.c": (HERE / "serve.c").read_text()}
        runtime = runtime_files()
        key = hashlib.sha256(json.dumps([files, runtime, self.cflags, list(extra_cflags), BUILD_FORMAT],
                                        sort_keys=True).encode()).hexdigest()[:20]
        final = cache_dir() / f"hexagon-{key}"
        exe = final / "serve"
        if verified_entry(final, "serve"):
            return exe
        with cache_entry(final) as tmp:  # the shared build-cache entry: manifest, atomic, race-safe
            for name, text in files.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_text(text)
            build([tmp / "serve.c", tmp / "model.c"], tmp / "serve", cwd=tmp, extra=tuple(extra_cflags),
                  flags=self.cflags)
        return exe

    def makefile(self, target: Target) -> str:
        arch = [f for f in self.cflags if f.startswith(("-mv", "-mhvx"))]
        return MAKEFILE.format(name=target.name, triple=TRIPLE, arch=" ".join(arch),
                               flags=" ".join(f for f in self.cflags if f != TRIPLE and f not in arch),
                               ldflags=" ".join(self.ldflags), runner=" ".join(self.runner))


MAKEFILE = """# Generated by pockengine (target {name}): a freestanding Hexagon v67 program.
#   make            build ./model (static ELF; runtime/ is its libc, libm and _start)
#   make run        train STEPS steps on data.bin under qemu-hexagon, printing each loss
#   make serve      the server backends/hexagon/device.py drives (pockengine.compile)
#   make libmodel.a the step functions alone, to link into a FastRPC skeleton (no runtime)
# The Hexagon SDK's compiler builds the same sources: make HEXAGON_CC=hexagon-clang
HEXAGON_CC ?= clang
HEXAGON_TARGET ?= {triple}
HEXAGON_ARCH ?= {arch}
CC = $(HEXAGON_CC)
CFLAGS = $(HEXAGON_TARGET) $(HEXAGON_ARCH) {flags}
LIBC_INCLUDE ?= -isystem runtime/include
LDFLAGS = {ldflags}
RUNNER ?= {runner}
STEPS ?= 10
SOURCES = model.c model.h pock.h $(wildcard kernels/*.c)
RUNTIME = $(wildcard runtime/*.c) $(wildcard runtime/*.h runtime/include/*.h runtime/include/sys/*.h)

model: main.c $(SOURCES) $(RUNTIME)
\t$(CC) -std=c99 $(CFLAGS) $(LIBC_INCLUDE) -o $@ main.c model.c $(wildcard runtime/*.c) $(LDFLAGS)

serve: serve.c functions.h $(SOURCES) $(RUNTIME)
\t$(CC) -std=c99 $(CFLAGS) $(LIBC_INCLUDE) -o $@ serve.c model.c $(wildcard runtime/*.c) $(LDFLAGS)

libmodel.a: $(SOURCES)
\t$(CC) -std=c99 $(CFLAGS) $(LIBC_INCLUDE) -c -o model.o model.c
\tar rcs $@ model.o

run: model
\t$(RUNNER) ./model $(STEPS) data.bin

clean:
\trm -f model serve model.o libmodel.a

.PHONY: run clean
"""
