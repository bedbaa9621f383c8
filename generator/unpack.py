"""Bring results packed on another machine (a GPU host, a cluster job) into the results folder, losing nothing.

`python -m experiments writeup --pack` leaves a tarball of
section folders (under one top folder or none). The tarball is never trusted: every member is checked
before a byte is written (generator/tarsafe.py: files and folders only, safe names, size limits; here:
each file in a registered section's folder and listed in its manifest, or a known run file), the
members taken are written by hand into a fresh hidden folder, and every manifest there is checked
(a corrupt one, or an image that does not decode, stops everything before a file is replaced). Then
the manifest each folder replaces is archived (generator/archive.py), the folders are swapped in one
atomic exchange each, the run-level files (run.json, benchmark.json) are taken when the whole tarball
is, and summary.json is rewritten.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from experiments.pipeline.destination import dataset_of
from experiments.pipeline import destination, registry
from experiments.errors import UserError
from experiments.pipeline.results import MANIFEST, load_manifest, load_results_json, run_tag, swap_in, writing
from experiments.pipeline.summary import write_summary
from experiments.pipeline.archive import ARCHIVE, archive, archive_run_record
from generator.inputs import BENCHMARK, SUMMARY, check_manifest
from generator.tarsafe import Member, read_members, write_members

RUN_RECORD = "run.json"
RUN_FILES = (RUN_RECORD, BENCHMARK)      # results of the whole run, not of one section
KNOWN_FILES = (*RUN_FILES, SUMMARY)      # summary.json is rewritten here, never taken


@dataclass(frozen=True)
class Unpacked:
    section: str
    run_id: str
    archived: Path | None     # the manifest of the run it replaced, kept in the archive


@dataclass(frozen=True)
class Layout:
    top: tuple[str, ...]                  # the one top folder the tarball's results sit in, or none
    sections: dict[str, list[Member]]     # section -> its files
    run_files: dict[str, Member]          # run.json, benchmark.json, summary.json


def _is_manifest(parts: tuple[str, ...]) -> bool:
    return parts[-1] == MANIFEST and len(parts) in (2, 3)


def _layout(tarball: Path, members: list[Member], names: set[str]) -> Layout:
    """Where each member belongs: a section's flat folder, a known run file, or the archive (not
    taken); anything else refuses the whole tarball."""
    firsts = {m.parts[0] for m in members}
    top: tuple[str, ...] = ()
    if len(firsts) == 1 and not firsts & (names | set(KNOWN_FILES) | {ARCHIVE}):
        top = (firsts.pop(),)
    sections: dict[str, list[Member]] = {}
    run_files: dict[str, Member] = {}
    for m in members:
        rel = m.parts[len(top):]
        if not rel:
            continue
        head = rel[0]
        if head in names and (len(rel) == 1 and m.is_dir or len(rel) == 2 and not m.is_dir):
            sections.setdefault(head, []).extend([m] if len(rel) == 2 else [])
        elif len(rel) == 1 and head in KNOWN_FILES and not m.is_dir:
            run_files[head] = m
        elif head == ARCHIVE:
            continue                      # earlier runs' records: `build-site archive` takes those
        else:
            raise UserError(f"cannot unpack {tarball}: {'/'.join(m.parts)} is neither a section's results "
                            f"(<section>/<file>) nor one of {', '.join(KNOWN_FILES)}")
    for name, files in sections.items():
        _check_listed(tarball, name, files)
    return Layout(top, sections, run_files)


def _check_listed(tarball: Path, name: str, files: list[Member]) -> None:
    """Every file of a section folder is one its manifest lists (a corrupt manifest is reported
    with its file name once it is written out and read like any other)."""
    manifest = next((m for m in files if m.parts[-1] == MANIFEST), None)
    try:
        data = json.loads(manifest.data) if manifest is not None and manifest.data is not None else None
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(data, dict):
        return
    listed = {MANIFEST, *(f for f in data.get("files") or [] if isinstance(f, str))}
    for key in ("figures", "series"):
        listed |= {item.get("file") for item in data.get(key) or [] if isinstance(item, dict)}
    extra = sorted(m.parts[-1] for m in files if m.parts[-1] not in listed)
    if extra:
        raise UserError(f"cannot unpack {tarball}: {name}/{extra[0]} is not listed in {name}/{MANIFEST}")


def _previous_run(results: Path, name: str) -> str | None:
    """The run id of the results a section folder holds now; None if there are none or they are
    unreadable (then there is nothing to archive, and the new results replace them)."""
    try:
        manifest = load_manifest(results, name)
    except UserError:
        return None
    return (manifest or {}).get("run_id")


def unpack(tarball: Path, results: Path, only: tuple[str, ...] = (), replace: bool = False) -> list[Unpacked]:
    """Swap the tarball's section folders (or only those named) into `results`; returns what changed.
    Results of another dataset or profile than those in `results` are refused unless `replace`."""
    results, tarball = Path(results), Path(tarball)
    names = {s.name for s in registry.all_sections()}
    unknown = [name for name in only if name not in names]
    if unknown:
        registry.get(unknown[0])                  # UserError with the closest section name
    layout = _layout(tarball, read_members(tarball, keep_data=_is_manifest), names)
    found = sorted(layout.sections)
    chosen = [name for name in found if not only or name in only]
    missing = [name for name in only if name not in found]
    if missing:
        raise UserError(f"{tarball} holds no results for {', '.join(missing)} "
                        f"(it has: {', '.join(found) or 'none'})")
    if not chosen:
        raise UserError(f"{tarball} holds no section results")
    takes = [f for f in RUN_FILES if not only and f in layout.run_files]
    wanted = {m.parts: m.size for name in chosen for m in layout.sections[name]}
    wanted |= {layout.run_files[f].parts: layout.run_files[f].size for f in takes}
    with writing(results):                        # no run writes these results meanwhile
        staging = results / f".unpack-{run_tag()}"   # a fresh folder: nothing in it but what is written here
        staging.mkdir()
        try:
            write_members(tarball, wanted, staging)
            done = _swap_in(tarball, staging.joinpath(*layout.top), results, chosen, takes, replace)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        write_summary(results)
    return done


def _swap_in(tarball: Path, top: Path, results: Path, chosen: list[str], takes: list[str],
             replace: bool) -> list[Unpacked]:
    manifests, previous_runs = {}, {}
    for name in chosen:                           # check them all before anything is replaced
        (top / name).mkdir(parents=True, exist_ok=True)
        manifest = load_manifest(top, name)
        if manifest is None:
            raise UserError(f"{tarball}: {name}/ has no manifest.json")
        check_manifest(top / name / MANIFEST, manifest)
        manifests[name] = manifest
        previous_runs[name] = _previous_run(results, name)
    for dataset, profile in sorted({(dataset_of(m), m["profile"]) for m in manifests.values()}):
        destination.check(results, dataset, profile, replace)
    for file in takes:
        load_results_json(top / file)             # corrupt JSON is refused before anything is replaced
    done = []
    for name in chosen:
        kept = None
        if previous_runs[name] not in (None, manifests[name]["run_id"]):
            kept, _ = archive(results, name)
        try:
            swap_in(top / name, results / name, results / f".old-{name}-{run_tag()}")
        except OSError as exc:
            raise UserError(f"cannot move the new {name} results into {results}: {exc}") from None
        done.append(Unpacked(name, manifests[name]["run_id"], kept))
    for file in takes:
        if file == RUN_RECORD:
            archive_run_record(results, file)     # the run this one replaces stays on the Performance page
        os.replace(top / file, results / file)    # one rename: the old file or the new one, never half
    return done
