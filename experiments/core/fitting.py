"""Fit one model on the training split and record what every training section shows (loss, budget)."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from experiments import figures
from experiments.core import checkpoints
from experiments.core.config import DataConfig, DiffusionConfig, TrainConfig, UNetConfig
from experiments.core.models.unet import count_parameters
from experiments.core.section import Context
from experiments.core.training import Objective, Trainer, TrainResult

def train_model(ctx: Context, model: torch.nn.Module, objective: Objective, data_cfg: DataConfig,
                train_cfg: TrainConfig, kind: str, spec: dict[str, Any], label: str) -> TrainResult:
    """Train on the section's training split; write weights and the model spec to the work folder."""
    split = ctx.train_split(data_cfg.train_images)
    key = f"{ctx.section.name}:{ctx.profile}:{ctx.seed}:{spec}:{dataclasses.asdict(train_cfg)}"
    trainer = Trainer(model, objective, split, train_cfg, ctx.device, ctx.work_dir, description=label,
                      config_key=key, show_progress=ctx.show_progress, compile=ctx.compile)
    result = trainer.fit(resume=ctx.resume)
    checkpoints.write_spec(ctx.work_dir, kind, final_epoch=train_cfg.epochs, **spec)
    return result


def record_training(ctx: Context, result: TrainResult, train_cfg: TrainConfig, split_size: int,
                    title: str, model: torch.nn.Module) -> None:
    """Loss curve (PNG + raw series), step budget and throughput, as every training section shows."""
    out, items = ctx.out, ctx.data.items
    figures.save_loss_curve(out.path("loss.png"), result.losses, train_cfg.steps_per_epoch, title)
    out.add_series("loss.json", "training loss per step", {
        "loss": result.losses, "steps_per_epoch": train_cfg.steps_per_epoch, "batch_size": train_cfg.batch_size})
    out.add_figure("loss.png", "Training loss", alt="Training loss curve against optimizer steps", kind="plot")
    tail = result.losses[-min(len(result.losses), train_cfg.steps_per_epoch):]
    out.add_metric("final_loss", sum(tail) / len(tail), "Mean loss over the last epoch", ".4f")
    out.add_metric("steps", result.steps, "Optimizer steps", "d")
    out.add_metric("train_images", split_size, f"Training {items} available", "d")
    out.add_metric("passes", result.passes_over_data, f"Passes over those {items}", ".1f")
    out.add_metric("train_wall_s", result.wall_s, "Training wall time (s)", ".1f")
    out.add_metric("train_img_per_s", result.images_per_s, "Training throughput (images/s)", ",.0f")
    out.add_metric("parameters", count_parameters(model), "Parameters", ",d")


def unet_spec(unet: UNetConfig, diffusion: DiffusionConfig | None = None) -> dict:
    spec = {"unet": dataclasses.asdict(unet)}
    if diffusion is not None:
        spec["diffusion"] = dataclasses.asdict(diffusion)
    return spec
