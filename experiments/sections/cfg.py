"""Part 3, classifier-free guidance with the strided loop: unconditional vs guided samples.

eps = eps_u + gamma (eps_c - eps_u): gamma = 0 is the unconditional model (class dropped), gamma = 1
the plain conditional one, gamma > 1 pushes past it. All gammas run in one batch from the same
starting noise (a per-row gamma), so the figure compares like with like.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.guidance import Guidance, guidances
from experiments.core.section import Context, Section
from experiments.core.lab import DEPENDS, SamplingConfig, check_stride, load


@dataclass(frozen=True)
class CFGConfig(SamplingConfig):
    # guidance compared, over the whole trajectory (scale 0 = unconditional); seeds = samples of each digit per setting
    sweep: tuple[Guidance, ...] = guidances((0.0, 1.0, 5.0, 7.0))
    shown: int = 4                                     # samples of each digit in the grids

    def validate(self) -> None:
        super().validate()
        _require(len(self.sweep) > 0, "sweep needs at least one guidance setting")
        for guidance in self.sweep:
            guidance.validate()
            _require(guidance.interval is None, f"cfg compares whole-trajectory guidance; {guidance} has an interval")
        _require(1 <= self.shown <= self.seeds, "shown must be in 1..seeds")


def run(ctx: Context) -> None:
    cfg: CFGConfig = ctx.cfg
    lab = load(ctx)
    steps = check_stride(lab, cfg.stride)
    gammas = [guidance.scale for guidance in cfg.sweep]
    g, n = len(gammas), 10 * cfg.seeds
    labels = torch.arange(10, device=lab.device).repeat(cfg.seeds)              # (n,) 0..9, 0..9, ...
    gamma = torch.tensor(gammas, device=lab.device).repeat_interleave(n).view(-1, 1, 1, 1)
    x_T = lab.noise(n).repeat(g, 1, 1, 1)                                           # same noise for every gamma
    x0 = lab.run(x_T, steps, lab.guided(labels.repeat(g), gamma)).x0                # (g n, 1, 28, 28)

    probs = lab.probabilities(x0).view(g, n, 10)
    pred = probs.argmax(2)
    acc = (pred == labels).float().mean(1)                                          # (g,)
    conf = probs.max(2).values.mean(1)
    histogram = torch.stack([torch.bincount(p, minlength=10) for p in pred]).float() / n   # (g, 10)
    acc, conf, histogram = acc.tolist(), conf.tolist(), histogram.tolist()
    fids = [lab.judge.fid(x0[i * n:(i + 1) * n]) for i in range(g)]

    out = ctx.out
    by_gamma = x0.view(g, cfg.seeds, 10, 1, 28, 28)
    figures.save_labelled_grid(out.path("gammas.png"), [by_gamma[i, 0] for i in range(g)],
                               [f"γ = {v:g}" for v in gammas], [str(d) for d in range(10)])
    out.add_figure("gammas.png", "Unconditional vs guided",
                   alt="Samples for each digit at several guidance scales")
    for i, v in enumerate(gammas):
        name = f"samples_gamma{i}.png"
        figures.save_grid(out.path(name), by_gamma[i, :cfg.shown].reshape(-1, 1, 28, 28), nrow=10)
        label = "unconditional (γ = 0)" if v == 0 else f"γ = {v:g}"
        out.add_figure(name, f"Samples, {label}",
                       group=label, alt=f"Grid of samples with guidance {label}")

    out.add_table("guidance", f"{n} samples per guidance scale", ["γ", "read as asked digit", "mean confidence",
                  "classifier-FID"], [[v, round(a, 4), round(c, 4), round(f, 3)]
                                      for v, a, c, f in zip(gammas, acc, conf, fids)])
    out.add_table("classes", "Which digits come out (share of samples, by the classifier)",
                  ["γ"] + [str(d) for d in range(10)],
                  [[v] + [round(h, 3) for h in hist] for v, hist in zip(gammas, histogram)])
    for v, a, f in zip(gammas, acc, fids):
        key = f"{v:g}".replace(".", "_")
        out.add_metric(f"accuracy_gamma{key}", a, f"Read as asked digit, γ = {v:g}", ".1%")
        out.add_metric(f"fid_gamma{key}", f, f"Classifier-FID, γ = {v:g}", ".3f")
    out.add_metric("samples", n, "Samples per guidance scale", ",d")


FULL = CFGConfig()
QUICK = CFGConfig(seeds=2, test_images=256, stride=5, sweep=guidances((0.0, 5.0)), shown=1)

SECTION = Section(
    name="cfg", title="Classifier-free guidance", part="part3",
    summary="Unconditional vs guided samples with the strided loop, judged by the classifier.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
