"""Part 1, a single-step denoiser: an unconditional UNet trained to map x + 0.5 eps back to x."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from experiments import figures
from experiments.config import DataConfig, TrainConfig, UNetConfig, _require
from experiments.context import Context
from experiments.models.unet import UNet
from experiments.objectives import denoising_objective
from experiments.registry import Section, register
from experiments.sections.common import record_training, train_model, unet_spec
from experiments.training import load_weights, checkpoint_path


@dataclass(frozen=True)
class DenoiserConfig:
    data: DataConfig = field(default_factory=DataConfig)
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(hidden=128, conditioning="none"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=5, batch_size=256, lr=1e-4, lr_final_ratio=1.0, checkpoint_epochs=(1, 5)))
    sigma: float = 0.5          # training noise level
    pure_noise: bool = False    # train on z = eps (the "pure noise" section)
    show_digits: int = 8        # test digits in the figures

    def validate(self) -> None:
        _require(self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}")
        _require(self.show_digits >= 1, "show_digits must be >= 1")


QUICK = DenoiserConfig(
    data=DataConfig(train_images=256, test_images=256),
    unet=UNetConfig(hidden=8, conditioning="none"),
    train=TrainConfig(epochs=2, batch_size=32, lr=3e-3, lr_final_ratio=1.0, reference_images=256,
                      checkpoint_epochs=(1, 2)),
    show_digits=4)


def train_denoiser(ctx: Context) -> tuple[UNet, object]:
    cfg: DenoiserConfig = ctx.cfg
    model = UNet(cfg.unet)
    result = train_model(ctx, model, denoising_objective(cfg.sigma, cfg.pure_noise), cfg.data, cfg.train,
                         "unet", unet_spec(cfg.unet), label=ctx.section.name)
    split_size = len(ctx.train_split(cfg.data.train_images))
    what = "pure-noise denoiser" if cfg.pure_noise else f"denoiser (σ = {cfg.sigma:g})"
    record_training(ctx, result, cfg.train, split_size, f"Single-step {what}", model)
    return model, result


@torch.no_grad()
def denoise_with(ctx: Context, model: UNet, epoch: int, z: torch.Tensor) -> torch.Tensor:
    load_weights(model, checkpoint_path(ctx.work_dir, epoch))
    model.to(ctx.device).eval()
    return model(z.to(ctx.device)).float()


@torch.no_grad()
def batched(model: torch.nn.Module, inputs: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """model(inputs) in chunks (eval mode), float32."""
    return torch.cat([model(chunk).float() for chunk in inputs.split(batch)])


def run(ctx: Context) -> None:
    cfg: DenoiserConfig = ctx.cfg
    model, _ = train_denoiser(ctx)
    x = ctx.test_split(cfg.data.test_images).images[: cfg.show_digits]
    z = x + cfg.sigma * torch.randn(x.shape, generator=ctx.generator(1), device=x.device)
    for epoch in cfg.train.checkpoint_epochs:
        out = denoise_with(ctx, model, epoch, z)
        name = f"denoised_epoch{epoch}.png"
        figures.save_labelled_grid(ctx.out.path(name), [x, z, out], ["clean", f"noisy σ={cfg.sigma:g}", "denoised"])
        ctx.out.add_figure(name, f"After epoch {epoch}", f"Test digits: clean, noised with σ = {cfg.sigma:g}, and "
                           f"the denoiser's output after {epoch} epoch(s).", group=f"Epoch {epoch}",
                           alt=f"Clean, noisy and denoised test digits after epoch {epoch}")
    test = ctx.test_split(cfg.data.test_images).images
    noisy = test + cfg.sigma * torch.randn(test.shape, generator=ctx.generator(2), device=test.device)
    mse = torch.mean((batched(model, noisy) - test) ** 2).item()
    ctx.out.add_metric("test_mse", mse, f"Test MSE at σ = {cfg.sigma:g} over {len(test):,} digits", ".5f")


SECTION = register(Section(
    name="single-step-denoiser", title="A single-step denoiser", part="part1",
    summary="Trains an unconditional UNet (D=128) to remove noise of sigma 0.5 in one step.",
    profiles={"full": DenoiserConfig(), "quick": QUICK}, run=run))
