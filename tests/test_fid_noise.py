"""The FID-noise pairs: shown only where the manifests prove that one thing alone differs."""
from __future__ import annotations

import copy

import pytest

from generator.fid_noise import fid_noise_rows as _rows
from generator.reader import read_run

RECIPE = {"unet": {"hidden": 64}, "train": {"epochs": 20}}


def metric(value):
    return {"value": value, "label": "x"}


def fid_noise_rows(manifests: dict, benchmark, archive=None):
    """The rows from manifests as the pages read them (typed runs)."""
    return _rows({k: read_run({"section": k, **m}) for k, m in manifests.items()}, benchmark,
                 {k: [read_run({"section": k, **m}) for m in ms] for k, ms in (archive or {}).items()})


@pytest.fixture()
def manifests():
    return {
        "time-conditioned": {"config": RECIPE, "seed": 42, "metrics": {}},
        "evaluation": {"config": {"samples": 100, "batch": 50},
                       "metrics": {"fid_time_conditioned": metric(60.0), "generated_samples": metric(100)}},
        "ablations": {"seed": 42, "config": {"base": RECIPE, "samples": 100, "batch": 50},
                      "metrics": {"fid_reference": metric(40.0)}},
    }


BENCHMARK = {"quality_seeds": [42, 43], "fid_ours": [110.0, 90.0], "quality_samples": 100}


def test_every_pair_whose_premise_holds(manifests):
    """The 300-step set of the time-conditioned weights is sampled once (the evaluation's), so the pairs
    left are the training run's random draws (the ablations' reference from the same starting noise) and
    the benchmark's training seeds."""
    rows = fid_noise_rows(manifests, BENCHMARK)
    assert [r.changes.split(" (")[0] for r in rows] == ["the training run's random draws", "the training seed"]
    assert [f for _, f in rows[0].fids] == [60.0, 40.0] and rows[0].spread == pytest.approx(20 / 50)
    assert rows[1].fids == (("seed 42", 110.0), ("seed 43", 90.0)) and rows[1].spread == pytest.approx(0.2)


def test_the_better_recipes_headline_draws(manifests):
    manifests["better-recipe"] = {"config": {"headline_samples": 100}, "metrics": {
        "headline_setting": metric("γ = 1"), "fid_headline_draw1": metric(7.0), "fid_headline_draw2": metric(7.7)}}
    row = fid_noise_rows(manifests, None)[-1]
    assert row.fids == (("draw 1", 7.0), ("draw 2", 7.7)) and "γ = 1" in row.same
    assert row.spread == pytest.approx(0.7 / 7.35)


def test_a_broken_premise_drops_its_pair(manifests):
    changed = copy.deepcopy(manifests)
    changed["ablations"]["config"]["base"] = {**RECIPE, "train": {"epochs": 5}}     # another recipe
    assert fid_noise_rows(changed, None) == []
    noise = copy.deepcopy(manifests)
    noise["ablations"]["config"]["batch"] = 25                                      # other starting noise
    assert fid_noise_rows(noise, None) == []
    assert fid_noise_rows({}, None) == []


def better_run(run_id: str, variants: list[str], fids: list[float], seed: int = 42,
               started_at: str = "2026-11-25T10:00:00Z") -> dict:
    """A better-recipe manifest whose models (its training table) have these grid FIDs at gamma = 1."""
    short = [" ".join(part.split(".")[-1] for part in v.split()) for v in variants]   # as runs label them
    grid = [[n, "γ = 1", "N(0, I) start", f, 1.0, "99%"] for n, f in zip(short, fids)]
    return {"run_id": run_id, "profile": "full", "seed": seed, "started_at": started_at,
            "loaded_weights": {"classifier": "k"},
            "config": {"base": RECIPE, "samples": 100, "batch": 50, "test_images": 0, "variants": variants},
            "tables": [{"key": "training", "title": "t", "columns": ["variant", "epochs", "optimizer steps",
                                                                      "final loss", "training time (s)"],
                        "rows": [[n, 80, 100, 0.02, 1.0] for n in short]},
                       {"key": "grid", "title": "g", "columns": ["model", "guidance", "sampler", "FID",
                                                                  "FID / floor", "class accuracy"], "rows": grid}]}


def test_the_better_recipe_trained_again_in_an_archived_run(manifests):
    short, long_ = "unet.norm=group", "unet.norm=group train.epochs=80"
    manifests["better-recipe"] = better_run("now", [short, long_], [9.0, 8.0], started_at="2026-11-26T10:00:00Z")
    archive = {"better-recipe": [
        better_run("before", [short, long_, "unet.hidden=128"], [10.0, 7.0]),       # the same two models, and one more
        better_run("explore", ["unet.hidden=128 unet.norm=group"], [12.0]),         # no model in common
        better_run("other-seed", [short], [1.0], seed=7),                           # another seed: not a replicate
    ]}

    def retrained():
        return [r for r in fid_noise_rows(manifests, None, archive) if r.changes.startswith("the training run (")]

    rows = retrained()
    assert [r.same.split(", γ")[0] for r in rows] == ["GroupNorm", "GroupNorm, 80 epochs"]
    assert rows[0].fids == (("2026-11-25", 10.0), ("2026-11-26", 9.0))
    assert rows[1].fids == (("2026-11-25", 7.0), ("2026-11-26", 8.0))
    assert "beside other models in lockstep" in rows[0].changes           # the variant lists differ

    # a model only explorations trained, twice on one day: a row after this run's, told apart by start time
    wide = "unet.hidden=128 unet.norm=group"
    archive["better-recipe"].append(better_run("explore-2", [wide], [11.0], started_at="2026-11-24T12:34:00Z"))
    archive["better-recipe"][1]["started_at"] = "2026-11-24T10:00:00Z"
    # made by code that had one more config field (at its default): the runs still replicate
    archive["better-recipe"][-1]["config"]["base"] = {"unet": {"hidden": 64, "dropout": 0.0}, "train": {"epochs": 20}}
    rows = retrained()
    assert [r.same.split(", γ")[0] for r in rows] == ["GroupNorm", "GroupNorm, 80 epochs", "GroupNorm, width D = 128"]
    assert rows[2].fids == (("2026-11-24, 10:00 UTC", 12.0), ("2026-11-24, 12:34 UTC", 11.0))
    assert "only the GPU's non-determinism differs" in rows[2].changes   # both trained it alone
    archive["better-recipe"][-1]["config"]["base"]["unet"]["hidden"] = 32  # a field both record, changed
    assert len(retrained()) == 2
    archive["better-recipe"][-1]["config"]["base"]["unet"]["hidden"] = 64

    archive["better-recipe"][0]["loaded_weights"] = {"classifier": "another"}  # judged by another classifier
    rows = retrained()
    assert [r.same.split(", γ")[0] for r in rows] == ["GroupNorm, width D = 128"]



def test_a_retrained_model_is_named_in_the_pages_one_notation(manifests):
    """A model whose runs recorded its name in words ('EMA', 'predicting x0') reads as the other tables do."""
    words = "GroupNorm + EMA, 80 epochs, predicting x0"
    manifests["better-recipe"] = better_run("now", [words], [5.0], started_at="2026-11-26T10:00:00Z")
    archive = {"better-recipe": [better_run("before", [words], [5.5])]}
    rows = [r for r in fid_noise_rows(manifests, None, archive) if r.changes.startswith("the training run (")]
    assert [r.same.split(", γ")[0] for r in rows] == ["GroupNorm + EMA 0.999, 80 epochs, predicting x₀"]
