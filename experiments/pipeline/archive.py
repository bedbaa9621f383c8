"""Earlier and exploratory runs of a section, kept beside the current results.

A rerun replaces a section's folder, and with it the only record of what the previous run measured.
So every run (and `build-site unpack`) first copies the manifest it replaces (JSON only, no images)
into `<results>/archive/`, and `build-site archive` does it by hand, so the pages can still show it: the same recipe trained again measures how much an FID moves between
training runs, and a run with `--set` overrides records an exploration the section does not repeat.
Archived manifests are never current results: they feed comparisons, not the headline numbers.
The record of a whole-writeup run (`run.json`) is kept the same way, under `archive/runs/`, when a
newer run replaces it: the Performance page shows how long the writeup took on each number of GPUs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from experiments.errors import UserError
from experiments.pipeline.results import load_manifest, load_results_json, regular_file, run_tag, safe_name

ARCHIVE = "archive"
RUNS = "runs"                 # archive/runs/: the records of earlier whole-writeup runs
# what a page reads from an archived run record
RUN_REQUIRED = {"writeup_wall_s": (int, float), "writeup_gpus": int, "writeup_device": str,
                "writeup_git_commit": str, "writeup_finished_at": str}
# what a page reads from an archived manifest
REQUIRED = {"section": str, "run_id": str, "profile": str, "seed": int, "config": dict, "device": str,
            "git_commit": str, "started_at": str, "metrics": dict, "tables": list}


def archive_name(manifest: dict) -> str:
    """'better-recipe-20261125T183346Z-8194968f4605.json': sorts by section, then by time."""
    stamp = re.sub(r"[^0-9TZ]", "", manifest["started_at"])
    return f"{manifest['section']}-{stamp}-{manifest['git_commit'][:12]}.json"


def _checked(path: Path, data: dict | None, registered: bool = False) -> dict:
    """The fields a page reads, and the names the archive file is named after: a section name (one of
    the registry's when a run is archived now) and a commit, both safe in a file name."""
    if data is None:
        raise UserError(f"no manifest at {path}")
    for key, kind in REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise UserError(f"corrupt results: {path} has no valid {key!r} field")
    if not safe_name(data["section"]):
        raise UserError(f"corrupt results: {path} has an invalid section name {data['section']!r}")
    if registered:
        from experiments.pipeline import registry

        if data["section"] not in {s.name for s in registry.all_sections()}:
            raise UserError(f"corrupt results: {path} is of an unknown section {data['section']!r}")
    if not safe_name(data["git_commit"][:12]):
        raise UserError(f"corrupt results: {path} has an invalid git_commit {data['git_commit']!r}")
    return data


def _folder(results: Path) -> Path:
    folder = Path(results) / ARCHIVE
    if folder.is_symlink():
        raise UserError(f"{folder} is a link; the archive is a folder of its own")
    return folder


def archive(results: Path, source: str) -> tuple[Path, bool]:
    """Copy a manifest into the archive: `source` is a section name (its current manifest under
    `results`) or the path of a manifest.json. Returns (archived path, whether it was new)."""
    results = Path(results)
    path = Path(source)
    if path.suffix == ".json" or path.is_file() or path.is_symlink():
        if path.exists() or path.is_symlink():
            regular_file(path)
        manifest = _checked(path, load_results_json(path, require_schema=True), registered=True)
    else:
        path = results / source / "manifest.json"
        manifest = _checked(path, load_manifest(results, source), registered=True)
    target = _folder(results) / archive_name(manifest)
    if target.exists() or target.is_symlink():
        return target, False
    _copy_new(path, target)
    return target, True


def _copy_new(path: Path, target: Path) -> None:
    """Copy `path` to `target` through a fresh temporary file: created here, never through a link
    someone left in the archive folder, and complete or absent."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = path.read_bytes()
    tmp = target.with_name(f".{target.name}.{run_tag()}.partial")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "wb") as out:
        out.write(data)
    os.replace(tmp, target)


def archive_previous(results: Path, section: str) -> Path | None:
    """Archive the manifest a run of `section` is about to replace; None when there is none to keep
    (no results yet, or a manifest too damaged to name: it is replaced as before)."""
    try:
        path, _ = archive(results, section)
    except UserError:
        return None
    return path


def load_archive(results: Path) -> dict[str, list[dict]]:
    """section -> its archived manifests, oldest first; a corrupt file is a one-line error."""
    folder = _folder(results)
    runs: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        regular_file(path)
        manifest = _checked(path, load_results_json(path, require_schema=True))
        runs.setdefault(manifest["section"], []).append(manifest)
    for manifests in runs.values():
        manifests.sort(key=lambda m: m["started_at"])
    return runs


def _run_record(path: Path) -> dict | None:
    """A whole-writeup run record with the fields a page reads, else None."""
    try:
        data = load_results_json(path)
    except UserError:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), kind) for k, kind in RUN_REQUIRED.items()):
        return None
    return data if safe_name(data["writeup_git_commit"][:12]) else None


def archive_run_record(results: Path, record_file: str = "run.json") -> Path | None:
    """Keep the whole-writeup run record a newer one is about to replace; None when there is none to
    keep (no record, or one without the fields a page reads)."""
    path = Path(results) / record_file
    if not path.is_file() or path.is_symlink():
        return None
    record = _run_record(path)
    if record is None:
        return None
    stamp = re.sub(r"[^0-9TZ]", "", record["writeup_finished_at"])
    target = _folder(results) / RUNS / f"run-{stamp}-{record['writeup_git_commit'][:12]}.json"
    if not (target.exists() or target.is_symlink()):
        _copy_new(path, target)
    return target


def load_run_records(results: Path) -> list[dict]:
    """The archived whole-writeup run records, oldest first (files without the fields a page reads
    are left out: a run record only adds a row to a table)."""
    folder = _folder(results) / RUNS
    paths = sorted(folder.glob("run-*.json")) if folder.is_dir() and not folder.is_symlink() else []
    records = [r for r in (_run_record(p) for p in paths if p.is_file() and not p.is_symlink()) if r is not None]
    return sorted(records, key=lambda r: r["writeup_finished_at"])
