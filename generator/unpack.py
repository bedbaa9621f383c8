"""Bring results packed on another machine (a GPU host, a cluster job) into the results folder, losing nothing.

`python -m experiments writeup --pack` leaves a tarball of section folders (under one top folder or none). Unpacking checks every manifest in it first (a corrupt
one stops everything before a file is touched), archives the manifest each folder replaces (see
generator/archive.py), swaps the folders in, takes the run-level files (run.json, benchmark.json)
when the whole tarball is taken, and rewrites summary.json.
"""
from __future__ import annotations

import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from experiments.pipeline import registry
from experiments.errors import UserError
from experiments.pipeline.results import load_manifest, load_results_json
from experiments.pipeline.summary import write_summary
from generator.archive import archive
from generator.inputs import BENCHMARK, check_manifest

RUN_FILES = ("run.json", BENCHMARK)      # results of the whole run, not of one section


@dataclass(frozen=True)
class Unpacked:
    section: str
    run_id: str
    archived: Path | None     # the manifest of the run it replaced, kept in the archive


def _extract(tarball: Path, into: Path) -> None:
    try:
        with tarfile.open(tarball, "r:*") as tar:
            tar.extractall(into, filter="data")      # no absolute paths, no '..', no links out
    except FileNotFoundError:
        raise UserError(f"no tarball at {tarball}") from None
    except tarfile.ReadError:
        raise UserError(f"cannot unpack {tarball}: not a tar archive, or a truncated one") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot unpack {tarball}: {first}") from None


def _top(extracted: Path, names: set[str]) -> Path:
    """The folder of the tarball that holds the section folders (the root, or its single subfolder)."""
    entries = list(extracted.iterdir())
    if not any(p.name in names for p in entries) and len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return extracted


def _previous_run(results: Path, name: str) -> str | None:
    """The run id of the results a section folder holds now; None if there are none or they are
    unreadable (then there is nothing to archive, and the new results replace them)."""
    try:
        manifest = load_manifest(results, name)
    except UserError:
        return None
    return (manifest or {}).get("run_id")


def unpack(tarball: Path, results: Path, only: tuple[str, ...] = ()) -> list[Unpacked]:
    """Swap the tarball's section folders (or only those named) into `results`; returns what changed."""
    results = Path(results)
    names = {s.name for s in registry.all_sections()}
    unknown = [name for name in only if name not in names]
    if unknown:
        registry.get(unknown[0])                  # UserError with the closest section name
    results.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=results) as tmp:
        _extract(Path(tarball), Path(tmp))
        top = _top(Path(tmp), names)
        found = sorted(p.name for p in top.iterdir() if p.is_dir() and p.name in names)
        chosen = [name for name in found if not only or name in only]
        missing = [name for name in only if name not in found]
        if missing:
            raise UserError(f"{tarball} holds no results for {', '.join(missing)} "
                            f"(it has: {', '.join(found) or 'none'})")
        if not chosen:
            raise UserError(f"{tarball} holds no section results")
        manifests, previous_runs = {}, {}
        for name in chosen:                       # check them all before anything is replaced
            manifest = load_manifest(top, name)
            if manifest is None:
                raise UserError(f"{tarball}: {name}/ has no manifest.json")
            check_manifest(top / name / "manifest.json", manifest)
            manifests[name] = manifest
            previous_runs[name] = _previous_run(results, name)
        run_files = [top / f for f in RUN_FILES if not only and (top / f).is_file()]
        for path in run_files:
            load_results_json(path)               # corrupt JSON is refused before anything is replaced
        done = []
        for name in chosen:
            current = results / name
            kept = None
            if previous_runs[name] not in (None, manifests[name]["run_id"]):
                kept, _ = archive(results, name)
            previous = Path(tmp) / f".old-{name}"
            if current.exists():
                current.rename(previous)
            try:
                (top / name).rename(current)
            except OSError as exc:
                if previous.exists():
                    previous.rename(current)      # put the previous results back
                raise UserError(f"cannot move the new {name} results into {results}: {exc}") from None
            done.append(Unpacked(name, manifests[name]["run_id"], kept))
        for path in run_files:
            shutil.copyfile(path, results / path.name)
    write_summary(results)
    return done
