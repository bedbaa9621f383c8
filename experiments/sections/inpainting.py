"""Part 3, inpainting: regenerate a masked region of a test digit as an asked class, keep the rest.

After every step of the loop the known pixels are replaced by the original noised to the new t,
x_t <- m x_t + (1 - m) forward(x_orig, t) (m = 1 inside the hole), so the model only ever invents the
hole, and at t = -1 the known pixels are the original exactly. The asked class steers the hole with
CFG. Several mask shapes and all ten asked classes run in one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section
from experiments.core.diffusion.tricks import inpaint_projection
from experiments.core.lab import DEPENDS, SamplingConfig, check_stride, load, pick_best

MASKS = ("top", "bottom", "left", "right", "centre")
MASK_GREY = 0.6         # the hole's shade in the figure's mask column (black: the pixels kept)


def make_mask(kind: str, device: torch.device) -> torch.Tensor:
    """(1, 1, 28, 28) bool, True = the hole to fill (regions of MNIST's central 20x20 box)."""
    m = torch.zeros(1, 1, 28, 28, dtype=torch.bool, device=device)
    if kind == "top":
        m[..., :14, :] = True
    elif kind == "bottom":
        m[..., 14:, :] = True
    elif kind == "left":
        m[..., :, :14] = True
    elif kind == "right":
        m[..., :, 14:] = True
    elif kind == "centre":
        m[..., 9:19, 7:21] = True
    else:
        raise ValueError(kind)
    return m


@dataclass(frozen=True)
class InpaintConfig(SamplingConfig):
    masks: tuple[str, ...] = MASKS          # hole shapes
    # seeds = inpainted digits per mask; digit i is asked to become class i mod 10

    def validate(self) -> None:
        super().validate()
        _require(len(self.masks) > 0 and all(m in MASKS for m in self.masks),
                 f"masks must be among {', '.join(MASKS)}")


def run(ctx: Context) -> None:
    cfg: InpaintConfig = ctx.cfg
    lab = load(ctx)
    steps = check_stride(lab, cfg.stride)
    test = ctx.test_split(cfg.test_images)
    n, k, dev = min(cfg.seeds, len(test)), len(cfg.masks), lab.device
    x_orig = test.images[:n].repeat(k, 1, 1, 1)                                    # (k n, 1, 28, 28), mask-major
    source = test.labels[:n].repeat(k)
    asked = (torch.arange(n, device=dev) % 10).repeat(k)
    mask = torch.cat([make_mask(m, dev).expand(n, -1, -1, -1) for m in cfg.masks])  # (k n, 1, 28, 28)

    project = inpaint_projection(x_orig, mask, lab.sched)
    torch.manual_seed(ctx.seed + 11)
    x_T = project(lab.noise(k * n), torch.full((k * n,), steps[0], device=dev))  # known pixels at t = T-1 too
    x0 = lab.run(x_T, steps, lab.guided(asked, cfg.guidance), project=project).x0

    probs = lab.probabilities(x0)
    p_asked = probs.gather(1, asked.view(-1, 1)).squeeze(1)                      # (k n,)
    hit = (probs.argmax(1) == asked).float().view(k, n)
    new = (asked != source).float().view(k, n)                                   # asked for a different digit
    outside = torch.where(mask, torch.zeros_like(x0), (x0 - x_orig).abs()).flatten(1).amax(1)
    inside = torch.where(mask, (x0.clamp(0, 1) - x_orig).abs(), torch.zeros_like(x0)).flatten(1).sum(1)
    inside = inside / mask.flatten(1).sum(1)                                     # mean |change| in the hole
    stats = torch.stack([hit.mean(1), (hit * new).sum(1) / new.sum(1).clamp(min=1), outside.view(k, n).amax(1),
                         inside.view(k, n).mean(1)]).T.tolist()
    max_outside = max(r[2] for r in stats)

    out = ctx.out
    # rule: the highest classifier probability of the asked class, among digits asked for a new class
    best = pick_best(torch.where(new > 0, p_asked.view(k, n), torch.full_like(new, -1.0)))
    hole = torch.where(mask, torch.zeros_like(x_orig), x_orig)
    # the hole in grey, not white: a white hole on the figure's white ground would hide the tile's edge
    best_rows = [torch.stack([x_orig[b], MASK_GREY * mask[b].float(), hole[b], x0[b]]) for b in best]
    figures.save_labelled_grid(out.path("best.png"), best_rows, [f"{m} hole" for m in cfg.masks],
                               ["original", "mask", "hole to fill", "inpainted"])
    out.add_figure("best.png", "Inpainting, best example per mask",
                   alt="Original digits, masks, holes and inpainted results")
    shown = min(n, 10)
    rows = [x0[j * n:j * n + shown] for j in range(k)]
    figures.save_labelled_grid(out.path("all_classes.png"), [x_orig[:shown]] + rows,
                               ["original"] + [f"{m} hole" for m in cfg.masks],
                               [f"ask {int(a)}" for a in asked[:shown].tolist()])
    out.add_figure("all_classes.png", "Inpainting, not picked",
                   alt="Test digits inpainted as each digit class for every mask shape")

    out.add_table("masks", f"Inpainting {n} test digits per mask ({cfg.guidance.describe()}, stride {cfg.stride})",
                  ["mask", "read as asked class", "… when asked for a new class", "max |change| outside the hole",
                   "mean |change| inside"],
                  [[m, round(r[0], 4), round(r[1], 4), r[2], round(r[3], 4)] for m, r in zip(cfg.masks, stats)])
    out.add_metric("read_as_asked", sum(r[0] for r in stats) / k, "Inpainted digits read as the asked class", ".1%")
    out.add_metric("max_change_outside", max_outside, "Largest |change| outside the hole", ".3g")
    for m, r in zip(cfg.masks, stats):
        out.add_metric(f"read_as_asked_{m}", r[0], f"Read as asked, {m} hole", ".1%")
    out.add_metric("digits", n, "Digits per mask", "d")


FULL = InpaintConfig()
QUICK = InpaintConfig(seeds=3, test_images=256, stride=5, masks=("top", "centre"))

SECTION = Section(
    name="inpainting", title="Inpainting", part="part3",
    summary="Regenerates a masked part of test digits as an asked class while keeping the rest exactly.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
