"""The single-step denoiser of Part 1: its config, training and inference (shared by Part 1's sections)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from experiments.core.config import DataConfig, TrainConfig, UNetConfig, _require
from experiments.core.fitting import record_training, train_model, unet_spec
from experiments.core.models.unet import UNet
from experiments.core.objectives import denoising_objective
from experiments.core.section import Context
from experiments.core.checkpoints import checkpoint_path, load_weights


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


QUICK_DENOISER = DenoiserConfig(
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
