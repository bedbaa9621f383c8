"""Read a results tarball without trusting it: every member is checked before any byte is written,
and the bytes are then written by hand into a fresh folder (tarfile's extract is never called).

A member must be a regular file or a folder (no links of either kind, devices, FIFOs or sparse
files), with a relative name made of safe parts (no absolute path, no '..', no hidden or odd
names), at most MAX_FILE_BYTES, and all of them together at most MAX_TOTAL_BYTES: a small tarball
cannot unfold into gigabytes. What the members may be called (section folders, known files) is the
caller's rule (generator/unpack.py).
"""
from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from experiments.errors import UserError
from experiments.pipeline.results import safe_name

MAX_FILE_BYTES = 32 * 2**20       # the largest committed result is under 1 MB (a sampling GIF)
MAX_TOTAL_BYTES = 128 * 2**20     # a whole full-profile writeup is about 16 MB
MAX_MEMBERS = 20_000
MAX_JSON_BYTES = 8 * 2**20        # a manifest read while checking (they are a few KB)


@dataclass(frozen=True)
class Member:
    parts: tuple[str, ...]        # the name, split and checked ('./' prefixes dropped)
    is_dir: bool
    size: int
    data: bytes | None = None     # the content, for members read while checking (manifests)


def _parts(tarball: Path, info: tarfile.TarInfo) -> tuple[str, ...]:
    name = info.name
    if "\\" in name or "\0" in name or name.startswith("/"):
        raise UserError(f"cannot unpack {tarball}: member {name!r} has an absolute or malformed name")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        raise UserError(f"cannot unpack {tarball}: member {name!r} points outside the tarball ('..')")
    bad = [p for p in parts if not safe_name(p)]
    if bad:
        raise UserError(f"cannot unpack {tarball}: member {name!r} has a name results never have ({bad[0]!r})")
    return parts


def _kind(info: tarfile.TarInfo) -> str | None:
    """Why a member is refused, None for a plain file or folder."""
    if info.issym():
        return "a symbolic link"
    if info.islnk():
        return "a hard link"
    if info.isdir():
        return None
    if info.isreg() and not info.issparse():
        return None
    return "a device, FIFO or sparse file"


def read_members(tarball: Path, keep_data: Callable[[tuple[str, ...]], bool]) -> list[Member]:
    """Every member of the tarball, checked (see the module docstring); the content of those for
    which keep_data(parts) is true is read too. Any problem is one UserError, before anything is written."""
    members: list[Member] = []
    seen: set[tuple[str, ...]] = set()
    total = 0
    try:
        with tarfile.open(tarball, "r:*") as tar:
            while (info := tar.next()) is not None:
                what = _kind(info)
                if what:
                    raise UserError(f"cannot unpack {tarball}: member {info.name!r} is {what}; results "
                                    "tarballs hold only files and folders")
                parts = _parts(tarball, info)
                if not parts:
                    continue                              # the './' entry itself
                if parts in seen:
                    raise UserError(f"cannot unpack {tarball}: member {info.name!r} appears twice")
                seen.add(parts)
                if len(seen) > MAX_MEMBERS:
                    raise UserError(f"cannot unpack {tarball}: more than {MAX_MEMBERS:,} members")
                if info.size > MAX_FILE_BYTES:
                    raise UserError(f"cannot unpack {tarball}: {info.name} is {info.size:,} bytes, more than "
                                    f"the {MAX_FILE_BYTES:,} a result file may have")
                total += info.size
                if total > MAX_TOTAL_BYTES:
                    raise UserError(f"cannot unpack {tarball}: its files add up to more than "
                                    f"{MAX_TOTAL_BYTES:,} bytes")
                data = None
                if info.isreg() and keep_data(parts):
                    if info.size > MAX_JSON_BYTES:
                        raise UserError(f"cannot unpack {tarball}: {info.name} is too large for a manifest")
                    data = _read(tar, info, tarball)
                members.append(Member(parts, info.isdir(), info.size, data))
    except FileNotFoundError:
        raise UserError(f"no tarball at {tarball}") from None
    except IsADirectoryError:
        raise UserError(f"{tarball} is a folder, not a tarball") from None
    except tarfile.ReadError:
        raise UserError(f"cannot unpack {tarball}: not a tar archive, or a truncated one") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot unpack {tarball}: {first}") from None
    return members


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo, tarball: Path) -> bytes:
    handle = tar.extractfile(info)
    data = handle.read(info.size + 1) if handle is not None else b""
    if len(data) != info.size:
        raise UserError(f"cannot unpack {tarball}: {info.name} is truncated")
    return data


def write_members(tarball: Path, wanted: dict[tuple[str, ...], int], into: Path) -> None:
    """Write the wanted members (name parts -> size, as read_members checked them) under the fresh
    folder `into`, byte by byte: folders made here, files created exclusively and never through a link."""
    into = Path(into)
    try:
        with tarfile.open(tarball, "r:*") as tar:
            while (info := tar.next()) is not None:
                parts = tuple(p for p in PurePosixPath(info.name).parts if p != ".")
                if wanted.get(parts) != info.size or not info.isreg() or info.issparse():
                    continue
                target = into.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                written = 0
                with os.fdopen(fd, "wb") as out:
                    source = tar.extractfile(info)
                    while source is not None and (block := source.read(1 << 20)):
                        written += len(block)
                        if written > info.size:
                            break
                        out.write(block)
                if written != info.size:
                    raise UserError(f"cannot unpack {tarball}: {info.name} is truncated")
    except (tarfile.TarError, EOFError) as exc:
        raise UserError(f"cannot unpack {tarball}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}") \
            from None
