"""Part 3, hybrid images: low frequencies of one digit, high frequencies of another.

At every step eps = lowpass(eps(x_t, c1)) + highpass(eps(x_t, c2)) (factorized diffusion), each term
guided with CFG and both in one forward; lowpass is a Gaussian blur sized for 28 px digits and
highpass = identity - lowpass. The judge reads the low-pass of each result (the digit seen from afar)
and a contrast-normalised high-pass (the fine strokes seen close up). Controls: how well it reads the
same two views of real test digits, and plain c1 / c2 samples seen through the opposite filter.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section
from experiments.core.diffusion.tricks import gaussian_kernel, highpass, hybrid_estimate, lowpass
from experiments.core.lab import DEPENDS, SamplingConfig, check_stride, load, parse_pairs, pick_best


@dataclass(frozen=True)
class HybridConfig(SamplingConfig):
    pairs: tuple[str, ...] = ("0/1", "8/3", "1/7", "4/9", "6/5", "3/2")   # c1 low-pass / c2 high-pass
    blur_sigma: float = 1.0                  # the Gaussian's sigma in px (7 taps at 28 px)
    shown: int = 6                           # unpicked samples per pair in the grid
    # seeds = samples per pair (one batch for all pairs)

    def validate(self) -> None:
        super().validate()
        parse_pairs(self.pairs, "/", "pair")
        _require(0.3 <= self.blur_sigma <= 4, "blur_sigma must be in [0.3, 4] px")
        _require(1 <= self.shown <= self.seeds, "shown must be in 1..seeds")


def views(x: torch.Tensor, kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(low-pass, contrast-normalised high-pass) of images in [0, 1]: the two readings of a hybrid.

    The high-pass has zero mean; scaled so that its brightest stroke is 2 and clipped to [0, 1] it
    becomes thin bright strokes on black, which the classifier can read.
    """
    x = x.clamp(0, 1)
    high = highpass(x, kernel)
    peak = high.flatten(1).amax(1).clamp(min=1e-6).view(-1, 1, 1, 1)
    return lowpass(x, kernel), (2 * high / peak).clamp(0, 1)


def run(ctx: Context) -> None:
    cfg: HybridConfig = ctx.cfg
    lab = load(ctx)
    steps = check_stride(lab, cfg.stride)
    pairs = parse_pairs(cfg.pairs, "/", "pair")
    p, n, dev = len(pairs), cfg.seeds, lab.device
    kernel = gaussian_kernel(cfg.blur_sigma, dev)
    c1 = torch.tensor([a for a, _ in pairs], device=dev).repeat_interleave(n)       # (p n,) pair-major
    c2 = torch.tensor([b for _, b in pairs], device=dev).repeat_interleave(n)
    x_T = lab.noise(n).repeat(p, 1, 1, 1)
    x0 = lab.run(x_T, steps, hybrid_estimate(lab.model, lab.sched, c1, c2, cfg.guidance, cfg.blur_sigma,
                                              lab.dcfg.predict)).x0
    plain = lab.run(x_T.repeat(2, 1, 1, 1), steps, lab.guided(torch.cat([c1, c2]), cfg.guidance)).x0
    plain1, plain2 = plain.chunk(2)                                                 # plain c1, plain c2 samples

    def read(images: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
        return lab.probabilities(images).gather(1, want.view(-1, 1)).squeeze(1)      # p(want | image)

    def hit(images: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
        return (lab.probabilities(images).argmax(1) == want).float()

    low, high = views(x0, kernel)
    low_hit, high_hit = hit(low, c1), hit(high, c2)
    plain1_high, plain2_low = views(plain1, kernel)[1], views(plain2, kernel)[0]   # the opposite filters
    stats = torch.stack([low_hit, high_hit, low_hit * high_hit, hit(x0, c1), hit(plain1_high, c2),
                         hit(plain2_low, c1)]).view(6, p, n).mean(2).T.tolist()       # (p, 6), one host sync
    test = ctx.test_split(cfg.test_images)
    real_low, real_high = views(test.images, kernel)
    control = torch.stack([hit(real_low, test.labels).mean(), hit(real_high, test.labels).mean()]).tolist()
    score = torch.minimum(read(low, c1), read(high, c2)).view(p, n)

    out = ctx.out
    best = pick_best(score)
    figures.save_labelled_grid(out.path("best.png"), [x0[best], low[best], high[best]],
                               ["hybrid", "low-pass", "high-pass"], [f"{a} / {b}" for a, b in pairs])
    out.add_figure("best.png", "Hybrid images, best of each pair",
                   alt="Hybrid digit images with their low-pass and high-pass views")
    small = torch.nn.functional.interpolate(x0[best], size=(9, 9), mode="area")
    figures.save_labelled_grid(out.path("far.png"), [x0[best], small],
                               ["close", "from afar (9 px)"], [f"{a} / {b}" for a, b in pairs])
    out.add_figure("far.png", "Seen close and from afar", alt="Hybrid digits at full size and shrunk")
    shown = min(cfg.shown, n)
    figures.save_labelled_grid(out.path("samples.png"), [x0[j * n:j * n + shown] for j in range(p)],
                               [f"{a} / {b}" for a, b in pairs])
    out.add_figure("samples.png", "Hybrid images, not picked", alt="Unpicked hybrid image samples")

    out.add_table("pairs", f"{n} hybrids per pair ({cfg.guidance.describe()}, blur σ = {cfg.blur_sigma:g} px, "
                  f"stride {cfg.stride})", ["c1 / c2", "low-pass read as c1", "high-pass read as c2", "both",
                  "unfiltered read as c1", "control: plain c1, high-pass read as c2",
                  "control: plain c2, low-pass read as c1"],
                  [[f"{a} / {b}"] + [round(v, 4) for v in r] for (a, b), r in zip(pairs, stats)])
    out.add_metric("both", sum(r[2] for r in stats) / p, "Hybrids read as c1 low-pass and c2 high-pass", ".1%")
    out.add_metric("low_as_c1", sum(r[0] for r in stats) / p, "Low-pass read as c1", ".1%")
    out.add_metric("high_as_c2", sum(r[1] for r in stats) / p, "High-pass read as c2", ".1%")
    out.add_metric("control_low", control[0], "Real digits: low-pass read correctly", ".1%")
    out.add_metric("control_high", control[1], "Real digits: high-pass read correctly", ".1%")
    out.add_metric("samples", n, "Samples per pair", "d")


FULL = HybridConfig()
QUICK = HybridConfig(seeds=3, test_images=256, stride=5, pairs=("0/1", "8/3"), shown=2)

SECTION = Section(
    name="hybrid-images", title="Hybrid images", part="part3",
    summary="Digits whose low frequencies say one class and high frequencies another, counted by the classifier.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
