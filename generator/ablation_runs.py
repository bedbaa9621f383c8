"""What the ablations page derives from the archived runs of the section: each variant's FID in every
run of the same profile and seed, beside this run's.

One run ranks the variants by single FIDs; the same variants trained again (another stretch of the
random stream: the code or the lockstep grouping changed) show how far one variant's FID moves on its
own, which is the yardstick for the differences between variants. Templates only lay this out.
"""
from __future__ import annotations

from dataclasses import dataclass

from experiments.sections.ablations import describe
from experiments.core.variants import slug
from generator.archive import describe_run
from generator.inputs import metric_value


def fid_key(variant: str) -> str:
    """The ablations metric of a variant's FID ('fid_reference', 'fid_unet_norm_group')."""
    return f"fid_{slug(variant)}"


@dataclass(frozen=True)
class VariantAcrossRuns:
    label: str                          # the variant, as the page's table names it
    fids: tuple[float | None, ...]      # one per run, oldest first (None: that run did not train it)
    ratio: float | None                 # largest / smallest of its FIDs (None: fewer than two runs have it)


def comparable(current: dict, archived: list[dict]) -> list[dict]:
    """The archived runs judged like this one (same profile, seed and number of digits per FID)."""
    def key(m: dict) -> tuple:
        return m.get("profile"), m.get("seed"), m["config"].get("samples")
    return [m for m in archived if key(m) == key(current)]


def _rows(current: dict, earlier: list[dict]) -> list[VariantAcrossRuns]:
    runs = [*earlier, current]
    rows = []
    for variant in current["config"].get("variants", []):
        fids = tuple(metric_value(m, fid_key(variant)) for m in runs)
        known = [f for f in fids if f is not None and f > 0]
        rows.append(VariantAcrossRuns(describe(variant), fids, max(known) / min(known) if len(known) >= 2 else None))
    return rows


def across_runs(current: dict, archived: list[dict]) -> list[VariantAcrossRuns]:
    """This run's variants, each with its FID in every comparable run (archived oldest first, then this)."""
    return _rows(current, comparable(current, archived))


def page_context(manifest: dict, archived: list[dict], summary: dict | None = None) -> dict:
    """`run_labels` and `across_runs` (empty when no archived run is comparable) for the template."""
    earlier = comparable(manifest, archived)
    if not earlier:
        return {"run_labels": [], "across_runs": []}
    return {"run_labels": [describe_run(m) for m in earlier] + [describe_run(manifest) + " (this page)"],
            "across_runs": _rows(manifest, earlier)}
