"""Closing the FID gap: a better class-conditioned recipe, judged against the targets.

The reference class-conditioned model at gamma = 5 is far from the FID target (3 x the floor): strong
guidance trades diversity for class accuracy. This section trains the recipe that the search of earlier
runs chose (their manifests are in docs/results/archive/ and the page shows them as history): the same
UNet with GroupNorm, an EMA of the weights (decay 0.999) and x0 prediction, for 80 reference epochs. It
samples it on a small grid (plain conditional sampling from N(0, I), the model's own quality; whole-
trajectory guidance; guidance only in an interval of t, Kynkaanniemi et al. 2024; a class-matched start
with x0_hat clipped to [0, 1]) and draws the headline setting again from fresh noise, twice, with
10,000 digits each: the two draws show how much the starting noise alone moves the FID. Every point is
judged like the evaluation judges the reference (same classifier, test statistics and starting noise);
the page sets the reference's numbers beside these from the evaluation's results.

The sampling network compiles ahead, in a side process beside the training. On several GPUs the
sample sets are spread over them (one process per GPU, results gathered).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from experiments import figures
from experiments.core import checkpoints
from experiments.core.compiling import compile_ahead
from experiments.core.config import DiffusionConfig, UNetConfig, _require
from experiments.core.ddpm import DDPMConfig, class_moments, diffusion_schedule, prepare_for_sampling, quick_ddpm
from experiments.core.diffusion.sampling import ddpm_step_fn
from experiments.core.guidance import Guidance
from experiments.core.judging import SEED_BASE, Judged, floor_fids, judge, judged, sample_set, warm_up
from experiments.core.metrics import memorisation, nearest_distances
from experiments.core.models import unet as unet_model
from experiments.core.parallel import spread
from experiments.core.section import Context, Section
from experiments.core.variants import Variant, make_trainer, switch

STARTS = {"noise": "N(0, I) start", "matched": "class-matched start"}
HEADLINE_SEED_BASE = 70_000     # fresh starting noise for the headline (the grid uses the evaluation's) ...
HEADLINE_SEED_STRIDE = 1_000    # ... draw k starts at HEADLINE_SEED_BASE + k * stride (one seed per batch)


@dataclass(frozen=True)
class Sampler:
    """How a set of digits is drawn: the guidance, where x_T comes from, and whether x0_hat is clipped."""

    guidance: Guidance = field(default_factory=lambda: Guidance(1.0))
    start: str = "noise"            # noise: N(0, I), the reference sampler | matched: the asked class's moment-matched x_T
    clip_x0: bool = False           # clamp each step's x0_hat to [0, 1], the range of every digit

    def validate(self) -> None:
        self.guidance.validate()
        _require(self.start in STARTS, f"sampler start must be one of {', '.join(STARTS)}, got {self.start!r}")

    @property
    def name(self) -> str:
        """'guidance_1_5_0_80_matched_clip': metric and file names."""
        text = f"guidance_{self.guidance}".replace(".", "_").replace("@", "_").replace("-", "_")
        return text + ("" if self.start == "noise" else f"_{self.start}") + ("_clip" if self.clip_x0 else "")

    def describe(self) -> str:
        """'γ = 1.5 for t in [0, 80], class-matched start, x0 clipped'."""
        return ", ".join([self.guidance.describe(), *self._extras("x0 clipped")])

    def label(self) -> str:
        """'γ = 1.5 for t ≤ 80' / 'class-matched start' / 'x̂₀ clipped', one line each: a figure's row
        label (`describe` is what tables and metrics record, and the pages read back)."""
        g = self.guidance
        head = f"γ = {g.scale:g}"
        if g.interval is not None:
            lo, hi = g.interval
            head += f" for t ≤ {hi}" if lo == 0 else f" for {lo} ≤ t ≤ {hi}"
        return "\n".join([head, *self._extras("x̂₀ clipped")])

    def _extras(self, clipped: str) -> list[str]:
        return ([] if self.start == "noise" else [STARTS[self.start]]) + ([clipped] if self.clip_x0 else [])


def _recipe(base: DDPMConfig, epochs: int, ema_decay: float) -> Variant:
    return Variant("group_norm_ema_x0", f"GroupNorm + EMA {ema_decay:g}, {epochs} epochs, predicting x0",
                   switch(base, unet={"norm": "group"}, train={"epochs": epochs, "ema_decay": ema_decay,
                                                                "checkpoint_epochs": ()},
                          diffusion={"predict": "x0"}))


UNGUIDED = Sampler(Guidance(1.0))       # plain conditional sampling from N(0, I): the model's own quality


@dataclass(frozen=True)
class BetterRecipeConfig:
    # The search of earlier runs (archived): GroupNorm + EMA for 20-160 epochs with decays 0.999-0.9999 and
    # D = 128 (80 epochs at 0.999 gave the lowest FID), predicting x0 (lower again), dropout 0.1 / 0.2 (no gain).
    recipe: Variant = field(default_factory=lambda: _recipe(
        DDPMConfig(unet=UNetConfig(hidden=64, conditioning="class")), epochs=80, ema_decay=0.999))
    grid: tuple[Sampler, ...] = (
        UNGUIDED, Sampler(Guidance(2.0)), Sampler(Guidance(1.5, (0, 80))),
        Sampler(Guidance(1.0), "matched", True))
    # Light guidance of the last steps only, from N(0, I). The headline of earlier runs added the class-
    # matched start and clipping; in all seven runs that also drew this setting on the grid, the grid's
    # 5,000 digits scored a lower FID than that headline's 10,000 (archived in docs/results/archive/).
    headline: Sampler = Sampler(Guidance(1.5, (0, 80)))
    samples: int = 5_000                 # digits per point of the grid
    headline_samples: int = 10_000       # digits behind the headline FID (as the evaluation's) ...
    headline_draws: int = 2              # ... in this many independent draws; the headline is their mean
    batch: int = 2_500                   # digits per sampler call (as the evaluation's: the same starting noise)
    test_images: int = 0                 # test digits behind the reference statistics (0 = all)
    target_accuracy: float = 0.99
    target_fid_ratio: float = 3.0
    shown: int = 10                      # digits per row (one of each class)

    def validate(self) -> None:
        self.recipe.validate()
        _require(self.recipe.config.unet.conditioning == "class", "the recipe must stay class-conditioned")
        _require(UNGUIDED in self.grid, "the grid must hold plain conditional sampling from N(0, I) (guidance 1)")
        T = self.recipe.config.diffusion.T
        for sampler in (*self.grid, self.headline):
            sampler.validate()
            interval = sampler.guidance.interval
            _require(interval is None or interval[1] < T, f"guidance {sampler.guidance}: the interval must end "
                     f"below T = {T}")
        _require(len({s.name for s in self.grid}) == len(self.grid), "grid settings must be distinct")
        _require(20 <= self.samples <= self.headline_samples, "need 20 <= samples <= headline_samples")
        _require(1 <= self.headline_draws <= 10, "headline_draws must be in 1..10")
        _require(self.headline_samples <= self.batch * HEADLINE_SEED_STRIDE,
                 "headline_samples / batch must stay below the seed stride between headline draws")
        _require(self.batch >= 1 and self.shown >= 1, "batch and shown must be >= 1")


# ---- sampling (runs in this process or, spread over GPUs, in one process per GPU) ----------------------
_NETS: dict[tuple[str, str], torch.nn.Module] = {}


def recipe_net(ctx: Context, recipe: Variant) -> torch.nn.Module:
    """The trained recipe (its EMA weights), ready to sample: built and compiled once per process."""
    key = (str(ctx.work_dir / recipe.name), str(ctx.device))
    if key not in _NETS:
        model = unet_model.UNet(recipe.config.unet)
        checkpoints.load_weights(model, checkpoints.checkpoint_path(ctx.work_dir / recipe.name,
                                                                    recipe.config.train.epochs))
        _NETS[key] = prepare_for_sampling(ctx, model)
    return _NETS[key]


def draw_set(ctx: Context, recipe: Variant, sampler: Sampler, n: int, batch: int, seed_base: int,
             moments: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """n class-conditioned digits (classes 0..9 in turn) with `sampler`, on the CPU, not clipped."""
    dcfg = recipe.config.diffusion
    step = ddpm_step_fn(diffusion_schedule(dcfg, ctx.device), clip_x0=sampler.clip_x0, compiled=ctx.compiled)
    matched = tuple(m.to(ctx.device) for m in moments) if sampler.start == "matched" else None
    images = sample_set(ctx, recipe_net(ctx, recipe), dcfg, n, batch, guidance=sampler.guidance, step=step,
                        class_moments=matched, seed_base=seed_base)
    return images.cpu()


def warm_samplers(ctx: Context, recipe: Variant, samplers: tuple[Sampler, ...], batch: int) -> None:
    """(A side process) the recipe's sampling network and step updates compiled for the sampling batch,
    on untrained weights."""
    net, dcfg = prepare_for_sampling(ctx, unet_model.UNet(recipe.config.unet)), recipe.config.diffusion
    for clip_x0 in sorted({sampler.clip_x0 for sampler in samplers}):
        warm_up(ctx, net, dcfg, batch, guided=True, step=ddpm_step_fn(diffusion_schedule(dcfg, ctx.device),
                                                                       clip_x0=clip_x0, compiled=ctx.compiled))


def run(ctx: Context) -> None:
    cfg: BetterRecipeConfig = ctx.cfg
    recipe = cfg.recipe
    ahead = compile_ahead(ctx, warm_samplers, recipe, (*cfg.grid, cfg.headline), cfg.batch)
    # train first: the classifier, the one dependency, is needed only to judge (a writeup may start this early)
    result = make_trainer(ctx, recipe, class_conditioned=True).fit(resume=ctx.resume)
    ahead.wait()
    ev = judge(ctx, cfg.test_images)
    train_split = ctx.train_split(recipe.config.data.train_images)
    train = train_split.images
    # The floor with this run's classifier and test digits: each FID is divided by the floor of the run
    # that measured it, so the ratios hold even where the classifier weights are not the evaluation's.
    floors = floor_fids(ev, train, {min(n, len(train)) for n in (cfg.samples, cfg.headline_samples)})
    floor_at = lambda n: floors[min(n, len(train))]                      # noqa: E731
    moments = tuple(m.cpu() for m in class_moments(train, train_split.labels))    # for the class-matched start

    jobs = [(recipe, sampler, cfg.samples, cfg.batch, SEED_BASE, moments) for sampler in cfg.grid]
    jobs += [(recipe, cfg.headline, cfg.headline_samples, cfg.batch, HEADLINE_SEED_BASE + k * HEADLINE_SEED_STRIDE,
              moments) for k in range(cfg.headline_draws)]
    sets = spread(ctx, draw_set, jobs, cost=[job[2] for job in jobs])
    points = {s: judged(ctx, ev, images, True, 0.0) for s, images in zip(cfg.grid, sets)}
    draws = [judged(ctx, ev, images, True, 0.0) for images in sets[len(cfg.grid):]]

    record_floor(ctx, floor_at(cfg.headline_samples))
    record_training(ctx, recipe, result)
    record_grid(ctx, cfg, ev, points, floor_at(cfg.samples))
    record_headline(ctx, cfg, ev, draws, floor_at(cfg.headline_samples), train)


def record_floor(ctx: Context, floor: float) -> None:
    ctx.out.add_metric("fid_floor", floor, "FID floor with this run's classifier (training vs test digits)", ".3f")


def record_training(ctx: Context, recipe: Variant, result) -> None:
    spe = recipe.config.train.steps_per_epoch
    loss = sum(result.losses[-spe:]) / spe
    ctx.out.add_metric("recipe", recipe.label, "The recipe", "s")
    ctx.out.add_metric("final_loss", loss, "Mean training loss over the last epoch", ".5f")
    ctx.out.add_metric("steps", result.steps, "Optimizer steps", ",d")
    ctx.out.add_metric("train_wall_s", result.wall_s, "Training wall time (s)", ".1f")
    ctx.out.add_metric("train_img_per_s", result.images_per_s, "Training throughput (images/s)", ",.0f")
    ctx.out.add_table("training", "The trained model", {"variant": "recipe", "epochs": "epochs",
                      "optimizer_steps": "optimizer steps", "final_loss": "final loss",
                      "training_time_s": "training time (s)"},
                      [[recipe.label, recipe.config.train.epochs, result.steps, round(loss, 5), round(result.wall_s, 1)]])


def record_grid(ctx: Context, cfg: BetterRecipeConfig, ev, points: dict[Sampler, Judged], floor: float) -> None:
    """FID and accuracy for every grid setting; the whole-trajectory ones against the guidance scale."""
    out, n = ctx.out, cfg.samples
    rows = []
    for sampler, judged_set in points.items():
        fid, acc = judged_set.fid(ev), judged_set.accuracy()
        rows.append([cfg.recipe.label, sampler.guidance.describe(), STARTS[sampler.start] +
                     (", x0 clipped" if sampler.clip_x0 else ""), round(fid, 3), round(fid / floor, 2), f"{100 * acc:.2f}%"])
        out.add_metric(f"fid_{sampler.name}", fid, f"FID, {sampler.describe()} ({n:,} digits)", ".2f")
        out.add_metric(f"accuracy_{sampler.name}", acc, f"Class accuracy, {sampler.describe()}", ".2%")
    out.add_metric("fid_unguided", points[UNGUIDED].fid(ev), f"FID, {UNGUIDED.describe()}: the model's own quality "
                   f"({n:,} digits)", ".3f")
    out.add_table("grid", "Guidance × sampler", ["model", "guidance", "sampler", "FID", "FID / floor", "class accuracy"],
                  rows)
    whole = sorted((s.guidance.scale, judged_set.fid(ev)) for s, judged_set in points.items()
                   if s.guidance.interval is None and s.start == "noise" and not s.clip_x0)
    if len(whole) >= 2:
        figures.save_line_plot(out.path("fid_vs_gamma.png"), [g for g, _ in whole],
                               {cfg.recipe.label: [f for _, f in whole]}, "guidance scale γ (whole trajectory)",
                               "classifier-FID", "Guidance trade-off of the better recipe",
                               hline=(cfg.target_fid_ratio * floor, f"{cfg.target_fid_ratio:g} × floor"))
        out.add_figure("fid_vs_gamma.png", "FID against guidance",
                       alt="Line plot of FID against guidance scale for the better recipe", kind="plot")
    figures.save_labelled_grid(out.path("samples.png"), [j.images[:cfg.shown] for j in points.values()],
                               [s.label() for s in points],
                               [str(d) for d in range(cfg.shown)])
    out.add_figure("samples.png", "Digits for every guidance setting and sampler",
                   alt="One sample per digit for each guidance setting and sampler of the better recipe")


def record_headline(ctx: Context, cfg: BetterRecipeConfig, ev, draws: list[Judged], floor: float, train) -> None:
    """The headline setting against the targets (the mean of its fresh draws) and its memorisation."""
    out, recipe = ctx.out, cfg.recipe
    n = len(draws[0].images)
    setting = cfg.headline.describe()
    fids = [judged_set.fid(ev) for judged_set in draws]
    fid, acc = sum(fids) / len(fids), sum(judged_set.accuracy() for judged_set in draws) / len(draws)
    images = torch.cat([judged_set.images for judged_set in draws])
    near = nearest_distances(images, train)
    near_test = nearest_distances(ctx.test_split(cfg.test_images).images, train)
    ratio, _, close = memorisation(near, near_test)
    out.add_metric("headline_variant", recipe.label, "Headline model", "s")
    out.add_metric("headline_setting", setting, "Headline setting", "s")
    out.add_metric("fid_headline", fid, f"FID, {recipe.label}, {setting} (mean of {len(draws)} draws of {n:,} fresh "
                   "digits)", ".3f")
    for k, value in enumerate(fids, 1):
        out.add_metric(f"fid_headline_draw{k}", value, f"Headline FID, draw {k} ({n:,} digits)", ".3f")
    out.add_metric("fid_headline_spread", max(fids) - min(fids),
                   f"Spread of the headline FID over its {len(draws)} draws (starting noise alone)", ".3f")
    out.add_metric("accuracy_headline", acc, "Class accuracy of the headline recipe", ".2%")
    out.add_metric("fid_ratio_headline", fid / floor, "Headline FID / floor", ".2f")
    out.add_metric("memorisation_ratio_headline", ratio, "Sample / test median nearest-training distance", ".2f")
    out.add_metric("samples_closer_than_test_p1_headline", close,
                   "Headline samples nearer a training digit than 99% of test digits are", ".2%")
    limit = cfg.target_fid_ratio * floor
    met = fid <= limit and acc >= cfg.target_accuracy
    out.add_table("headline", "Against the targets", ["recipe", "FID", "FID / floor", "class accuracy",
                  f"FID ≤ {cfg.target_fid_ratio:g} × floor and accuracy ≥ {cfg.target_accuracy:.0%}"],
                  [[f"{recipe.label}, {setting}", round(fid, 3), round(fid / floor, 2), f"{100 * acc:.2f}%",
                    "pass" if met else "fail"]])
    # the headline digits as a grid: classes 0-9 in turn, so ten rows of one digit per column
    shown = min(100, len(draws[0].images) // 10 * 10)
    figures.save_grid(out.path("headline_samples.png"), draws[0].images[:shown], nrow=10)
    out.add_figure("headline_samples.png", "The better recipe's digits", alt="Digits drawn by the better recipe, "
                   "one column per asked digit")


FULL = BetterRecipeConfig()
_quick = quick_ddpm("class")
_quick_base = dataclasses.replace(_quick, diffusion=DiffusionConfig(T=50),
                                  train=dataclasses.replace(_quick.train, checkpoint_epochs=()))
QUICK = BetterRecipeConfig(
    recipe=Variant("group_norm_ema", "GroupNorm + EMA 0.9, 3 epochs", switch(
        _quick_base, unet={"norm": "group"}, train={"epochs": 3, "ema_decay": 0.9})),
    grid=(UNGUIDED, Sampler(Guidance(3.0)), Sampler(Guidance(3.0, (5, 30)), "matched")),
    headline=Sampler(Guidance(3.0, (5, 30)), "noise", True),
    samples=40, headline_samples=60, headline_draws=2, batch=40, test_images=256, shown=4)

SECTION = Section(
    name="better-recipe", title="Closing the FID gap: a better class-conditioned recipe", part="evaluation",
    summary="Trains the class-conditioned model with a better recipe (GroupNorm, EMA, predicting x₀, 80 "
            "epochs) and guides only the last steps: FID and class accuracy against our goals.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=("classifier",), reads_dependencies_late=True,
    compiles=True)      # 4.8 M training images of a GroupNorm UNet: 35,000 images/s compiled, 22,000 eager (H100)

__all__ = ["SECTION"]
