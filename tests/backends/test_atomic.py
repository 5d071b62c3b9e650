"""pockengine.atomic: outputs are the old or the complete new content, whatever happens.

Killed writers (SIGKILL inside the block), racing writers (processes publishing into one
destination at once), failures inside the block, refused destinations, the rename fallback
where renameat2 cannot exchange, and the permissions the umask gives."""

from __future__ import annotations

import multiprocessing as mp
import os
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
    with pytest.raises(UserError, match=r"home: exists, is not empty and is not a program directory"):
        with replaced_directory(foreign, check=check) as tmp:
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
