"""Section results on disk: figures, GIFs, series, tables, metrics and a manifest, written atomically.

Layout: `<results_root>/<section>/manifest.json` plus the files it lists. A run writes into a
hidden temporary folder beside it and swaps it in only when complete, so a killed run leaves the
previous results exactly as they were.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import re
import shutil
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from experiments.errors import UserError
from experiments.pipeline import locking
from experiments.testhooks import pause_at

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FIGURE_DATA_SUFFIX = ".npz"       # the arrays a figure is drawn from, beside it (experiments.figures)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _json_safe(value.item())
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    tmp.write_text(json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE).

    Returns False where the platform or file system cannot (the caller then falls back to two
    renames, whose gap `recover` repairs).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def run_tag() -> str:
    """'<pid>-<random>': names this process's temporary folders, so a later run can tell whether
    their owner is still alive before it removes them."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _owner(name: str) -> tuple[str, int | None]:
    """('section', pid) from '.tmp-section-<pid>-<hex>'; pid None for older names without one."""
    body = name.split("-", 1)[1] if "-" in name else ""
    head, _, _hex = body.rpartition("-")
    rest, _, pid = head.rpartition("-")
    if rest and pid.isdigit():
        return rest, int(pid)
    return head, None


def _remove(path: Path) -> None:
    """Delete a leftover folder (or a link, without following it)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def swap_in(new: Path, target: Path, aside: Path) -> None:
    """Put folder `new` at `target`, replacing what is there, in one atomic step where the kernel can
    (rename-exchange); elsewhere in two renames through `aside`, a name that `recover` knows (a kill
    between them leaves the previous folder there, and the next start puts it back)."""
    if target.is_symlink():
        raise UserError(f"{target} is a link; results folders are never links")
    if target.exists():
        if _exchange(new, target):
            _remove(new)                                   # now holds the previous folder
            return
        os.replace(target, aside)
    os.replace(new, target)
    if aside.exists():
        _remove(aside)


class ResultWriter:
    """Collects one section's outputs in a temporary folder; `commit()` swaps them into place."""

    def __init__(self, results_root: Path, section: str):
        self.results_root = Path(results_root)
        self.section = section
        self.final_dir = self.results_root / section
        # made on first write: a run killed before it writes anything leaves no trace at all
        self.tag = run_tag()
        self.dir = self.results_root / f".tmp-{section}-{self.tag}"
        self.figures: list[dict] = []
        self.tables: list[dict] = []
        self.metrics: dict[str, dict] = {}
        self.series: list[dict] = []
        self.notes: list[str] = []

    def path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError(f"result file names are flat: {name!r}")
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / name

    # ---- recording -----------------------------------------------------------------------
    def add_figure(self, file: str, title: str, caption: str = "", alt: str | None = None,
                   group: str | None = None, kind: str = "image") -> None:
        """A figure file with a short title and alt text; what it shows is said by the page's template."""
        if not self.path(file).exists():
            raise FileNotFoundError(f"figure {file} was not written")
        data = self.path(file + FIGURE_DATA_SUFFIX)
        self.figures.append({"file": file, "kind": kind, "title": title, "caption": caption,
                             "alt": alt or (f"{title}: {caption}" if caption else title), "group": group,
                             "data": data.name if data.exists() else None})

    def add_table(self, key: str, title: str, columns: list[str] | dict[str, str], rows: list[list[Any]],
                  caption: str = "") -> None:
        """A table; `columns` maps column keys (what pages look values up by) to labels (what readers see),
        or lists labels alone (keys are then made from the labels when read)."""
        table: dict[str, Any] = {"key": key, "title": title}
        if isinstance(columns, dict):
            table.update(columns=list(columns.values()), keys=list(columns))
        else:
            table.update(columns=list(columns))
        self.tables.append({**table, "rows": rows, "caption": caption})

    def add_metric(self, name: str, value: Any, label: str, fmt: str = ".4g") -> None:
        self.metrics[name] = {"value": value, "label": label, "fmt": fmt}

    def add_series(self, file: str, title: str, data: dict) -> None:
        write_json_atomic(self.path(file), data)
        self.series.append({"file": file, "title": title})

    def add_note(self, text: str) -> None:
        self.notes.append(text)

    def write_json(self, file: str, data: Any) -> None:
        write_json_atomic(self.path(file), data)

    # ---- finishing -----------------------------------------------------------------------
    def commit(self, manifest: dict, before_swap: Callable[[], Any] | None = None) -> Path:
        """Write the manifest, then replace the previous results folder in one atomic swap (`before_swap`
        runs just before it, e.g. to archive the manifest being replaced)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        files = sorted(p.name for p in self.dir.iterdir() if p.is_file() and p.name != MANIFEST)
        manifest = {"schema": SCHEMA_VERSION, **manifest, "figures": self.figures, "tables": self.tables,
                    "metrics": self.metrics, "series": self.series, "notes": self.notes, "files": files}
        write_json_atomic(self.dir / MANIFEST, manifest)
        pause_at("writing", self.section)   # test hook (no-op unless set)
        if before_swap is not None:
            before_swap()
        swap_in(self.dir, self.final_dir, self.results_root / f".old-{self.section}-{self.tag}")
        return self.final_dir

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _dead(pid: int | None) -> bool:
    """A leftover's owner is gone: no pid recorded (older names, whose runs held no lock), no such
    process, or this one (whose writers remove their folder when they stop, so one still here was
    abandoned). Only called under the folder's lock, when no run of this folder can be alive anyway."""
    return pid is None or pid == os.getpid() or not locking.pid_alive(pid)


@contextlib.contextmanager
def writing(results_root: Path) -> Iterator[Path]:
    """Hold a results folder for a run (another run of it stops as busy), after tidying what runs
    killed earlier left there."""
    with locking.hold(results_root, "results folder") as folder:
        recover(folder)
        yield folder


def recover(results_root: Path) -> None:
    """Undo what a kill interrupted: a swap (previous folder moved aside, new one not yet in place)
    is put back, and temporary folders of dead runs are removed. Call it holding the folder's lock
    (experiments/pipeline/locking.py): leftovers of a live process are left alone in any case."""
    root = Path(results_root)
    if not root.is_dir():
        return
    for old in sorted(root.glob(".old-*")):
        section, pid = _owner(old.name)
        if not _dead(pid):
            continue
        target = root / section
        if SAFE_NAME.fullmatch(section) and not target.exists() and not target.is_symlink() and old.is_dir() \
                and not old.is_symlink():
            os.replace(old, target)
        else:
            _remove(old)
    for unpacking in sorted(root.glob(".unpack-*")):   # build-site unpack's staging folder
        pid = unpacking.name.split("-")[1]
        if not _dead(int(pid) if pid.isdigit() else None):
            continue
        for old in unpacking.glob(".old-*") if unpacking.is_dir() and not unpacking.is_symlink() else ():
            target = root / old.name[len(".old-"):]   # an unpack from before the atomic swap
            if SAFE_NAME.fullmatch(target.name) and not target.exists() and not target.is_symlink():
                os.replace(old, target)
        _remove(unpacking)
    for tmp in sorted(root.glob(".tmp-*")):
        if _dead(_owner(tmp.name)[1]):
            _remove(tmp)


# Names read from results files that end up in a path: letters, digits, '.', '_', '+', '-', no leading dot.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def regular_file(path: Path) -> None:
    """Refuse anything but a regular file: a link could point at any file of the machine."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    if stat.S_ISLNK(mode):
        raise UserError(f"{path} is a link; results files are never links")
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} is not a regular file")


def safe_name(name: Any) -> bool:
    """Whether a name read from a results file may be used as one path component."""
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None and ".." not in name


def check_names(path: Path, manifest: dict, section: str | None = None) -> None:
    """Every name of a manifest that becomes part of a path is a safe flat name (and, for a section's
    own manifest, its section is the folder's): a results file never points outside its folder."""
    name = manifest.get("section")
    if not safe_name(name):
        raise UserError(f"corrupt results: {path} has an invalid section name {name!r}")
    if section is not None and name != section:
        raise UserError(f"corrupt results: {path} is the manifest of {name!r}, not of {section!r}")
    files = [item.get("file") if isinstance(item, dict) else item
             for key in ("figures", "series") for item in (manifest.get(key) or [])
             if isinstance(manifest.get(key), list)]
    files += manifest.get("files") if isinstance(manifest.get("files"), list) else []
    for file in files:
        if not safe_name(file):
            raise UserError(f"corrupt results: {path} names an invalid file {file!r}")
    for key in ("inputs", "loaded_weights"):
        for dep in (manifest.get(key) or {}) if isinstance(manifest.get(key), dict) else ():
            if not safe_name(dep):
                raise UserError(f"corrupt results: {path} names an invalid section {dep!r} in {key}")
    weights_key = manifest.get("weights_key")
    if weights_key is not None and not safe_name(weights_key):
        raise UserError(f"corrupt results: {path} has an invalid weights_key {weights_key!r}")


def load_results_json(path: Path, require_schema: bool = False) -> dict | None:
    """A results JSON object (manifest, summary, benchmark), None when absent; corrupt, non-object or
    too-new files are user errors. Files without a schema field are read as the current schema,
    unless require_schema (manifests always carry one)."""
    path = Path(path)
    if path.is_symlink():
        raise UserError(f"corrupt results: {path} is a link; results files are never links")
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"corrupt results: {path} is not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"corrupt results: {path} is not a JSON object")
    if require_schema and "schema" not in data:
        raise UserError(f"corrupt results: {path} has no schema field")
    schema = data.get("schema", SCHEMA_VERSION)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise UserError(f"results {path} use schema {schema}, newer than this code "
                        f"understands ({SCHEMA_VERSION}); update the code")
    return data


def load_manifest(results_root: Path, section: str) -> dict | None:
    """The section's manifest, None when absent; corrupt or too-new files, and names that would point
    outside the section's folder, are user errors. A section folder that is a link is refused."""
    folder = Path(results_root) / section
    if folder.is_symlink():
        raise UserError(f"corrupt results: {folder} is a link; results folders are never links")
    path = folder / MANIFEST
    if path.is_symlink():
        raise UserError(f"corrupt results: {path} is a link; results files are never links")
    manifest = load_results_json(path, require_schema=True)
    if manifest is not None:
        check_names(path, manifest, section)
    return manifest


def read_result(results_root: Path, section: str, file: str) -> dict | None:
    """A JSON file of a section's results (its manifest, or a series beside it), None when absent."""
    if file == MANIFEST:
        return load_manifest(results_root, section)
    if "/" in file or file.startswith("."):
        raise ValueError(f"result file names are flat: {file!r}")
    return load_results_json(Path(results_root) / section / file)
