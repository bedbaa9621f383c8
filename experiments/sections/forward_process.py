"""Part 3, the forward process: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps at T/4, T/2 and 3T/4.

Besides the picture it checks the process on many noise draws (the noise really has the scale the
schedule says) and asks the judge how much of the digit survives at each t.
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

    def validate(self) -> None:
        super().validate()
        _require(len(self.fractions) > 0 and all(0 <= f <= 1 for f in self.fractions),
                 "fractions must be in [0, 1]")
        _require(self.digits >= 1, "digits must be >= 1")


def run(ctx: Context) -> None:
    cfg: ForwardConfig = ctx.cfg
    lab = load(ctx)
    ts = [lab.fraction(f) for f in cfg.fractions]
    test = ctx.test_split(cfg.test_images)
    n = min(cfg.seeds, len(test))
    x0, labels = test.images[:n], test.labels[:n]                           # (n, 1, 28, 28)
    k = len(ts)
    t = torch.tensor(ts, device=lab.device).repeat_interleave(n)            # (k n,)
    eps = torch.randn((k * n, 1, 28, 28), generator=ctx.generator(1), device=lab.device)
    x_t = add_noise(x0.repeat(k, 1, 1, 1), eps, t, lab.sched)               # (k n, 1, 28, 28), t-major

    abar = lab.sched.abar(t).view(-1, 1, 1, 1)
    recovered = (x_t - abar.sqrt() * x0.repeat(k, 1, 1, 1)) / (1 - abar).sqrt()   # should be eps again
    noise_std = recovered.view(k, -1).std(1)                                # (k,) ~ 1
    correct = (lab.probabilities(x_t).argmax(1) == labels.repeat(k)).float().view(k, n).mean(1)
    quality = psnr(x_t, x0.repeat(k, 1, 1, 1)).view(k, n).mean(1)
    rows_t = torch.stack([lab.sched.abar(t.view(k, n)[:, 0]), noise_std, quality, correct], 1).tolist()

    out = ctx.out
    shown = x0[: cfg.digits]
    grid = [torch.cat([shown[i:i + 1]] + [x_t[j * n + i:j * n + i + 1] for j in range(k)])
            for i in range(shown.shape[0])]
    figures.save_labelled_grid(out.path("forward.png"), grid, [f"digit {i + 1}" for i in range(len(grid))],
                               ["x₀"] + [f"t = {s}" for s in ts])
    out.add_figure("forward.png", "The forward process", f"Test digits (left) and the same digits noised to "
                   f"t = {', '.join(map(str, ts))} of T = {lab.T} (one noise draw each; clipped to [0, 1] for "
                   "display).", alt="Test digits at growing noise levels of the forward process")
    steps = torch.arange(lab.T, device=lab.device)
    ab = lab.sched.abar(steps).cpu()
    figures.save_line_plot(out.path("schedule.png"), list(range(lab.T)),
                           {"√ᾱ_t (signal)": ab.sqrt().tolist(),
                            "√(1 − ᾱ_t) (noise)": (1 - ab).sqrt().tolist()},
                           "t", "coefficient", f"Linear β schedule, T = {lab.T}")
    out.add_figure("schedule.png", "Signal and noise coefficients", "How much of x₀ and of ε make up x_t at "
                   "every t: the signal fades as the noise grows.", kind="plot",
                   alt="Signal and noise coefficients of the schedule against t")

    table = []
    for s, (a, std, q, acc) in zip(ts, rows_t):
        table.append([s, round(a, 4), round(a ** 0.5, 4), round(std, 4), round(q, 2), round(acc, 4)])
    out.add_table("levels", f"What is left of the digit at each t ({n} test digits)",
                  ["t", "ᾱ_t", "√ᾱ_t", "measured noise std", "PSNR of x_t (dB)", "read as its digit"], table,
                  caption="The noise recovered from x_t has unit standard deviation, as the formula says; the "
                          "classifier reads the noisy digit less and less often as t grows.")
    worst = max(abs(r[1] - 1) for r in rows_t)
    out.add_metric("noise_std_error", worst, "Largest |measured noise std − 1| over the t shown", ".4f")
    for s, (_, _, q, acc) in zip(ts, rows_t):
        out.add_metric(f"read_t{s}", acc, f"Noisy digits read as their digit at t = {s}", ".1%")
    out.add_metric("digits", n, "Test digits measured per t", "d")
    out.add_metric("T", lab.T, "Diffusion steps T of the class-conditioned model", "d")


FULL = ForwardConfig()
QUICK = ForwardConfig(seeds=8, test_images=256, digits=2)

SECTION = Section(
    name="forward-process", title="The forward process", part="part3",
    summary="Noises test digits to T/4, T/2 and 3T/4 and measures what the classifier can still read.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
