"""pockengine.atomic: outputs are the old or the complete new content, whatever happens.

Killed writers (SIGKILL inside the block), racing writers (processes publishing into one
destination at once), failures inside the block, refused destinations, the rename fallback
where renameat2 cannot exchange, and the permissions the umask gives."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pockengine import atomic
from pockengine.atomic import OutputExistsError, empty_or_marked, replaced_directory, write_bytes
from pockengine.errors import UserError


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".pock-" in p.name)


def test_file_replaced_whole_with_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "w.bin", b"one")
        write_bytes(tmp_path / "w.bin", b"two")
    finally:
        os.umask(old)
    assert (tmp_path / "w.bin").read_bytes() == b"two"
    assert stat.S_IMODE((tmp_path / "w.bin").stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_directory_replaced_with_umask_permissions(tmp_path):
    dest = tmp_path / "out"
    old = os.umask(0o022)
    try:
        for content in ("first", "second"):
            with replaced_directory(dest) as tmp:
                (tmp / "a.txt").write_text(content)
                if content == "first":
                    (tmp / "only-first").write_text("x")
    finally:
        os.umask(old)
    assert (dest / "a.txt").read_text() == "second" and not (dest / "only-first").exists()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "a.txt").stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-fallback"])
def test_failure_inside_the_block_keeps_the_old_tree(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    dest = tmp_path / "out"
    with replaced_directory(dest) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), replaced_directory(dest) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed halfway")
    assert (dest / "a.txt").read_text() == "old"
    with replaced_directory(dest) as tmp:
        (tmp / "a.txt").write_text("new")
    assert (dest / "a.txt").read_text() == "new"
    assert leftovers(tmp_path) == []


def test_refused_destinations(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="not a directory"), replaced_directory(tmp_path / "file"):
        pass
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    check = empty_or_marked("model.mlir", what="program directory")
    with pytest.raises(UserError, match=r"home: exists, is not empty and is not a program directory"), \
            replaced_directory(foreign, check=check) as tmp:
        (tmp / "model.mlir").write_text("")
    assert (foreign / "thesis.tex").read_text() == "precious"
    with replaced_directory(tmp_path / "empty", check=check) as tmp:  # absent or empty: fine
        (tmp / "model.mlir").write_text("m")
    with replaced_directory(tmp_path / "empty", check=check) as tmp:  # ours: replaced
        (tmp / "model.mlir").write_text("n")
    assert (tmp_path / "empty" / "model.mlir").read_text() == "n"
    with pytest.raises(OutputExistsError, match="is a directory"):
        write_bytes(foreign, b"x")


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from pockengine.atomic import replaced_directory
with replaced_directory(sys.argv[1]) as tmp:
    (Path(tmp) / "a.txt").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_writer_leaves_the_old_tree_and_its_temporary_is_cleaned(tmp_path):
    dest = tmp_path / "out"
    with replaced_directory(dest) as tmp:
        (tmp / "a.txt").write_text("old")
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(dest)], check=False)
    assert res.returncode == -signal.SIGKILL
    assert (dest / "a.txt").read_text() == "old"
    assert len(leftovers(tmp_path)) == 1  # the dead writer's temporary ...
    with replaced_directory(dest) as tmp:
        (tmp / "a.txt").write_text("new")
    assert leftovers(tmp_path) == []  # ... removed by the next writer
    assert (dest / "a.txt").read_text() == "new"


def _publish(dest: str, k: int, keep: bool) -> None:
    with replaced_directory(dest, keep_existing=keep, durable=False) as tmp:
        for i in range(20):
            (tmp / f"f{i}").write_text(str(k))


@pytest.mark.parametrize("keep", [False, True], ids=["last-wins", "first-wins"])
def test_racing_writers_all_finish_and_one_complete_tree_wins(tmp_path, keep):
    dest = tmp_path / "out"
    ctx = mp.get_context("fork")
    for _round in range(3):
        procs = [ctx.Process(target=_publish, args=(str(dest), k, keep)) for k in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        assert [p.exitcode for p in procs] == [0] * 6
        values = {(dest / f"f{i}").read_text() for i in range(20)}
        assert len(values) == 1  # one writer's complete tree, never a mix
        assert leftovers(tmp_path) == []


# --- the outputs that go through it ---------------------------------------------------------


def small_program():
    import numpy as np
    from pockengine import Program

    prog = Program.parse((Path(__file__).parents[2] / "examples" / "mlp.mlir").read_text())
    rng = np.random.default_rng(0)
    prog.weights = {p.sym_name.data: rng.standard_normal(p.type.get_shape()).astype(np.float32) for p in prog.params()}
    return prog


def test_program_save_refuses_foreign_directories_and_uses_the_umask(tmp_path):
    prog = small_program()
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a program directory"):
        prog.save(foreign)
    assert (foreign / "todo.txt").read_text() == "keep me"
    old = os.umask(0o022)
    try:
        prog.save(tmp_path / "m")
        prog.save(tmp_path / "m")  # a program directory: replaced in one step
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").iterdir()} == {0o644}
    assert leftovers(tmp_path) == []


def _write_project(out: str, k: int) -> None:
    from pockengine.backends.project import write_project
    from pockengine.pipeline import Recipe, run

    r = run(small_program(), Recipe("cross_entropy", "sgd", hyper={"lr": 0.1 * (k + 1)}), "emit")
    write_project(out, r.kernels, r.target, r.program.weights, extra={"model.mlir": str(r.program.module)})


def test_concurrent_compiles_into_one_project(tmp_path):
    """Four `compile -o` at once: all finish, the project is one of them whole, model.mlir in it."""
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_write_project, args=(str(tmp_path / "p"), k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0] * 4
    files = {p.name for p in (tmp_path / "p").iterdir()}
    assert {"model.c", "model.h", "main.c", "Makefile", "layout.json", "weights.bin", "model.mlir"} <= files
    assert leftovers(tmp_path) == []


def test_truncated_library_in_the_build_cache_is_rebuilt(tmp_path, monkeypatch):
    from pockengine.backends import get_target
    from pockengine.backends.c.build import build_library
    from pockengine.backends.runtime import Trainer
    from pockengine.pipeline import Recipe, run

    monkeypatch.setenv("POCKENGINE_CACHE", str(tmp_path / "cache"))
    r = run(small_program(), Recipe("cross_entropy", "sgd", hyper={"lr": 0.1}), "memory-plan")
    lib = build_library(r.kernels, get_target("c"))
    size = lib.stat().st_size
    lib.write_bytes(lib.read_bytes()[: size // 3])  # a disk that filled up, a copy cut short
    again = build_library(r.kernels, get_target("c"))
    assert again.stat().st_size == size  # rebuilt, not trusted
    Trainer(r.program, r.kernels, again)  # and it loads


def test_multi_line_scheme_text_leaves_no_temporary_file(tmp_path, monkeypatch):
    import tempfile

    from pockengine.passes import run_pipeline
    from pockengine.pipeline import training_pipeline

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    spec = training_pipeline("cross_entropy", "sgd", 'default frozen\n# "quoted" \\ comment\nfc2.*: full\n', lr=0.1)
    prog = small_program()
    run_pipeline(prog, spec)
    assert "train_step" in prog.functions()
    assert not list(tmp_path.iterdir())


# Hand-written rename dances are how half-written outputs crept in (five of them before
# pockengine.atomic): the package writes files and cache entries only through that module
# (a scratch file that is read back and deleted says so: `# atomic: scratch, not an output`).
_RAW_WRITES = re.compile(r"\bos\.(replace|rename)\(|\.replace\(\s*(final|dest|path|target)\b|"
                         r"\btempfile\.mk(d|s)temp\(|\bmk(d|s)temp\(")


def test_no_module_of_the_package_writes_outputs_around_the_atomic_helper():
    root = Path(atomic.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("tests", "benchmarks", ".venv") or rel == Path("atomic.py"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if _RAW_WRITES.search(line.split("#")[0]) and "# atomic: scratch" not in line:
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == [], "use pockengine.atomic (write_bytes/replaced_directory/cache_entry):\n" + \
        "\n".join(offenders)
