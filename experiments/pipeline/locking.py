"""One writer per folder: an advisory lock (flock) on a file beside it (`.<folder>.fundiff-lock`),
released by the kernel when its holder dies, so a crashed run never blocks the next one, and a live
one is never disturbed.

Runs hold their results folder's lock for as long as they write it, and each section's checkpoint
folder while it trains; a second run finds it busy and stops with one line naming the holder. The
lock also tells whether leftovers (temporary folders of a run) can belong to a live process: while
we hold it, no other run of this folder is alive.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from experiments.errors import UserError

LOCK_SUFFIX = ".fundiff-lock"     # git-ignored

# folders this process holds: resolved path -> (file descriptor, depth); nested holds are free
_held: dict[Path, tuple[int, int]] = {}


def lock_path(folder: Path) -> Path:
    """Beside the folder, so the folder holds nothing but its contents (and need not exist yet)."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}{LOCK_SUFFIX}"


def _describe_self() -> str:
    args = " ".join(sys.argv[1:])[:80]
    return f"pid {os.getpid()} ({args or 'python'}) since {time.strftime('%Y-%m-%d %H:%M:%S')}"


def try_lock(path: Path) -> tuple[int | None, str]:
    """Open `path` and take its lock without waiting: (descriptor, '') with this process's name written
    into the file, or (None, the holder's name) when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        return None, holder
    except BaseException:
        os.close(fd)
        raise
    # the file is never deleted (that would race with a process opening it); only its text changes
    os.ftruncate(fd, 0)
    os.pwrite(fd, _describe_self().encode(), 0)
    return fd, ""


def _take(path: Path, what: str, folder: Path) -> int:
    fd, holder = try_lock(path)
    if fd is None:
        raise UserError(f"{what} {folder} is busy: another run is writing it ({holder}; lock {path}); "
                        "wait for it to finish, or use another folder")
    return fd


@contextlib.contextmanager
def hold(folder: Path, what: str = "folder") -> Iterator[Path]:
    """Hold `folder`'s lock, or fail at once with a one-line UserError."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {folder} is a file, not a folder")
    try:
        folder.resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder of {what} {folder}: {exc.strerror}") from None
    key = folder.resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        try:
            _held[key] = (_take(lock_path(folder), what, folder), 1)
        except OSError as exc:
            raise UserError(f"cannot lock {what} {folder}: {exc.strerror or exc}") from None
    try:
        yield folder
    finally:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            del _held[key]
            os.close(fd)          # closing releases the flock


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
