"""File I/O that never leaves a half-written file: write beside, flush, fsync, rename.

Every writer of the project (dataset manifests, evaluation rows and summaries, reports,
checkpoints, cache keys, videos, predictions) goes through :func:`replacing`: the new content
is written to a temporary file in the target's folder, fsynced, then renamed over the target
(``os.replace`` is atomic on POSIX) and the folder is fsynced, so a reader, a kill or a full
disk sees either the old file or the new one, never a mix. Dataset shards are folders written
the same way by :class:`driving.dataset.DatasetWriter`; folders are copied the same way
(:func:`copy_tree`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from envs.errors import UserError

TMP_PREFIX = ".tmp-"
"""Name prefix of the temporary files and folders written beside their targets."""


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` (same suffix, for writers that pick their format by it)
    to write; on a clean exit it is flushed and renamed over ``path``, on an error removed.

    The new file follows the umask, as ``open`` would.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f"{TMP_PREFIX}{path.stem}.", suffix=path.suffix
    )
    tmp = Path(name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; an ordinary open() would not
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, write: Callable[[IO[Any]], None], *, binary: bool = False) -> None:
    """Write ``path`` through ``write(fh)`` (see :func:`replacing`): a failure leaves the
    previous ``path`` (if any) as it was and no temporary file behind."""
    with (
        replacing(path) as tmp,
        open(tmp, "wb" if binary else "w", newline=None if binary else "") as fh,
    ):
        write(fh)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of a text file."""
    atomic_write(path, lambda fh: fh.write(text))


def atomic_append_text(path: Path, text: str) -> None:
    """Rewrite the text file ``path`` with ``text`` added at its end (atomically)."""
    atomic_write_text(path, Path(path).read_text() + text)


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """:func:`atomic_write` of a binary file."""
    atomic_write(path, lambda fh: fh.write(data), binary=True)


def copy_tree(source: Path, target: Path) -> None:
    """Copy the folder ``source`` to ``target`` (absent) through a temporary sibling, so that a
    copy cut short never stands as a finished one."""
    partial = target.with_name(f"{TMP_PREFIX}{target.name}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(target)


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of the file at ``path``, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(functools.partial(fh.read, 1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def size_on_disk(root: Path) -> int:
    """Bytes of every file under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def check_output_location(path: Path, what: str = "output") -> None:
    """Check that ``path`` (a file or folder to be written, present or not) can be written.

    The rule, for every output: the nearest existing folder at or above ``path`` must be a
    folder (not a file) in which a new file can be created; this is tried for real (a probe
    file is created and removed), so permissions, read-only filesystems and pseudo-filesystems
    such as ``/proc`` are all found the same way.

    Args:
        path: the output.
        what: how the user named it, for the message (e.g. ``"--out"``).

    Raises:
        UserError: one line naming ``path`` and the reason.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise UserError(f"{what} {path} cannot be created: {existing} is a file, not a folder")
    folder = existing if existing.is_dir() else existing.parent
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f"{TMP_PREFIX}probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be written ({exc.strerror} in {folder})") from None


def hold_lock(path: Path, busy: str, shared: bool = False) -> IO[bytes]:
    """Take an advisory lock (``flock``) on the file ``path``: exclusive (a writer; the file is
    created if absent) or ``shared`` (a reader; the file must exist). A symlink is never
    followed.

    Returns the open file that holds the lock: keep it open while writing or reading; closing
    it, or the process ending in any way, releases the lock.

    Raises:
        UserError: ``busy``, when another process holds the lock (an exclusive one, for a
            shared lock).
        SymlinkLock: ``path`` is a symlink.
    """
    flags = os.O_RDONLY if shared else os.O_WRONLY | os.O_CREAT | os.O_APPEND
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise SymlinkLock(f"{path} is a symlink (refused)") from None
    handle = os.fdopen(fd, "rb" if shared else "ab")
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(busy) from None
    return handle


class SymlinkLock(UserError):
    """A lock file that is a symlink: never followed (it could lead anywhere)."""


def append_line(fh: IO[str], line: str) -> None:
    """Append ``line`` (no newline in it) and a newline to the open file ``fh``, flushed and
    fsynced, so a process killed afterwards keeps it; one killed during it leaves at most a
    last line without its newline, which readers drop."""
    fh.write(line + "\n")
    fh.flush()
    os.fsync(fh.fileno())
