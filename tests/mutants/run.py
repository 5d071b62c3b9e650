"""`make mutate`: plant each hand-written bug of tests/mutants/*.patch, one at a time, in a
temporary copy of the tree, and check that the test it names fails.

    python tests/mutants/run.py                 # every mutant; exit 1 if one survives
    python tests/mutants/run.py dge-merge-slices-by-shape softmax-no-max   # some of them
    python tests/mutants/run.py --list

A mutant is a unified diff (`diff -u`, paths a/... b/... from the repository root) with a
header before the first `---`:

    # class: DGE merges two slices of one value with equal shapes but different bounds
    # test: tests/passes/test_dge_split_values.py
    # test: tests/passes/test_dge.py::test_ratio_gradients_read_a_slice_made_right_after_the_activation

The named tests must pass on the unmodified copy (checked once per test set) and fail with the
patch applied: then the mutant is *caught*. A new pass or kernel comes with a mutant here and
a test that catches it. The copy is importable as `pockengine` through PYTHONPATH, which
comes before the editable install, so the tests, and the CLIs they start, run the mutated code.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@dataclass
class Mutant:
    name: str
    path: Path
    klass: str = ""
    tests: list[str] = field(default_factory=list)


def mutants(names: list[str]) -> list[Mutant]:
    out = []
    for p in sorted(HERE.glob("*.patch")):
        m = Mutant(p.stem, p)
        for line in p.read_text().splitlines():
            if line.startswith("---"):
                break
            if line.startswith("# class:"):
                m.klass = line.split(":", 1)[1].strip()
            elif line.startswith("# test:"):
                m.tests.append(line.split(":", 1)[1].strip())
        if not m.tests:
            sys.exit(f"{p}: no `# test:` line")
        if not names or m.name in names:
            out.append(m)
    if unknown := set(names) - {m.name for m in out}:
        sys.exit(f"unknown mutants: {', '.join(sorted(unknown))}")
    return out


def copy_tree(dest: Path) -> None:
    """The files git knows or would add (tracked and untracked, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def patch(copy: Path, m: Mutant, reverse: bool = False) -> bool:
    args = ["patch", "-p1", "-s", "--no-backup-if-mismatch", "-d", str(copy)] + (["-R"] if reverse else ["--forward"])
    r = subprocess.run(args, input=m.path.read_bytes(), capture_output=True, check=False)
    return r.returncode == 0


def pytest(copy: Path, tests: list[str], timeout: int) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(copy.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", *tests]
    try:
        r = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    lines = [line.strip("= ") for line in r.stdout.splitlines() if line.strip()]
    summary = [line for line in lines if re.match(r"\d+ (passed|failed|error)", line)]
    return r.returncode, (summary or lines or [""])[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutants to run (file stems; default all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and their tests")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per test run (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    ap.add_argument("--tests", help="run these tests (space-separated) instead of each mutant's own: "
                    "does another part of the suite catch it?")
    args = ap.parse_args(argv)
    ms = mutants(args.names)
    if args.tests:
        for m in ms:
            m.tests = args.tests.split()
    if args.list:
        for m in ms:
            print(f"{m.name:<36} {m.klass}\n{'':<36} {' '.join(m.tests)}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="pock-mutate-"))
    copy = tmp / "pockengine"  # importable as `pockengine` from tmp
    copy_tree(copy)
    baseline: dict[tuple, tuple[int, str]] = {}
    rows, caught, survived = [], 0, 0
    try:
        for m in ms:
            key = tuple(m.tests)
            if key not in baseline:
                baseline[key] = pytest(copy, m.tests, args.timeout)
            if baseline[key][0] != 0:
                rows.append((m, "BASELINE FAILS", baseline[key][1]))
                continue
            if not patch(copy, m):
                rows.append((m, "STALE (does not apply)", ""))
                continue
            start = time.perf_counter()
            try:
                rc, tail = pytest(copy, m.tests, args.timeout)
            finally:
                if not patch(copy, m, reverse=True):
                    sys.exit(f"{m.name}: could not revert the patch in {copy}")
            seconds = time.perf_counter() - start
            if rc == 0:
                survived += 1
                rows.append((m, "SURVIVED", f"{tail} ({seconds:.0f} s)"))
            else:
                caught += 1
                how = "caught" if rc == 1 else f"caught (pytest exit {rc})"
                rows.append((m, how, f"{tail} ({seconds:.0f} s)"))
            print(f"{m.name}: {rows[-1][1]}", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("| mutant | class | result | tests |\n|---|---|---|---|")
    for m, result, tail in rows:
        print(f"| {m.name} | {m.klass} | {result}: {tail} | {' '.join(m.tests)} |")
    print(f"\ncaught {caught} of {len(ms)} mutants" + (f"; {survived} survived" if survived else "")
          + (f"; {len(ms) - caught - survived} not run (stale or baseline failing)" if len(ms) - caught - survived else ""))
    return 0 if caught == len(ms) else 1


if __name__ == "__main__":
    sys.exit(main())
