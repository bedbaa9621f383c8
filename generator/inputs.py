"""Read what the experiments left in the results root, refusing anything the site could not show honestly.

Manifests come through `experiments.pipeline.results.load_manifest` (corrupt JSON, newer schema -> UserError);
here we add the checks the site needs: the fields a page reads, and every file a manifest names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from experiments.pipeline.destination import DEFAULT_DATASET, Dataset, dataset_of, get_dataset
from experiments.errors import UserError
from experiments.pipeline.results import load_manifest, load_results_json
from experiments.pipeline.archive import load_archive, load_run_records
from generator.reader import SectionRun, Summary, read_run
from generator.resultfiles import check_files

SUMMARY = "summary.json"        # headline numbers (experiments/summary.py)
BENCHMARK = "benchmark.json"    # performance measurements (shown on the Performance page)

# field -> type every manifest must have for a page to render it
REQUIRED = {"section": str, "title": str, "part": str, "run_id": str, "profile": str, "config": dict,
            "config_hash": str, "inputs": dict, "device": str, "git_commit": str,
            "started_at": str, "wall_s": (int, float), "versions": dict, "figures": list, "tables": list,
            "metrics": dict, "series": list, "notes": list}
FIGURE_FIELDS = ("file", "kind", "title", "caption", "alt")
TABLE_FIELDS = ("title", "columns", "rows")


@dataclass(frozen=True)
class Results:
    """Every manifest found (section name -> dict) plus the optional summary and benchmark, and the
    archived manifests of earlier runs (section name -> oldest first; see experiments/pipeline/archive.py)."""

    root: Path
    manifests: dict[str, dict]
    summary: dict | None
    benchmark: dict | None
    archive: dict[str, list[dict]] = field(default_factory=dict)
    run_records: list[dict] = field(default_factory=list)   # earlier whole-writeup runs, oldest first

    @property
    def dataset(self) -> Dataset:
        """The dataset most of the results were made on (MNIST when there are none)."""
        names = [dataset_of(m) for m in self.manifests.values()]
        return get_dataset(max(set(names), key=names.count) if names else DEFAULT_DATASET)

    @property
    def shown(self) -> str:
        """What the pages show, for their header: 'MNIST', or 'Fashion-MNIST, quick profile'."""
        profiles = [m["profile"] for m in self.manifests.values()]
        profile = max(set(profiles), key=profiles.count) if profiles else "full"
        return self.dataset.title + ("" if profile == "full" else f", {profile} profile")

    @property
    def runs(self) -> dict[str, SectionRun]:
        """Every section's results through the typed reader (what pages read)."""
        return {name: read_run(m) for name, m in self.manifests.items()}

    @property
    def archived(self) -> dict[str, list[SectionRun]]:
        """The archived runs of each section, oldest first, through the typed reader."""
        return {name: [read_run(m) for m in runs] for name, runs in self.archive.items()}

    @property
    def headline(self) -> Summary:
        """summary.json by key (absent keys read as None)."""
        return Summary(self.summary)


def check_manifest(path: Path, m: dict) -> None:
    for key, kind in REQUIRED.items():
        if not isinstance(m.get(key), kind):
            raise UserError(f"corrupt results: {path} has no valid {key!r} field")
    for i, fig in enumerate(m["figures"]):
        missing = [k for k in FIGURE_FIELDS if not isinstance(fig, dict) or k not in fig]
        if missing:
            raise UserError(f"corrupt results: {path} figure {i + 1} lacks {', '.join(missing)}")
        if fig["kind"] not in ("image", "gif", "plot"):
            raise UserError(f"corrupt results: {path} figure {fig['file']} has unknown kind {fig['kind']!r}")
    for i, table in enumerate(m["tables"]):
        missing = [k for k in TABLE_FIELDS if not isinstance(table, dict) or k not in table]
        if missing:
            raise UserError(f"corrupt results: {path} table {i + 1} lacks {', '.join(missing)}")
    for name, metric in m["metrics"].items():
        if not isinstance(metric, dict) or "value" not in metric or "label" not in metric:
            raise UserError(f"corrupt results: {path} metric {name!r} lacks value or label")
    for item in [*m["figures"], *m["series"]]:
        name = item.get("file") if isinstance(item, dict) else None
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            raise UserError(f"corrupt results: {path} names an invalid file {name!r}")
        if not (path.parent / name).is_file():
            raise UserError(f"results {path} name {name}, which is missing from {path.parent}; "
                            f"rerun the section (build-site --rerun {m['section']})")
    check_files(path, m)        # regular files (no links) of a sane size; figures decode as PNG/GIF


def load_results(root: Path, sections: list[str]) -> Results:
    """Manifests of the registered sections that have results (absent ones are simply left out)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UserError(f"results folder {root} is a file")
    manifests: dict[str, dict] = {}
    for name in sections:
        m = load_manifest(root, name)
        if m is None:
            continue
        check_manifest(root / name / "manifest.json", m)
        manifests[name] = m
    return Results(root, manifests, load_results_json(root / SUMMARY), load_results_json(root / BENCHMARK),
                   load_archive(root), load_run_records(root))
