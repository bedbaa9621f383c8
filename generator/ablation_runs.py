"""What the ablations derive from the archived runs of the section: each variant's FID in every run of
the same profile and seed, beside this run's, and its FID relative to the reference of the same run.

One run ranks the variants by single FIDs; the same variants trained again (another stretch of the
random stream: the code or the lockstep grouping changed) show how far one variant's FID moves on its
own, which is the yardstick for the differences between variants. A switch says something about the
design choice only where it lands on the same side of its own run's reference in every run.

Variants are matched across runs by their switch, written alike whatever the spacing or case
('unet.norm=group' in older runs, 'unet.norm = group' now), else by their label. Templates only lay
this out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from generator.reader import Row, SectionRun, run_labels

TABLE = "ablations"


@dataclass(frozen=True)
class VariantAcrossRuns:
    label: str                          # the variant, as the page's table names it
    fids: tuple[float | None, ...]      # one per run, oldest first (None: that run did not train it)
    ratio: float | None                 # largest / smallest of its FIDs (None: fewer than two runs have it)
    to_reference: tuple[float | None, ...] = ()   # per run, its FID / the FID of that run's reference

    @property
    def side(self) -> str | None:
        """'lower' or 'higher' when every run that trained it puts its FID on that side of the same run's
        reference, None when the runs disagree (or none judged it)."""
        known = [r for r in self.to_reference if r is not None]
        if not known:
            return None
        return "lower" if all(r < 1 for r in known) else "higher" if all(r > 1 for r in known) else None

    @property
    def low(self) -> float | None:
        known = [r for r in self.to_reference if r is not None]
        return min(known) if known else None

    @property
    def high(self) -> float | None:
        known = [r for r in self.to_reference if r is not None]
        return max(known) if known else None


def variant_label(text: str) -> str:
    """The variant as a page names it: without the reference's check mark, '1x1' written '1×1'."""
    return re.sub(r"(\d)x(\d)", r"\1×\2", str(text).replace("✓", "")).strip()


def switch_key(switch: object) -> str:
    """A switch written alike in every run: 'unet.residual = True' and 'unet.residual=true' match."""
    return "".join(str(switch).split()).casefold()


def comparable(current: SectionRun, archived: list[SectionRun]) -> list[SectionRun]:
    """The archived runs judged like this one (same profile, seed and number of digits per FID)."""
    def key(r: SectionRun) -> tuple:
        return r.profile, r.seed, r.config.get("samples")
    return [r for r in archived if key(r) == key(current) and r.table(TABLE) is not None]


def _row(run: SectionRun, variant: Row) -> Row | None:
    """The row of `run` that trained the same variant: the same switch, else the same label."""
    rows = run.table(TABLE).rows
    key = switch_key(variant["switch"])
    return (next((r for r in rows if switch_key(r["switch"]) == key), None)
            or next((r for r in rows if variant_label(r["variant"]) == variant_label(variant["variant"])), None))


def _fid(run: SectionRun, variant: Row) -> float | None:
    row = _row(run, variant)
    return row["fid"] if row is not None else None


def across_runs(current: SectionRun, archived: list[SectionRun]) -> list[VariantAcrossRuns]:
    """This run's variants (the reference first), each with its FID in every comparable run (archived
    oldest first, then this) and its FID over the reference's of the same run."""
    table = current.table(TABLE)
    if table is None or not table.rows:
        return []
    runs = [*comparable(current, archived), current]
    reference = [_fid(r, table.rows[0]) for r in runs]
    rows = []
    for row in table.rows:
        fids = tuple(_fid(r, row) for r in runs)
        known = [f for f in fids if f is not None and f > 0]
        to_reference = tuple(f / ref if f is not None and ref else None for f, ref in zip(fids, reference))
        rows.append(VariantAcrossRuns(variant_label(row["variant"]), fids,
                                      max(known) / min(known) if len(known) >= 2 else None, to_reference))
    return rows


def history(current: SectionRun, archived: list[SectionRun]) -> dict:
    """`run_labels` and `across_runs` (empty when no archived run is comparable) for the run history."""
    earlier = comparable(current, archived)
    if not earlier:
        return {"run_labels": [], "across_runs": []}
    labels = run_labels([*earlier, current])
    return {"run_labels": labels[:-1] + [f"{labels[-1]} (current)"], "across_runs": across_runs(current, archived)}


def page_context(run: SectionRun, archived: list[SectionRun], summary: dict | None) -> dict:
    """What the ablations page reads beyond its run: every variant across the comparable runs (the
    reference first), how many runs that is, and which switches keep to one side of the reference."""
    variants = across_runs(run, archived)
    switches = variants[1:]
    return {"across_runs": variants, "ablation_runs": 1 + len(comparable(run, archived)),
            "always_lower": [v for v in switches if v.side == "lower"],
            "always_higher": [v for v in switches if v.side == "higher"],
            "either_side": [v for v in switches if v.side is None and v.low is not None],
            "variant_label": variant_label}
