"""What the evaluation page derives beyond its manifest: whether the class-conditioned FID was still
falling over the last two checkpoints, and the better recipe's headline judged by the evaluation's own
targets. Templates only lay these out.
"""
from __future__ import annotations

from generator.inputs import table_rows


def last_epochs(manifest: dict) -> dict | None:
    """The class-conditioned FID at the last two checkpoints of the per-epoch table, and whether it fell."""
    rows = table_rows(manifest, "fid_per_epoch")        # epoch, FID time-conditioned, FID class-conditioned, ...
    if len(rows) < 2:
        return None
    (before_epoch, _, before, *_), (last_epoch, _, last, *_) = rows[-2:]
    return {"before_epoch": before_epoch, "before": before, "last_epoch": last_epoch, "last": last,
            "falling": float(last) < float(before)}


def improved(manifest: dict, summary: dict | None) -> dict | None:
    """The better recipe's headline from summary.json (which holds it only when both sections ran in one
    profile), with the evaluation's targets applied to it."""
    summary, config = summary or {}, manifest["config"]
    fid, ratio, accuracy = (summary.get(f"{k}_class_conditioned_improved") for k in ("fid", "fid_ratio",
                                                                                         "class_accuracy"))
    if None in (fid, ratio, accuracy):
        return None
    return {"fid": fid, "ratio": ratio, "accuracy": accuracy, "fid_ok": ratio <= config["target_fid_ratio"],
            "accuracy_ok": accuracy >= config["target_accuracy"]}


def page_context(manifest: dict, archived: list[dict], summary: dict | None) -> dict:
    return {"improved": improved(manifest, summary), "last_epochs": last_epochs(manifest)}


def reference_context(manifest: dict, archived: list[dict], summary: dict | None) -> dict:
    """For the pages that compare with the time-conditioned model's all-steps DDPM set (peer, fast-sampling):
    its FID, sampled once by the evaluation (None when summary.json does not hold it in this profile)."""
    return {"reference_fid": (summary or {}).get("fid_time_conditioned")}
