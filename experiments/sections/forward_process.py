"""Part 3, the forward process: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps at T/4, T/2 and 3T/4.

Besides the picture it checks the process on many noise draws (the recovered noise has the scale the
schedule says) and measures how much of the digit survives at each t: the signal-to-noise ratio, the
PSNR, and how often a digit can still be read from x_t by the reader that knows the noise level best,
the nearest class mean. With Gaussian noise of known scale, the class c whose training mean mu_c,
scaled by sqrt(abar_t), lies closest to x_t is the most likely class under a one-template-per-class
model. The classifier of the evaluation is no judge here: it never saw noise and calls every noisy
digit the same class.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section
from experiments.core.diffusion.process import add_noise
from experiments.core.metrics import psnr
from experiments.core.lab import DEPENDS, Part3Config, load


@dataclass(frozen=True)
class ForwardConfig(Part3Config):
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75)   # t as a fraction of T (the columns)
    digits: int = 4                                    # test digits shown (rows)
    read_digits: int = 1000                            # test digits behind the template reading

    def validate(self) -> None:
        super().validate()
        _require(len(self.fractions) > 0 and all(0 <= f <= 1 for f in self.fractions),
                 "fractions must be in [0, 1]")
        _require(self.digits >= 1, "digits must be >= 1")
        _require(self.read_digits >= 1, "read_digits must be >= 1")


def class_means(images: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """The mean training digit of each class: (classes, 1, 28, 28)."""
    return torch.stack([images[labels == k].mean(0) for k in range(classes)])


def template_reading(x_t: torch.Tensor, means: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """The class whose mean, scaled by each image's signal coefficient sqrt(abar_t), is nearest to x_t."""
    scaled = signal.view(-1, 1, 1, 1, 1) * means.unsqueeze(0)                # (N, classes, 1, 28, 28)
    return (x_t.unsqueeze(1) - scaled).flatten(2).pow(2).sum(2).argmin(1)


def run(ctx: Context) -> None:
    cfg: ForwardConfig = ctx.cfg
    lab = load(ctx)
    ts = [0] + [lab.fraction(f) for f in cfg.fractions]                      # t = 0: the clean digits
    test = ctx.test_split(cfg.test_images)
    n = min(max(cfg.seeds, cfg.read_digits), len(test))
    x0, labels = test.images[:n], test.labels[:n]                           # (n, 1, 28, 28)
    train = ctx.train_split()
    means = class_means(train.images, train.labels)
    k = len(ts)
    t = torch.tensor(ts, device=lab.device).repeat_interleave(n)            # (k n,)
    eps = torch.randn((k * n, 1, 28, 28), generator=ctx.generator(1), device=lab.device)
    clean = x0.repeat(k, 1, 1, 1)
    x_t = add_noise(clean, eps, t, lab.sched)                               # (k n, 1, 28, 28), t-major
    abar = lab.sched.abar(t).view(-1, 1, 1, 1)
    recovered = (x_t - abar.sqrt() * clean) / (1 - abar).clamp_min(1e-12).sqrt()   # eps again (t > 0)
    noise_std = recovered.view(k, -1).std(1)                                # (k,) ~ 1
    read = (template_reading(x_t, means, abar.sqrt().view(-1)) == labels.repeat(k)).float().view(k, n).mean(1)
    quality = psnr(x_t, clean).view(k, n).mean(1)
    ab = lab.sched.abar(torch.tensor(ts, device=lab.device))
    snr = ab / (1 - ab).clamp_min(1e-12)
    rows_t = torch.stack([ab, snr, noise_std, quality, read], 1).tolist()   # one host sync

    out = ctx.out
    shown = x0[: cfg.digits]
    grid = [torch.stack([x_t[j * n + i] for j in range(k)]) for i in range(shown.shape[0])]
    figures.save_labelled_grid(out.path("forward.png"), grid, figures.example_labels(len(grid)),
                               ["x₀"] + [f"t = {s}" for s in ts[1:]])
    out.add_figure("forward.png", "The forward process", alt="Test digits at growing noise levels of the forward process")
    steps = torch.arange(lab.T, device=lab.device)
    abar_all = lab.sched.abar(steps).cpu()
    figures.save_line_plot(out.path("schedule.png"), list(range(lab.T)),
                           {"√ᾱ_t (signal)": abar_all.sqrt().tolist(),
                            "√(1 − ᾱ_t) (noise)": (1 - abar_all).sqrt().tolist()},
                           "t", "coefficient", f"Linear β schedule, T = {lab.T}")
    out.add_figure("schedule.png", "Signal and noise coefficients", kind="plot",
                   alt="Signal and noise coefficients of the schedule against t")

    table = [[s, round(a, 4), round(a ** 0.5, 4), None if s == 0 else round(r, 3), None if s == 0 else round(std, 4),
              None if s == 0 else round(q, 2), round(acc, 4)]
             for s, (a, r, std, q, acc) in zip(ts, rows_t)]
    out.add_table("levels", f"What is left of the digit at each t ({n:,} test digits)",
                  {"t": "t", "abar_t": "ᾱ_t", "sqrt_abar_t": "√ᾱ_t", "snr": "signal / noise, ᾱ/(1 − ᾱ)",
                   "measured_noise_std": "measured noise std", "psnr_of_x_t_db": "PSNR of x_t (dB)",
                   "read_by_template": "read as its digit by the nearest class mean"}, table)
    worst = max(abs(r[2] - 1) for s, r in zip(ts, rows_t) if s > 0)
    out.add_metric("noise_std_error", worst, "Largest |measured noise std − 1| over the t shown", ".4f")
    out.add_metric("read_clean", rows_t[0][4], "Clean digits read by the nearest class mean", ".1%")
    out.add_metric("digits", n, "Test digits measured per t", ",d")
    out.add_metric("T", lab.T, "Diffusion steps T of the class-conditioned model", "d")


FULL = ForwardConfig()
QUICK = ForwardConfig(seeds=8, test_images=256, digits=2, read_digits=64)

SECTION = Section(
    name="forward-process", title="The forward process", part="part3",
    summary="Noises test digits to T/4, T/2 and 3T/4 and measures how much of each digit is left.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
