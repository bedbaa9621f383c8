"""Model variants as config switches: `key=value` strings over a base DDPMConfig, and their trainers.

Used by the ablations (one switch at a time) and by the better class-conditioned recipe. A variant
goes through the same `override` as the CLI's `--set`, so a typo or an impossible value fails
before any training, and a switch that changes nothing is an error.
"""
from __future__ import annotations

import dataclasses
import re

import torch

from experiments.core.config import override, parse_assignments, validate
from experiments.core.section import Context
from experiments.errors import UserError
from experiments.core.models.unet import UNet
from experiments.core.objectives import diffusion_objective
from experiments.core.ddpm import DDPMConfig, diffusion_schedule
from experiments.core.training import Trainer

REFERENCE = "reference"


def variant_config(base: DDPMConfig, variant: str) -> DDPMConfig:
    """The base config with the variant's space-separated `key=value` switches applied."""
    if variant == REFERENCE:
        return base
    changed = validate(override(base, parse_assignments(variant.split())))
    if changed == base:
        raise UserError(f"variant {variant!r} changes nothing in the reference configuration")
    return changed


def slug(variant: str) -> str:
    """'unet.norm=group train.epochs=80' -> 'unet_norm_group_train_epochs_80' (file and metric names)."""
    return re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")


def short(variant: str) -> str:
    """'unet.norm=group train.ema_decay=0.999' -> 'norm=group ema_decay=0.999': a row label for figures."""
    labels = []
    for part in variant.split():
        key, eq, value = part.partition("=")
        labels.append(f"{key.split('.')[-1]}{eq}{value}")
    return " ".join(labels)


def make_trainer(ctx: Context, variant: str, cfg: DDPMConfig, class_conditioned: bool = False) -> Trainer:
    """One variant's trainer in its own work folder; every variant starts from the same RNG state."""
    torch.manual_seed(ctx.seed)
    model = UNet(cfg.unet)
    sched = diffusion_schedule(cfg.diffusion, ctx.device)
    split = ctx.train_split(cfg.data.train_images)
    key = f"{ctx.section.name}:{ctx.profile}:{ctx.seed}:{dataclasses.asdict(cfg)}"
    return Trainer(model, diffusion_objective(sched, cfg.diffusion, class_conditioned), split, cfg.train, ctx.device,
                   ctx.work_dir / slug(variant), description=f"{ctx.section.name} {variant}", config_key=key,
                   show_progress=ctx.show_progress, compile=ctx.compile)     # the Part 2 fast path
