"""Part 1, denoising pure noise: the same training with z = eps, so the input carries no information.

The L2-optimal answer to an uninformative input is the mean of the targets, so the network should
converge to (a blur of) the training-set mean image; the section measures how close it gets.
"""
from __future__ import annotations

import dataclasses

import torch

from experiments import figures
from experiments.core.section import Context, Section
from experiments.core.denoiser import QUICK_DENOISER, DenoiserConfig, denoise_with, train_denoiser


def run(ctx: Context) -> None:
    cfg: DenoiserConfig = ctx.cfg
    model, _ = train_denoiser(ctx)
    train = ctx.train_split(cfg.data.train_images).images
    mean_image = train.mean(dim=0, keepdim=True)                                  # (1, 1, 28, 28)
    z = torch.randn((cfg.show_digits, 1, 28, 28), generator=ctx.generator(1), device=ctx.device)
    rows, labels = [], []
    for epoch in cfg.train.checkpoint_epochs:
        out = denoise_with(ctx, model, epoch, z)
        rows.append(out)
        labels.append(f"epoch {epoch}")
        mse = torch.mean((out - mean_image) ** 2).item()
        ctx.out.add_metric(f"mse_to_mean_epoch{epoch}", mse, f"MSE of outputs to the mean training image, epoch {epoch}", ".5f")
    spread = torch.mean((rows[-1] - rows[-1].mean(0, keepdim=True)) ** 2).item()
    ctx.out.add_metric("output_variance", spread, "Variance of outputs across noise inputs (final)", ".2e")
    rows.append(mean_image.expand(cfg.show_digits, -1, -1, -1))
    labels.append("train mean")
    figures.save_labelled_grid(ctx.out.path("pure_noise.png"), [z] + rows, ["input ε"] + labels)
    ctx.out.add_figure("pure_noise.png", "Outputs from pure noise", alt="Outputs of the pure-noise denoiser")
    baseline = torch.mean((train - mean_image) ** 2).item()
    ctx.out.add_metric("train_digit_to_mean_mse", baseline, "MSE of a training digit to the mean image (for scale)", ".5f")


SECTION = Section(
    name="pure-noise", title="Denoising pure noise", part="part1",
    summary="Trains the same denoiser on pure noise and compares its output with the mean digit.",
    profiles={"full": DenoiserConfig(pure_noise=True), "quick": dataclasses.replace(QUICK_DENOISER, pure_noise=True)},
    run=run)
