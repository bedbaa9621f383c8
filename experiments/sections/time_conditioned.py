"""Part 2, a time-conditioned DDPM: eps-prediction with per-sample random t, sampled from scratch."""
from __future__ import annotations

from experiments import figures
from experiments.core.section import Context, Section
from experiments.core.ddpm import DDPMConfig, generate, prepare_for_sampling, quick_ddpm, train_ddpm
from experiments.core.checkpoints import checkpoint_path, load_weights


def run(ctx: Context) -> None:
    cfg: DDPMConfig = ctx.cfg
    model = train_ddpm(ctx, class_conditioned=False)
    for epoch in cfg.train.checkpoint_epochs:
        load_weights(model, checkpoint_path(ctx.work_dir, epoch))
        net = prepare_for_sampling(ctx, model)
        result = generate(ctx, net, cfg.diffusion, cfg.samples, record_every=cfg.gif_every, seed_offset=epoch)
        nrow = min(10, cfg.samples)
        png, gif = f"samples_epoch{epoch:02d}.png", f"sampling_epoch{epoch:02d}.gif"
        figures.save_grid(ctx.out.path(png), result.x0, nrow=nrow)
        figures.save_gif(ctx.out.path(gif), result.frames, nrow=nrow)
        group = f"Epoch {epoch}"
        ctx.out.add_figure(png, f"Samples after epoch {epoch}", group=group,
                           alt=f"Grid of digits sampled by the time-conditioned model after epoch {epoch}")
        ctx.out.add_figure(gif, f"Sampling after epoch {epoch}", group=group, kind="gif",
                           alt=f"Animation of the denoising trajectory after epoch {epoch}")
        if epoch == cfg.train.checkpoint_epochs[-1]:              # the final model's trajectory, as a still
            shown = min(4, cfg.samples)
            strip = f"trajectory_epoch{epoch:02d}.png"
            figures.save_trajectory_strip(ctx.out.path(strip), result.frames, result.frame_steps,
                                          [f"sample {i + 1}" for i in range(shown)])
            ctx.out.add_figure(strip, f"The trajectory after epoch {epoch}, as a still", group=group,
                               alt="A few samples at evenly spaced steps of sampling, from noise to digits")


SECTION = Section(
    name="time-conditioned", title="A time-conditioned DDPM", part="part2",
    summary="Trains the time-conditioned UNet (D = 64, 20 epochs) to predict noise and samples digits from scratch.",
    profiles={"full": DDPMConfig(), "quick": quick_ddpm("time")}, run=run)
