"""The better-recipe page's derived rows: each run's models, and when the longest training is not the best."""
from __future__ import annotations

from generator.recipe_runs import headline, overtrained, runs, unguided_fid_key


def recipe_manifest(models: list[tuple[str, int, float, float]], **metrics: float) -> dict:
    """A better-recipe manifest with (variant, steps, final loss, unguided grid FID) per model, a
    guided FID per model that must not be taken for it, and these other metrics."""
    return {"config": {"base": {"train": {"batch_size": 100}}, "variants": [n for n, *_ in models]},
            "tables": [{"key": "training", "rows": [[n, 0, steps, loss, 1.0] for n, steps, loss, _ in models]}],
            "metrics": {**{unguided_fid_key(n): {"value": fid} for n, *_, fid in models},
                        **{f"fid_{n}_2": {"value": 0.5} for n, *_ in models},
                        **{key: {"value": value} for key, value in metrics.items()}}}


def test_the_longest_training_is_called_out_only_when_another_model_is_better():
    three = recipe_manifest([("short", 100, 0.03, 9.0), ("mid", 400, 0.02, 7.0), ("long", 800, 0.01, 10.0)])
    found = overtrained(three, train_images=1_000)
    assert (found.longest.name, found.best.name, found.lowest_loss, found.passes) == ("long", "mid", True, 80)
    assert overtrained(recipe_manifest([("short", 100, 0.03, 9.0), ("long", 800, 0.01, 7.0)]), 1_000) is None
    tied = recipe_manifest([("a", 400, 0.02, 9.0), ("b", 400, 0.03, 7.0)])            # equal steps: none is longer
    assert overtrained(tied, 1_000) is None
    assert overtrained(recipe_manifest([("short", 100, 0.03, 9.0), ("long", 800, 0.04, 10.0)]), None).passes is None


def test_runs_list_the_archived_ones_then_this_one():
    old = recipe_manifest([("a", 100, 0.03, 9.0)]) | {"git_commit": "1" * 40, "started_at": "2026-01-02T03:04:05Z",
                                                      "device": "GPU"}
    new = recipe_manifest([("a", 100, 0.02, 8.0), ("b", 200, 0.01, 7.5)], headline_variant="b",
                          headline_setting="γ = 1", fid_headline=7.6, fid_ratio_headline=3.2, accuracy_headline=0.991,
                          memorisation_ratio_headline=0.9) | {
        "git_commit": "2" * 40, "started_at": "2026-02-02T03:04:05Z", "device": "GPU"}
    first, last = runs(new, [old])
    assert (first.label, first.current, first.headline, first.memorisation) == (
        "commit 1111111, 2026-01-02 (GPU)", False, "", None)
    assert [(m.name, m.steps, m.loss, m.fid) for m in first.models] == [("a", 100, 0.03, 9.0)]
    assert last.current and [m.fid for m in last.models] == [8.0, 7.5]       # the guided rows are not picked up
    assert last.headline == headline(new) == "b, γ = 1: FID 7.60 = 3.20 × floor at 99.10%"
