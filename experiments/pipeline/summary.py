"""docs/results/summary.json: the headline numbers of a run in one machine-readable file.

Every number is read from a section manifest through `METRICS`, the one table that says where each
summary key comes from; add a row there to publish another number. Provenance (device, profile, git
commit, dataset and its class names) comes from the evaluation's manifest (or the first one found).
Keys from an optional `<results_root>/run.json` (e.g. the lead's `writeup_wall_s`) are merged in
without overriding a measured value.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experiments.core.data import dataset_of, get_dataset
from experiments.errors import UserError
from experiments.pipeline.results import load_manifest, write_json_atomic

SUMMARY = "summary.json"
RUN_EXTRA = "run.json"
SCHEMA_VERSION = 1

# summary key -> (section, metric name in that section's manifest)
METRICS: dict[str, tuple[str, str]] = {
    "train_images": ("time-conditioned", "train_images"),
    "classifier_test_accuracy": ("classifier", "test_accuracy"),
    "fid_floor": ("evaluation", "fid_floor"),
    "fid_time_conditioned": ("evaluation", "fid_time_conditioned"),   # all T = 300 DDPM steps from N(0, I):
    # the reference that fast-sampling and the peer compare with (sampled once, in the evaluation)
    "fid_class_conditioned": ("evaluation", "fid_class_conditioned"),
    "class_accuracy_class_conditioned": ("evaluation", "class_accuracy_class_conditioned"),
    "fid_ratio_class_conditioned": ("evaluation", "fid_ratio_class_conditioned"),
    "generated_samples": ("evaluation", "generated_samples"),
    "memorisation_ratio": ("evaluation", "memorisation_ratio"),
    "fid_peer": ("peer", "fid_peer"),                     # diffusers UNet2DModel, its full DDPMScheduler chain
    "fid_ddpm_300_matched": ("fast-sampling", "fid_ddpm_matched"),   # the same, from the moment-matched start
    "fid_ddim_50": ("fast-sampling", "fid_ddim_50_matched"),         # DDIM (eta 0), 50 steps, moment-matched start
    "fid_ddim_50_from_noise": ("fast-sampling", "fid_ddim_50"),      # DDIM (eta 0), 50 steps, pure-noise start
    "fid_class_conditioned_improved": ("better-recipe", "fid_headline"),           # GroupNorm + EMA + longer
    "class_accuracy_class_conditioned_improved": ("better-recipe", "accuracy_headline"),  # training, interval CFG
    "fid_ratio_class_conditioned_improved": ("better-recipe", "fid_ratio_headline"),
}
PROVENANCE = ("device", "profile", "git_commit")        # copied from the provenance manifest
PROVENANCE_FROM = "evaluation"


def _manifests(results_root: Path) -> dict[str, dict]:
    sections = {section for section, _ in METRICS.values()} | {PROVENANCE_FROM}
    found = {s: load_manifest(results_root, s) for s in sorted(sections)}
    return {s: m for s, m in found.items() if m is not None}


def _run_extra(results_root: Path) -> dict[str, Any]:
    path = results_root / RUN_EXTRA
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object")
    return data


def build_summary(results_root: Path) -> dict:
    """Headline numbers from the manifests under results_root; a missing section gives nulls."""
    results_root = Path(results_root)
    manifests = _manifests(results_root)
    source = manifests.get(PROVENANCE_FROM) or next(iter(manifests.values()), {})
    profile = source.get("profile")
    summary: dict[str, Any] = {"schema": SCHEMA_VERSION, **{k: source.get(k) for k in PROVENANCE}}
    data = get_dataset(dataset_of(source))
    summary["dataset"], summary["classes"] = data.name, list(data.classes)   # what the numbers were measured on
    # numbers of another profile or dataset (a stale quick run beside a full one) are not this run's numbers
    used = {s: m for s, m in manifests.items() if m.get("profile") == profile and dataset_of(m) == data.name}
    for key, (section, metric) in METRICS.items():
        manifest = used.get(section)
        summary[key] = manifest["metrics"].get(metric, {}).get("value") if manifest else None
    summary["sources"] = {s: m.get("run_id") for s, m in used.items()}
    # a section rerun on its own may come from another device or commit than the provenance source
    summary["devices"] = {s: m.get("device") for s, m in used.items()}
    summary["commits"] = {s: m.get("git_commit") for s, m in used.items()}
    for key, value in _run_extra(results_root).items():
        if summary.get(key) is None:
            summary[key] = value
    return summary


def write_summary(results_root: Path) -> Path:
    """Write <results_root>/summary.json atomically; returns its path."""
    path = Path(results_root) / SUMMARY
    write_json_atomic(path, build_summary(results_root))
    return path
