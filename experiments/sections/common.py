"""Helpers shared by the sections: building/training UNets and recording the usual outputs."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from experiments import checkpoints, figures
from experiments.config import DataConfig, DiffusionConfig, TrainConfig, UNetConfig, _require
from experiments.diffusion.sampling import SampleResult, ddpm_step_fn, guided_estimate, model_estimate, sample
from experiments.context import Context
from experiments.diffusion.process import matched_start
from experiments.diffusion.schedule import make_schedule
from experiments.models.inference import fast_inference_model
from experiments.models.unet import UNet, count_parameters
from experiments.training import Objective, Trainer, TrainResult

COMPILE = os.environ.get("FUNDIFF_COMPILE", "1") != "0"   # torch.compile on the GPU (off: FUNDIFF_COMPILE=0)

checkpoints.register_builder("unet", lambda spec: UNet(UNetConfig(**spec["unet"])))


def train_model(ctx: Context, model: torch.nn.Module, objective: Objective, data_cfg: DataConfig,
                train_cfg: TrainConfig, kind: str, spec: dict[str, Any], label: str) -> TrainResult:
    """Train on the section's training split; write weights and the model spec to the work folder."""
    split = ctx.train_split(data_cfg.train_images)
    key = f"{ctx.section.name}:{ctx.profile}:{ctx.seed}:{spec}:{dataclasses.asdict(train_cfg)}"
    trainer = Trainer(model, objective, split, train_cfg, ctx.device, ctx.work_dir, description=label,
                      config_key=key, show_progress=ctx.show_progress, compile=COMPILE)
    result = trainer.fit(resume=ctx.resume)
    checkpoints.write_spec(ctx.work_dir, kind, final_epoch=train_cfg.epochs, **spec)
    return result


def record_training(ctx: Context, result: TrainResult, train_cfg: TrainConfig, split_size: int,
                    title: str, model: torch.nn.Module) -> None:
    """Loss curve (PNG + raw series), step budget and throughput, as every training section shows."""
    out = ctx.out
    figures.save_loss_curve(out.path("loss.png"), result.losses, train_cfg.steps_per_epoch, title)
    out.add_series("loss.json", "training loss per step", {
        "loss": result.losses, "steps_per_epoch": train_cfg.steps_per_epoch, "batch_size": train_cfg.batch_size})
    out.add_figure("loss.png", "Training loss", f"{title}: loss at every optimizer step (faint) and its moving "
                   "average.", alt="Training loss curve against optimizer steps", kind="plot")
    tail = result.losses[-min(len(result.losses), train_cfg.steps_per_epoch):]
    out.add_metric("final_loss", sum(tail) / len(tail), "Mean loss over the last epoch", ".4f")
    out.add_metric("steps", result.steps, "Optimizer steps", "d")
    out.add_metric("train_images", split_size, "Training digits available", "d")
    out.add_metric("passes", result.passes_over_data, "Passes over those digits", ".1f")
    out.add_metric("train_wall_s", result.wall_s, "Training wall time (s)", ".1f")
    out.add_metric("train_img_per_s", result.images_per_s, "Training throughput (images/s)", ",.0f")
    out.add_metric("parameters", count_parameters(model), "Parameters", ",d")
    out.add_note(f"Budget: {train_cfg.epochs} reference epochs of {train_cfg.reference_images:,} digits at batch "
                 f"{train_cfg.batch_size} = {result.steps:,} optimizer steps; the training split here has "
                 f"{split_size:,} digits, so each digit is seen about {result.passes_over_data:.1f} times.")


def diffusion_schedule(cfg: DiffusionConfig, device: torch.device):
    return make_schedule(cfg.T, cfg.beta_start, cfg.beta_end, device=device)


def unet_spec(unet: UNetConfig, diffusion: DiffusionConfig | None = None) -> dict:
    spec = {"unet": dataclasses.asdict(unet)}
    if diffusion is not None:
        spec["diffusion"] = dataclasses.asdict(diffusion)
    return spec


@dataclass(frozen=True)
class DDPMConfig:
    """A Part 2 diffusion model: data, network, training, schedule and what to sample for figures."""

    data: DataConfig = field(default_factory=DataConfig)
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(hidden=64, conditioning="time"))
    train: TrainConfig = field(default_factory=TrainConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    samples: int = 40                 # digits per sample figure (time-conditioned)
    gif_every: int = 10               # sampler steps between GIF frames
    guidance_sweep: tuple[float, ...] = (0.0, 5.0, 10.0)   # gammas shown side by side (class-conditioned)

    def validate(self) -> None:
        _require(self.samples >= 1, "samples must be >= 1")
        _require(self.gif_every >= 1, "gif_every must be >= 1")
        _require(all(g >= 0 for g in self.guidance_sweep), "guidance_sweep values must be >= 0")


def quick_ddpm(conditioning: str) -> DDPMConfig:
    """The tiny CPU version of a Part 2 run: a few hundred digits, D=8, T=50, two short epochs."""
    return DDPMConfig(
        data=DataConfig(train_images=256, test_images=256),
        unet=UNetConfig(hidden=8, conditioning=conditioning),
        train=TrainConfig(epochs=2, batch_size=32, lr=3e-3, reference_images=256, checkpoint_epochs=(1, 2)),
        diffusion=DiffusionConfig(T=50), samples=20, gif_every=5)


def generate(ctx: Context, model: torch.nn.Module, dcfg: DiffusionConfig, n: int, *,
             labels: torch.Tensor | None = None, gamma: float | None = None, record_every: int = 0,
             seed_offset: int = 0, timesteps: list[int] | None = None, step=None,
             start_moments: tuple[torch.Tensor, torch.Tensor] | None = None,
             interval: tuple[int, int] | None = None) -> SampleResult:
    """Sample n digits from scratch (CFG when labels are given) with the one sampling loop.

    start_moments: per-pixel (mean, var) of the training digits to start from the moment-matched
    x_T (`matched_start`) instead of N(0, I); interval: guide only for lo <= t <= hi.
    """
    sched = diffusion_schedule(dcfg, ctx.device)
    torch.manual_seed(ctx.seed + 1000 + seed_offset)          # graph-safe: the default generator
    x_T = torch.randn((n, 1, 28, 28), device=ctx.device)
    if start_moments is not None:
        x_T = matched_start(x_T, *start_moments, sched)
    if labels is not None:
        estimate = guided_estimate(model, sched, labels.to(ctx.device), dcfg.guidance if gamma is None else gamma,
                                   dcfg.predict, interval)
    else:
        estimate = model_estimate(model, sched, dcfg.predict)
    return sample(x_T, timesteps or list(range(dcfg.T - 1, -1, -1)), estimate, step or ddpm_step_fn(sched),
                  record_every=record_every, autocast=ctx.cuda, graphed=ctx.cuda)


def data_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel mean and variance of (N, 1, 28, 28) digits: what `matched_start` needs."""
    x = images.double()
    return x.mean(0).float(), x.var(0, unbiased=False).float()


def class_moments(images: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class, per-pixel mean and variance: (classes, 1, 28, 28) each, for a class-matched x_T."""
    pairs = [data_moments(images[labels == k]) for k in range(classes)]
    return torch.stack([m for m, _ in pairs]), torch.stack([v for _, v in pairs])


def prepare_for_sampling(ctx: Context, model: torch.nn.Module) -> torch.nn.Module:
    """On a GPU: BatchNorm folded, bf16, channels_last and compiled (same function, ~2x faster)."""
    return fast_inference_model(model.to(ctx.device).eval(), ctx.device, compile=ctx.cuda and COMPILE)
