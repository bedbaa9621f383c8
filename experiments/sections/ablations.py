"""Ablations of the time-conditioned model: each variant is one config switch, not a code fork.

A variant is a string of `key=value` assignments applied to the reference DDPMConfig with the same
`override` the CLI's `--set` uses, so a typo or an impossible value fails before any training.
Every variant is trained with the same budget and seed and judged by the same classifier.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from experiments import figures
from experiments.core.config import DiffusionConfig, _require
from experiments.core.section import Context, Section
from experiments.core.models.unet import count_parameters
from experiments.core.judging import judge, sample_ours
from experiments.core.ddpm import DDPMConfig, prepare_for_sampling, quick_ddpm
from experiments.core.variants import REFERENCE, make_trainer, short, slug, variant_config
from experiments.core.training import train_together
LABELS = {                                 # switch -> what it changes, in words
    "unet.residual=true": "residual connections in the conv blocks",
    "unet.norm=group": "GroupNorm instead of BatchNorm",
    "unet.final_kernel=1": "1x1 final conv instead of 3x3",
    "diffusion.t_per=batch": "one t per batch instead of per sample",
    "diffusion.predict=x0": "predict x0 instead of eps",
}


@dataclass(frozen=True)
class AblationConfig:
    base: DDPMConfig = field(default_factory=DDPMConfig)     # the reference configuration (time-conditioned)
    variants: tuple[str, ...] = (
        REFERENCE, "unet.residual=true", "unet.norm=group", "unet.final_kernel=1", "diffusion.t_per=batch",
        "diffusion.predict=x0", "train.ema_decay=0.999")       # space-separated key=value switches per variant
    samples: int = 10_000             # digits per variant behind each FID
    batch: int = 2_000                # digits per sampler call
    test_images: int = 0              # test digits behind the reference statistics (0 = all)
    shown: int = 10                   # digits per variant in the figure

    def validate(self) -> None:
        _require(len(self.variants) > 0 and REFERENCE in self.variants, f"variants must include {REFERENCE!r}")
        _require(len(set(self.variants)) == len(self.variants), "variants must be distinct")
        _require(self.samples >= 20, "samples must be >= 20 (FID needs a covariance)")
        _require(self.batch >= 1 and self.shown >= 1, "batch and shown must be >= 1")
        variant_configs(self)         # every switch must be a real, valid, effective change


def variant_configs(cfg: AblationConfig) -> list[tuple[str, DDPMConfig]]:
    """(variant, its full config) for each variant; a switch that changes nothing is an error."""
    return [(variant, variant_config(cfg.base, variant)) for variant in cfg.variants]


def describe(variant: str) -> str:
    if variant == REFERENCE:
        return "reference configuration ✓"
    if variant.startswith("train.ema_decay="):
        return f"EMA of the weights (decay {variant.split('=', 1)[1]})"
    return " + ".join(LABELS.get(part, part) for part in variant.split())


def run(ctx: Context) -> None:
    cfg: AblationConfig = ctx.cfg
    ev = judge(ctx, cfg.test_images)
    rows, grid, labels, fids = [], [], [], {}
    variants = variant_configs(cfg)
    together = ctx.cuda and len(variants) > 1
    if together:
        # Side by side, one CUDA stream each: at batch 128 one model leaves most of the GPU idle, so
        # this is the same work per variant in far less wall time (their random draws interleave).
        trained = train_together([make_trainer(ctx, v, vcfg) for v, vcfg in variants], resume=ctx.resume)
    else:  # one after another, each from the same RNG state: same noise and t draws for every variant
        trained = [make_trainer(ctx, v, vcfg).fit(resume=ctx.resume) for v, vcfg in variants]
    for (variant, vcfg), result in zip(variants, trained):
        model, losses, wall = result.final_model, result.losses, result.wall_s
        net = prepare_for_sampling(ctx, model)
        images = sample_ours(ctx, net, vcfg.diffusion, cfg.samples, batch=cfg.batch)
        fid = ev.fid(images)
        spe = vcfg.train.steps_per_epoch
        final_loss = sum(losses[-spe:]) / len(losses[-spe:])
        params = count_parameters(model)
        fids[variant] = fid
        rows.append([describe(variant), "—" if variant == REFERENCE else variant, round(final_loss, 5),
                     round(fid, 3), None, round(wall, 1), params])
        grid.append(images[:cfg.shown])
        labels.append(short(variant))
        name = slug(variant)
        ctx.out.add_metric(f"fid_{name}", fid, f"FID, {describe(variant)}", ".2f")
        ctx.out.add_metric(f"final_loss_{name}", final_loss, f"Final loss, {describe(variant)}", ".4f")
        ctx.out.add_metric(f"parameters_{name}", params, f"Parameters, {describe(variant)}", ",d")
    reference_fid = fids[REFERENCE]
    for row, variant in zip(rows, cfg.variants):
        row[4] = round(fids[variant] / reference_fid, 3) if reference_fid > 0 else None
    ctx.out.add_table("ablations", "What each design choice buys",
                      ["variant", "switch", "final loss", "FID", "FID / reference", "training time (s)", "parameters"],
                      rows)
    figures.save_labelled_grid(ctx.out.path("samples.png"), grid, labels)
    ctx.out.add_figure("samples.png", "Samples of each variant", alt="Generated digits of every ablation variant")


FULL = AblationConfig()
_quick = quick_ddpm("time")
QUICK = AblationConfig(
    base=dataclasses.replace(_quick, diffusion=DiffusionConfig(T=10), train=dataclasses.replace(
        _quick.train, epochs=1, checkpoint_epochs=(1,))),
    variants=(REFERENCE, "unet.residual=true", "unet.norm=group", "unet.final_kernel=1", "diffusion.t_per=batch",
              "diffusion.predict=x0", "train.ema_decay=0.9"),
    samples=32, batch=32, test_images=256, shown=4)

SECTION = Section(
    name="ablations", title="Ablations: what each design choice buys", part="beyond",
    summary="Retrains the time-conditioned model with one switch changed at a time and compares FID and cost.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=("classifier",))
