"""Part 3, iterative denoising with strided timesteps: from a noisy test digit back to a clean one.

The loop visits t = T-1, T-1-s, ... (stride s) and moves from t to the next t' with the general
strided update (alpha = abar_t / abar_t', beta = 1 - alpha), which at s = 1 is the DDPM step.
Starting at index i_start of that list (t = 99 of T = 300 with stride 10: noisy enough to need several
steps, clean enough that the digit survives, as the forward process measures), it is compared with one
denoising step and a Gaussian blur, and the stride is swept to show what skipping steps costs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section
from experiments.core.diffusion.tricks import gaussian_kernel, lowpass, sdedit_start
from experiments.core.metrics import psnr
from experiments.core.lab import DEPENDS, SamplingConfig, check_stride, load


@dataclass(frozen=True)
class IterativeConfig(SamplingConfig):
    i_start: int = 20                          # start at strided_timesteps[i_start] (0 = pure noise)
    show_every: int = 2                        # loop steps between the intermediate images shown
    strides: tuple[int, ...] = (1, 3, 10, 30)  # strides compared (each from the same x_t)
    blur_sigma: float = 1.0                    # the Gaussian blur shown for comparison (px)
    digits: int = 8                            # test digits in the figures
    per_row: int = 4                           # digits per row of the animation

    def validate(self) -> None:
        super().validate()
        _require(self.i_start >= 0, "i_start must be >= 0")
        _require(self.show_every >= 1, "show_every must be >= 1")
        _require(len(self.strides) > 0 and all(s >= 1 for s in self.strides), "strides must be >= 1")
        _require(0 < self.blur_sigma <= 4, "blur_sigma must be in (0, 4] px")
        _require(1 <= self.digits <= self.seeds, "digits must be in 1..seeds")
        _require(self.per_row >= 1, "per_row must be >= 1")


def run(ctx: Context) -> None:
    cfg: IterativeConfig = ctx.cfg
    lab = load(ctx)
    steps = check_stride(lab, cfg.stride, cfg.i_start + 1)
    t_start = steps[cfg.i_start]
    test = ctx.test_split(cfg.test_images)
    n = min(cfg.seeds, len(test))
    x0, labels = test.images[:n], test.labels[:n]
    x_t, remaining = sdedit_start(x0, steps, cfg.i_start, lab.sched, ctx.generator(1))

    main = lab.run(x_t, remaining, lab.uncond(n), record_every=cfg.show_every)
    t = torch.full((n,), t_start, device=lab.device)
    one_step = lab.one_step(x_t, t)
    blurred = lowpass(x_t / lab.sched.abar(t).sqrt().view(-1, 1, 1, 1), gaussian_kernel(cfg.blur_sigma, lab.device))

    sweep = [lab.run(x_t, lab.timesteps(s, start=t_start), lab.uncond(n), seed_offset=s).x0 for s in cfg.strides]
    candidates = [main.x0, one_step, blurred] + sweep
    scores = torch.stack([psnr(v, x0) for v in candidates])                             # (M, n)
    read = torch.stack([(lab.probabilities(v).argmax(1) == labels).float() for v in candidates])
    mean, frac = torch.stack([scores.mean(1), read.mean(1)]).tolist()                    # one host sync

    out, d = ctx.out, cfg.digits
    frames = [f for f, s in zip(main.frames, main.frame_steps) if s >= 0]
    frame_t = [s for s in main.frame_steps if s >= 0]
    rows = [torch.stack([x_t[i]] + [f[i] for f in frames] + [main.x0[i]]) for i in range(d)]
    figures.save_labelled_grid(out.path("trajectory.png"), rows, figures.example_labels(d),
                               [f"t = {t_start}"] + [f"t = {s}" for s in frame_t] + ["result"])
    out.add_figure("trajectory.png", "Iterative denoising, step by step",
                   alt="Noisy digits becoming clean over the steps of iterative denoising")
    figures.save_gif(out.path("trajectory.gif"), [x_t[:d]] + [f[:d] for f in main.frames], nrow=min(d, cfg.per_row))
    out.add_figure("trajectory.gif", "The loop as an animation", kind="gif", alt="Animation of iterative denoising")
    compare = [torch.stack([x0[i], x_t[i], main.x0[i], one_step[i], blurred[i]]) for i in range(d)]
    figures.save_labelled_grid(out.path("compare.png"), compare, figures.example_labels(d),
                               ["original", f"noisy (t = {t_start})", "iterative", "one step",
                                f"blur σ = {cfg.blur_sigma:g}"])
    out.add_figure("compare.png", "Iterative vs one step vs blur",
                   alt="Original, noisy and three denoised versions of test digits")

    rows_t = [["iterative (the figures' run)", cfg.stride, len(remaining), round(mean[0], 2), round(frac[0], 4)],
              ["one step", None, 1, round(mean[1], 2), round(frac[1], 4)],
              [f"Gaussian blur σ = {cfg.blur_sigma:g}", None, 0, round(mean[2], 2), round(frac[2], 4)]]
    rows_t += [["iterative", s, len(lab.timesteps(s, start=t_start)), round(mean[3 + i], 2), round(frac[3 + i], 4)]
               for i, s in enumerate(cfg.strides)]
    out.add_table("methods", f"Denoising {n} test digits from t = {t_start}",
                  {"method": "method", "stride": "stride", "unet_calls": "UNet calls", "psnr_mean_db": "PSNR mean (dB)",
                   "read_as_its_digit": "read as its digit"}, rows_t)
    out.add_metric("t_start", t_start, "Starting timestep", "d")
    out.add_metric("psnr_iterative", mean[0], "PSNR, iterative (dB)", ".2f")
    out.add_metric("psnr_one_step", mean[1], "PSNR, one step (dB)", ".2f")
    out.add_metric("psnr_blur", mean[2], "PSNR, Gaussian blur (dB)", ".2f")
    out.add_metric("read_iterative", frac[0], "Read as its digit, iterative", ".1%")
    out.add_metric("read_one_step", frac[1], "Read as its digit, one step", ".1%")
    out.add_metric("digits", n, "Test digits", "d")


FULL = IterativeConfig()
QUICK = IterativeConfig(seeds=6, test_images=256, stride=5, i_start=5, show_every=2, strides=(2, 10), digits=4,
                        per_row=2)

SECTION = Section(
    name="iterative-denoising", title="Iterative denoising with strided timesteps", part="part3",
    summary="Denoises noisy test digits with the strided loop and compares strides, one step and blur.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
