"""The run history's table of each ablation variant's FID across comparable runs, and the switches that
stay on one side of their own run's reference."""
from __future__ import annotations

from generator.ablation_runs import across_runs, history, page_context, switch_key, variant_label
from generator.reader import read_run

LABELS = {"—": "reference configuration ✓", "unet.norm=group": "GroupNorm instead of BatchNorm",
          "train.ema_decay=0.999": "EMA of the weights (decay 0.999)"}
COLUMNS = ["variant", "switch", "final loss", "FID", "FID / reference", "training time (s)", "parameters"]


def ablation_run(fids: dict[str, float], started_at: str, profile: str = "full", seed: int = 42,
                 samples: int = 10_000, spaced: bool = False):
    """A run of the ablations; `spaced` writes switches as newer runs do ('unet.norm = group')."""
    def written(switch: str) -> str:
        return switch.replace("=", " = ") if spaced else switch
    rows = [[LABELS[switch], written(switch), 0.03, fid, 1.0, 10.0, 100] for switch, fid in fids.items()]
    return read_run({"section": "ablations", "profile": profile, "seed": seed, "started_at": started_at,
                     "device": "GPU", "config": {"samples": samples},
                     "tables": [{"key": "ablations", "title": "t", "columns": COLUMNS, "rows": rows}]})


def test_each_variant_lists_its_fid_per_comparable_run_oldest_first():
    current = ablation_run(dict(zip(LABELS, (50.0, 32.0, 143.0))), "2026-02-01T00:00:00Z")
    older = ablation_run({"—": 40.0, "train.ema_decay=0.999": 30.0}, "2026-01-01T00:00:00Z")
    other_seed = ablation_run(dict(zip(LABELS, (1.0, 1.0, 1.0))), "2026-01-02T00:00:00Z", seed=7)
    quick = ablation_run(dict(zip(LABELS, (9.0, 9.0, 9.0))), "2026-01-03T00:00:00Z", profile="quick")
    fewer_digits = ablation_run(dict(zip(LABELS, (2.0, 2.0, 2.0))), "2026-01-04T00:00:00Z", samples=500)
    rows = across_runs(current, [older, other_seed, quick, fewer_digits])
    assert [r.label for r in rows] == ["reference configuration", *list(LABELS.values())[1:]]  # no bare ✓
    assert [r.fids for r in rows] == [(40.0, 50.0), (None, 32.0), (30.0, 143.0)]
    assert rows[0].ratio == 1.25 and rows[1].ratio is None and abs(rows[2].ratio - 143 / 30) < 1e-12
    assert history(current, [older, other_seed])["run_labels"] == ["2026-01-01", "2026-02-01 (current)"]
    assert history(current, [other_seed, quick]) == {"run_labels": [], "across_runs": []}


def test_archived_switches_match_however_they_are_spaced():
    """Older runs wrote 'unet.norm=group', newer ones 'unet.norm = group': the same variant, so its
    archived FIDs show beside the current one instead of a dash."""
    current = ablation_run(dict(zip(LABELS, (70.7, 32.9, 102.6))), "2026-11-27T09:58:14Z", spaced=True)
    older = ablation_run(dict(zip(LABELS, (44.8, 35.4, 30.0))), "2026-11-25T16:49:32Z")
    rows = across_runs(current, [older])
    assert [r.fids for r in rows] == [(44.8, 70.7), (35.4, 32.9), (30.0, 102.6)]
    assert switch_key("unet.residual = True") == switch_key("unet.residual=true")


def test_a_variant_matches_by_label_when_its_switch_was_renamed():
    current = ablation_run(dict(zip(LABELS, (50.0, 30.0, 60.0))), "2026-02-01T00:00:00Z")
    older = ablation_run(dict(zip(LABELS, (40.0, 20.0, 45.0))), "2026-01-01T00:00:00Z")
    renamed = older.table("ablations").rows[1]
    object.__setattr__(renamed, "_values", {**renamed._values, "switch": "model.norm=group"})
    assert across_runs(current, [older])[1].fids == (20.0, 30.0)


def test_only_switches_on_one_side_of_their_runs_reference_in_every_run_count():
    """GroupNorm beats its own run's reference every time; EMA beats it once and loses once."""
    current = ablation_run(dict(zip(LABELS, (70.0, 35.0, 100.0))), "2026-11-27T09:58:14Z", spaced=True)
    first = ablation_run(dict(zip(LABELS, (45.0, 35.0, 30.0))), "2026-11-26T02:00:56Z")
    second = ablation_run(dict(zip(LABELS, (50.0, 30.0, 70.0))), "2026-11-26T03:07:19Z")
    ctx = page_context(current, [first, second], None)
    assert ctx["ablation_runs"] == 3
    assert [v.label for v in ctx["always_lower"]] == ["GroupNorm instead of BatchNorm"]
    assert ctx["always_higher"] == [] and [v.label for v in ctx["either_side"]] == ["EMA of the weights (decay 0.999)"]
    group = ctx["always_lower"][0]
    assert group.low == 0.5 and abs(group.high - 35 / 45) < 1e-12
    # two runs of one day are told apart by the time they started
    assert history(current, [first, second])["run_labels"] == [
        "2026-11-26, 02:00 UTC", "2026-11-26, 03:07 UTC", "2026-11-27 (current)"]


def test_variant_labels_read_as_words():
    assert variant_label("1x1 final conv instead of 3x3") == "1×1 final conv instead of 3×3"
    assert variant_label("reference configuration ✓") == "reference configuration"
