"""Part 3, visual anagrams: one image that reads as c1 upright and as c2 upside down.

At every step eps = (eps(x_t, c1) + flip(eps(flip(x_t), c2))) / 2, each term guided with CFG, all in
one forward. "Upside down" is a 180-degree turn (how a page is turned; a 6 becomes a 9). The judge
reads every result both ways; the baseline is plain class-c1 samples from the same noise, turned
over: how often the second reading happens without the trick.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section
from experiments.core.diffusion.tricks import FLIPS, anagram_estimate, flip
from experiments.core.lab import DEPENDS, SamplingConfig, check_stride, load, parse_pairs, pick_best


FLIP_WORDS = {"rotate180": "180° turn", "vertical": "vertical mirror"}      # one per FLIPS


@dataclass(frozen=True)
class AnagramConfig(SamplingConfig):
    pairs: tuple[str, ...] = ("6/9", "1/7", "2/5", "3/8", "4/7", "0/8")   # c1 upright / c2 upside down
    flip: str = "rotate180"                  # rotate180 | vertical
    shown: int = 6                           # unpicked samples per pair in the grid
    # seeds = samples per pair (one batch for all pairs)

    def validate(self) -> None:
        super().validate()
        parse_pairs(self.pairs, "/", "pair")
        _require(self.flip in FLIPS, f"flip must be one of {', '.join(FLIPS)}")
        _require(1 <= self.shown <= self.seeds, "shown must be in 1..seeds")


def run(ctx: Context) -> None:
    cfg: AnagramConfig = ctx.cfg
    lab = load(ctx)
    steps = check_stride(lab, cfg.stride)
    pairs = parse_pairs(cfg.pairs, "/", "pair")
    p, n, dev = len(pairs), cfg.seeds, lab.device
    c1 = torch.tensor([a for a, _ in pairs], device=dev).repeat_interleave(n)       # (p n,) pair-major
    c2 = torch.tensor([b for _, b in pairs], device=dev).repeat_interleave(n)
    x_T = lab.noise(n).repeat(p, 1, 1, 1)                                           # same seeds for every pair
    x0 = lab.run(x_T, steps, anagram_estimate(lab.model, lab.sched, c1, c2, cfg.guidance, lab.dcfg.predict,
                                               cfg.flip)).x0
    plain = lab.run(x_T, steps, lab.guided(c1, cfg.guidance)).x0                       # baseline: c1 only

    def judge(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(c1 | upright) and p(c2 | turned) per image, and the hit rates per pair (up, down, both)."""
        up, down = lab.probabilities(images), lab.probabilities(flip(images, cfg.flip))
        hit_up, hit_down = up.argmax(1) == c1, down.argmax(1) == c2
        rates = torch.stack([hit_up, hit_down, hit_up & hit_down]).float().view(3, p, n).mean(2)   # (3, p)
        return torch.minimum(up.gather(1, c1.view(-1, 1)), down.gather(1, c2.view(-1, 1))).squeeze(1), rates

    score, rates = judge(x0)                        # score: both readings at once, min of the two
    stats = torch.cat([rates, judge(plain)[1]]).T.tolist()                         # (p, 6), one host sync
    score = score.view(p, n)

    out = ctx.out
    best = pick_best(score)
    turned = flip(x0, cfg.flip)
    figures.save_labelled_grid(out.path("best.png"), [x0[best], turned[best]], ["upright", "upside down"],
                               [f"{a} / {b}" for a, b in pairs])
    out.add_figure("best.png", "Visual anagrams, best of each pair",
                   alt="Digit images that read as one digit upright and another upside down")
    shown = min(cfg.shown, n)
    rows, labels = [], []
    for j, (a, b) in enumerate(pairs):
        rows += [x0[j * n:j * n + shown], turned[j * n:j * n + shown]]
        labels += [f"{a} upright", f"{b} turned"]
    figures.save_labelled_grid(out.path("samples.png"), rows, labels)
    out.add_figure("samples.png", "Visual anagrams, not picked", alt="Unpicked visual anagram samples")

    out.add_table("pairs", f"{n} anagrams per pair ({cfg.guidance.describe()}, stride {cfg.stride}, "
                  f"{FLIP_WORDS[cfg.flip]})",
                  ["c1 / c2", "upright read as c1", "turned read as c2", "both",
                   "baseline: plain c1, turned read as c2", "baseline: both"],
                  [[f"{a} / {b}"] + [round(v, 4) for v in (r[0], r[1], r[2], r[4], r[5])]
                   for (a, b), r in zip(pairs, stats)])
    out.add_metric("both", sum(r[2] for r in stats) / p, "Anagrams read both ways, mean over pairs", ".1%")
    out.add_metric("baseline_both", sum(r[5] for r in stats) / p, "Plain c1 samples read both ways (baseline)", ".1%")
    for (a, b), r in zip(pairs, stats):
        out.add_metric(f"both_{a}_{b}", r[2], f"Read as {a} upright and {b} turned", ".1%")
    out.add_metric("samples", n, "Samples per pair", "d")


FULL = AnagramConfig()
QUICK = AnagramConfig(seeds=3, test_images=256, stride=5, pairs=("6/9", "1/7"), shown=2)

SECTION = Section(
    name="visual-anagrams", title="Visual anagrams", part="part3",
    summary="Digits that read as one class upright and another upside down, counted by the classifier.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
