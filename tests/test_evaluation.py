"""The classifier and evaluation sections, and summary.json, from the quick run (and small units)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from experiments.core import checkpoints
from experiments.core.config import override, validate
from experiments.errors import UserError
from experiments.core.models.classifier import DigitClassifier
from experiments.pipeline.results import load_manifest
from experiments.sections import classifier as classifier_section
from experiments.sections import evaluation as evaluation_section
from experiments.pipeline.summary import METRICS, build_summary, write_summary
from experiments.core.models import classifier as classifier_model

SUMMARY_TYPES = {"device": str, "profile": str, "git_commit": str, "train_images": int,
                 "classifier_test_accuracy": float, "fid_floor": float, "fid_time_conditioned": float,
                 "fid_class_conditioned": float, "class_accuracy_class_conditioned": float}


# ---- augmentation -----------------------------------------------------------------------------

def test_shift_augmentation_moves_digits_by_whole_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 6:22, 6:22] = torch.rand(64, 1, 16, 16, generator=g)       # content inside a 6-pixel margin
    torch.manual_seed(1)
    y = classifier_section.augment(x, shift=3, rotate=0.0)
    assert y.shape == x.shape
    shifts = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                   if torch.allclose(y[i], torch.roll(x[i], (dy, dx), dims=(1, 2)), atol=1e-5)]
        assert len(matches) == 1, f"digit {i} is not a whole-pixel shift of its input"
        shifts.add(matches[0])
    assert len(shifts) > 10                                            # shifts really vary per digit
    torch.testing.assert_close(y.sum((1, 2, 3)), x.sum((1, 2, 3)))    # nothing leaves the frame


def test_rotation_augmentation_keeps_the_range_and_changes_the_digit():
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 4:24, 13:15] = 1.0                                         # a vertical bar
    torch.manual_seed(2)
    y = classifier_section.augment(x, shift=0, rotate=30.0)
    assert float(y.min()) >= 0 and float(y.max()) <= 1 + 1e-6
    assert not torch.allclose(y, x)
    assert classifier_section.augment(x, 0, 0.0) is x


# ---- configs ----------------------------------------------------------------------------------

def test_headline_guidance_must_be_in_the_sweep():
    cfg = evaluation_section.QUICK
    with pytest.raises(UserError, match="must be one of sweep"):
        validate(override(cfg, {"guidance": "4"}))
    with pytest.raises(UserError, match="whole-trajectory"):
        validate(override(cfg, {"sweep": "0,5,3@5-30"}))
    with pytest.raises(UserError, match="sweep_samples"):
        validate(override(cfg, {"sweep_samples": str(cfg.samples + 1)}))


# ---- the quick run ----------------------------------------------------------------------------

def test_classifier_learns_in_the_quick_profile(quick_run, data_root):
    m = load_manifest(quick_run.results, "classifier")
    accuracy = m["metrics"]["test_accuracy"]["value"]
    assert accuracy > 0.6, f"quick classifier only reaches {accuracy:.1%} (chance is 10%)"
    # the saved weights (what the evaluation loads) give the same accuracy on the same test digits
    from experiments.core.data import load_split

    model, spec = checkpoints.load_model(quick_run.work / "quick", "classifier", "quick", torch.device("cpu"),
                                         classifier_model.from_spec)
    assert isinstance(model, DigitClassifier) and spec["kind"] == "classifier" and not model.training
    test = load_split(data_root, train=False, limit=m["config"]["data"]["test_images"])
    again = float((classifier_section.predict(model, test.images) == test.labels).float().mean())
    assert again == pytest.approx(accuracy, abs=1e-6)
    assert m["metrics"]["test_errors"]["value"] == round((1 - accuracy) * len(test))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_evaluation_outputs_present(quick_run):
    m = load_manifest(quick_run.results, "evaluation")
    folder = quick_run.results / "evaluation"
    assert m["depends_on"] == ["classifier", "time-conditioned", "class-conditioned"]
    for fig in m["figures"]:
        assert (folder / fig["file"]).stat().st_size > 1000, fig["file"]
    files = {f["file"] for f in m["figures"]}
    assert {"guidance.png", "guidance_samples.png", "fid_per_epoch.png", "memorisation.png",
            "closest_pairs.png", "time_samples.png"} <= files
    metrics = {k: v["value"] for k, v in m["metrics"].items()}
    for key in ("fid_floor", "fid_time_conditioned", "fid_class_conditioned", "memorisation_ratio"):
        assert _finite(metrics[key]) and metrics[key] >= 0, key
    assert 0 <= metrics["class_accuracy_class_conditioned"] <= 1
    # the tiny quick models are far from real digits; real training digits are the floor
    assert metrics["fid_time_conditioned"] > metrics["fid_floor"]
    assert metrics["fid_ratio_class_conditioned"] == pytest.approx(
        metrics["fid_class_conditioned"] / metrics["fid_floor"])
    assert metrics["generated_samples"] == m["config"]["samples"]

    tables = {t["key"]: t for t in m["tables"]}
    scales = [g["scale"] for g in m["config"]["sweep"]]
    assert [row[0] for row in tables["guidance"]["rows"]] == scales
    dep = load_manifest(quick_run.results, "time-conditioned")["config"]["train"]
    epochs = sorted({*dep["checkpoint_epochs"], dep["epochs"]})
    assert [row[0] for row in tables["fid_per_epoch"]["rows"]] == epochs
    assert [row[-1] for row in tables["targets"]["rows"]] == [
        "pass" if metrics["target_accuracy_margin"] >= 0 else "fail",
        "pass" if metrics["target_fid_margin"] >= 0 else "fail"]
    guidance = json.loads((folder / "guidance.json").read_text())
    assert guidance["gamma"] == scales and len(guidance["fid"]) == len(guidance["gamma"])
    assert all(0 <= a <= 1 for a in guidance["class_accuracy"])


# ---- summary.json -----------------------------------------------------------------------------

def test_summary_json_schema(quick_run):
    path = quick_run.results / "summary.json"
    assert path.exists(), "runner.run must write summary.json"
    summary = json.loads(path.read_text())
    for key, kind in SUMMARY_TYPES.items():
        assert isinstance(summary[key], kind) and not isinstance(summary[key], bool), (key, summary[key])
    assert summary["profile"] == "quick"
    assert 0 < summary["classifier_test_accuracy"] <= 1
    assert 0 <= summary["class_accuracy_class_conditioned"] <= 1
    for key, (section, metric) in METRICS.items():               # every value is the manifest's number
        assert summary[key] == load_manifest(quick_run.results, section)["metrics"][metric]["value"], key


def _fake_manifest(root, section, profile, metrics):
    folder = root / section
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({
        "schema": 1, "section": section, "profile": profile, "device": "CPU", "git_commit": "abc",
        "run_id": f"{section}-1", "metrics": {k: {"value": v, "label": k, "fmt": "g"} for k, v in metrics.items()}}))


def test_summary_nulls_for_missing_or_other_profile_and_merges_run_json(tmp_path):
    _fake_manifest(tmp_path, "evaluation", "full", {"fid_floor": 1.5, "fid_class_conditioned": 3.0})
    _fake_manifest(tmp_path, "classifier", "quick", {"test_accuracy": 0.9})        # a stale quick run
    (tmp_path / "run.json").write_text(json.dumps({"writeup_wall_s": 12.5, "fid_floor": 99.0, "fid_peer": 2.0}))
    path = write_summary(tmp_path)
    summary = json.loads(path.read_text())
    assert summary["profile"] == "full" and summary["device"] == "CPU"
    assert summary["fid_floor"] == 1.5                    # measured values win over run.json
    assert summary["classifier_test_accuracy"] is None    # quick numbers are not the full run's
    assert summary["fid_time_conditioned"] is None and summary["train_images"] is None
    assert summary["writeup_wall_s"] == 12.5 and summary["fid_peer"] == 2.0
    assert set(SUMMARY_TYPES) <= set(summary)
    # the per-section provenance names only sections of the summary's profile
    assert summary["devices"] == {"evaluation": "CPU"} and summary["commits"] == {"evaluation": "abc"}


def test_index_names_sections_from_another_device_and_the_writeup_run():
    from generator.pages import other_devices
    from generator.performance_context import targets_of
    from generator.reader import Summary

    summary = {"device": "H200", "git_commit": "abc", "writeup_wall_s": 290.0, "writeup_git_commit": "0ld" * 14,
               "writeup_device": "H200", "writeup_gpus": 4, "writeup_finished_at": "2026-01-01T00:00:00Z",
               "writeup_sections": "all",
               "devices": {"evaluation": "H200", "peer": "H200", "better-recipe": "H100"},
               "commits": {"evaluation": "abc", "peer": "old", "better-recipe": "abc"}}
    assert other_devices(Summary(summary)) == ["better-recipe (H100)"]
    assert other_devices(Summary({"device": "H200"})) == []
    [writeup] = targets_of(None, summary)                        # 4 GPUs: under 5 minutes
    assert writeup["ok"] and writeup["what"].endswith("under 5 minutes on 4 GPUs")
    assert writeup["measured"] == "4 min 50 s"                   # no commit on the page: it is in the provenance
    [one] = targets_of(None, summary | {"writeup_gpus": 1, "writeup_wall_s": 590.0})   # one GPU: under 10 minutes
    assert one["ok"] and one["what"].endswith("under 10 minutes on one GPU")
    assert not targets_of(None, summary | {"writeup_wall_s": 310.0})[0]["ok"]
    partial = summary | {"writeup_sections": ["peer"]}           # a partial run never meets the goal
    [writeup] = targets_of(None, partial)
    assert not writeup["ok"] and writeup["measured"] == "4 min 50 s, only peer"


@pytest.mark.parametrize("plain, position, gap", [([104.0], "inside", 0.0), ([114.2], "above", 10.2),
                                                    ([99.5], "below", 2.0)])
def test_benchmark_quality_says_where_the_plain_run_falls(plain, position, gap):
    """The performance page's verdict on the fast path's quality follows the measured FIDs."""
    from generator.performance_context import quality_of

    quality = quality_of({"fid_plain": plain, "fid_ours": [101.5, 104.0], "quality_seeds": [42, 43]})
    assert quality["position"] == position and quality["gap"] == pytest.approx(gap)
    assert quality["spread"] == pytest.approx(2.5)
    assert quality_of({"fid_plain": plain}) is None


def test_evaluation_page_judges_the_better_recipe_by_its_own_targets():
    from generator.evaluation_notes import page_context as evaluation_context
    from generator.reader import Summary, read_run

    run = read_run({"section": "evaluation", "config": {"target_accuracy": 0.99, "target_fid_ratio": 3.0}})
    summary = {"fid_class_conditioned_improved": 5.9, "fid_ratio_class_conditioned_improved": 2.78,
               "class_accuracy_class_conditioned_improved": 0.9885}
    improved = evaluation_context(run, [], Summary(summary))["improved"]
    assert improved["fid_ok"] and not improved["accuracy_ok"] and improved["fid"] == 5.9
    summary |= {"fid_ratio_class_conditioned_improved": 3.2, "class_accuracy_class_conditioned_improved": 0.991}
    improved = evaluation_context(run, [], Summary(summary))["improved"]
    assert not improved["fid_ok"] and improved["accuracy_ok"]
    assert evaluation_context(run, [], Summary({"fid_class_conditioned_improved": None}))["improved"] is None


def test_summary_rejects_a_broken_run_json(tmp_path):
    (tmp_path / "run.json").write_text("[1, 2")
    with pytest.raises(UserError, match="run.json"):
        build_summary(tmp_path)
