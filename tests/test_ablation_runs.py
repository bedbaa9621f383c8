"""The run history's table of each ablation variant's FID across comparable runs."""
from __future__ import annotations

from generator.ablation_runs import across_runs, history
from generator.reader import read_run

LABELS = {"—": "reference configuration ✓", "unet.norm=group": "GroupNorm instead of BatchNorm",
          "train.ema_decay=0.999": "EMA of the weights (decay 0.999)"}
COLUMNS = ["variant", "switch", "final loss", "FID", "FID / reference", "training time (s)", "parameters"]


def ablation_run(fids: dict[str, float], started_at: str, profile: str = "full", seed: int = 42,
                 samples: int = 10_000):
    rows = [[LABELS[switch], switch, 0.03, fid, 1.0, 10.0, 100] for switch, fid in fids.items()]
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
    assert [r.label for r in rows] == list(LABELS.values())
    assert [r.fids for r in rows] == [(40.0, 50.0), (None, 32.0), (30.0, 143.0)]
    assert rows[0].ratio == 1.25 and rows[1].ratio is None and abs(rows[2].ratio - 143 / 30) < 1e-12
    assert history(current, [older, other_seed])["run_labels"] == ["2026-01-01", "2026-02-01 (current)"]
    assert history(current, [other_seed, quick]) == {"run_labels": [], "across_runs": []}
