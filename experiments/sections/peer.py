"""The peer: diffusers' UNet2DModel + DDPMScheduler trained and judged like our model.

Same training digits and the same number of optimizer steps as the time-conditioned section, our
Trainer (bf16, one CUDA graph per step) with an objective for the peer, the peer's own model
and scheduler for sampling (its update as tensor ops with the scheduler's coefficients, one CUDA graph
per step with the bf16 compiled network), our classifier as the judge. Our model's FID with its
300-step sampler is the evaluation's (the same weights and sampler); the page sets it beside the
peer's. Then the "inference steps" sweep of reference writeup-e for both models. The peer's
1,000-step FID set is spread over the GPUs a whole-writeup run grants (its batches are seeded apart).
The sampler's compile runs ahead, in a side process beside the training (`compiling.compile_ahead`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from experiments.core import checkpoints
from experiments.core.compiling import compile_ahead
from experiments import figures
from experiments.core.config import DataConfig, DiffusionConfig, TrainConfig, _require
from experiments.core.section import Context, Section
from experiments.core.data import Split
from experiments.core.diffusion.process import add_noise
from experiments.core.diffusion.sampling import ddim_step_fn, ddpm_step_fn, model_estimate, sample
from experiments.core.metrics import psnr
from experiments.errors import UserError
from experiments.core.models.peer import (SPACINGS, PeerConfig, PeerUNet, make_scheduler, peer_objective, peer_sample,
                                          peer_spec, sampling_peer, to_peer, from_peer)
from experiments.core.models.unet import count_parameters
from experiments.core.judging import judge, sample_set, spaced_timesteps, timed
from experiments.core.ddpm import diffusion_schedule, prepare_for_sampling
from experiments.core.fitting import record_training
from experiments.core.parallel import devices_for, spread
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
    noisy_fraction: float = 0.5       # noisy test digits: noised to t = fraction x T (the peer: the same ᾱ)
    noisy_digits: int = 1_000         # test digits behind the noisy-digit PSNRs

    def validate(self) -> None:
        _require(self.spacing in SPACINGS, f"spacing must be one of {', '.join(SPACINGS)}")
        _require(all(s in SPACINGS for s in self.sweep_spacings), f"sweep_spacings must be in {', '.join(SPACINGS)}")
        _require(self.spacing in self.sweep_spacings, "spacing must be one of sweep_spacings")
        _require(len(self.sweep_steps) > 0 and all(n >= 1 for n in self.sweep_steps), "sweep_steps must be >= 1")
        _require(self.samples >= 20 and self.sweep_samples >= 20, "samples and sweep_samples must be >= 20 (FID "
                 "needs a covariance)")
        _require(self.batch >= 1 and self.shown >= 1, "batch and shown must be >= 1")
        _require(0 < self.noisy_fraction < 1, "noisy_fraction must be in (0, 1)")
        _require(self.noisy_digits >= 1, "noisy_digits must be >= 1")


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
    # Uncompiled: from a cold cache, compiling the peer's training step takes longer than its faster steps
    # win back over the budget (H100, one GPU to itself: 200 s compiled, 186 s uncompiled).
    trainer = Trainer(model, peer_objective(make_scheduler(cfg.peer), ctx.device), in_space, cfg.train, ctx.device,
                      ctx.work_dir, graph=cfg.graph, description=ctx.section.name, config_key=key,
                      show_progress=ctx.show_progress, compile=False)
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


def draw_peer(ctx: Context, n: int, steps: int, spacing: str) -> tuple[torch.Tensor, float, int]:
    """n digits of the peer, whole batches dealt over the granted GPUs; (digits, wall seconds, devices used)."""
    batch = ctx.cfg.batch
    jobs = [(k, min(batch, n - start), steps, spacing) for k, start in enumerate(range(0, n, batch))]
    devices = devices_for(ctx, jobs)
    sets, wall = timed(lambda: spread(ctx, peer_batches, jobs, cost=[job[1] for job in jobs], devices=devices),
                       ctx.device)
    return torch.cat(sets).to(ctx.device), wall, len(devices)


def warm_peer_sampler(ctx: Context) -> None:
    """(A side process) the peer's sampler compiled for the batch its sets use, on untrained weights."""
    cfg: PeerSectionConfig = ctx.cfg
    net = sampling_peer(PeerUNet(cfg.peer), ctx.device, compile=True)
    peer_sample(net, cfg.peer, cfg.batch, 2, cfg.spacing, ctx.device, 0, cfg.batch, graphed=cfg.graph)


def run(ctx: Context) -> None:
    cfg: PeerSectionConfig = ctx.cfg
    ahead = compile_ahead(ctx, warm_peer_sampler)
    peer = train_peer(ctx, cfg)               # first: a writeup may start the peer before time-conditioned ends
    ahead.wait()
    ours_manifest = check_budget(ctx, cfg)
    # Our network runs a few hundred calls here (its FID is the evaluation's): compiling it would cost
    # more than it saves, so only the peer's own training and 1,000-step sampling are compiled.
    eager = dataclasses.replace(ctx, compile=False)
    model, spec = checkpoints.load(ctx, OURS, unet_model.from_spec)
    ours = prepare_for_sampling(eager, model)
    dcfg = DiffusionConfig(**spec["diffusion"])
    ev = judge(ctx, cfg.data.test_images)
    T_peer = cfg.peer.num_train_timesteps

    peer_x, peer_s, peer_devices = draw_peer(ctx, cfg.samples, T_peer, cfg.spacing)
    fid_peer = ev.fid(peer_x)
    record_side_by_side(ctx, cfg, ours_manifest, peer, fid_peer, peer_s, peer_devices, dcfg.T)
    ours_x = sample_set(eager, ours, dcfg, cfg.shown, cfg.batch)           # for the figure only
    figures.save_labelled_grid(ctx.out.path("samples.png"), [ours_x[:cfg.shown], peer_x[:cfg.shown]],
                               [f"ours, {dcfg.T} steps", f"peer, {T_peer} steps"])
    ctx.out.add_figure("samples.png", "Samples side by side",
                       alt="Generated digits of our model and of the diffusers peer")
    sweep(ctx, eager, cfg, ev, ours, dcfg)
    noisy_test_digits(ctx, cfg, peer, ours, dcfg)


def steps_label(k: int) -> str:
    """'1 step', '5 steps': a row label."""
    return f"{k} step{'s' if k != 1 else ''}"


def record_side_by_side(ctx: Context, cfg: PeerSectionConfig, ours: dict, peer: PeerUNet, fid_peer: float,
                        peer_s: float, devices: int, T_ours: int) -> None:
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
                  "peer (diffusers UNet2DModel)"], rows)
    out.add_metric("fid_peer", fid_peer, f"FID of the peer ({cfg.peer.num_train_timesteps} DDPMScheduler steps, "
                   f"{n:,} digits)", ".2f")
    out.add_metric("peer_sample_s", peer_s, f"Peer: time to sample {n:,} digits (s)", ".2f")
    out.add_metric("peer_sample_gpus", devices if ctx.cuda else 0, "GPUs the peer's FID set was spread over", "d")


def sweep(ctx: Context, eager: Context, cfg: PeerSectionConfig, ev, ours: torch.nn.Module,
          dcfg: DiffusionConfig) -> None:
    """The reference's inference-steps sweep, from scratch, for both models, with FID per step count
    (ours sampled with `eager`, this context uncompiled)."""
    sched = diffusion_schedule(dcfg, ctx.device)
    ours_samplers = {"ours, strided DDPM": ddpm_step_fn(sched), "ours, DDIM": ddim_step_fn(sched, 0.0)}
    n = cfg.sweep_samples
    names = list(ours_samplers) + [f"peer, DDPMScheduler ({s})" for s in cfg.sweep_spacings]
    table, grids = [], {name: [] for name in names}
    curves: dict[str, list[float]] = {name: [] for name in names}
    steps = sorted(set(cfg.sweep_steps))
    for k in steps:
        row = [k]
        for name, step in ours_samplers.items():
            x = sample_set(eager, ours, dcfg, n, cfg.batch, timesteps=spaced_timesteps(dcfg.T, min(k, dcfg.T)),
                           step=step)
            curves[name].append(ev.fid(x)); grids[name].append(x[:cfg.shown])
        for spacing in cfg.sweep_spacings:
            x, _, _ = draw_peer(ctx, n, min(k, cfg.peer.num_train_timesteps), spacing)
            name = f"peer, DDPMScheduler ({spacing})"
            curves[name].append(ev.fid(x)); grids[name].append(x[:cfg.shown])
        table.append(row + [round(curves[name][-1], 3) for name in names])
        ctx.out.add_metric(f"fid_peer_steps_{k}", curves[f"peer, DDPMScheduler ({cfg.spacing})"][-1],
                           f"FID of the peer with {k} steps ({cfg.spacing} spacing)", ".2f")
        ctx.out.add_metric(f"fid_ours_steps_{k}", curves["ours, DDIM"][-1], f"FID of ours with {k} DDIM steps", ".2f")
    ctx.out.add_table("sweep", "FID against the number of inference steps", ["steps"] + names, table)
    figures.save_line_plot(ctx.out.path("sweep.png"), steps, curves, "inference steps", "classifier-FID",
                           "FID against inference steps", log_x=True, log_y=True)
    ctx.out.add_figure("sweep.png", "FID against inference steps", alt="Line plot of FID against inference steps",
                       kind="plot")
    for name in names:
        file = "sweep_" + name.replace(", ", "_").replace(" (", "_").replace(")", "").replace(" ", "_").lower() + ".png"
        figures.save_labelled_grid(ctx.out.path(file), grids[name], [steps_label(k) for k in steps])
        ctx.out.add_figure(file, f"{name}: 1 to {steps[-1]} steps", group="Inference steps",
                           alt=f"Digits sampled with increasing numbers of steps by {name}")


FULL = PeerSectionConfig()
QUICK = PeerSectionConfig(
    data=DataConfig(train_images=256, test_images=256),
    peer=PeerConfig(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, num_train_timesteps=20),
    train=TrainConfig(epochs=2, batch_size=32, lr=3e-3, lr_final_ratio=1.0, reference_images=256,
                      checkpoint_epochs=()),
    sweep_steps=(1, 2, 5), samples=32, sweep_samples=32, batch=32, shown=4, noisy_digits=32)

SECTION = Section(
    name="peer", title="The peer: diffusers' UNet2DModel", part="beyond",
    summary="Trains diffusers' UNet2DModel with DDPMScheduler on the same digits and budget and compares it with ours.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=(OURS, "classifier"), reads_dependencies_late=True,
    compiles=True)      # 10,000 digits over 1,000 steps: one network call 30 ms compiled, 80 ms eager (H100)


def trailing_from(t_start: int, n: int) -> list[int]:
    """n descending timesteps from t_start down, evenly spread (n = t_start + 1 visits every step)."""
    n = min(n, t_start + 1)
    return [round((t_start + 1) * (1 - i / n)) - 1 for i in range(n)]


def denoise_ours(ctx: Context, model: torch.nn.Module, dcfg: DiffusionConfig, x_t: torch.Tensor, t_start: int,
                 steps: int) -> torch.Tensor:
    """Our model's DDPM loop over `steps` strided timesteps from t_start: noisy digits back to clean ones."""
    sched = diffusion_schedule(dcfg, ctx.device)
    torch.manual_seed(ctx.seed + 555 + steps)
    return sample(x_t, trailing_from(t_start, steps), model_estimate(model, sched, dcfg.predict),
                  ddpm_step_fn(sched), autocast=ctx.cuda).x0


def denoise_peer(peer: torch.nn.Module, cfg: PeerSectionConfig, x_t: torch.Tensor, t_start: int, steps: int,
                 seed: int) -> torch.Tensor:
    """The peer's DDPMScheduler over `steps` timesteps from t_start (custom timesteps), in the peer's space."""
    scheduler = make_scheduler(cfg.peer)
    scheduler.set_timesteps(timesteps=trailing_from(t_start, steps))
    gen = torch.Generator(device=x_t.device).manual_seed(seed)
    x = x_t
    for t in scheduler.timesteps:
        x = scheduler.step(peer(x, t).float(), t, x, generator=gen).prev_sample
    return x


@torch.no_grad()
def noisy_test_digits(ctx: Context, cfg: PeerSectionConfig, peer: torch.nn.Module, ours: torch.nn.Module,
                      dcfg: DiffusionConfig) -> None:
    """Test digits noised halfway (the same ᾱ for both models) and denoised with 1 to 5 and 50 steps:
    one figure per model (clean, noisy, one row per step count) and the PSNR to the clean digit."""
    peer.eval()
    test = ctx.test_split(cfg.data.test_images).images
    x0 = test[: min(cfg.noisy_digits, len(test))]
    sched = diffusion_schedule(dcfg, ctx.device)
    t_ours = round(cfg.noisy_fraction * dcfg.T) - 1
    target = float(sched.abar(torch.tensor([t_ours], device=ctx.device))[0])
    peer_abar = make_scheduler(cfg.peer).alphas_cumprod
    t_peer = int((peer_abar - target).abs().argmin())
    eps = torch.randn(x0.shape, generator=ctx.generator(3), device=ctx.device)
    noisy_ours = add_noise(x0, eps, torch.full((len(x0),), t_ours, device=ctx.device), sched)
    clean_peer = to_peer(x0, cfg.peer.sample_size)
    eps_peer = torch.randn(clean_peer.shape, generator=ctx.generator(4), device=ctx.device)
    noisy_peer = make_scheduler(cfg.peer).add_noise(clean_peer, eps_peer, torch.full((len(x0),), t_peer).to(ctx.device))
    steps = sorted(set(cfg.sweep_steps))
    rows, shown = [], cfg.shown
    grids = {"ours": [x0[:shown], noisy_ours[:shown]], "peer": [x0[:shown], from_peer(noisy_peer[:shown])]}
    for k in steps:
        mine = torch.cat([denoise_ours(ctx, ours, dcfg, noisy_ours[i:i + cfg.batch], t_ours, k)
                          for i in range(0, len(x0), cfg.batch)])
        theirs = from_peer(torch.cat([denoise_peer(peer, cfg, noisy_peer[i:i + cfg.batch], t_peer, k, ctx.seed + k)
                                      for i in range(0, len(x0), cfg.batch)]))
        grids["ours"].append(mine[:shown])
        grids["peer"].append(theirs[:shown])
        rows.append([k, psnr(mine.clamp(0, 1), x0).mean(), psnr(theirs.clamp(0, 1), x0).mean()])
    labels = ["clean", "noisy"] + [steps_label(k) for k in steps]
    for who, title in (("ours", f"Our model, from t = {t_ours} of {dcfg.T}"),
                       ("peer", f"The peer, from t = {t_peer} of {cfg.peer.num_train_timesteps}")):
        figures.save_labelled_grid(ctx.out.path(f"noisy_{who}.png"), grids[who], labels)
        ctx.out.add_figure(f"noisy_{who}.png", title, group="Noisy test digits",
                           alt=f"Test digits, noised and denoised with 1 to {steps[-1]} steps by {who}")
    psnr_noisy = [psnr(noisy_ours.clamp(0, 1), x0).mean(), psnr(from_peer(noisy_peer).clamp(0, 1), x0).mean()]
    table = [["noisy input", *psnr_noisy]] + rows
    ctx.out.add_table("noisy_digits", f"Denoising {len(x0):,} noisy test digits (PSNR to the clean digit, dB)",
                      {"steps": "steps", "ours_psnr_db": "ours", "peer_psnr_db": "peer"},
                      [[r[0]] + [round(float(v), 2) for v in r[1:]] for r in table])
    ctx.out.add_metric("noisy_t_ours", t_ours, "Noisy test digits: our timestep", "d")
    ctx.out.add_metric("noisy_t_peer", t_peer, "Noisy test digits: the peer's timestep at the same ᾱ", "d")
    ctx.out.add_metric("noisy_abar", target, "Noisy test digits: ᾱ (share of signal variance left)", ".3f")
