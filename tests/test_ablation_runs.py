"""The ablations page's table of each variant's FID across comparable runs."""
from __future__ import annotations

from pathlib import Path

from generator.ablation_runs import across_runs, fid_key, page_context
from generator.render import Metric, Renderer

VARIANTS = ["reference", "unet.norm=group", "train.ema_decay=0.999"]


def ablation_manifest(fids: dict[str, float], commit: str, started_at: str, profile: str = "full", seed: int = 42,
                      samples: int = 10_000) -> dict:
    return {"profile": profile, "seed": seed, "git_commit": commit * 40, "started_at": started_at, "device": "GPU",
            "config": {"variants": list(fids), "samples": samples},
            "metrics": {fid_key(v): {"value": f} for v, f in fids.items()}}


def test_fid_keys_match_the_sections_metric_names():
    assert fid_key("reference") == "fid_reference"
    assert fid_key("unet.norm=group") == "fid_unet_norm_group"
    assert fid_key("train.ema_decay=0.999") == "fid_train_ema_decay_0_999"


def test_each_variant_lists_its_fid_per_comparable_run_oldest_first():
    current = ablation_manifest(dict(zip(VARIANTS, (50.0, 32.0, 143.0))), "2", "2026-02-01T00:00:00Z")
    older = ablation_manifest({"reference": 40.0, "train.ema_decay=0.999": 30.0}, "1", "2026-01-01T00:00:00Z")
    other_seed = ablation_manifest(dict(zip(VARIANTS, (1.0, 1.0, 1.0))), "3", "2026-01-02T00:00:00Z", seed=7)
    quick = ablation_manifest(dict(zip(VARIANTS, (9.0, 9.0, 9.0))), "4", "2026-01-03T00:00:00Z", profile="quick")
    fewer_digits = ablation_manifest(dict(zip(VARIANTS, (2.0, 2.0, 2.0))), "5", "2026-01-04T00:00:00Z", samples=500)
    rows = across_runs(current, [older, other_seed, quick, fewer_digits])
    assert [r.label for r in rows] == ["reference configuration ✓", "GroupNorm instead of BatchNorm",
                                       "EMA of the weights (decay 0.999)"]
    assert [r.fids for r in rows] == [(40.0, 50.0), (None, 32.0), (30.0, 143.0)]
    assert rows[0].ratio == 1.25 and rows[1].ratio is None and abs(rows[2].ratio - 143 / 30) < 1e-12
    context = page_context(current, [older, other_seed])
    assert context["run_labels"] == ["commit 1111111, 2026-01-01 (GPU)", "commit 2222222, 2026-02-01 (GPU) (this page)"]
    assert page_context(current, [other_seed, quick]) == {"run_labels": [], "across_runs": []}


def test_the_ablations_page_shows_the_table_only_with_earlier_runs():
    r = Renderer(Path(__file__).resolve().parent.parent / "templates")
    current = ablation_manifest(dict(zip(VARIANTS, (50.0, 32.0, 143.0))), "2", "2026-02-01T00:00:00Z")
    older = ablation_manifest(dict(zip(VARIANTS, (40.0, 35.0, 30.0))), "1", "2026-01-01T00:00:00Z")
    config = {"samples": 10_000, "base": {"diffusion": {"T": 300}}}
    page = lambda ctx: r.render("sections/ablations.md.j2", m={"profile": "full"}, config=config,  # noqa: E731
                                metrics={"fid_reference": Metric(50.0, "FID")}, **ctx)
    with_runs = page(page_context(current, [older]))
    assert "| EMA of the weights (decay 0.999) | 30.0 | 143.0 | 4.77× |" in with_runs
    assert "in the table at the end" in with_runs
    alone = page(page_context(current, []))
    assert "earlier runs" not in alone and "table at the end" not in alone
