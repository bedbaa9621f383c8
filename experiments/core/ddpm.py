"""A Part 2 diffusion model: its config, training, and sampling digits from scratch with the one loop."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from experiments.core.config import DataConfig, DiffusionConfig, TrainConfig, UNetConfig, _require
from experiments.core.diffusion.process import matched_start
from experiments.core.diffusion.sampling import SampleResult, ddpm_step_fn, guided_estimate, model_estimate, sample
from experiments.core.diffusion.schedule import make_schedule
from experiments.core.fitting import record_training, train_model, unet_spec
from experiments.core.guidance import Guidance, guidances
from experiments.core.models.inference import fast_inference_model, load_inference_weights
from experiments.core.models.unet import UNet
from experiments.core.objectives import diffusion_objective
from experiments.core.section import Context


def diffusion_schedule(cfg: DiffusionConfig, device: torch.device):
    return make_schedule(cfg.T, cfg.beta_start, cfg.beta_end, device=device)


@dataclass(frozen=True)
class DDPMConfig:
    """A Part 2 diffusion model: data, network, training, schedule and what to sample for figures."""

    data: DataConfig = field(default_factory=DataConfig)
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(hidden=64, conditioning="time"))
    train: TrainConfig = field(default_factory=TrainConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    samples: int = 40                 # digits per sample figure (time-conditioned)
    gif_every: int = 10               # sampler steps between GIF frames
    # guidance settings shown side by side (class-conditioned)
    sweep: tuple[Guidance, ...] = guidances((0.0, 5.0, 10.0))

    def validate(self) -> None:
        _require(self.samples >= 1, "samples must be >= 1")
        _require(self.gif_every >= 1, "gif_every must be >= 1")
        for guidance in self.sweep:
            guidance.validate()


def quick_ddpm(conditioning: str) -> DDPMConfig:
    """The tiny CPU version of a Part 2 run: a few hundred digits, D=8, T=50, two short epochs."""
    return DDPMConfig(
        data=DataConfig(train_images=256, test_images=256),
        unet=UNetConfig(hidden=8, conditioning=conditioning),
        train=TrainConfig(epochs=2, batch_size=32, lr=3e-3, reference_images=256, checkpoint_epochs=(1, 2)),
        diffusion=DiffusionConfig(T=50), samples=20, gif_every=5)


def train_ddpm(ctx: Context, class_conditioned: bool) -> UNet:
    cfg: DDPMConfig = ctx.cfg
    model = UNet(cfg.unet)
    sched = diffusion_schedule(cfg.diffusion, ctx.device)
    result = train_model(ctx, model, diffusion_objective(sched, cfg.diffusion, class_conditioned), cfg.data,
                         cfg.train, "unet", unet_spec(cfg.unet, cfg.diffusion), label=ctx.section.name)
    split_size = len(ctx.train_split(cfg.data.train_images))
    kind = "class-conditioned" if class_conditioned else "time-conditioned"
    record_training(ctx, result, cfg.train, split_size, f"{kind} UNet, D={cfg.unet.hidden}", model)
    return model


def generate(ctx: Context, model: torch.nn.Module, dcfg: DiffusionConfig, n: int, *,
             labels: torch.Tensor | None = None, guidance: Guidance | None = None, record_every: int = 0,
             seed_offset: int = 0, timesteps: list[int] | None = None, step=None,
             start_moments: tuple[torch.Tensor, torch.Tensor] | None = None) -> SampleResult:
    """Sample n digits from scratch (CFG when labels are given) with the one sampling loop.

    guidance: the CFG scale and interval (default: the model's dcfg.guidance); start_moments: per-pixel
    (mean, var) of the training digits to start from the moment-matched x_T (`matched_start`) instead of
    N(0, I).
    """
    sched = diffusion_schedule(dcfg, ctx.device)
    torch.manual_seed(ctx.seed + 1000 + seed_offset)          # graph-safe: the default generator
    x_T = torch.randn((n, 1, 28, 28), device=ctx.device)
    if start_moments is not None:
        x_T = matched_start(x_T, *start_moments, sched)
    if labels is not None:
        estimate = guided_estimate(model, sched, labels.to(ctx.device), guidance or dcfg.guidance, dcfg.predict)
    else:
        estimate = model_estimate(model, sched, dcfg.predict)
    return sample(x_T, timesteps or list(range(dcfg.T - 1, -1, -1)), estimate,
                  step or ddpm_step_fn(sched, compiled=ctx.compiled),
                  record_every=record_every, autocast=ctx.cuda, graphed=ctx.cuda)


def data_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel mean and variance of (N, 1, 28, 28) digits: what `matched_start` needs."""
    x = images.double()
    return x.mean(0).float(), x.var(0, unbiased=False).float()


def class_moments(images: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class, per-pixel mean and variance: (classes, 1, 28, 28) each, for a class-matched x_T."""
    pairs = [data_moments(images[labels == k]) for k in range(classes)]
    return torch.stack([m for m, _ in pairs]), torch.stack([v for _, v in pairs])


def prepare_for_sampling(ctx: Context, model: torch.nn.Module, into: torch.nn.Module | None = None) -> torch.nn.Module:
    """On a GPU: BatchNorm folded, skip concatenations split, bf16, channels_last and, where the section
    compiles, compiled (same function, faster). `into`: a network this returned for the same architecture,
    which takes the new weights in place (no second compile)."""
    model = model.to(ctx.device).eval()
    if into is not None:
        return load_inference_weights(into, model)
    return fast_inference_model(model, ctx.device, compile=ctx.compiled)
