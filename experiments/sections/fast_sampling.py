"""Fast sampling: deterministic DDIM (eta = 0) with few steps against the full T-step DDPM sampler.

Same trained time-conditioned UNet, same starting noise, same judge: classifier-FID and wall time
per sampler. Strided ancestral DDPM at the same step counts shows what DDIM's determinism buys.
Each sampler runs from two starts: pure noise N(0, I) (the reference's) and the moment-matched x_T of
`matched_start`, because the T = 300 linear schedule keeps 22% of the signal at t = T - 1 and a
deterministic sampler cannot make up for a start that lacks it. The reference, all T DDPM steps from
pure noise, is the evaluation's headline set of the same weights: every set here starts from its noise
(same digits per set, same batches, same seeds), and its FID and time are read, not sampled again.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments.core import checkpoints
from experiments import figures
from experiments.core.config import DiffusionConfig, _require
from experiments.core.section import Context, Section
from experiments.core.diffusion.sampling import ddim_step_fn, ddpm_step_fn
from experiments.errors import UserError
from experiments.core.judging import judge, sample_set, spaced_timesteps, timed, warm_up
from experiments.core.ddpm import data_moments, diffusion_schedule, prepare_for_sampling
from experiments.core.models import unet as unet_model

STARTS = {"noise": "pure noise", "matched": "moment-matched"}      # start -> its name in tables


@dataclass(frozen=True)
class FastSamplingConfig:
    ddim_steps: tuple[int, ...] = (10, 20, 50, 100)   # DDIM step counts (each <= T of the model)
    eta: float = 0.0                  # 0 = deterministic DDIM
    strided_ddpm: bool = True         # also the ancestral (noisy) strided sampler at the same step counts
    starts: tuple[str, ...] = ("noise", "matched")   # x_T: "noise" = N(0, I) (spec), "matched" = data moments
    target_ratio: float = 1.10        # target: DDIM FID <= ratio x the T-step DDPM FID ...
    target_steps: int = 50            # ... with at most this many steps
    shown: int = 10                   # digits per row of the comparison figure

    def validate(self) -> None:
        _require(len(self.ddim_steps) > 0 and all(n >= 1 for n in self.ddim_steps), "ddim_steps must be >= 1")
        _require(self.eta >= 0, "eta must be >= 0")
        _require(len(self.starts) > 0 and all(s in STARTS for s in self.starts) and self.starts[0] == "noise",
                 f"starts must begin with 'noise' and hold only {', '.join(STARTS)}")
        _require(self.shown >= 1, "shown must be >= 1")
        _require(self.target_ratio >= 1 and self.target_steps >= 1, "target_ratio >= 1 and target_steps >= 1")


def reference_set(ctx: Context, T: int) -> tuple[int, int, int, float, float]:
    """(digits, batch, test digits, FID, wall seconds) of the evaluation's time-conditioned set: all T DDPM
    steps from N(0, I), judged against that many test digits."""
    evaluation = ctx.dependency("evaluation")
    config, metrics = evaluation["config"], evaluation["metrics"]
    if config.get("stride") != 1:
        raise UserError(f"fast-sampling compares with the evaluation's {T}-step DDPM set, but the evaluation sampled "
                        f"with stride {config.get('stride')}: rerun it with stride=1")
    value = lambda key: metrics[key]["value"]                               # noqa: E731
    return (value("generated_samples"), config["batch"], config["test_images"], value("fid_time_conditioned"),
            value("wall_time_conditioned_s"))


def run(ctx: Context) -> None:
    cfg: FastSamplingConfig = ctx.cfg
    model, spec = checkpoints.load(ctx, "time-conditioned", unet_model.from_spec)
    dcfg = DiffusionConfig(**spec["diffusion"])
    too_many = [n for n in cfg.ddim_steps if n > dcfg.T]
    if too_many:
        raise UserError(f"fast-sampling ddim_steps {too_many} exceed the model's T = {dcfg.T}")
    samples, batch, test_images, reference_fid, reference_wall = reference_set(ctx, dcfg.T)
    net = prepare_for_sampling(ctx, model)
    sched = diffusion_schedule(dcfg, ctx.device)
    ev = judge(ctx, test_images)                      # judged as the evaluation judges: comparable FIDs
    train = ctx.train_split(ctx.dependency("time-conditioned")["config"]["data"]["train_images"]).images
    moments = {"noise": None, "matched": tuple(m.to(ctx.device) for m in data_moments(train))}
    data_ink = float(train.mean())
    steps = sorted(set(cfg.ddim_steps))
    samplers = {"DDIM": ddim_step_fn(sched, cfg.eta, compiled=ctx.compiled)}
    if cfg.strided_ddpm:
        samplers["strided DDPM"] = ddpm_step_fn(sched, compiled=ctx.compiled)
    for step in (None, *samplers.values()):    # each step update compiles on first use: not in a timing
        warm_up(ctx, net, dcfg, batch, step=step)

    rows, curves, walls, shown = [], {}, {}, {}
    ddpm: dict[str, tuple[float, float]] = {"noise": (reference_fid, reference_wall)}   # start -> (FID, wall), T steps

    def add_row(name: str, start: str, n: int, fid: float, images: torch.Tensor, wall: float, source: str = "") -> None:
        rows.append([name + source, STARTS[start], n, round(fid, 3), round(fid / reference_fid, 3),
                     round(float(images.clamp(0, 1).mean()), 4), round(wall, 2), round(samples / wall)])
        shown[(name, start, n)] = images[:cfg.shown]

    def measure(name: str, start: str, n: int, timesteps, step) -> tuple[float, float]:
        images, wall = timed(lambda: sample_set(ctx, net, dcfg, samples, batch, timesteps=timesteps, step=step,
                                                start_moments=moments[start]), ctx.device)
        fid = ev.fid(images)
        add_row(name, start, n, fid, images, wall)
        return fid, wall

    # the reference row: its numbers are the evaluation's; its first batch is drawn again for the figure only
    first = sample_set(ctx, net, dcfg, min(batch, samples), batch)
    add_row("DDPM", "noise", dcfg.T, reference_fid, first, reference_wall, " (the evaluation's set)")
    for start in cfg.starts[1:]:
        ddpm[start] = measure("DDPM", start, dcfg.T, None, None)
    for start in cfg.starts:
        for name, step in samplers.items():
            if name != "DDIM" and start != "noise":
                continue                   # strided DDPM is the noisy baseline: from the reference's start only
            label = f"{name} ({STARTS[start]})"
            curves[label], walls[label] = [], []
            for n in steps:
                fid, wall = measure(name, start, n, spaced_timesteps(dcfg.T, n), step)
                curves[label].append(fid)
                walls[label].append(wall)
                if name == "DDIM":
                    suffix = "" if start == "noise" else f"_{start}"
                    ctx.out.add_metric(f"fid_ddim_{n}{suffix}", fid, f"FID, DDIM with {n} steps from "
                                       f"{STARTS[start]}", ".2f")
                    ctx.out.add_metric(f"wall_ddim_{n}{suffix}_s", wall, f"Sampling time, DDIM with {n} steps "
                                       f"from {STARTS[start]} (s)", ".2f")
    ctx.out.add_metric("T", dcfg.T, "Diffusion steps T of the model", "d")
    ctx.out.add_metric("samples", samples, "Digits per sampler (as the evaluation's set)", ",d")
    for start, (fid, wall) in ddpm.items():
        if start == "noise":
            continue                       # the evaluation's numbers: on its page, not repeated here
        ctx.out.add_metric(f"fid_ddpm_{start}", fid, f"FID, DDPM with all {dcfg.T} steps from {STARTS[start]}", ".2f")
        ctx.out.add_metric(f"wall_ddpm_{start}_s", wall, f"Sampling time, DDPM with all {dcfg.T} steps from "
                           f"{STARTS[start]} (s)", ".2f")
    abar_last = float(sched.abar(torch.tensor([dcfg.T - 1], device=ctx.device)))
    ctx.out.add_metric("abar_last", abar_last, "abar at t = T - 1 (share of signal variance left in x_T)", ".4f")
    ctx.out.add_metric("data_ink", data_ink, "Mean pixel of the training digits", ".4f")
    record_verdicts(ctx, cfg, steps, curves, walls, ddpm, dcfg.T)

    ctx.out.add_table("samplers", "Samplers compared",
                      {"sampler": "sampler", "start_x_t": "starts from", "steps": "steps", "fid": "FID",
                       f"fid_ddpm_{dcfg.T}_from_noise": f"FID / DDPM-{dcfg.T} from noise", "mean_pixel": "mean pixel",
                       "wall_time_s": "wall time (s)", "digits_s": "digits/s"}, rows)
    ddim_start = "matched" if "matched" in cfg.starts else "noise"
    figures.save_line_plot(ctx.out.path("fid_vs_steps.png"), steps, curves, "sampler steps", "classifier-FID",
                           "FID against the number of sampler steps", log_x=True,
                           hline=(ddpm["noise"][0], f"DDPM, {dcfg.T} steps, from noise"),
                           second={"ylabel": "wall time (s)",
                                   "series": {"DDIM wall time": walls[f"DDIM ({STARTS[ddim_start]})"]}})
    ctx.out.add_figure("fid_vs_steps.png", "FID and time against steps",
                       alt="Line plot of FID against sampler steps with the DDPM reference line", kind="plot")
    keys = [("DDPM", s, dcfg.T) for s in cfg.starts] + [("DDIM", s, n) for s in cfg.starts for n in steps]
    figures.save_labelled_grid(ctx.out.path("samplers.png"), [shown[k] for k in keys],
                               [f"{name} {n}\n{'matched' if s == 'matched' else 'noise'}" for name, s, n in keys])
    ctx.out.add_figure("samplers.png", "Same noise, different samplers",
                       alt="Digits from the DDPM sampler and from DDIM with several step counts and both starts")


def record_verdicts(ctx: Context, cfg: FastSamplingConfig, steps: list[int], curves: dict[str, list[float]],
                    walls: dict[str, list[float]], ddpm: dict[str, tuple[float, float]], T: int) -> None:
    """The target (DDIM within 10% of the T-step DDPM FID at <= 50 steps) against the reference sampler
    (DDPM from pure noise) and, for the matched start, against DDPM from the same start."""
    pct = round(100 * (cfg.target_ratio - 1))
    ddim_start = "matched" if "matched" in cfg.starts else "noise"
    fids = curves[f"DDIM ({STARTS[ddim_start]})"]

    def fewest_within(reference: float) -> int | None:
        within = [n for n, fid in zip(steps, fids) if n <= cfg.target_steps and fid <= cfg.target_ratio * reference]
        return min(within) if within else None

    comparisons = [("target_met", "noise", f"the {T}-step DDPM sampler from pure noise")]
    if ddim_start == "matched":
        comparisons.append(("target_met_same_start", "matched", f"{T}-step DDPM from the same moment-matched start"))
    for key, start, against in comparisons:
        ref_fid, ref_wall = ddpm[start]
        fewest = fewest_within(ref_fid)
        ctx.out.add_metric(key, fewest is not None, f"Target: DDIM ({STARTS[ddim_start]} start) within {pct}% of "
                           f"{against} at <= {cfg.target_steps} steps")
        ctx.out.add_metric(f"fewest_ddim_steps_{key}", fewest, f"Fewest DDIM steps within {pct}% of {against}", "d")


FULL = FastSamplingConfig()
QUICK = FastSamplingConfig(ddim_steps=(5, 10, 50), shown=4)

SECTION = Section(
    name="fast-sampling", title="Fast sampling with DDIM", part="beyond",
    summary="Deterministic DDIM with 10-100 steps against the 300-step DDPM sampler, from pure noise and from "
    "a moment-matched start: FID, ink and wall time.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=("time-conditioned", "classifier", "evaluation"),
    compiles=True)      # its sampling times are compared with the evaluation's set, which is compiled
