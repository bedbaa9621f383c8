"""Ablations of the time-conditioned model: each variant is one switch of the reference config.

Every variant is a typed `Variant` (a name, a label, its full config), trained with the same budget
and seed and judged by the same classifier from the same starting noise as the evaluation's sets.
The variants train uncompiled, side by side; their sampling networks are compiled, ahead, in a side
process beside the training. On several GPUs the variants' sample sets are spread over them (one
process per GPU, results gathered).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from experiments import figures
from experiments.core import checkpoints
from experiments.core.compiling import compile_ahead
from experiments.core.config import DiffusionConfig, _require
from experiments.core.section import Context, Section
from experiments.core.models.unet import UNet, count_parameters
from experiments.core.parallel import spread
from experiments.core.judging import judge, sample_set, warm_up
from experiments.core.ddpm import DDPMConfig, prepare_for_sampling, quick_ddpm
from experiments.core.variants import Variant, check_variants, describe_changes, make_trainer, switch
from experiments.core.training import train_together

REFERENCE = "reference"
REFERENCE_MARK = " ✓"       # marks the reference's row of the table; the figure's rows need no mark


def ablation_variants(base: DDPMConfig, ema_decay: float = 0.999) -> tuple[Variant, ...]:
    """The reference and one variant per design choice (names keep the metric keys of earlier runs)."""
    decay = f"{ema_decay:g}".replace(".", "_")
    return (
        Variant(REFERENCE, f"reference configuration{REFERENCE_MARK}", base),
        Variant("unet_residual_true", "residual connections in the conv blocks", switch(base, unet={"residual": True})),
        Variant("unet_norm_group", "GroupNorm instead of BatchNorm", switch(base, unet={"norm": "group"})),
        Variant("unet_final_kernel_1", "1×1 final conv instead of 3×3", switch(base, unet={"final_kernel": 1})),
        Variant("diffusion_t_per_batch", "one t per batch instead of per sample", switch(base, diffusion={"t_per": "batch"})),
        Variant("diffusion_predict_x0", "predicting x₀ instead of the noise ε", switch(base, diffusion={"predict": "x0"})),
        Variant(f"train_ema_decay_{decay}", f"EMA of the weights (decay {ema_decay:g})",
                switch(base, train={"ema_decay": ema_decay})),
    )


@dataclass(frozen=True)
class AblationConfig:
    base: DDPMConfig = field(default_factory=DDPMConfig)     # the reference configuration (time-conditioned)
    variants: tuple[Variant, ...] = field(default_factory=lambda: ablation_variants(DDPMConfig()))
    samples: int = 10_000             # digits per variant behind each FID
    batch: int = 2_500                # digits per sampler call (as the evaluation's: the same starting noise)
    test_images: int = 0              # test digits behind the reference statistics (0 = all)
    shown: int = 10                   # digits per variant in the figure

    def validate(self) -> None:
        check_variants(self.base, self.variants)
        _require(any(v.name == REFERENCE and v.config == self.base for v in self.variants),
                 f"variants must include {REFERENCE!r} with the base configuration")
        _require(self.samples >= 20, "samples must be >= 20 (FID needs a covariance)")
        _require(self.batch >= 1 and self.shown >= 1, "batch and shown must be >= 1")


def draw_variant(ctx: Context, variant: Variant, samples: int, batch: int) -> torch.Tensor:
    """A trained variant's digits (its final weights, read back from its folder), on the CPU: in this
    process or in one for a spare GPU (`spread`)."""
    model = UNet(variant.config.unet)
    checkpoints.load_weights(model, checkpoints.checkpoint_path(ctx.work_dir / variant.name,
                                                                variant.config.train.epochs))
    return sample_set(ctx, prepare_for_sampling(ctx, model), variant.config.diffusion, samples, batch).cpu()


def warm_samplers(ctx: Context, variants: tuple[Variant, ...], batch: int) -> None:
    """(A side process) every variant's sampling network compiled for the sampling batch, on untrained
    weights (variants of one architecture share the compiled code)."""
    for variant in variants:
        warm_up(ctx, prepare_for_sampling(ctx, UNet(variant.config.unet)), variant.config.diffusion, batch)


def run(ctx: Context) -> None:
    cfg: AblationConfig = ctx.cfg
    rows, grid, labels, fids = [], [], [], {}
    ahead = compile_ahead(ctx, warm_samplers, cfg.variants, cfg.batch)
    # Training uncompiled: seven short trainings would not win back their compiles (H100: about 35 s per
    # variant, 237 s in all, for 146 s of training at 57,500 images/s in lockstep; 48,500 uncompiled).
    eager = dataclasses.replace(ctx, compile=False)
    # train first: the classifier, the one dependency, is needed only to judge (a writeup may start this early)
    together = ctx.cuda and len(cfg.variants) > 1
    if together:
        # Side by side, one CUDA stream each: at batch 128 one model leaves most of the GPU idle, so
        # this is the same work per variant in far less wall time (their random draws interleave).
        trained = train_together([make_trainer(eager, v) for v in cfg.variants], resume=ctx.resume)
    else:  # one after another, each from the same RNG state: same noise and t draws for every variant
        trained = [make_trainer(eager, v).fit(resume=ctx.resume) for v in cfg.variants]
    ahead.wait()
    ev = judge(ctx, cfg.test_images)
    sets = spread(ctx, draw_variant, [(v, cfg.samples, cfg.batch) for v in cfg.variants])
    for variant, result, images in zip(cfg.variants, trained, sets):
        model, losses, wall = result.final_model, result.losses, result.wall_s
        fid = ev.fid(images)
        spe = variant.config.train.steps_per_epoch
        final_loss = sum(losses[-spe:]) / len(losses[-spe:])
        params = count_parameters(model)
        fids[variant.name] = fid
        rows.append([variant.label, describe_changes(cfg.base, variant.config), round(final_loss, 5),
                     round(fid, 3), None, round(wall, 1), params])
        grid.append(images[:cfg.shown])
        labels.append(variant.label.removesuffix(REFERENCE_MARK))     # the table's words, in the figure
        ctx.out.add_metric(f"fid_{variant.name}", fid, f"FID, {variant.label}", ".2f")
        ctx.out.add_metric(f"final_loss_{variant.name}", final_loss, f"Final loss, {variant.label}", ".4f")
        ctx.out.add_metric(f"parameters_{variant.name}", params, f"Parameters, {variant.label}", ",d")
    reference_fid = fids[REFERENCE]
    for row, variant in zip(rows, cfg.variants):
        row[4] = round(fids[variant.name] / reference_fid, 3) if reference_fid > 0 else None
    ctx.out.add_table("ablations", "What each design choice buys",
                      ["variant", "switch", "final loss", "FID", "FID / reference", "training time (s)", "parameters"],
                      rows)
    figures.save_labelled_grid(ctx.out.path("samples.png"), grid, labels)
    ctx.out.add_figure("samples.png", "Samples of each variant", alt="Generated digits of every ablation variant")


FULL = AblationConfig()
_quick = quick_ddpm("time")
_quick_base = dataclasses.replace(_quick, diffusion=DiffusionConfig(T=10), train=dataclasses.replace(
    _quick.train, epochs=1, checkpoint_epochs=(1,)))
QUICK = AblationConfig(base=_quick_base, variants=ablation_variants(_quick_base, ema_decay=0.9),
                       samples=32, batch=32, test_images=256, shown=4)

SECTION = Section(
    name="ablations", title="Ablations: what each design choice buys", part="beyond",
    summary="Retrains the time-conditioned model with one switch changed at a time and compares FID and cost.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=("classifier",), reads_dependencies_late=True,
    compiles=True)      # sampling: 70,000 digits over 300 steps, 10,000 in 7.9 s compiled, 12.1 s eager (H100)
