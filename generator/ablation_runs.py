"""What the ablations page derives from the archived runs of the section: each variant's FID in every
run of the same profile and seed, beside this run's.

One run ranks the variants by single FIDs; the same variants trained again (another stretch of the
random stream: the code or the lockstep grouping changed) show how far one variant's FID moves on its
own, which is the yardstick for the differences between variants. Templates only lay this out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from generator.archive import describe_run
from generator.inputs import metric_value


# the words for each switch of runs recorded with variant strings ('unet.norm=group')
_LEGACY_LABELS = {
    "reference": "reference configuration ✓",
    "unet.residual=true": "residual connections in the conv blocks",
    "unet.norm=group": "GroupNorm instead of BatchNorm",
    "unet.final_kernel=1": "1x1 final conv instead of 3x3",
    "diffusion.t_per=batch": "one t per batch instead of per sample",
    "diffusion.predict=x0": "predict x0 instead of eps",
}


def variant_name(variant: dict | str) -> str:
    """A variant's metric name: a typed variant's `name`, or a variant string's slug (earlier runs)."""
    if isinstance(variant, dict):
        return variant["name"]
    return re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")


def variant_label(variant: dict | str) -> str:
    """A variant's label for readers (earlier runs: from its switch string)."""
    if isinstance(variant, dict):
        return variant["label"]
    if variant.startswith("train.ema_decay="):
        return f"EMA of the weights (decay {variant.split('=', 1)[1]})"
    return _LEGACY_LABELS.get(variant, variant)


def fid_key(variant: dict | str) -> str:
    """The ablations metric of a variant's FID ('fid_reference', 'fid_unet_norm_group')."""
    return f"fid_{variant_name(variant)}"


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
        rows.append(VariantAcrossRuns(variant_label(variant), fids, max(known) / min(known) if len(known) >= 2 else None))
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
