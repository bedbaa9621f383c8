"""Part 2, a class-conditioned DDPM with classifier-free guidance."""
from __future__ import annotations

import dataclasses

import torch

from experiments import figures
from experiments.core.config import UNetConfig
from experiments.core.section import Context, Section
from experiments.core.ddpm import DDPMConfig, generate, prepare_for_sampling, quick_ddpm, train_ddpm
from experiments.core.checkpoints import checkpoint_path, load_weights


def run(ctx: Context) -> None:
    cfg: DDPMConfig = ctx.cfg
    model = train_ddpm(ctx, class_conditioned=True)
    labels = torch.arange(10).repeat_interleave(4)                    # 4 of each digit, (40,)
    for epoch in cfg.train.checkpoint_epochs:
        load_weights(model, checkpoint_path(ctx.work_dir, epoch))
        net = prepare_for_sampling(ctx, model)
        result = generate(ctx, net, cfg.diffusion, len(labels), labels=labels, record_every=cfg.gif_every,
                          seed_offset=epoch)
        png, gif = f"samples_epoch{epoch:02d}.png", f"sampling_epoch{epoch:02d}.gif"
        by_row = result.x0.view(10, 4, 1, 28, 28).transpose(0, 1).reshape(40, 1, 28, 28)   # rows of 0..9
        figures.save_grid(ctx.out.path(png), by_row, nrow=10)
        figures.save_gif(ctx.out.path(gif), [f.view(10, 4, 1, 28, 28).transpose(0, 1).reshape(40, 1, 28, 28)
                                             for f in result.frames], nrow=10)
        group = f"Epoch {epoch}"
        ctx.out.add_figure(png, f"Samples after epoch {epoch}", group=group,
                           alt=f"Four class-conditioned samples of each {ctx.data.item} class after epoch {epoch}")
        ctx.out.add_figure(gif, f"Sampling after epoch {epoch}", group=group, kind="gif",
                           alt=f"Animation of class-conditioned sampling after epoch {epoch}")
        if epoch == cfg.train.checkpoint_epochs[-1]:              # the final model's trajectory, as a still
            strip = f"trajectory_epoch{epoch:02d}.png"
            # one sample of each digit: the labels hold four of each in turn, so every fourth image
            figures.save_trajectory_strip(ctx.out.path(strip), [f[::4] for f in result.frames], result.frame_steps,
                                          [f"{ctx.data.item} {c}" if c.isdigit() else c for c in ctx.data.classes])
            ctx.out.add_figure(strip, f"The trajectory after epoch {epoch}, as a still", group=group,
                               alt=f"One sample of each {ctx.data.item} class at evenly spaced steps of sampling, from noise to "
                                   f"{ctx.data.items}")
    net = prepare_for_sampling(ctx, model)   # final weights are loaded last
    rows = []
    for g in cfg.sweep:
        result = generate(ctx, net, cfg.diffusion, len(labels), labels=labels, guidance=g, seed_offset=7)
        rows.append(result.x0.view(10, 4, 1, 28, 28)[:, 0])             # one of each digit
    figures.save_labelled_grid(ctx.out.path("guidance_sweep.png"), rows, [g.describe() for g in cfg.sweep],
                               list(ctx.data.classes))
    ctx.out.add_figure("guidance_sweep.png", "Guidance sweep",
                       alt=f"Samples of each {ctx.data.item} class for several guidance scales")


FULL = DDPMConfig(unet=UNetConfig(hidden=64, conditioning="class"))
QUICK = quick_ddpm("class")

SECTION = Section(
    name="class-conditioned", title="A class-conditioned DDPM with guidance", part="part2",
    summary="Adds class conditioning (with 10% dropout) and samples with classifier-free guidance.",
    profiles={"full": FULL, "quick": QUICK}, run=run)

__all__ = ["SECTION", "dataclasses"]
