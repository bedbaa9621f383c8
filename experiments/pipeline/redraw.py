"""Redraw a section's figures from the data kept beside them, with today's drawing code, on the CPU.

When only `experiments/figures.py` changed since a section ran (`--status` says "redraw"), its numbers
are still right and only its pictures are out of date: every figure with data is drawn again into a
copy of the section's folder, the manifest records the new drawing fingerprint, and the copy replaces
the folder in one swap (as a run's results do).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from experiments import figures
from experiments.errors import UserError
from experiments.pipeline import fingerprint, registry
from experiments.pipeline.results import ResultWriter, load_manifest


def redraw_section(results_root: Path, name: str) -> int:
    """Redraw every figure of one section that keeps its data; returns how many were redrawn."""
    section = registry.get(name)
    manifest = load_manifest(results_root, name)
    if manifest is None:
        raise UserError(f"no results for {name} in {results_root}: nothing to redraw")
    writer = ResultWriter(results_root, name)
    try:
        for item in sorted((results_root / name).iterdir()):
            if item.is_file() and item.name != "manifest.json":
                shutil.copy2(item, writer.path(item.name))
        redrawn = 0
        for figure in manifest["figures"]:
            if figure.get("data"):
                try:
                    figures.redraw(writer.path(figure["file"]))
                except (OSError, KeyError, ValueError, TypeError) as exc:
                    raise UserError(f"cannot redraw {name}/{figure['file']} from its data: {exc}") from None
                redrawn += 1
        writer.figures, writer.tables = manifest["figures"], manifest["tables"]
        writer.metrics, writer.series, writer.notes = manifest["metrics"], manifest["series"], manifest["notes"]
        kept = {k: v for k, v in manifest.items()
                if k not in ("schema", "figures", "tables", "metrics", "series", "notes", "files")}
        kept["drawing"] = fingerprint.drawing_fingerprint(fingerprint.section_module(section.module_file))
        writer.commit(kept)
        return redrawn
    except BaseException:
        writer.abort()
        raise
