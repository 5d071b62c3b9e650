"""Does HVX pay on Hexagon v67 (integer-only HVX) for what it can do here — bulk copies and
fills (the runtime's memcpy/memset, which the kernels' packing and zeroing and the device's
copies call)? Measured under qemu-hexagon, which is only a proxy: qemu runs each HVX
instruction as a helper call on host vectors, and charges nothing for the DSP's real memory
hierarchy (L2/VTCM, the vector unit's 128-byte lines), so a ratio here says what the
emulator does, not what a cDSP would; a cycle count needs the SDK's hexagon-sim or a device.

    python benchmarks/hexagon_hvx.py                # both tables
    python benchmarks/hexagon_hvx.py --steps 40

Table 1: memcpy / memset of one size, repeated, built without -mhvx (word and byte loops)
vs with HVX (128-byte vmem, and clang's own HVX vectorization of the byte loops), in GB/s
of emulated copying. Table 2: the training step of the tests' small CNN and of a larger one,
the whole program built both ways (no -mhvx also stops clang vectorizing integer loops of
the model with HVX), ms per step. Times are the qemu process's CPU time
(user + system), so other load on the machine does not count.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "backends"))
sys.path.insert(0, str(ROOT / "tests" / "passes"))

MICRO = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double cpu_s(void) { struct timespec t; clock_gettime(2, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    long n = strtol(argv[1], 0, 10), reps = strtol(argv[2], 0, 10);
    unsigned char *a = malloc(n + 256), *b = malloc(n + 256);
    memset(a, 1, n + 256);
    double t0 = cpu_s();
    for (long r = 0; r < reps; r++) memcpy(b + (r & 1) * 128, a + 128, n);  /* aligned, as arena buffers are */
    double t1 = cpu_s();
    for (long r = 0; r < reps; r++) memset(b + (r & 1) * 128, (int)r, n);
    double t2 = cpu_s();
    printf("%.6f %.6f %d\n", (t1 - t0) / reps, (t2 - t1) / reps, b[n / 2]);
    return 0;
}
"""


def micro(sizes, total=64 << 20) -> list[tuple]:
    from pockengine.backends.hexagon import toolchain

    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "m.c").write_text(MICRO)
        exes = {hvx: toolchain.build([d / "m.c"], d / f"m{hvx}", cwd=d, flags=toolchain.cflags(bool(hvx)))
                for hvx in (0, 1)}
        for n in sizes:
            reps = max(4, total // n)
            t = {}
            for hvx, exe in exes.items():
                out = subprocess.run([toolchain.RUNNER, str(exe), str(n), str(reps)], capture_output=True, text=True,
                                     check=True).stdout.split()
                t[hvx] = (float(out[0]), float(out[1]))
            rows.append((n, n / t[0][0] / 1e9, n / t[1][0] / 1e9, n / t[0][1] / 1e9, n / t[1][1] / 1e9))
    return rows


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def step_ms(prog, steps: int, hvx: bool) -> float:
    from pockengine import pipeline
    from pockengine.backends.runtime import Trainer
    import programs as P

    r = pipeline.run(prog, pipeline.Recipe("cross_entropy", "sgd", None, {"lr": 0.05, "momentum": 0.9}, True,
                                           "hexagon"), "emit")
    from pockengine.backends.hexagon.toolchain import HexagonToolchain, cflags

    artifact = HexagonToolchain(cflags=cflags(hvx)).build(r.sources, r.target)
    trainer = Trainer(r.program, r.kernels, r.target.open(r.kernels, artifact))
    batches = P.batches(prog, 2)
    for i in range(3):
        trainer.step(*batches[i % 2])
    pid = trainer.device._proc.pid
    t0 = cpu_seconds(pid)
    for i in range(steps):
        trainer.step(*batches[i % 2])
    ms = (cpu_seconds(pid) - t0) / steps * 1e3
    trainer.close()
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    import programs as P

    print(f"load average {os.getloadavg()[0]:.2f}; qemu-hexagon, Hexagon v67 + HVX 128B (a proxy, see the docstring)")
    print("\nTable 1: memcpy/memset, GB/s emulated")
    print(f"{'bytes':>9} {'memcpy scalar':>14} {'memcpy HVX':>11} {'ratio':>6} {'memset scalar':>14} {'memset HVX':>11} {'ratio':>6}")
    for n, cs, ch, ss, sh in micro([256, 4096, 65536, 1 << 20]):
        print(f"{n:>9} {cs:>14.3f} {ch:>11.3f} {ch / cs:>6.2f} {ss:>14.3f} {sh:>11.3f} {sh / ss:>6.2f}")
    print(f"\nTable 2: training step, ms (qemu CPU time in 10 ms ticks: {10 * args.steps} steps of the small CNN, "
          f"{args.steps} of the larger, after 3 warm-up)")
    print(f"{'model':>24} {'scalar copies':>14} {'HVX copies':>11} {'ratio':>6}")
    for name, prog, steps in [("cnn batch 2, 8x8", P.cnn(), 10 * args.steps),
                              ("cnn batch 8, 32x32", P.cnn(batch=8, size=32), args.steps)]:
        s, h = step_ms(prog, steps, False), step_ms(prog, steps, True)
        print(f"{name:>24} {s:>14.2f} {h:>11.2f} {s / h:>6.2f}")


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"\n({time.time() - t:.0f} s)")
