"""Models compared within one section, as typed values: a name, a label for readers and the full config.

A variant's config is a plain `DDPMConfig` written in Python (`switch` replaces fields of its blocks),
so a typo in a field name fails at import and an impossible value fails in `validate` before any
training. Used by the ablations (one switch at a time) and the better class-conditioned recipe.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import torch

from experiments.core.config import _require, validate
from experiments.core.ddpm import DDPMConfig, diffusion_schedule
from experiments.core.models.unet import UNet
from experiments.core.objectives import diffusion_objective
from experiments.core.section import Context
from experiments.core.training import Trainer

NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class Variant:
    name: str              # file, folder and metric names (fid_<name>): lowercase, digits and _
    label: str             # what it is, for readers: "GroupNorm instead of BatchNorm"
    config: DDPMConfig

    def validate(self) -> None:
        _require(bool(NAME.match(self.name)), f"variant name {self.name!r} must be lowercase letters, digits and _")
        validate(self.config)


def switch(cfg: DDPMConfig, **blocks: dict[str, Any]) -> DDPMConfig:
    """cfg with fields of its blocks replaced: switch(base, unet={"norm": "group"}, train={"epochs": 80})."""
    return dataclasses.replace(cfg, **{block: dataclasses.replace(getattr(cfg, block), **values)
                                       for block, values in blocks.items()})


def changes(base: Any, cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Every field where cfg differs from base, by dotted name: {'unet.norm': 'group'}."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        a, b = getattr(base, f.name), getattr(cfg, f.name)
        if is_dataclass(a) and is_dataclass(b) and type(a) is type(b) and not hasattr(type(a), "parse"):
            out.update(changes(a, b, f"{prefix}{f.name}."))
        elif a != b:
            out[f"{prefix}{f.name}"] = str(b) if is_dataclass(b) else b
    return out


def describe_changes(base: DDPMConfig, cfg: DDPMConfig) -> str:
    """'unet.norm = group, train.epochs = 80' ('—' when nothing changes): a table cell."""
    diff = changes(base, cfg)
    return ", ".join(f"{key} = {value}" for key, value in diff.items()) or "—"


def check_variants(base: DDPMConfig, variants: tuple[Variant, ...]) -> None:
    """Distinct names, valid configs, and every variant but one (the base itself) a real change."""
    _require(len(variants) > 0, "at least one variant is needed")
    _require(len({v.name for v in variants}) == len(variants), "variant names must be distinct")
    for variant in variants:
        variant.validate()
    unchanged = [v.name for v in variants if not changes(base, v.config)]
    _require(len(unchanged) <= 1, f"variant {unchanged[-1] if unchanged else ''} changes nothing in the base "
             f"configuration (only one variant may be the base itself)")


def make_trainer(ctx: Context, variant: Variant, class_conditioned: bool = False) -> Trainer:
    """One variant's trainer in its own work folder; every variant starts from the same RNG state."""
    cfg = variant.config
    torch.manual_seed(ctx.seed)
    model = UNet(cfg.unet)
    sched = diffusion_schedule(cfg.diffusion, ctx.device)
    split = ctx.train_split(cfg.data.train_images)
    key = f"{ctx.section.name}:{ctx.profile}:{ctx.seed}:{dataclasses.asdict(cfg)}"
    return Trainer(model, diffusion_objective(sched, cfg.diffusion, class_conditioned), split, cfg.train, ctx.device,
                   ctx.work_dir / variant.name, description=f"{ctx.section.name} {variant.name}", config_key=key,
                   show_progress=ctx.show_progress, compile=ctx.compile)     # the Part 2 fast path
