"""Part 1, the noising process: z = x + sigma * eps on test digits for a range of sigma."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section


@dataclass(frozen=True)
class NoisingConfig:
    sigmas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)  # noise levels (columns)
    digits: int = 5                                                   # test digits (rows)

    def validate(self) -> None:
        _require(all(s >= 0 for s in self.sigmas), f"sigmas must be >= 0, got {self.sigmas}")
        _require(len(self.sigmas) > 0, "sigmas must not be empty")
        _require(self.digits >= 1, "digits must be >= 1")


def run(ctx: Context) -> None:
    cfg: NoisingConfig = ctx.cfg
    x = ctx.test_split(cfg.digits).images[: cfg.digits]                      # (N, 1, 28, 28)
    eps = torch.randn(x.shape, generator=ctx.generator(), device=x.device)
    rows = [torch.stack([x[i] + s * eps[i] for s in cfg.sigmas]) for i in range(x.shape[0])]
    data = ctx.data
    figures.save_labelled_grid(ctx.out.path("noising.png"), rows, figures.example_labels(len(rows), data.item),
                               [f"σ = {s:g}" for s in cfg.sigmas])
    ctx.out.add_figure("noising.png", "Noising", alt=f"Grid of {data.title} test {data.items} with increasing noise")
    snr = [(x.pow(2).mean() / (s**2)).item() if s > 0 else float("inf") for s in cfg.sigmas]
    ctx.out.add_table("snr", "Signal to noise", {"sigma": "σ", "mean_x_sigma": "mean x² / σ²"},
                      [[s, None if v == float("inf") else round(v, 3)] for s, v in zip(cfg.sigmas, snr)])


SECTION = Section(
    name="noising", title="The noising process", part="part1",
    summary="Adds Gaussian noise of growing σ to test digits.",
    profiles={"full": NoisingConfig(), "quick": NoisingConfig(digits=3)}, run=run)
