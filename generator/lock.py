"""One build at a time per site folder: an advisory file lock the kernel releases if the holder dies."""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from experiments.errors import UserError

LOCK_NAME = ".build-site.lock"


def lock_path(site_dir: Path) -> Path:
    """The lock beside the site folder (`site/` -> `./.build-site.lock`)."""
    return Path(site_dir).resolve().parent / LOCK_NAME


@contextlib.contextmanager
def acquire(site_dir: Path) -> Iterator[Path]:
    """Hold the build lock for `site_dir`, or fail at once with a one-line UserError."""
    path = lock_path(site_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
            raise UserError(f"another build-site is running on this tree ({holder}; lock {path}); "
                            "wait for it to finish and try again") from None
        # the file is never deleted (that would race with a waiting process); only its text changes
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        yield path
    finally:
        os.close(fd)   # closing releases the flock
