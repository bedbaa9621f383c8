"""One build at a time per site folder: an advisory file lock the kernel releases if the holder dies."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from experiments.errors import UserError
from experiments.pipeline.locking import try_lock

LOCK_NAME = ".build-site.lock"


def lock_path(site_dir: Path) -> Path:
    """The lock beside the site folder (`site/` -> `./.build-site.lock`)."""
    return Path(site_dir).resolve().parent / LOCK_NAME


@contextlib.contextmanager
def acquire(site_dir: Path) -> Iterator[Path]:
    """Hold the build lock for `site_dir`, or fail at once with a one-line UserError."""
    path = lock_path(site_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, holder = try_lock(path)
    if fd is None:
        raise UserError(f"another build-site is running on this tree ({holder}; lock {path}); "
                        "wait for it to finish and try again")
    try:
        yield path
    finally:
        os.close(fd)   # closing releases the flock
