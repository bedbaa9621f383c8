"""Section results on disk: figures, GIFs, series, tables, metrics and a manifest, written atomically.

Layout: `<results_root>/<section>/manifest.json` plus the files it lists. A run writes into a
hidden temporary folder beside it and swaps it in only when complete, so a killed run leaves the
previous results exactly as they were.
"""
from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from experiments.errors import UserError
from experiments.testhooks import pause_at

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


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


class ResultWriter:
    """Collects one section's outputs in a temporary folder; `commit()` swaps them into place."""

    def __init__(self, results_root: Path, section: str):
        self.results_root = Path(results_root)
        self.section = section
        self.final_dir = self.results_root / section
        # made on first write: a run killed before it writes anything leaves no trace at all
        self.dir = self.results_root / f".tmp-{section}-{uuid.uuid4().hex[:8]}"
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
        self.figures.append({"file": file, "kind": kind, "title": title, "caption": caption,
                             "alt": alt or (f"{title}: {caption}" if caption else title), "group": group})

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
    def commit(self, manifest: dict) -> Path:
        """Write the manifest, then replace the previous results folder in one rename."""
        self.dir.mkdir(parents=True, exist_ok=True)
        files = sorted(p.name for p in self.dir.iterdir() if p.is_file() and p.name != MANIFEST)
        manifest = {"schema": SCHEMA_VERSION, **manifest, "figures": self.figures, "tables": self.tables,
                    "metrics": self.metrics, "series": self.series, "notes": self.notes, "files": files}
        write_json_atomic(self.dir / MANIFEST, manifest)
        pause_at("writing", self.section)   # test hook (no-op unless set)
        if self.final_dir.exists() and _exchange(self.dir, self.final_dir):
            shutil.rmtree(self.dir, ignore_errors=True)   # now holds the previous results
            return self.final_dir
        old = None
        if self.final_dir.exists():
            old = self.results_root / f".old-{self.section}-{uuid.uuid4().hex[:8]}"
            os.replace(self.final_dir, old)
        os.replace(self.dir, self.final_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final_dir

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def recover(results_root: Path) -> None:
    """Undo a swap that a kill interrupted (old folder moved aside, new one not yet in place)."""
    root = Path(results_root)
    if not root.is_dir():
        return
    for old in root.glob(".old-*"):
        section = old.name[len(".old-"):].rsplit("-", 1)[0]
        if not (root / section).exists():
            os.replace(old, root / section)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def load_results_json(path: Path, require_schema: bool = False) -> dict | None:
    """A results JSON object (manifest, summary, benchmark), None when absent; corrupt, non-object or
    too-new files are user errors. Files without a schema field are read as the current schema,
    unless require_schema (manifests always carry one)."""
    path = Path(path)
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
    """The section's manifest, None when absent; corrupt or too-new files are user errors."""
    return load_results_json(Path(results_root) / section / MANIFEST, require_schema=True)


def read_result(results_root: Path, section: str, file: str) -> dict | None:
    """A JSON file of a section's results (its manifest, or a series beside it), None when absent."""
    if file == MANIFEST:
        return load_manifest(results_root, section)
    if "/" in file or file.startswith("."):
        raise ValueError(f"result file names are flat: {file!r}")
    return load_results_json(Path(results_root) / section / file)
