"""Part 1, out of distribution: the sigma = 0.5 denoiser applied to noise levels it never saw."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments.core import checkpoints
from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section
from experiments.core.denoiser import batched
from experiments.core.models import unet as unet_model


@dataclass(frozen=True)
class OODConfig:
    sigmas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)
    show_digits: int = 4       # digits in the figure
    test_images: int = 0       # digits in the MSE table (0 = the whole test split)

    def validate(self) -> None:
        _require(len(self.sigmas) > 0 and all(s >= 0 for s in self.sigmas), "sigmas must be >= 0")
        _require(self.show_digits >= 1, "show_digits must be >= 1")


def run(ctx: Context) -> None:
    cfg: OODConfig = ctx.cfg
    model, _ = checkpoints.load(ctx, "single-step-denoiser", unet_model.from_spec)
    trained_sigma = ctx.dependency("single-step-denoiser")["config"]["sigma"]
    test = ctx.test_split(cfg.test_images).images
    gen = ctx.generator()
    eps = torch.randn(test.shape, generator=gen, device=test.device)
    inputs, outputs, table = [], [], []
    for sigma in cfg.sigmas:
        noisy = test + sigma * eps
        out = batched(model, noisy)
        mse = torch.mean((out - test) ** 2).item()
        noisy_mse = torch.mean((noisy - test) ** 2).item()
        # no noise (σ = 0): nothing to improve on, so no ratio (not a ratio of 0)
        table.append([sigma, round(noisy_mse, 5), round(mse, 5), round(noisy_mse / mse, 2) if mse > 0 and sigma > 0 else None])
        inputs.append(noisy[: cfg.show_digits])
        outputs.append(out[: cfg.show_digits])
    # one pair of rows per digit (noisy, denoised), one column per σ: a near-square grid
    rows, labels = [], []
    for i, example in enumerate(figures.example_labels(min(cfg.show_digits, len(test)))):
        rows += [torch.stack([x[i] for x in inputs]), torch.stack([y[i] for y in outputs])]
        labels += [f"{example}, noisy", f"{example}, denoised"]
    figures.save_labelled_grid(ctx.out.path("ood.png"), rows, labels, [f"σ = {s:g}" for s in cfg.sigmas])
    ctx.out.add_figure("ood.png", "Denoising at unseen noise levels", alt="Noisy inputs and denoised outputs for several sigma")
    ctx.out.add_table("mse", f"Test MSE per σ ({len(test):,} test digits; trained at σ = {trained_sigma:g})",
                      {"sigma": "σ", "mse_of_the_noisy_input": "MSE of the noisy input",
                       "mse_of_the_output": "MSE of the output", "improvement_x": "improvement ×"}, table)
    ctx.out.add_metric("test_digits", len(test), "Test digits behind each MSE", ",d")
    ctx.out.add_metric("trained_sigma", trained_sigma, "Noise level the denoiser was trained at", "g")
    figures.save_line_plot(ctx.out.path("ood_mse.png"), list(cfg.sigmas),
                           {"noisy input": [r[1] for r in table], "denoised": [r[2] for r in table]},
                           "σ", "MSE against the clean digit", "Out-of-distribution denoising", log_y=False)
    ctx.out.add_figure("ood_mse.png", "MSE against σ", alt="Line plot of test MSE against sigma", kind="plot")
    for sigma, row in zip(cfg.sigmas, table):
        ctx.out.add_metric(f"mse_sigma_{sigma:g}", row[2], f"Test MSE at σ = {sigma:g}", ".5f")


SECTION = Section(
    name="out-of-distribution", title="Out-of-distribution noise levels", part="part1",
    summary="Applies the denoiser trained at σ = 0.5 to noise levels from σ = 0 to 1.",
    profiles={"full": OODConfig(), "quick": OODConfig(test_images=128, show_digits=3)},
    run=run, depends_on=("single-step-denoiser",))
