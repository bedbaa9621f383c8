"""The peer: diffusers' UNet2DModel and DDPMScheduler behind a thin wrapper (reference writeup-e).

Conventions differ from ours and stay inside this module: the peer sees 32x32 digits in [-1, 1]
and integer timesteps in [0, num_train_timesteps); `to_peer` / `from_peer` convert from and to our
(B, 1, 28, 28) digits in [0, 1]. diffusers is imported lazily (an optional extra) and every object
is built from a config, so nothing is ever downloaded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from experiments.core.config import _require
from experiments.core.diffusion.sampling import capture_step
from experiments.errors import UserError

IMAGE_SIZE = 28     # our digits
SPACINGS = ("leading", "trailing", "linspace")
# Attention kernels the peer trains with: not cuDNN's, whose first use autotunes for about 15 s of a cold
# start (H100) and whose steps are no faster than flash attention's at batch 128.
TRAINING_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@dataclass(frozen=True)
class PeerConfig:
    sample_size: int = 32                                # the peer's image side (digits are resized)
    block_out_channels: tuple[int, ...] = (32, 64, 64)   # widths of the three resolution levels
    layers_per_block: int = 2                            # ResNet blocks per level
    norm_num_groups: int = 32                            # GroupNorm groups (must divide every width)
    attention_head_dim: int = 8
    num_train_timesteps: int = 1000                      # DDPMScheduler's T

    def validate(self) -> None:
        _require(self.sample_size % 4 == 0 and self.sample_size >= IMAGE_SIZE,
                 "peer.sample_size must be a multiple of 4 and >= 28")
        _require(len(self.block_out_channels) == 3, "peer.block_out_channels needs three widths")
        _require(all(w % self.norm_num_groups == 0 for w in self.block_out_channels),
                 "peer.norm_num_groups must divide every width in peer.block_out_channels")
        _require(self.layers_per_block >= 1, "peer.layers_per_block must be >= 1")
        _require(self.num_train_timesteps >= 2, "peer.num_train_timesteps must be >= 2")


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        raise UserError("the peer needs diffusers: pip install -e '.[peer]'") from None
    return diffusers


class PeerUNet(nn.Module):
    """eps = net(x_t, t): x_t (B, 1, S, S) in the peer's [-1, 1] space, t (B,) integer timesteps."""

    def __init__(self, cfg: PeerConfig):
        super().__init__()
        self.cfg = cfg
        self.net = _diffusers().UNet2DModel(
            sample_size=cfg.sample_size, in_channels=1, out_channels=1,
            layers_per_block=cfg.layers_per_block, block_out_channels=tuple(cfg.block_out_channels),
            norm_num_groups=cfg.norm_num_groups, attention_head_dim=cfg.attention_head_dim,
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S), t (B,) or a 0-dim tensor -> eps (B, 1, S, S)."""
        return self.net(x_t, t, return_dict=False)[0]


def to_peer(x: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Our digits (B, 1, 28, 28) in [0, 1] -> the peer's (B, 1, size, size) in [-1, 1]."""
    up = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)
    return (up * 2 - 1).clamp(-1, 1)        # bilinear upsampling stays in range; clamp for float dust


def from_peer(x: torch.Tensor) -> torch.Tensor:
    """The peer's (B, 1, S, S) in [-1, 1] -> our (B, 1, 28, 28) in [0, 1] (not clipped, as our samples)."""
    down = F.interpolate(x.float(), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False,
                         antialias=True)
    return (down + 1) / 2


def make_scheduler(cfg: PeerConfig, spacing: str = "leading") -> Any:
    """diffusers' DDPMScheduler with its defaults (linear betas 1e-4..0.02, clipped x0); `spacing` picks
    how `set_timesteps(n)` spreads n steps: 'leading' (the default) starts at 0, 'trailing' ends at T-1."""
    if spacing not in SPACINGS:
        raise UserError(f"peer timestep spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
    return _diffusers().DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, timestep_spacing=spacing)


def _check_scheduler(scheduler: Any) -> None:
    """The tensor forms below follow DDPMScheduler with epsilon prediction, fixed_small variance, clipping."""
    config = scheduler.config
    if (config.prediction_type, config.variance_type, config.thresholding) != ("epsilon", "fixed_small", False):
        raise ValueError("the peer's fast path covers DDPMScheduler with epsilon prediction, fixed_small variance "
                         "and no thresholding")


def peer_add_noise(scheduler: Any, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                                                                      torch.Tensor]:
    """(x0, eps, t) -> sqrt(abar_t) x0 + sqrt(1 - abar_t) eps as `scheduler.add_noise` computes it, from
    tables of its alphas_cumprod on the device (tensor ops only: compilable and capturable in a CUDA graph)."""
    abar = scheduler.alphas_cumprod.to(device)
    sqrt_abar, sqrt_one_minus = abar ** 0.5, (1 - abar) ** 0.5

    def add_noise(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return sqrt_abar[t].view(-1, 1, 1, 1) * x0 + sqrt_one_minus[t].view(-1, 1, 1, 1) * eps

    return add_noise


def peer_objective(scheduler: Any, device: torch.device):
    """The peer's loss ||eps - net(add_noise(x0, eps, t), t)||^2 on digits already in its space."""
    _check_scheduler(scheduler)
    T = scheduler.config.num_train_timesteps
    add_noise = peer_add_noise(scheduler, device)

    def loss(model, x0, labels):
        t = torch.randint(0, T, (x0.shape[0],), device=x0.device)          # (B,)
        eps = torch.randn_like(x0)
        with sdpa_kernel(TRAINING_ATTENTION):
            return F.mse_loss(model(add_noise(x0, eps, t), t).float(), eps)

    return loss


@dataclass(frozen=True)
class PeerSteps:
    """DDPMScheduler.step as tensors: per inference step i (its timestep timesteps[i]) the coefficients
    (sqrt(abar_t), sqrt(1 - abar_t), x0 coefficient, x_t coefficient, noise sigma), taken from the
    scheduler's alphas_cumprod, timesteps and previous_timestep as its `step` computes them (float32)."""

    timesteps: torch.Tensor          # (n,) int64, descending
    coefficients: torch.Tensor       # (n, 5) float32
    clip: float | None               # clip x0_hat to [-clip, clip] (the scheduler's clip_sample_range)

    @classmethod
    def of(cls, scheduler: Any, steps: int) -> "PeerSteps":
        _check_scheduler(scheduler)
        scheduler.set_timesteps(steps)
        one = torch.tensor(1.0)
        rows = []
        for t in scheduler.timesteps:
            prev = scheduler.previous_timestep(t)
            abar_t = scheduler.alphas_cumprod[t]
            abar_prev = scheduler.alphas_cumprod[prev] if prev >= 0 else one
            beta_t, beta_prev = 1 - abar_t, 1 - abar_prev
            alpha_t = abar_t / abar_prev
            current_beta = 1 - alpha_t
            variance = torch.clamp((1 - abar_prev) / (1 - abar_t) * current_beta, min=1e-20)
            rows.append(torch.stack([abar_t ** 0.5, beta_t ** 0.5, (abar_prev ** 0.5 * current_beta) / beta_t,
                                     alpha_t ** 0.5 * beta_prev / beta_t,
                                     variance ** 0.5 if t > 0 else torch.zeros(())]).float())
        config = scheduler.config
        return cls(scheduler.timesteps.clone(), torch.stack(rows),
                   float(config.clip_sample_range) if config.clip_sample else None)

    def to(self, device: torch.device) -> "PeerSteps":
        return PeerSteps(self.timesteps.to(device), self.coefficients.to(device), self.clip)


def peer_update(x_t: torch.Tensor, eps: torch.Tensor, coefficients: torch.Tensor, clip: float | None,
                noise: torch.Tensor | None) -> torch.Tensor:
    """One DDPMScheduler step from a row of `PeerSteps.coefficients` ((5,) or (1, 5)); noise None: none added."""
    c = coefficients.reshape(5, 1, 1, 1, 1)
    x0 = (x_t - c[1] * eps) / c[0]
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    prev = c[2] * x0 + c[3] * x_t
    return prev if noise is None else prev + c[4] * noise


@torch.no_grad()
def _sample_batch(model: nn.Module, steps: PeerSteps, m: int, size: int, device: torch.device, seed: int,
                  graphed: bool) -> torch.Tensor:
    """m samples in the peer's space. Eagerly: x_T and each step's noise from a generator seeded `seed`,
    drawn as DDPMScheduler.step draws them (only for t > 0). Graphed (GPU): one step captured once (the
    network and the update, noise from the default generator seeded `seed`) and replayed per timestep."""
    shape = (m, 1, size, size)
    if not (graphed and device.type == "cuda"):
        gen = torch.Generator(device=device).manual_seed(seed)
        x = torch.randn(shape, generator=gen, device=device)
        for i, t in enumerate(steps.timesteps.tolist()):
            eps = model(x, steps.timesteps[i].expand(m)).float()
            noise = torch.randn(shape, generator=gen, device=device) if t > 0 else None
            x = peer_update(x, eps, steps.coefficients[i], steps.clip, noise)
        return x
    torch.manual_seed(seed)
    x = torch.randn(shape, device=device)
    index = torch.zeros(1, dtype=torch.long, device=device)
    noise = torch.zeros(shape, device=device)

    def body() -> None:
        t = steps.timesteps.index_select(0, index).expand(m)
        eps = model(x, t).float()
        x.copy_(peer_update(x, eps, steps.coefficients.index_select(0, index), steps.clip, noise))

    graph = capture_step(x, noise, body)
    for i in range(len(steps.timesteps)):
        index.fill_(i)
        graph.replay()
    return x


def peer_sample(model: nn.Module, cfg: PeerConfig, n: int, steps: int, spacing: str, device: torch.device,
                seed: int, batch: int = 2500, graphed: bool = False, first_batch: int = 0) -> torch.Tensor:
    """n digits from scratch with DDPMScheduler's update over `steps` timesteps -> (n, 1, 28, 28) in ~[0, 1].

    Batch k starts from seed + first_batch + k, so a set split into parts (`first_batch`) is the same set.
    graphed: the GPU fast path (see `_sample_batch`)."""
    if not 1 <= steps <= cfg.num_train_timesteps:
        raise UserError(f"peer sampling steps must be in 1..{cfg.num_train_timesteps}, got {steps}")
    table = PeerSteps.of(make_scheduler(cfg, spacing), steps).to(device)
    out = [from_peer(_sample_batch(model, table, min(batch, n - start), cfg.sample_size, device,
                                   seed + first_batch + k, graphed))
           for k, start in enumerate(range(0, n, batch))]
    return torch.cat(out)


class FastPeer(nn.Module):
    """The peer for sampling on the GPU: weights and activations in bf16, NHWC, compiled.

    Under autocast the peer's GroupNorms and SiLUs (most of its memory traffic) still run in fp32;
    here everything is bf16 and torch.compile fuses the norms and activations (0.024 s per network call
    at batch 2,000 on an H100, against 0.070 s under autocast). eps comes back as float32.
    """

    def __init__(self, peer: PeerUNet, compile: bool = True):
        super().__init__()
        self.net = peer.to(torch.bfloat16).to(memory_format=torch.channels_last)
        self.run = torch.compile(self.net, dynamic=False) if compile else self.net   # one static graph per batch

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = x_t.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        return self.run(x, t.reshape(-1).to(x.device).expand(x.shape[0])).float()


def sampling_peer(peer: PeerUNet, device: torch.device, compile: bool) -> nn.Module:
    """The trained peer ready to sample on `device` (eval mode): `FastPeer` on a GPU, itself on the CPU."""
    peer = peer.to(device).eval()
    return FastPeer(peer, compile) if device.type == "cuda" else peer


def peer_spec(cfg: PeerConfig) -> dict:
    return {"peer": dataclasses.asdict(cfg)}


def from_spec(spec: dict) -> PeerUNet:
    """The peer network a checkpoint's model spec describes (weights not loaded)."""
    fields = dict(spec["peer"])
    fields["block_out_channels"] = tuple(fields["block_out_channels"])     # JSON gives a list
    return PeerUNet(PeerConfig(**fields))

