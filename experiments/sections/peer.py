"""The peer: diffusers' UNet2DModel + DDPMScheduler trained and judged like our model.

Same training digits and the same number of optimizer steps as the time-conditioned section, our
Trainer (bf16, compiled, one CUDA graph per step) with an objective for the peer, the peer's own model
and scheduler for sampling (its update as tensor ops with the scheduler's coefficients, one CUDA graph
per step with the bf16 compiled network), our classifier as the judge. Our model's FID with its
300-step sampler is the evaluation's (the same weights and sampler); the page sets it beside the
peer's. Then the "inference steps" sweep of reference writeup-e for both models. The peer's
1,000-step FID set is spread over the GPUs a whole-writeup run grants (its batches are seeded apart).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from experiments.core import checkpoints
from experiments import figures
from experiments.core.config import DataConfig, DiffusionConfig, TrainConfig, _require
from experiments.core.section import Context, Section
from experiments.core.data import Split
from experiments.core.diffusion.sampling import ddim_step_fn, ddpm_step_fn
from experiments.errors import UserError
from experiments.core.models.peer import (SPACINGS, PeerConfig, PeerUNet, make_scheduler, peer_objective, peer_sample,
                                          peer_spec, sampling_peer, to_peer)
from experiments.core.models.unet import count_parameters
from experiments.core.judging import judge, sample_set, spaced_timesteps, timed, warm_up
from experiments.core.ddpm import diffusion_schedule, prepare_for_sampling
from experiments.core.fitting import record_training
from experiments.core.parallel import spread
from experiments.core.training import Trainer
from experiments.core.models import unet as unet_model
from experiments.core.models import peer as peer_model

OURS = "time-conditioned"
SEED_OFFSET = 777               # the peer's sets: batch k from seed + SEED_OFFSET + k


@dataclass(frozen=True)
class PeerSectionConfig:
    data: DataConfig = field(default_factory=DataConfig)        # must match the time-conditioned split
    peer: PeerConfig = field(default_factory=PeerConfig)
    # Adam 1e-3, batch 128, constant lr as in the reference; the step budget must equal ours
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr_final_ratio=1.0, checkpoint_epochs=()))
    graph: bool = True                # capture the peer's training and sampling steps in CUDA graphs
    spacing: str = "trailing"         # DDPMScheduler timestep_spacing for few-step sampling
    sweep_steps: tuple[int, ...] = (1, 2, 3, 4, 5, 50)          # the reference's inference-steps sweep
    sweep_spacings: tuple[str, ...] = ("trailing", "leading")   # peer spacings shown in the sweep
    samples: int = 10_000             # digits behind the peer's FID (all its steps)
    sweep_samples: int = 2_500        # digits behind each FID of the sweep (a trend, not a headline)
    batch: int = 2_500                # digits per sampler call
    shown: int = 10                   # digits per row in figures

    def validate(self) -> None:
        _require(self.spacing in SPACINGS, f"spacing must be one of {', '.join(SPACINGS)}")
        _require(all(s in SPACINGS for s in self.sweep_spacings), f"sweep_spacings must be in {', '.join(SPACINGS)}")
        _require(self.spacing in self.sweep_spacings, "spacing must be one of sweep_spacings")
        _require(len(self.sweep_steps) > 0 and all(n >= 1 for n in self.sweep_steps), "sweep_steps must be >= 1")
        _require(self.samples >= 20 and self.sweep_samples >= 20, "samples and sweep_samples must be >= 20 (FID "
                 "needs a covariance)")
        _require(self.batch >= 1 and self.shown >= 1, "batch and shown must be >= 1")


def check_budget(ctx: Context, cfg: PeerSectionConfig) -> dict:
    """The time-conditioned run's manifest; the peer must see the same digits for as many steps."""
    ours = ctx.dependency(OURS)
    steps, split = ours["metrics"]["steps"]["value"], ours["config"]["data"]["train_images"]
    if cfg.train.total_steps != steps or cfg.data.train_images != split:
        raise UserError(f"peer budget differs from {OURS}: {cfg.train.total_steps} steps on train_images="
                        f"{cfg.data.train_images} vs {steps} steps on train_images={split}; set peer train.epochs/"
                        "train.batch_size/train.reference_images and data.train_images to match")
    return ours


def train_peer(ctx: Context, cfg: PeerSectionConfig) -> PeerUNet:
    split = ctx.train_split(cfg.data.train_images)
    in_space = Split(to_peer(split.images, cfg.peer.sample_size), split.labels)      # (N, 1, 32, 32) in [-1, 1]
    model = PeerUNet(cfg.peer)
    key = f"{ctx.section.name}:{ctx.profile}:{ctx.seed}:{dataclasses.asdict(cfg.peer)}:{dataclasses.asdict(cfg.train)}"
    trainer = Trainer(model, peer_objective(make_scheduler(cfg.peer), ctx.device), in_space, cfg.train, ctx.device,
                      ctx.work_dir, graph=cfg.graph, description=ctx.section.name, config_key=key,
                      show_progress=ctx.show_progress, compile=ctx.compile)
    result = trainer.fit(resume=ctx.resume)
    checkpoints.write_spec(ctx.work_dir, "peer", final_epoch=cfg.train.epochs, **peer_spec(cfg.peer))
    record_training(ctx, result, cfg.train, len(split), "diffusers UNet2DModel (peer)", model)
    return model


_PEERS: dict[str, torch.nn.Module] = {}


def trained_peer(ctx: Context) -> torch.nn.Module:
    """The saved peer weights, ready to sample on this context's device (built once per process)."""
    if str(ctx.device) not in _PEERS:
        net, _ = checkpoints.load(ctx, ctx.section.name, peer_model.from_spec)
        _PEERS[str(ctx.device)] = sampling_peer(net, ctx.device, ctx.compiled)
    return _PEERS[str(ctx.device)]


def peer_batches(ctx: Context, first_batch: int, n: int, steps: int, spacing: str) -> torch.Tensor:
    """n digits of the peer's set starting at batch `first_batch` (a job of `spread`), on the CPU."""
    cfg: PeerSectionConfig = ctx.cfg
    return peer_sample(trained_peer(ctx), cfg.peer, n, steps, spacing, ctx.device, ctx.seed + SEED_OFFSET,
                       cfg.batch, graphed=ctx.cuda and cfg.graph, first_batch=first_batch).cpu()


def draw_peer(ctx: Context, n: int, steps: int, spacing: str) -> tuple[torch.Tensor, float]:
    """n digits of the peer, whole batches dealt over the granted GPUs; (digits, wall seconds)."""
    batch = ctx.cfg.batch
    jobs = [(k, min(batch, n - start), steps, spacing) for k, start in enumerate(range(0, n, batch))]
    sets, wall = timed(lambda: spread(ctx, peer_batches, jobs, cost=[job[1] for job in jobs]), ctx.device)
    return torch.cat(sets).to(ctx.device), wall


def run(ctx: Context) -> None:
    cfg: PeerSectionConfig = ctx.cfg
    peer = train_peer(ctx, cfg)               # first: a writeup may start the peer before time-conditioned ends
    ours_manifest = check_budget(ctx, cfg)
    model, spec = checkpoints.load(ctx, OURS, unet_model.from_spec)
    ours = prepare_for_sampling(ctx, model)
    dcfg = DiffusionConfig(**spec["diffusion"])
    ev = judge(ctx, cfg.data.test_images)
    T_peer = cfg.peer.num_train_timesteps

    peer_x, peer_s = draw_peer(ctx, cfg.samples, T_peer, cfg.spacing)
    fid_peer = ev.fid(peer_x)
    record_side_by_side(ctx, cfg, ours_manifest, peer, fid_peer, peer_s, dcfg.T)
    warm_up(ctx, ours, dcfg, cfg.batch)
    ours_x = sample_set(ctx, ours, dcfg, min(cfg.batch, cfg.samples), cfg.batch)
    figures.save_labelled_grid(ctx.out.path("samples.png"), [ours_x[:cfg.shown], peer_x[:cfg.shown]],
                               [f"ours, {dcfg.T} steps", f"peer, {T_peer} steps"])
    ctx.out.add_figure("samples.png", "Samples side by side", f"Digits from scratch: our time-conditioned UNet with "
                       f"its {dcfg.T}-step DDPM sampler, and the peer with DDPMScheduler over all {T_peer} steps.",
                       alt="Generated digits of our model and of the diffusers peer")
    sweep(ctx, cfg, ev, ours, dcfg)


def record_side_by_side(ctx: Context, cfg: PeerSectionConfig, ours: dict, peer: PeerUNet, fid_peer: float,
                        peer_s: float, T_ours: int) -> None:
    out, n, m = ctx.out, cfg.samples, ours["metrics"]
    peer_m = out.metrics
    rows = [
        ["parameters", m["parameters"]["value"], count_parameters(peer)],
        ["optimizer steps", m["steps"]["value"], peer_m["steps"]["value"]],
        ["training wall time (s)", round(m["train_wall_s"]["value"], 1), round(peer_m["train_wall_s"]["value"], 1)],
        ["training images/s", round(m["train_img_per_s"]["value"]), round(peer_m["train_img_per_s"]["value"])],
        ["sampler steps", T_ours, cfg.peer.num_train_timesteps],
    ]
    out.add_table("side_by_side", "Our UNet and the peer", ["", "ours (time-conditioned UNet)",
                  "peer (diffusers UNet2DModel)"], rows,
                  caption="Both trained on the same digits for the same number of optimizer steps and judged by the "
                  "same classifier against the test split; our model's FID and sampling time are the evaluation's.")
    out.add_metric("fid_peer", fid_peer, f"FID of the peer ({cfg.peer.num_train_timesteps} DDPMScheduler steps, "
                   f"{n:,} digits)", ".2f")
    out.add_metric("peer_sample_s", peer_s, f"Peer: time to sample {n:,} digits (s)", ".2f")
    out.add_metric("peer_sample_gpus", 1 + len(ctx.spare_devices()) if ctx.cuda else 0,
                   "GPUs the peer's FID set was spread over", "d")
    if ctx.cuda:
        out.add_note("Both train with bf16 autocast, the loss compiled and the whole step captured in one CUDA graph; "
                     "for sampling both networks run in bf16, compiled, with one CUDA graph per step (the peer's "
                     "DDPMScheduler update as tensor ops with the scheduler's coefficients), at 1,000 steps for the "
                     "peer against our 300.")
    out.add_note(f"The peer trains with a constant learning rate {cfg.train.lr:g} (lr_final_ratio "
                 f"{cfg.train.lr_final_ratio:g}), as in the reference; ours decays it per epoch.")


def sweep(ctx: Context, cfg: PeerSectionConfig, ev, ours: torch.nn.Module, dcfg: DiffusionConfig) -> None:
    """The reference's inference-steps sweep, from scratch, for both models, with FID per step count."""
    sched = diffusion_schedule(dcfg, ctx.device)
    ours_samplers = {"ours, strided DDPM": ddpm_step_fn(sched, compiled=ctx.compiled),
                     "ours, DDIM": ddim_step_fn(sched, 0.0, compiled=ctx.compiled)}
    n = cfg.sweep_samples
    names = list(ours_samplers) + [f"peer, DDPMScheduler ({s})" for s in cfg.sweep_spacings]
    table, grids = [], {name: [] for name in names}
    curves: dict[str, list[float]] = {name: [] for name in names}
    steps = sorted(set(cfg.sweep_steps))
    for k in steps:
        row = [k]
        for name, step in ours_samplers.items():
            x = sample_set(ctx, ours, dcfg, n, cfg.batch, timesteps=spaced_timesteps(dcfg.T, min(k, dcfg.T)), step=step)
            curves[name].append(ev.fid(x)); grids[name].append(x[:cfg.shown])
        for spacing in cfg.sweep_spacings:
            x, _ = draw_peer(ctx, n, min(k, cfg.peer.num_train_timesteps), spacing)
            name = f"peer, DDPMScheduler ({spacing})"
            curves[name].append(ev.fid(x)); grids[name].append(x[:cfg.shown])
        table.append(row + [round(curves[name][-1], 3) for name in names])
        ctx.out.add_metric(f"fid_peer_steps_{k}", curves[f"peer, DDPMScheduler ({cfg.spacing})"][-1],
                           f"FID of the peer with {k} steps ({cfg.spacing} spacing)", ".2f")
        ctx.out.add_metric(f"fid_ours_steps_{k}", curves["ours, DDIM"][-1], f"FID of ours with {k} DDIM steps", ".2f")
    ctx.out.add_table("sweep", "FID against the number of inference steps", ["steps"] + names, table,
                      caption=f"{n:,} digits per cell, generated from pure noise. Step counts above a "
                      f"model's T are capped at T. 'leading' is DDPMScheduler's default spacing: its single step "
                      f"starts at t = 0, so one-step samples stay noise; 'trailing' starts at t = T - 1.")
    figures.save_line_plot(ctx.out.path("sweep.png"), steps, curves, "inference steps", "classifier-FID",
                           "FID against inference steps", log_x=True, log_y=True)
    ctx.out.add_figure("sweep.png", "FID against inference steps", "Both models sampled with 1 to "
                       f"{steps[-1]} steps; lower is better.", alt="Line plot of FID against inference steps",
                       kind="plot")
    for name in names:
        file = "sweep_" + name.replace(", ", "_").replace(" (", "_").replace(")", "").replace(" ", "_").lower() + ".png"
        figures.save_labelled_grid(ctx.out.path(file), grids[name], [f"{k} steps" for k in steps])
        ctx.out.add_figure(file, f"{name}: 1 to {steps[-1]} steps", f"Digits from the same noise per row, "
                           f"sampled with each number of steps ({name}).", group="Inference steps",
                           alt=f"Digits sampled with increasing numbers of steps by {name}")


FULL = PeerSectionConfig()
QUICK = PeerSectionConfig(
    data=DataConfig(train_images=256, test_images=256),
    peer=PeerConfig(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, num_train_timesteps=20),
    train=TrainConfig(epochs=2, batch_size=32, lr=3e-3, lr_final_ratio=1.0, reference_images=256,
                      checkpoint_epochs=()),
    sweep_steps=(1, 2, 5), samples=32, sweep_samples=32, batch=32, shown=4)

SECTION = Section(
    name="peer", title="The peer: diffusers' UNet2DModel", part="beyond",
    summary="Trains diffusers' UNet2DModel with DDPMScheduler on the same digits and budget and compares it with ours.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=(OURS, "classifier"), reads_dependencies_late=True)
