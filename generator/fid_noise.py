"""How far an FID moves while the model stays the same: pairs of FIDs that the committed results
already hold and that differ in one thing only (the starting noise, the process, the training run),
and the better recipe's models trained again in archived earlier runs (experiments/pipeline/archive.py).

No section measures this on purpose; the pairs fall out of sections that sample the same weights
(their manifests record the fingerprint of the weights they loaded) or train the same recipe. A pair
is shown only when the manifests prove the premise, so a rerun of one side drops it rather than
showing a difference that has another cause.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from generator.labels import one_notation
from generator.reader import SectionRun
from generator.recipe_runs import models, setting_words

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


def _metric(run: SectionRun | None, name: str):
    return run.value(name) if run is not None else None


def _same_weights(a: SectionRun | None, b: SectionRun | None, section: str) -> bool:
    fa = a.loaded_weights.get(section) if a else None
    fb = b.loaded_weights.get(section) if b else None
    return fa is not None and fa == fb


def _draws(run: SectionRun | None) -> tuple[int, int, int] | None:
    """(digits, digits per sampler call, test digits) of a section that samples our model in batches: batch
    i starts from the noise of seed offset i, so equal triples mean the same starting noise, judged against
    the same test statistics."""
    cfg = run.config if run else {}
    return (cfg["samples"], cfg["batch"], cfg.get("test_images", 0)) if "samples" in cfg and "batch" in cfg else None


def _same_settings(a, b) -> bool:
    """Config values equal where both record them. A key only one side has is a field added to the code
    between the two runs; a new field's default keeps the old behaviour (e.g. unet.dropout = 0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same_settings(a[k], b[k]) for k in a.keys() & b.keys())
    return a == b


def _replicates(current: SectionRun, other: SectionRun) -> bool:
    """Whether `other` is a better-recipe run whose shared variants were trained and judged exactly as
    in `current`: same profile, seed, base recipe, classifier weights, test digits and starting noise."""
    a, b = current.config, other.config
    same = ("recipe" if "recipe" in a else "base", "samples", "batch", "test_images")
    return (other.run_id != current.run_id and other.profile == current.profile and other.seed == current.seed
            and all(k in a and k in b and _same_settings(a[k], b[k]) for k in same)
            and bool(current.loaded_weights) and other.loaded_weights == current.loaded_weights)


def retrained_rows(current: SectionRun | None, archived: list[SectionRun]) -> list[NoiseRow]:
    """The better recipe's models trained more than once (this run and archived ones judged the same
    way): per model, its FID at gamma = 1 from N(0, I) on the grid, in every run that trained it."""
    if not current:
        return []
    runs = [(m, {model.name: model.fid for model in models(m)})
            for m in [*(a for a in archived if _replicates(current, a)), current]]
    names = list(dict.fromkeys(name for _, fids in [runs[-1], *runs[:-1]] for name in fids))  # this run's first

    def labels(trained: list[SectionRun]) -> list[str]:    # two runs of one day are told apart by their start
        days = [m.date for m in trained]
        repeats = Counter(days)
        return [d + (f", {m.started_at[11:16]} UTC" if repeats[d] > 1 else "") for d, m in zip(days, trained)]

    rows = []
    for name in names:
        trained = [(m, fids) for m, fids in runs if fids.get(name) is not None]
        if len(trained) < 2:
            continue
        how = ("with the same models in lockstep: only the GPU's non-determinism differs"
               if len({tuple(fids) for _, fids in trained}) == 1 else
               "beside other models in lockstep, which changes its random draws")
        rows.append(NoiseRow(f"the training run (same recipe and seed, trained again {how})",
                             f"{one_notation(name)}, γ = 1 from N(0, I), the classifier and the grid's starting "
                             f"noise, {current.config['samples']:,} digits",
                             tuple(zip(labels([m for m, _ in trained]), (fids[name] for _, fids in trained)))))
    return rows


def headline_draws(better: SectionRun | None) -> list[float]:
    """The better recipe's headline FID in each independent draw: its `headline_draws` table, or (runs
    recorded before that table) its `fid_headline_draw<k>` metrics in order."""
    if better is None:
        return []
    table = better.table("headline_draws")
    if table is not None:
        return [float(f) for f in table.column("fid")]
    draws = sorted((int(name.removeprefix("fid_headline_draw")), m.value) for name, m in better.metrics.items()
                   if name.startswith("fid_headline_draw") and name.removeprefix("fid_headline_draw").isdigit())
    return [float(v) for _, v in draws if v is not None]


def fid_noise_rows(runs: dict[str, SectionRun], benchmark: dict | None,
                   archive: dict[str, list[SectionRun]] | None = None) -> list[NoiseRow]:
    """Every set of FIDs whose premise (one thing differs) the recorded runs prove."""
    ev, abl = runs.get("evaluation"), runs.get("ablations")
    rows: list[NoiseRow] = []
    time_run = runs.get(TIME)
    ev_fid, ev_draws = _metric(ev, "fid_time_conditioned"), _draws(ev)
    if (ev_fid is not None and _metric(abl, "fid_reference") is not None and time_run is not None
            and abl.config.get("base") == time_run.config and _draws(abl) == ev_draws and abl.seed == time_run.seed):
        rows.append(NoiseRow("the training run's random draws (the ablations train the recipe again in lockstep with other "
                             "variants, so its batches, timesteps and noise come from another stretch of the stream)",
                             f"the time-conditioned recipe, seed and starting noise, {ev_draws[0]:,} digits",
                             (("time-conditioned, sampled in the evaluation", ev_fid),
                              ("ablations' reference", _metric(abl, "fid_reference")))))
    better = runs.get("better-recipe")
    rows += retrained_rows(better, (archive or {}).get("better-recipe", []))
    draws = headline_draws(better)
    if len(draws) >= 2:
        headline_digits = better.config.get("headline_samples", 0)
        rows.append(NoiseRow("the starting noise", f"the better recipe's weights and headline setting "
                             f"({setting_words(str(_metric(better, 'headline_setting')))}), {headline_digits:,} digits",
                             tuple((f"draw {k}", f) for k, f in enumerate(draws, 1))))
    seeds, ours = (benchmark or {}).get("quality_seeds") or [], (benchmark or {}).get("fid_ours") or []
    if len(ours) >= 2 and len(seeds) >= len(ours):
        rows.append(NoiseRow("the training seed", "the class-conditioned recipe at γ = 5, our training loop, "
                             f"{benchmark.get('quality_samples', 0):,} digits (benchmark)",
                             tuple((f"seed {s}", float(f)) for s, f in zip(seeds, ours))))
    return rows
