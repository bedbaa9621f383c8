"""Fast sampling: deterministic DDIM (eta = 0) with few steps against the full T-step DDPM sampler.

Same trained time-conditioned UNet, same starting noise, same judge: classifier-FID and wall time
per sampler. Strided ancestral DDPM at the same step counts shows what DDIM's determinism buys.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.config import DiffusionConfig, _require
from experiments.context import Context
from experiments.diffusion.sampling import ddim_step_fn, ddpm_step_fn
from experiments.errors import UserError
from experiments.registry import Section, register
from experiments.sections.beyond import judge, sample_ours, spaced_timesteps, timed, warm_up
from experiments.sections.common import diffusion_schedule, prepare_for_sampling


@dataclass(frozen=True)
class FastSamplingConfig:
    ddim_steps: tuple[int, ...] = (10, 20, 50, 100)   # DDIM step counts (each <= T of the model)
    eta: float = 0.0                  # 0 = deterministic DDIM
    strided_ddpm: bool = True         # also the ancestral (noisy) strided sampler at the same step counts
    samples: int = 10_000             # digits per sampler behind each FID
    batch: int = 2_000                # digits per sampler call
    test_images: int = 0              # test digits behind the reference statistics (0 = all)
    target_ratio: float = 1.10        # target: DDIM FID <= ratio x the T-step DDPM FID ...
    target_steps: int = 50            # ... with at most this many steps
    shown: int = 10                   # digits per row of the comparison figure

    def validate(self) -> None:
        _require(len(self.ddim_steps) > 0 and all(n >= 1 for n in self.ddim_steps), "ddim_steps must be >= 1")
        _require(self.eta >= 0, "eta must be >= 0")
        _require(self.samples >= 20, "samples must be >= 20 (FID needs a covariance)")
        _require(self.batch >= 1 and self.shown >= 1, "batch and shown must be >= 1")
        _require(self.target_ratio >= 1 and self.target_steps >= 1, "target_ratio >= 1 and target_steps >= 1")


def run(ctx: Context) -> None:
    cfg: FastSamplingConfig = ctx.cfg
    model, spec = ctx.model("time-conditioned")
    dcfg = DiffusionConfig(**spec["diffusion"])
    too_many = [n for n in cfg.ddim_steps if n > dcfg.T]
    if too_many:
        raise UserError(f"fast-sampling ddim_steps {too_many} exceed the model's T = {dcfg.T}")
    net = prepare_for_sampling(ctx, model)
    sched = diffusion_schedule(dcfg, ctx.device)
    ev = judge(ctx, cfg.test_images)
    warm_up(ctx, net, dcfg)

    def draw(timesteps, step):
        images, wall = timed(lambda: sample_ours(ctx, net, dcfg, cfg.samples, timesteps, step, cfg.batch), ctx.device)
        return images, wall, ev.fid(images)

    ddpm_x, ddpm_s, ddpm_fid = draw(None, None)
    steps = sorted(set(cfg.ddim_steps))
    samplers = {"DDIM": ddim_step_fn(sched, cfg.eta)}
    if cfg.strided_ddpm:
        samplers["strided DDPM"] = ddpm_step_fn(sched)
    rows, curves, walls, shown = [], {name: [] for name in samplers}, {name: [] for name in samplers}, {}
    rows.append([f"DDPM (all {dcfg.T} steps)", dcfg.T, round(ddpm_fid, 3), 1.0, round(ddpm_s, 2),
                 round(cfg.samples / ddpm_s)])
    for name, step in samplers.items():
        for n in steps:
            x, wall, fid = draw(spaced_timesteps(dcfg.T, n), step)
            curves[name].append(fid)
            walls[name].append(wall)
            rows.append([name, n, round(fid, 3), round(fid / ddpm_fid, 3), round(wall, 2), round(cfg.samples / wall)])
            if name == "DDIM":
                shown[n] = x[:cfg.shown]
                ctx.out.add_metric(f"fid_ddim_{n}", fid, f"FID, DDIM with {n} steps", ".2f")
                ctx.out.add_metric(f"wall_ddim_{n}_s", wall, f"Sampling time, DDIM with {n} steps (s)", ".2f")
    ctx.out.add_metric("T", dcfg.T, "Diffusion steps T of the model", "d")
    ctx.out.add_metric("fid_ddpm", ddpm_fid, f"FID, DDPM with all {dcfg.T} steps", ".2f")
    ctx.out.add_metric("wall_ddpm_s", ddpm_s, f"Sampling time, DDPM with all {dcfg.T} steps (s)", ".2f")

    within = [n for n, fid in zip(steps, curves["DDIM"]) if fid <= cfg.target_ratio * ddpm_fid]
    fewest = min(within) if within else None
    met = fewest is not None and fewest <= cfg.target_steps
    pct = round(100 * (cfg.target_ratio - 1))
    ctx.out.add_metric("target_met", met, f"Target: DDIM within {pct}% of the DDPM FID at <= {cfg.target_steps} steps")
    ctx.out.add_metric("fewest_ddim_steps_within", fewest, f"Fewest DDIM steps within {pct}% of the DDPM FID", "d")
    if met:
        i = steps.index(fewest)
        verdict = (f"Target met: DDIM with {fewest} steps reaches FID {curves['DDIM'][i]:.2f} against "
                   f"{ddpm_fid:.2f} for the {dcfg.T}-step DDPM sampler (within {pct}%), "
                   f"{ddpm_s / walls['DDIM'][i]:.1f}x faster.")
    else:
        best = min(range(len(steps)), key=lambda j: curves["DDIM"][j])
        verdict = (f"Target not met: no DDIM run with <= {cfg.target_steps} steps came within {pct}% of the "
                   f"{dcfg.T}-step DDPM FID {ddpm_fid:.2f}; the best DDIM FID was {curves['DDIM'][best]:.2f} "
                   f"at {steps[best]} steps.")
    ctx.out.add_note(verdict)

    ctx.out.add_table("samplers", "Samplers compared", ["sampler", "steps", "FID", "FID / DDPM FID",
                      "wall time (s)", "digits/s"], rows,
                      caption=f"{cfg.samples:,} digits per sampler from the same starting noise, judged against "
                      f"the test split; the first row is the reference {dcfg.T}-step DDPM sampler.")
    figures.save_line_plot(ctx.out.path("fid_vs_steps.png"), steps, curves, "sampler steps", "classifier-FID",
                           "FID against the number of sampler steps", log_x=True,
                           hline=(ddpm_fid, f"DDPM, {dcfg.T} steps"),
                           second={"ylabel": "wall time (s)", "series": {"DDIM wall time": walls["DDIM"]}})
    ctx.out.add_figure("fid_vs_steps.png", "FID and time against steps",
                       f"Classifier-FID of DDIM (η = {cfg.eta:g}) and strided DDPM with few steps; the dashed line is "
                       f"the {dcfg.T}-step DDPM sampler, the dotted red line DDIM's wall time.",
                       alt="Line plot of FID against sampler steps with the DDPM reference line", kind="plot")
    grid_rows = [ddpm_x[:cfg.shown]] + [shown[n] for n in steps]
    labels = [f"DDPM {dcfg.T}"] + [f"DDIM {n}" for n in steps]
    figures.save_labelled_grid(ctx.out.path("samplers.png"), grid_rows, labels)
    ctx.out.add_figure("samplers.png", "Same noise, different samplers",
                       "Each row starts from the same noise: the DDPM sampler adds fresh noise at every step, DDIM "
                       "adds none, so DDIM rows with different step counts tend to agree on the digit.",
                       alt="Digits from the DDPM sampler and from DDIM with several step counts")


FULL = FastSamplingConfig()
QUICK = FastSamplingConfig(ddim_steps=(5, 10, 50), samples=32, batch=32, test_images=256, shown=4)

SECTION = register(Section(
    name="fast-sampling", title="Fast sampling with DDIM", part="beyond",
    summary="Deterministic DDIM with 10-100 steps against the 300-step DDPM sampler: FID and wall time.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=("time-conditioned", "classifier")))
