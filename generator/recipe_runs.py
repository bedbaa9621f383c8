"""What the better-recipe page and the run history derive from the section's runs (current and archived).

Each run trained some models (its `training` table) and sampled each at gamma = 1 from N(0, I) on the
grid (its `grid` table): the model's own quality, before guidance or sampler tricks. Runs are compared
on that number, and the page says when the longest training was not the best one. Templates only lay
these out.
"""
from __future__ import annotations

from dataclasses import dataclass

from generator.labels import recipe_label
from generator.reader import SectionRun

UNGUIDED = {"guidance": "γ = 1", "sampler": "N(0, I) start"}     # the grid point that judges the model itself


@dataclass(frozen=True)
class Model:
    name: str            # the recipe in words
    steps: int           # optimizer steps
    loss: float          # final training loss
    fid: float | None    # grid FID at gamma = 1 from N(0, I); None if the run did not sample it


@dataclass(frozen=True)
class Run:
    label: str           # date and device
    commit: str          # short commit of the code that made it
    current: bool        # the run the better-recipe page shows
    models: tuple[Model, ...]
    headline: str        # '<model>, <setting>: FID x = r × floor at a%' ('' if the run has none)
    memorisation: float | None   # the headline samples' nearest-training-digit distance / the test digits'


def describe_run(run: SectionRun) -> str:
    """'2026-11-25, NVIDIA H100 80GB HBM3': which run a number comes from."""
    return f"{run.date}, {run.device}"


def models(run: SectionRun) -> tuple[Model, ...]:
    """The run's models in training order, each with its unguided grid FID."""
    training, grid = run.table("training"), run.table("grid")
    if training is None:
        return ()
    out = []
    for row in training.rows:
        point = grid.first(model=row["variant"], **UNGUIDED) if grid is not None else None
        out.append(Model(recipe_label(row["variant"]), row["optimizer_steps"], row["final_loss"],
                         point["fid"] if point else None))
    return tuple(out)


def headline(run: SectionRun) -> str:
    if run.value("fid_headline") is None:
        return ""
    variant = run.value("headline_variant")
    model = f"{recipe_label(str(variant))}, " if variant is not None else ""
    return (f"{model}{run.value('headline_setting')}: FID {run.value('fid_headline'):.2f} = "
            f"{run.value('fid_ratio_headline'):.2f} × floor at {100 * run.value('accuracy_headline'):.2f} %")


def runs(current: SectionRun, archived: list[SectionRun]) -> list[Run]:
    """The archived runs, oldest first, then the current one."""
    return [Run(describe_run(r), r.git_commit[:7], r is current, models(r), headline(r),
                r.value("memorisation_ratio_headline")) for r in [*archived, current]]


@dataclass(frozen=True)
class Overtrained:
    longest: Model        # the model with the most optimizer steps ...
    best: Model           # ... and the one with the lowest unguided FID, when they differ
    lowest_loss: bool     # whether the longest also ended with the lowest training loss
    train_images: int | None   # digits in the training split (None: unknown)
    passes: int | None    # how often the longest run showed each training digit (None: split size unknown)


def overtrained(current: SectionRun, train_images: int | None) -> Overtrained | None:
    """The longest-trained model when another model reached a lower FID, else None."""
    judged = [m for m in models(current) if m.fid is not None]
    if len(judged) < 2:
        return None
    longest, best = max(judged, key=lambda m: m.steps), min(judged, key=lambda m: m.fid)
    if longest.steps == best.steps:
        return None
    batch = current.config["base"]["train"]["batch_size"]
    return Overtrained(longest, best, longest.loss == min(m.loss for m in judged), train_images or None,
                       round(longest.steps * batch / train_images) if train_images else None)


def page_context(run: SectionRun, archived: list[SectionRun], summary: dict | None) -> dict:
    """What the better-recipe template reads beyond its run: the models, the overtraining note and how
    many archived runs the run history holds."""
    return {"models": models(run), "overtrained": overtrained(run, (summary or {}).get("train_images")),
            "archived_runs": len(archived)}
