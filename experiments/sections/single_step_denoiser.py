"""Part 1, a single-step denoiser: an unconditional UNet trained to map x + 0.5 eps back to x."""
from __future__ import annotations

import torch

from experiments import figures
from experiments.core.denoiser import QUICK_DENOISER, DenoiserConfig, batched, denoise_with, train_denoiser
from experiments.core.section import Context, Section


def run(ctx: Context) -> None:
    cfg: DenoiserConfig = ctx.cfg
    model, _ = train_denoiser(ctx)
    x = ctx.test_split(cfg.data.test_images).images[: cfg.show_digits]
    z = x + cfg.sigma * torch.randn(x.shape, generator=ctx.generator(1), device=x.device)
    for epoch in cfg.train.checkpoint_epochs:
        out = denoise_with(ctx, model, epoch, z)
        name = f"denoised_epoch{epoch}.png"
        figures.save_labelled_grid(ctx.out.path(name), [x, z, out], ["clean", f"noisy σ={cfg.sigma:g}", "denoised"])
        ctx.out.add_figure(name, f"After epoch {epoch}", group=f"Epoch {epoch}",
                           alt=f"Clean, noisy and denoised test {ctx.data.items} after epoch {epoch}")
    test = ctx.test_split(cfg.data.test_images).images
    noisy = test + cfg.sigma * torch.randn(test.shape, generator=ctx.generator(2), device=test.device)
    mse = torch.mean((batched(model, noisy) - test) ** 2).item()
    ctx.out.add_metric("test_mse", mse, f"Test MSE at σ = {cfg.sigma:g} over {len(test):,} {ctx.data.items}", ".5f")


SECTION = Section(
    name="single-step-denoiser", title="A single-step denoiser", part="part1",
    summary="Trains an unconditional UNet (D = 128) to remove noise of σ = 0.5 in one step.",
    profiles={"full": DenoiserConfig(), "quick": QUICK_DENOISER}, run=run)
