"""The peer: diffusers' UNet2DModel and DDPMScheduler behind a thin wrapper (reference writeup-e).

Conventions differ from ours and stay inside this module: the peer sees 32x32 digits in [-1, 1]
and integer timesteps in [0, num_train_timesteps); `to_peer` / `from_peer` convert from and to our
(B, 1, 28, 28) digits in [0, 1]. diffusers is imported lazily (an optional extra) and every object
is built from a config, so nothing is ever downloaded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from experiments.core.config import _require
from experiments.errors import UserError

IMAGE_SIZE = 28     # our digits
SPACINGS = ("leading", "trailing", "linspace")


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


def peer_objective(scheduler: Any):
    """The peer's loss ||eps - net(add_noise(x0, eps, t), t)||^2 on digits already in its space."""
    T = scheduler.config.num_train_timesteps

    def loss(model, x0, labels):
        t = torch.randint(0, T, (x0.shape[0],), device=x0.device)          # (B,)
        eps = torch.randn_like(x0)
        x_t = scheduler.add_noise(x0, eps, t)
        return F.mse_loss(model(x_t, t).float(), eps)

    return loss


@torch.no_grad()
def peer_sample(model: PeerUNet, cfg: PeerConfig, n: int, steps: int, spacing: str, device: torch.device,
                seed: int, batch: int = 2500, autocast: bool = False) -> torch.Tensor:
    """n digits from scratch with DDPMScheduler.step over `steps` timesteps -> (n, 1, 28, 28) in ~[0, 1]."""
    if not 1 <= steps <= cfg.num_train_timesteps:
        raise UserError(f"peer sampling steps must be in 1..{cfg.num_train_timesteps}, got {steps}")
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for start in range(0, n, batch):
        scheduler = make_scheduler(cfg, spacing)
        scheduler.set_timesteps(steps)          # timesteps stay on the CPU, as in diffusers' DDPMPipeline
        x = torch.randn((min(batch, n - start), 1, cfg.sample_size, cfg.sample_size), generator=gen, device=device)
        for t in scheduler.timesteps:           # t: a 0-dim tensor; the UNet broadcasts it over the batch
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                eps = model(x, t).float()
            x = scheduler.step(eps, t, x, generator=gen).prev_sample
        out.append(from_peer(x))
    return torch.cat(out)


def peer_spec(cfg: PeerConfig) -> dict:
    return {"peer": dataclasses.asdict(cfg)}


def from_spec(spec: dict) -> PeerUNet:
    """The peer network a checkpoint's model spec describes (weights not loaded)."""
    fields = dict(spec["peer"])
    fields["block_out_channels"] = tuple(fields["block_out_channels"])     # JSON gives a list
    return PeerUNet(PeerConfig(**fields))

