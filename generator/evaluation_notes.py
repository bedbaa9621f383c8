"""What the evaluation page derives beyond its own run: whether the class-conditioned FID was still
falling over the last two checkpoints, and the better recipe's headline judged by the evaluation's own
targets. Templates only lay these out.
"""
from __future__ import annotations

from generator.reader import SectionRun, Summary


def last_epochs(run: SectionRun) -> dict | None:
    """The class-conditioned FID at the last two checkpoints of the per-epoch table, and whether it fell."""
    table = run.table("fid_per_epoch")
    if table is None or len(table.rows) < 2:
        return None
    before, last = table.rows[-2], table.rows[-1]
    return {"before_epoch": before["epoch"], "before": before["fid_class_conditioned"],
            "last_epoch": last["epoch"], "last": last["fid_class_conditioned"],
            "falling": float(last["fid_class_conditioned"]) < float(before["fid_class_conditioned"])}


def improved(run: SectionRun, summary: Summary) -> dict | None:
    """The better recipe's headline from summary.json (which holds it only when both sections ran in one
    profile), with the evaluation's targets applied to it."""
    fid, ratio = summary.get("fid_class_conditioned_improved"), summary.get("fid_ratio_class_conditioned_improved")
    accuracy = summary.get("class_accuracy_class_conditioned_improved")
    if None in (fid, ratio, accuracy):
        return None
    return {"fid": fid, "ratio": ratio, "accuracy": accuracy, "fid_ok": ratio <= run.config["target_fid_ratio"],
            "accuracy_ok": accuracy >= run.config["target_accuracy"]}


def page_context(run: SectionRun, archived: list[SectionRun], summary: Summary) -> dict:
    return {"improved": improved(run, summary), "last_epochs": last_epochs(run)}


def reference_context(run: SectionRun, archived: list[SectionRun], summary: Summary) -> dict:
    """For the pages that compare with the time-conditioned model's all-steps DDPM set (peer, fast-sampling):
    its FID, sampled once by the evaluation (None when summary.json does not hold it in this profile)."""
    return {"reference_fid": summary.get("fid_time_conditioned")}
