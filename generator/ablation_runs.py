"""What the ablations derive from the archived runs of the section: each variant's FID in every run of
the same profile and seed, beside this run's.

One run ranks the variants by single FIDs; the same variants trained again (another stretch of the
random stream: the code or the lockstep grouping changed) show how far one variant's FID moves on its
own, which is the yardstick for the differences between variants. Variants are matched across runs by
their switch; templates only lay this out.
"""
from __future__ import annotations

from dataclasses import dataclass

from generator.reader import SectionRun

TABLE = "ablations"


@dataclass(frozen=True)
class VariantAcrossRuns:
    label: str                          # the variant, as the page's table names it
    fids: tuple[float | None, ...]      # one per run, oldest first (None: that run did not train it)
    ratio: float | None                 # largest / smallest of its FIDs (None: fewer than two runs have it)


def comparable(current: SectionRun, archived: list[SectionRun]) -> list[SectionRun]:
    """The archived runs judged like this one (same profile, seed and number of digits per FID)."""
    def key(r: SectionRun) -> tuple:
        return r.profile, r.seed, r.config.get("samples")
    return [r for r in archived if key(r) == key(current) and r.table(TABLE) is not None]


def _fid(run: SectionRun, switch: str) -> float | None:
    row = run.table(TABLE).first(switch=switch)
    return row["fid"] if row is not None else None


def across_runs(current: SectionRun, archived: list[SectionRun]) -> list[VariantAcrossRuns]:
    """This run's variants, each with its FID in every comparable run (archived oldest first, then this)."""
    table = current.table(TABLE)
    if table is None:
        return []
    runs = [*comparable(current, archived), current]
    rows = []
    for row in table.rows:
        fids = tuple(_fid(r, row["switch"]) for r in runs)
        known = [f for f in fids if f is not None and f > 0]
        rows.append(VariantAcrossRuns(row["variant"], fids, max(known) / min(known) if len(known) >= 2 else None))
    return rows


def history(current: SectionRun, archived: list[SectionRun]) -> dict:
    """`run_labels` and `across_runs` (empty when no archived run is comparable) for the run history."""
    earlier = comparable(current, archived)
    if not earlier:
        return {"run_labels": [], "across_runs": []}
    return {"run_labels": [r.date for r in earlier] + [f"{current.date} (current)"],
            "across_runs": across_runs(current, archived)}
