"""Parts 1-2 in the quick profile (the session's `quick_run`): each section's files and manifest."""
from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime

import pytest
from PIL import Image

from experiments.pipeline import registry
from experiments.pipeline.results import SCHEMA_VERSION

TRAINING = ["single-step-denoiser", "pure-noise", "time-conditioned", "class-conditioned"]
PART12 = ["noising", "single-step-denoiser", "out-of-distribution", "pure-noise", "time-conditioned",
          "class-conditioned"]
PROVENANCE = ["profile", "device", "git_commit", "seed", "started_at", "wall_s", "versions", "config", "files"]


def quick_cfg(name: str):
    return registry.config_for(registry.get(name), "quick")


def expected_files(name: str) -> set[str]:
    """What each section shows, as file names, for the quick config."""
    cfg = quick_cfg(name)
    loss = {"loss.png", "loss.json"}
    if name == "noising":
        return {"noising.png"}
    if name == "single-step-denoiser":
        return loss | {f"denoised_epoch{e}.png" for e in cfg.train.checkpoint_epochs}
    if name == "out-of-distribution":
        return {"ood.png", "ood_mse.png"}
    if name == "pure-noise":
        return loss | {"pure_noise.png"}
    per_epoch = {f"samples_epoch{e:02d}.png" for e in cfg.train.checkpoint_epochs} | \
                {f"sampling_epoch{e:02d}.gif" for e in cfg.train.checkpoint_epochs}
    if name == "time-conditioned":
        return loss | per_epoch
    return loss | per_epoch | {"guidance_sweep.png"}


def manifest(quick_run, name: str) -> dict:
    return json.loads((quick_run.results / name / "manifest.json").read_text())


@pytest.mark.parametrize("name", PART12)
def test_manifest_provenance(quick_run, name):
    m = manifest(quick_run, name)
    missing = [k for k in PROVENANCE if k not in m]
    assert not missing, f"{name}: manifest lacks {missing}"
    assert m["schema"] == SCHEMA_VERSION and m["section"] == name
    assert m["profile"] == "quick" and m["seed"] == 42
    assert m["device"].startswith("CPU") and m["device_type"] == "cpu"
    assert isinstance(m["git_commit"], str) and m["git_commit"]
    datetime.fromisoformat(m["started_at"].replace("Z", "+00:00"))          # an ISO timestamp
    assert isinstance(m["wall_s"], float | int) and 0 < m["wall_s"] < 3600
    assert {"python", "torch", "torchvision", "numpy", "matplotlib"} <= set(m["versions"])
    assert m["config"] == json.loads(json.dumps(dataclasses.asdict(quick_cfg(name))))
    assert len(m["config_hash"]) == 16
    assert f"experiments/sections/{name.replace('-', '_')}.py" in m["code"]            # the closure, per module
    assert all(len(h) == 16 for h in m["code"].values()) and "experiments/figures.py" not in m["code"]
    assert list(m["drawing"]) == ["experiments/__init__.py", "experiments/figures.py"]


@pytest.mark.parametrize("name", PART12)
def test_files_listed_exist_and_match_the_spec(quick_run, name):
    folder = quick_run.results / name
    m = manifest(quick_run, name)
    on_disk = {p.name for p in folder.iterdir()}
    assert set(m["files"]) == on_disk - {"manifest.json"}, "manifest's file list differs from the folder"
    assert expected_files(name) <= set(m["files"])
    for fig in m["figures"]:
        assert (folder / fig["file"]).is_file()
        assert fig["title"] and fig["alt"] and not fig["caption"]     # what a figure shows is the page's to say
        assert fig["kind"] in ("image", "plot", "gif")
        assert fig["file"].endswith(".gif") == (fig["kind"] == "gif")
        assert fig["data"] == fig["file"] + ".npz" and (folder / fig["data"]).is_file()   # redrawable
    listed = {f["file"] for f in m["figures"]} | {f["data"] for f in m["figures"]} | {s["file"] for s in m["series"]}
    assert listed == set(m["files"]), "every file is a figure, its data or a series, and every one exists"


@pytest.mark.parametrize("name", PART12)
def test_images_are_readable(quick_run, name):
    for fig in manifest(quick_run, name)["figures"]:
        with Image.open(quick_run.results / name / fig["file"]) as img:
            img.verify()
        with Image.open(quick_run.results / name / fig["file"]) as img:
            assert img.size[0] >= 28 and img.size[1] >= 28
            if fig["kind"] == "gif":
                assert getattr(img, "n_frames", 1) >= 2, "a sampling GIF has several frames"


@pytest.mark.parametrize("name", TRAINING)
def test_training_sections_record_loss_metrics_and_checkpoints(quick_run, name):
    cfg = quick_cfg(name)
    m = manifest(quick_run, name)
    series = json.loads((quick_run.results / name / "loss.json").read_text())
    assert len(series["loss"]) == cfg.train.total_steps == m["metrics"]["steps"]["value"]
    assert all(isinstance(v, float) and math.isfinite(v) for v in series["loss"])
    assert series["steps_per_epoch"] == cfg.train.steps_per_epoch
    for key in ("final_loss", "steps", "train_images", "passes", "train_wall_s", "parameters"):
        assert key in m["metrics"], f"{name}: metric {key} missing"
    assert m["metrics"]["train_images"]["value"] == cfg.data.train_images
    assert m["trains_model"] is True
    work = quick_run.work / "quick" / name / m["weights_key"]          # this run's checkpoint folder
    for epoch in set(cfg.train.checkpoint_epochs) | {cfg.train.epochs}:
        assert (work / f"epoch_{epoch:03d}.pt").is_file()
    assert (work / "state.pt").is_file() and (work / "model.json").is_file()
    assert not m["notes"], "sentences about the numbers are the page's, not the section's"


def test_section_specific_numbers(quick_run):
    noising = manifest(quick_run, "noising")
    assert [row[0] for row in noising["tables"][0]["rows"]] == list(quick_cfg("noising").sigmas)
    ood = manifest(quick_run, "out-of-distribution")
    assert ood["inputs"]["single-step-denoiser"] == manifest(quick_run, "single-step-denoiser")["run_id"]
    sigmas = quick_cfg("out-of-distribution").sigmas
    assert len(ood["tables"][0]["rows"]) == len(sigmas)
    for s in sigmas:
        assert f"mse_sigma_{s:g}" in ood["metrics"]
    denoiser = manifest(quick_run, "single-step-denoiser")["metrics"]
    assert 0 < denoiser["test_mse"]["value"] < 0.25          # better than the σ = 0.5 noise itself
    pure = manifest(quick_run, "pure-noise")["metrics"]
    # the L2-optimal output for an uninformative input is the mean image: closer to it than a real digit
    last = quick_cfg("pure-noise").train.checkpoint_epochs[-1]
    assert pure[f"mse_to_mean_epoch{last}"]["value"] < pure["train_digit_to_mean_mse"]["value"]
    params = {n: manifest(quick_run, n)["metrics"]["parameters"]["value"] for n in TRAINING}
    assert params["class-conditioned"] > params["time-conditioned"] > params["single-step-denoiser"]


def test_no_temporary_folders_left(quick_run):
    assert not [p.name for p in quick_run.results.iterdir() if p.name.startswith(".")]
