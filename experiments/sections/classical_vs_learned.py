"""Part 3, classical vs learned denoising at T/4, T/2, 3T/4: Gaussian blur, one step, iterative.

All three start from the same noisy test digits x_t. The blur works on x_t / sqrt(abar_t) (the
unbiased rescaling of the signal), with the blur width that scores best at each t (an oracle choice,
so the classical method gets every chance). The learned methods use the class-conditioned UNet with
its class dropped (c = 0): it is told nothing about the digit.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section
from experiments.core.diffusion.process import add_noise
from experiments.core.diffusion.tricks import gaussian_kernel, lowpass
from experiments.core.metrics import psnr
from experiments.core.lab import DEPENDS, SamplingConfig, load

METHODS = ("noisy x_t", "Gaussian blur", "one step", "iterative")


@dataclass(frozen=True)
class ClassicalConfig(SamplingConfig):
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75)          # t as a fraction of T
    blur_sigmas: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # blur widths tried (px)
    digits: int = 2                                           # test digits in the figure

    def validate(self) -> None:
        super().validate()
        _require(len(self.fractions) > 0 and all(0 <= f <= 1 for f in self.fractions), "fractions in [0, 1]")
        _require(len(self.blur_sigmas) > 0 and all(0 < s <= 4 for s in self.blur_sigmas),
                 "blur_sigmas must be in (0, 4] px")
        _require(1 <= self.digits <= self.seeds, "digits must be in 1..seeds")


def run(ctx: Context) -> None:
    cfg: ClassicalConfig = ctx.cfg
    lab = load(ctx)
    ts = [lab.fraction(f) for f in cfg.fractions]
    test = ctx.test_split(cfg.test_images)
    n, k = min(cfg.seeds, len(test)), len(ts)
    x0, labels = test.images[:n], test.labels[:n]
    clean = x0.repeat(k, 1, 1, 1)                                            # (k n, 1, 28, 28), t-major
    t = torch.tensor(ts, device=lab.device).repeat_interleave(n)             # (k n,)
    eps = torch.randn(clean.shape, generator=ctx.generator(1), device=lab.device)
    x_t = add_noise(clean, eps, t, lab.sched)

    # classical: blur the rescaled image with each width; keep the best width per t (mean PSNR)
    rescaled = x_t / lab.sched.abar(t).sqrt().view(-1, 1, 1, 1)
    blurred = torch.stack([lowpass(rescaled, gaussian_kernel(s, lab.device)) for s in cfg.blur_sigmas])
    blur_psnr = torch.stack([psnr(b, clean).view(k, n).mean(1) for b in blurred])   # (sigmas, k)
    best = blur_psnr.argmax(0)                                                      # (k,)
    blur = blurred[best.repeat_interleave(n), torch.arange(k * n, device=lab.device)]

    # learned, one step: x0_hat from one noise estimate, all t in one batch
    one_step = lab.one_step(x_t, t)

    # learned, iterative: the sampling loop from each t with the strided schedule
    iterative = torch.cat([
        lab.run(x_t[j * n:(j + 1) * n], lab.timesteps(cfg.stride, start=s), lab.uncond(n), seed_offset=j).x0
        for j, s in enumerate(ts)])

    results = {"noisy x_t": x_t, "Gaussian blur": blur, "one step": one_step, "iterative": iterative}
    scores = torch.stack([psnr(v, clean).view(k, n) for v in results.values()])     # (methods, k, n)
    read = torch.stack([(lab.probabilities(v).argmax(1) == labels.repeat(k)).float().view(k, n)
                        for v in results.values()])                                  # (methods, k, n)
    stats = torch.stack([scores.mean(2), scores.std(2) if n > 1 else torch.zeros_like(scores[..., 0]),
                         read.mean(2)]).tolist()                                     # one host sync
    best_sigma = [cfg.blur_sigmas[i] for i in best.tolist()]
    mean, std, frac = stats

    out = ctx.out
    rows, labels_rows = [], []
    for d, example in enumerate(figures.example_labels(cfg.digits)):
        for j, s in enumerate(ts):
            i = j * n + d
            rows.append(torch.stack([x0[d]] + [v[i] for v in results.values()]))
            labels_rows.append(f"{example}, t = {s}")
    figures.save_labelled_grid(out.path("denoising.png"), rows, labels_rows, ["clean"] + list(METHODS))
    out.add_figure("denoising.png", "Classical vs learned denoising",
                   alt="Noisy digits denoised by Gaussian blur, one UNet step and iterative denoising")
    figures.save_line_plot(out.path("psnr.png"), ts, {m: [mean[i][j] for j in range(k)] for i, m in enumerate(METHODS)},
                           "t", "PSNR to the clean digit (dB)", f"Denoising quality, mean over {n} digits")
    out.add_figure("psnr.png", "PSNR per noise level",
                   kind="plot", alt="PSNR of each denoising method against t")

    table = []
    for j, s in enumerate(ts):
        for i, m in enumerate(METHODS):
            extra = f"σ = {best_sigma[j]:g} px" if m == "Gaussian blur" else (
                f"{len(lab.timesteps(cfg.stride, start=s))} steps" if m == "iterative" else "")
            table.append([s, m, round(mean[i][j], 2), round(std[i][j], 2), round(frac[i][j], 4), extra])
    out.add_table("psnr", f"Denoising {n} test digits", ["t", "method", "PSNR mean (dB)", "PSNR std (dB)",
                  "read as its digit", "setting"], table)
    for j, s in enumerate(ts):
        for i, m in enumerate(METHODS[1:], start=1):
            key = {"Gaussian blur": "blur", "one step": "one_step", "iterative": "iterative"}[m]
            out.add_metric(f"psnr_{key}_t{s}", mean[i][j], f"PSNR, {m}, t = {s} (dB)", ".2f")
        out.add_metric(f"read_iterative_t{s}", frac[3][j], f"Read as its digit after iterative denoising, t = {s}",
                       ".1%")
    out.add_metric("digits", n, "Test digits per noise level", "d")


FULL = ClassicalConfig()
QUICK = ClassicalConfig(seeds=6, test_images=256, stride=5, digits=1)

SECTION = Section(
    name="classical-vs-learned", title="Classical vs learned denoising", part="part3",
    summary="Gaussian blur against one UNet step and iterative denoising, scored by PSNR and the classifier.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
