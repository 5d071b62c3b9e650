"""Atomic outputs: a file or a directory is either the old one or the complete new one, even
when the writer is killed, the disk fills up, or two writers race for the same path.

    from pockengine.atomic import replaced_directory, write_bytes

    write_bytes("out.mlir", text.encode())            # temp file beside it, fsync, rename
    with replaced_directory("build/", check=is_project) as tmp:
        (tmp / "model.c").write_text(source)          # build the new tree in `tmp` ...
    # ... which now *is* build/ (swapped in by one rename; the old tree is then removed)

Every output of pockengine goes through this module (Program.save, the C project, the build
cache, weights.bin / data.bin, pock-opt -o, search results). What it guarantees:

- The new content is written beside the destination in a hidden temporary
  (`.NAME.pock-tmp.HOST.PID.RANDOM`) and moved in with one `rename` (a file) or, for a
  directory that already exists, one `renameat2(RENAME_EXCHANGE)` (Linux): there is no
  moment at which the destination is missing. Where the exchange is not available, the old
  tree is first renamed aside and put back if the second rename fails.
- Two writers racing for one destination both finish; the last one wins (a cache entry:
  the first one wins, `keep_existing=True`). No ENOTEMPTY.
- Temporaries left by a killed writer (its process is gone) are removed the next time
  anything is written to the same destination.
- Outputs get the permissions the user's umask gives (0644 files, 0755 directories under
  umask 022), not `mkstemp`'s 0600 / `mkdtemp`'s 0700.
- `durable=True` (the default for user outputs) fsyncs the new files and the parent
  directory, so a power cut after the call returns keeps the new content.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

TMP_TAG, OLD_TAG = "pock-tmp", "pock-old"


class OutputExistsError(UserError, FileExistsError):
    """The destination exists and is not something pockengine may replace (a file where a
    directory goes, a non-empty directory that is not one of ours)."""


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only a fallback)
    os.umask(old)
    return old


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _temp_name(dest: Path, tag: str) -> Path:
    return dest.with_name(f".{dest.name}.{tag}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(dest: str | os.PathLike, max_age_s: float = 24 * 3600) -> list[Path]:
    """Remove the temporaries a killed writer left beside `dest`: those of a process of this
    host that no longer runs, and anyone's older than `max_age_s`. Returns what was removed."""
    dest = Path(dest)
    removed = []
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return removed
    host, now = _host(), time.time()
    for p in entries:
        parts = p.name[len(dest.name) + 2:].split(".") if p.name.startswith(f".{dest.name}.") else []
        if len(parts) != 4 or parts[0] not in (TMP_TAG, OLD_TAG) or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        try:
            old = now - p.lstat().st_mtime > max_age_s
        except OSError:
            continue
        mine = parts[1] == host
        if (mine and pid != os.getpid() and not _alive(pid)) or (old and not (mine and _alive(pid))):
            _remove(p)
            removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except OSError:
            pass


def _fsync_path(p: Path, directory: bool = False) -> None:
    try:
        fd = os.open(p, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _normal_modes(root: Path) -> None:
    """Files and folders under root as open()/mkdir() under the umask make them: writers that
    create 0600 files (mkstemp, some libraries) do not make an output private by accident."""
    mask = umask()
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(d) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            full = 0o777 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111 else 0o666
            want = stat.S_IMODE(st.st_mode) | (full & ~mask)
            if want != stat.S_IMODE(st.st_mode):
                os.chmod(p, want)


def _fsync_tree(root: Path) -> None:
    for d, _dirs, files in os.walk(root):
        for name in files:
            _fsync_path(Path(d) / name)
        _fsync_path(Path(d), directory=True)


# --- files ---------------------------------------------------------------------------


@contextmanager
def replaced_file(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside `path` to write; when the block ends without an exception it
    replaces `path` (one rename). On an exception, or if killed, `path` is untouched."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a directory; a file is written here")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = _temp_name(path, TMP_TAG)
    try:
        yield tmp
        if not tmp.exists():
            tmp.touch()
        os.chmod(tmp, 0o666 & ~umask())
        if durable:
            _fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync_path(path.parent, directory=True)
    finally:
        if tmp.exists():
            _remove(tmp)


def write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` atomically (see the module docstring)."""
    with replaced_file(path, durable) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, durable: bool = True) -> None:
    write_bytes(path, text.encode(), durable)


# --- directories -----------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where that is not available."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # the call or this filesystem cannot exchange: fall back
    raise OSError(err, os.strerror(err), str(b))


def publish_directory(tmp: Path, dest: Path, check: Callable[[Path], None] | None = None,
                      keep_existing: bool = False) -> bool:
    """Move the complete tree `tmp` to `dest`. `check(dest)` runs on an existing destination
    first (raise to refuse replacing it). With keep_existing, an existing `dest` stays and
    `tmp` is dropped (a cache entry someone else finished first). True if `tmp` went in."""
    for _attempt in range(8):  # a racing writer may create or swap dest between the calls
        if dest.is_symlink() or dest.exists():
            if keep_existing:
                _remove(tmp)
                return False
            if not dest.is_dir() or dest.is_symlink():
                raise OutputExistsError(f"{dest}: exists and is not a directory; not replacing it")
            if check is not None:
                check(dest)
            if _exchange(tmp, dest):
                _remove(tmp)  # now the old tree
                return True
            old = _temp_name(dest, OLD_TAG)
            try:
                os.rename(dest, old)
            except FileNotFoundError:
                continue  # someone removed it meanwhile: try again
            try:
                os.rename(tmp, dest)
            except OSError:
                os.rename(old, dest)  # put the old one back
                raise
            _remove(old)
            return True
        try:
            os.rename(tmp, dest)
            return True
        except OSError as e:  # someone published first (dest now exists): go round again
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    raise OSError(errno.EBUSY, "another process keeps replacing it; giving up", str(dest))


@contextmanager
def replaced_directory(dest: str | os.PathLike, check: Callable[[Path], None] | None = None,
                       keep_existing: bool = False, durable: bool = True) -> Iterator[Path]:
    """A fresh temporary directory beside `dest`; when the block ends without an exception
    it becomes `dest` (publish_directory: `check`, `keep_existing`). Permissions follow the
    umask. On an exception, or if killed, `dest` is untouched and the temporary is removed
    (a killed writer's by the next writer: clean_stale)."""
    dest = Path(dest).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not keep_existing:
        if not dest.is_dir():
            raise OutputExistsError(f"{dest}: exists and is not a directory; not replacing it")
        if check is not None:
            check(dest)  # refuse early, before any work
    clean_stale(dest)
    tmp = _temp_name(dest, TMP_TAG)
    tmp.mkdir(mode=0o777 & ~umask())
    try:
        yield tmp
        _normal_modes(tmp)
        if durable:
            _fsync_tree(tmp)
        publish_directory(tmp, dest, check, keep_existing)
        if durable:
            _fsync_path(dest.parent, directory=True)
    finally:
        if tmp.exists():
            _remove(tmp)


def empty_or_marked(*markers: str, what: str = "pockengine output") -> Callable[[Path], None]:
    """A `check` for replaced_directory: the destination may be replaced when it is empty or
    holds one of the marker files (it is one of ours); otherwise OutputExistsError."""

    def check(dest: Path) -> None:
        if any((dest / m).is_file() for m in markers):
            return
        try:
            empty = not any(dest.iterdir())
        except OSError:
            empty = False
        if not empty:
            raise OutputExistsError(f"{dest}: exists, is not empty and is not a {what} "
                                    f"(no {' or '.join(markers)}); not replacing it: choose another -o")

    return check


# --- build-cache entries ------------------------------------------------------------------

MANIFEST = "MANIFEST.sha256"  # in every cache entry: sha256, size and path of each of its files


def manifest(d: Path) -> str:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.stat().st_size} {p.relative_to(d).as_posix()}"
             for p in sorted(d.rglob("*")) if p.is_file() and p.name != MANIFEST]
    return "\n".join(lines) + "\n"


def verified_entry(final: str | os.PathLike, name: str) -> bool:
    """Whether the cache entry `final` holds `name` and every file of it matches the manifest
    written when it was built. An entry that does not (truncated by a full disk or a kill
    outside pockengine, damaged, or from before manifests) is moved aside and removed, so it
    is rebuilt; a concurrent reader sees the entry or nothing."""
    final = Path(final)
    if not final.is_dir():
        return False
    try:
        ok = (final / name).is_file() and (final / MANIFEST).read_text() == manifest(final)
    except OSError:
        ok = False
    if not ok:
        aside = _temp_name(final, OLD_TAG)
        try:
            os.rename(final, aside)
        except OSError:
            return False
        _remove(aside)
    return ok


@contextmanager
def cache_entry(final: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside `final` that becomes the cache entry `final`, with its
    manifest, when the block succeeds (dropped when another process made `final` meanwhile;
    removed on failure). Every build cache (C, Hexagon, GPU) writes its entries through this
    and reads them through `verified_entry`."""
    with replaced_directory(final, keep_existing=True, durable=False) as tmp:
        yield tmp
        (tmp / MANIFEST).write_text(manifest(tmp))


__all__ = ["MANIFEST", "OutputExistsError", "cache_entry", "clean_stale", "empty_or_marked", "manifest",
           "publish_directory", "replaced_directory", "replaced_file", "umask", "verified_entry", "write_bytes",
           "write_text"]
