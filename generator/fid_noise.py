"""How far an FID moves while the model stays the same: pairs of FIDs that the committed results
already hold and that differ in one thing only (the starting noise, the process, the training run),
and the better recipe's models trained again in archived earlier runs (generator/archive.py).

No section measures this on purpose; the pairs fall out of sections that sample the same weights
(their manifests record the fingerprint of the weights they loaded) or train the same recipe. A pair
is shown only when the manifests prove the premise, so a rerun of one side drops it rather than
showing a difference that has another cause.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from generator.inputs import metric_value as _metric
from generator.recipe_runs import models

TIME = "time-conditioned"


@dataclass(frozen=True)
class NoiseRow:
    changes: str                       # the one thing that differs between the FIDs
    same: str                          # what the FIDs share
    fids: tuple[tuple[str, float], ...]   # (where it was measured, FID)

    @property
    def spread(self) -> float:
        """(max - min) / mean of the FIDs."""
        values = [f for _, f in self.fids]
        return (max(values) - min(values)) / (sum(values) / len(values))


def _draws(manifest: dict | None) -> tuple[int, int, int] | None:
    """(digits, digits per sampler call, test digits) of a section that samples with `judging.sample_set`:
    batch i starts from the noise of seed offset i, so equal triples mean the same starting noise, judged
    against the same test statistics."""
    cfg = (manifest or {}).get("config") or {}
    return (cfg["samples"], cfg["batch"], cfg.get("test_images", 0)) if "samples" in cfg and "batch" in cfg else None


def _same_settings(a, b) -> bool:
    """Config values equal where both record them. A key only one side has is a field added to the code
    between the two runs; a new field's default keeps the old behaviour (e.g. unet.dropout = 0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same_settings(a[k], b[k]) for k in a.keys() & b.keys())
    return a == b


def _replicates(current: dict, other: dict) -> bool:
    """Whether `other` is a better-recipe run whose shared variants were trained and judged exactly as
    in `current`: same profile, seed, base recipe, classifier weights, test digits and starting noise."""
    a, b = current.get("config") or {}, other.get("config") or {}
    same = ("recipe" if "recipe" in a else "base", "samples", "batch", "test_images")
    return (other.get("run_id") != current.get("run_id") and other.get("profile") == current.get("profile")
            and other.get("seed") == current.get("seed")
            and all(k in a and k in b and _same_settings(a[k], b[k]) for k in same)
            and bool(current.get("loaded_weights")) and other.get("loaded_weights") == current.get("loaded_weights"))


def retrained_rows(current: dict | None, archived: list[dict]) -> list[NoiseRow]:
    """The better recipe's models trained more than once (this run and archived ones judged the same
    way): per model, its FID at gamma = 1 from N(0, I) on the grid, in every run that trained it."""
    if not current:
        return []
    runs = [(m, {model.name: model.fid for model in models(m)})
            for m in [*(a for a in archived if _replicates(current, a)), current]]
    names = list(dict.fromkeys(name for _, fids in [runs[-1], *runs[:-1]] for name in fids))  # this run's first

    def labels(trained: list[dict]) -> list[str]:    # two runs of one commit are told apart by their start
        commits = [f"commit {(m.get('git_commit') or '?')[:7]}" for m in trained]
        repeats = Counter(commits)
        return [c + (f", {(m.get('started_at') or '')[11:16]} UTC" if repeats[c] > 1 else "")
                for c, m in zip(commits, trained)]

    rows = []
    for name in names:
        trained = [(m, fids) for m, fids in runs if fids.get(name) is not None]
        if len(trained) < 2:
            continue
        how = ("with the same models in lockstep: only the GPU's non-determinism differs"
               if len({tuple(fids) for _, fids in trained}) == 1 else
               "beside other models in lockstep, which changes its random draws")
        rows.append(NoiseRow(f"the training run (same recipe and seed, trained again in another lease {how})",
                             f"{name}, γ = 1 from N(0, I), the classifier and the grid's starting noise, "
                             f"{current['config']['samples']:,} digits",
                             tuple(zip(labels([m for m, _ in trained]), (fids[name] for _, fids in trained)))))
    return rows


def fid_noise_rows(manifests: dict[str, dict], benchmark: dict | None,
                   archive: dict[str, list[dict]] | None = None) -> list[NoiseRow]:
    ev, abl = manifests.get("evaluation"), manifests.get("ablations")
    rows: list[NoiseRow] = []
    time_cfg = (manifests.get(TIME) or {}).get("config")
    ev_fid, ev_draws = _metric(ev, "fid_time_conditioned"), _draws(ev)
    if (ev_fid is not None and _metric(abl, "fid_reference") is not None and time_cfg is not None
            and ((abl or {}).get("config") or {}).get("base") == time_cfg and _draws(abl) == ev_draws
            and abl.get("seed") == manifests[TIME].get("seed")):
        rows.append(NoiseRow("the training run's random draws (the ablations train the recipe again in lockstep with other "
                             "variants, so its batches, timesteps and noise come from another stretch of the stream)",
                             f"the time-conditioned recipe, seed and starting noise, {ev_draws[0]:,} digits",
                             (("time-conditioned, sampled in the evaluation", ev_fid),
                              ("ablations' reference", _metric(abl, "fid_reference")))))
    better = manifests.get("better-recipe")
    rows += retrained_rows(better, (archive or {}).get("better-recipe", []))
    draws = [f for k in range(1, 11) if (f := _metric(better, f"fid_headline_draw{k}")) is not None]
    if len(draws) >= 2:
        headline_digits = (better.get("config") or {}).get("headline_samples", 0)
        rows.append(NoiseRow("the starting noise", f"the better recipe's weights and headline setting "
                             f"({_metric(better, 'headline_setting')}), {headline_digits:,} digits",
                             tuple((f"draw {k}", f) for k, f in enumerate(draws, 1))))
    seeds, ours = (benchmark or {}).get("quality_seeds") or [], (benchmark or {}).get("fid_ours") or []
    if len(ours) >= 2 and len(seeds) >= len(ours):
        rows.append(NoiseRow("the training seed", "the class-conditioned recipe at γ = 5, our training loop, "
                             f"{benchmark.get('quality_samples', 0):,} digits (benchmark)",
                             tuple((f"seed {s}", float(f)) for s, f in zip(seeds, ours))))
    return rows
