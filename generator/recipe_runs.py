"""What the better-recipe page derives from its manifest and the archived runs of the section.

Each run trained some models (its training table) and sampled each at gamma = 1 from N(0, I) on the
grid (the model's own quality, before guidance or sampler tricks; its metric `unguided_fid_key`). The page compares runs on that
number and says when the longest training was not the best one. Templates only lay these out.
"""
from __future__ import annotations

from dataclasses import dataclass

import re

from generator.archive import describe_run
from generator.inputs import metric_value, table_rows


def legacy_name(variant: str) -> str:
    """A variant string of runs recorded before variants were typed ('unet.norm=group') as its metric name."""
    return re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")


def legacy_label(variant: str) -> str:
    """'unet.norm=group train.ema_decay=0.999' -> 'norm=group ema_decay=0.999': its row label in those runs."""
    return " ".join(f"{key.split('.')[-1]}{eq}{value}" for key, eq, value in (p.partition("=") for p in variant.split()))


def unguided_fid_key(variant: str) -> str:
    """The metric of a model's grid FID at gamma = 1 from N(0, I), in runs recorded with variant strings."""
    return f"fid_{legacy_name(variant)}_1"


def accuracy_standard_error(p: float, n: int) -> float:
    """The binomial standard error of an accuracy p measured on n digits."""
    return (p * (1 - p) / n) ** 0.5


@dataclass(frozen=True)
class Model:
    name: str            # the variant's short label, as in the tables
    steps: int           # optimizer steps
    loss: float          # final training loss
    fid: float | None    # grid FID at gamma = 1 from N(0, I); None if the run did not sample it


@dataclass(frozen=True)
class Run:
    label: str           # commit, date, device
    current: bool        # the run this page shows
    models: tuple[Model, ...]
    headline: str        # '<model>, <setting>: FID x = r × floor at a%' ('' if the run has none)
    memorisation: float | None   # the headline samples' nearest-training-digit distance / the test digits'


def models(manifest: dict) -> tuple[Model, ...]:
    """The run's models in training order (its config's variants; the training table has a row for
    each, in that order), each with its unguided grid FID."""
    config = manifest["config"]
    if "recipe" in config:              # one typed recipe: its unguided FID is a metric of its own
        fids = {config["recipe"]["label"]: metric_value(manifest, "fid_unguided")}
    else:                               # earlier runs: several variant strings
        fids = {legacy_label(v): metric_value(manifest, unguided_fid_key(v)) for v in config.get("variants", [])}
    return tuple(Model(row[0], row[2], row[3], fids.get(row[0])) for row in table_rows(manifest, "training"))


def headline(manifest: dict) -> str:
    value = lambda key: metric_value(manifest, key)                   # noqa: E731
    if value("fid_headline") is None:
        return ""
    model = f"{value('headline_variant')}, " if value("headline_variant") is not None else ""
    return (f"{model}{value('headline_setting')}: FID {value('fid_headline'):.2f} = "
            f"{value('fid_ratio_headline'):.2f} × floor at {100 * value('accuracy_headline'):.2f}%")


def runs(current: dict, archived: list[dict]) -> list[Run]:
    """The archived runs, oldest first, then the current one."""
    return [Run(describe_run(m), m is current, models(m), headline(m), metric_value(m, "memorisation_ratio_headline"))
            for m in [*archived, current]]


@dataclass(frozen=True)
class Overtrained:
    longest: Model        # the model with the most optimizer steps ...
    best: Model           # ... and the one with the lowest unguided FID, when they differ
    lowest_loss: bool     # whether the longest also ended with the lowest training loss
    train_images: int | None   # digits in the training split (None: unknown)
    passes: int | None    # how often the longest run showed each training digit (None: split size unknown)


def overtrained(current: dict, train_images: int | None) -> Overtrained | None:
    """The longest-trained model when another model reached a lower FID, else None."""
    judged = [m for m in models(current) if m.fid is not None]
    if len(judged) < 2:
        return None
    longest, best = max(judged, key=lambda m: m.steps), min(judged, key=lambda m: m.fid)
    if longest.steps == best.steps:
        return None
    batch = current["config"]["base"]["train"]["batch_size"]
    return Overtrained(longest, best, longest.loss == min(m.loss for m in judged), train_images or None,
                       round(longest.steps * batch / train_images) if train_images else None)


def page_context(manifest: dict, archived: list[dict], summary: dict | None) -> dict:
    """What the better-recipe template reads beyond its manifest: the runs table (only when there are
    archived runs to compare with), the overtraining note, and the grid's accuracy standard error at the
    target with the bar a headline point had to clear (None for runs recorded before the margin existed)."""
    config = manifest["config"]
    se = accuracy_standard_error(config["target_accuracy"], config["samples"])
    # runs that picked the headline off the grid needed its accuracy a margin above the target
    bar = config["target_accuracy"] + config["headline_margin_se"] * se if config.get("headline_margin_se") else None
    return {"runs": runs(manifest, archived) if archived else [],
            "overtrained": overtrained(manifest, (summary or {}).get("train_images")),
            "accuracy_se": se,
            "headline_bar": bar}
