"""The better recipe's runs as the pages read them: each run's models, and when the longest training is
not the best."""
from __future__ import annotations

from generator.reader import read_run
from generator.recipe_runs import (differences, guidance_cell, headline, overtrained, parse_setting, repeats, runs, setting_words,
                                   start_cell)

TRAINING = ["variant", "epochs", "optimizer steps", "final loss", "training time (s)"]
GRID = ["model", "guidance", "sampler", "FID", "FID / floor", "class accuracy"]


def recipe_run(models: list[tuple[str, int, float, float]], **metrics):
    """A better-recipe run with (variant, steps, final loss, unguided grid FID) per model, a guided grid
    point per model that must not be taken for it, and these other metrics."""
    grid = [[n, "γ = 1", "N(0, I) start", fid, 1.0, "99%"] for n, *_, fid in models]
    grid += [[n, "γ = 2", "N(0, I) start", 0.5, 1.0, "99%"] for n, *_ in models]
    grid += [[n, "γ = 1", "class-matched start", 0.25, 1.0, "99%"] for n, *_ in models]
    return read_run({"section": "better-recipe", "config": {"base": {"train": {"batch_size": 100}}},
                     "git_commit": "0" * 40, "started_at": "2026-03-03T00:00:00Z", "device": "GPU",
                     "tables": [{"key": "training", "title": "t", "columns": TRAINING,
                                 "rows": [[n, 0, steps, loss, 1.0] for n, steps, loss, _ in models]},
                                {"key": "grid", "title": "g", "columns": GRID, "rows": grid}],
                     "metrics": {key: {"value": value, "label": key} for key, value in metrics.items()}})


def test_the_longest_training_is_called_out_only_when_another_model_is_better():
    three = recipe_run([("short", 100, 0.03, 9.0), ("mid", 400, 0.02, 7.0), ("long", 800, 0.01, 10.0)])
    found = overtrained(three, train_images=1_000)
    assert (found.longest.name, found.best.name, found.lowest_loss, found.passes) == ("long", "mid", True, 80)
    assert overtrained(recipe_run([("short", 100, 0.03, 9.0), ("long", 800, 0.01, 7.0)]), 1_000) is None
    tied = recipe_run([("a", 400, 0.02, 9.0), ("b", 400, 0.03, 7.0)])            # equal steps: none is longer
    assert overtrained(tied, 1_000) is None
    assert overtrained(recipe_run([("short", 100, 0.03, 9.0), ("long", 800, 0.04, 10.0)]), None).passes is None


def test_runs_list_the_archived_ones_then_this_one_in_words():
    old = recipe_run([("norm=group ema_decay=0.999", 100, 0.03, 9.0)])
    old = read_run({**_raw(old), "git_commit": "1" * 40, "started_at": "2026-01-02T03:04:05Z"})
    new = recipe_run([("a", 100, 0.02, 8.0), ("norm=group epochs=80 predict=x0", 200, 0.01, 7.5)],
                     headline_variant="norm=group epochs=80 predict=x0", headline_setting="γ = 1", fid_headline=7.6,
                     fid_ratio_headline=3.2, accuracy_headline=0.991, memorisation_ratio_headline=0.9)
    first, last = runs(new, [old])
    assert (first.label, first.commit, first.current, first.headline, first.memorisation) == (
        "2026-01-02, GPU", "1111111", False, "", None)
    assert [(m.name, m.steps, m.loss, m.fid) for m in first.models] == [("GroupNorm + EMA", 100, 0.03, 9.0)]
    assert last.current and [m.fid for m in last.models] == [8.0, 7.5]       # the guided rows are not picked up
    assert last.headline == headline(new) == ("GroupNorm, 80 epochs, predicting x₀, sampled with no guidance (γ = 1): "
                                              "FID 7.60 = 3.20 × floor at 99.10 %")


def _raw(run) -> dict:
    """A typed run back as the manifest fields the reader needs (to vary one of them)."""
    return {"section": run.section, "config": run.config, "device": run.device,
            "tables": [{"key": t.key, "title": t.title, "columns": [c.label for c in t.columns], "rows": [[row[c.key] for c in t.columns] for row in t.rows]}
                       for t in run.tables.values()],
            "metrics": {m.name: {"value": m.value, "label": m.label} for m in run.metrics.values()}}


def test_recorded_settings_read_as_words():
    headline = "γ = 1.5 for t in [0, 80], class-matched start, x0 clipped"
    assert setting_words(headline) == ("guidance γ = 1.5 only for t ≤ 80, starting from class-matched noise, "
                                       "clipping the predicted x̂₀")
    assert setting_words("γ = 3 for t in [30, 150]", "N(0, I) start") == "guidance γ = 3 only for 30 ≤ t ≤ 150"
    assert setting_words("γ = 2", "N(0, I) start") == "guidance γ = 2 at every step"
    assert setting_words("γ = 1", "class-matched start, x0 clipped") == (
        "no guidance (γ = 1), starting from class-matched noise, clipping the predicted x̂₀")
    assert (guidance_cell("γ = 1"), start_cell("class-matched start, x0 clipped")) == (
        "γ = 1 (no guidance)", "class-matched noise, x̂₀ clipped")
    # anything the words do not cover is shown as recorded, never half translated
    assert parse_setting("γ = 2", "DDIM start") is None and setting_words("γ = 2", "DDIM start") == "γ = 2, DDIM start"
    assert guidance_cell("1.5@0-80") == "1.5@0-80"
    assert differences(headline, "γ = 1.5 for t in [0, 80]", "N(0, I) start") == ["its class-matched start", "clipping"]
    assert differences(headline, "γ = 1", "class-matched start, x0 clipped") == ["its guidance"]


RECIPE = {"data": {"train_images": 0}, "unet": {"hidden": 64, "norm": "group", "dropout": 0.0},
          "train": {"epochs": 80, "batch_size": 128, "lr": 0.001, "ema_decay": 0.999, "log_every": 50},
          "diffusion": {"T": 300, "predict": "x0"}}
SETTING = "γ = 1.5 for t in [0, 80], class-matched start, x0 clipped"


def headline_run(run_id: str, config: dict, ratio: float, setting: str = SETTING, variant: str = "words"):
    """A better-recipe run with only a headline: FID = 2 × ratio, 99.1 % read as asked."""
    return read_run({"section": "better-recipe", "run_id": run_id, "profile": "full", "seed": 42,
                     "config": {"target_fid_ratio": 3.0, "target_accuracy": 0.99, **config},
                     "started_at": f"2026-01-0{len(run_id)}T00:00:00Z", "device": "GPU",
                     "metrics": {k: {"value": v, "label": k} for k, v in {
                         "headline_variant": variant, "headline_setting": setting, "fid_headline": 2 * ratio,
                         "fid_ratio_headline": ratio, "accuracy_headline": 0.991}.items()}})


def test_earlier_runs_of_the_same_recipe_and_setting_show_how_far_a_retraining_moves_the_headline():
    current = headline_run("now", {"recipe": {"config": RECIPE}}, 3.3)
    base = {**RECIPE, "unet": {"hidden": 64, "norm": "batch"}, "train": {**RECIPE["train"], "epochs": 20,
                                                                           "ema_decay": 0.0, "log_every": 10}}
    switches = "unet.norm=group train.ema_decay=0.999 train.epochs=80 diffusion.predict=x0"
    same = headline_run("same", {"base": base, "variants": ["unet.norm=group", switches]}, 2.8,
                        variant="norm=group ema_decay=0.999 epochs=80 predict=x0")
    other_model = headline_run("wider", {"base": base, "variants": [switches + " unet.hidden=128"]}, 2.5,
                               variant="hidden=128 norm=group ema_decay=0.999 epochs=80 predict=x0")
    other_setting = headline_run("plain", {"recipe": {"config": RECIPE}}, 2.5, setting="γ = 1")
    found = repeats(current, [same, other_model, other_setting])
    assert [(r.ratio, r.current, r.met) for r in found.runs] == [(2.8, False, True), (3.3, True, False)]
    assert found.straddles and found.lowest.ratio == 2.8 and [r.ratio for r in found.earlier] == [2.8]
    assert not repeats(current, [headline_run("above", {"recipe": {"config": RECIPE}}, 3.1)]).straddles
    assert repeats(current, [other_model, other_setting]) is None
