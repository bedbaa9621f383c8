"""The writeup's UNet family as one implementation with options.

Contract: `unet(x, t, c)` with x (B, 1, 28, 28), t (B,) already normalised to t/T (ignored when
unconditioned), c (B, 10) one-hot class vectors (zeros = unconditional; ignored unless class-
conditioned). Returns (B, 1, 28, 28). t and c may also hold k x B rows (k conditionings of the
same images, as classifier-free guidance asks): the encoder, which sees only x, then runs once and
its features are repeated k times, so the output (kB, 1, 28, 28) equals that of x repeated k times
for about 13% less work per CFG pair. Ablation switches (residual, norm, final kernel) are options,
not forks.
"""
from __future__ import annotations

import torch
from torch import nn

from experiments.core.config import UNetConfig

NUM_CLASSES = 10


def _norm(channels: int, kind: str) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(8, channels)


def _layer(conv: nn.Module, channels: int, norm: str) -> nn.Sequential:
    return nn.Sequential(conv, _norm(channels, norm), nn.GELU())


class ConvBlock(nn.Module):
    """Conv(i, o) -> Conv(o, o), optionally with a 1x1-projected skip around both (ablation) and
    dropout between the two (a regulariser for small training sets; without it the block's modules,
    and so its checkpoints, are exactly those of the reference)."""

    def __init__(self, cin: int, cout: int, norm: str, residual: bool, dropout: float = 0.0):
        super().__init__()
        first = _layer(nn.Conv2d(cin, cout, 3, 1, 1), cout, norm)
        if dropout > 0:
            first.append(nn.Dropout(dropout))
        self.body = nn.Sequential(first, _layer(nn.Conv2d(cout, cout, 3, 1, 1), cout, norm))
        self.skip = None
        if residual:
            self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out if self.skip is None else out + self.skip(x)


class DownBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str, residual: bool, dropout: float = 0.0):
        super().__init__(_layer(nn.Conv2d(cin, cout, 3, 2, 1), cout, norm),
                         ConvBlock(cout, cout, norm, residual, dropout))


class UpBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str, residual: bool, dropout: float = 0.0):
        super().__init__(_layer(nn.ConvTranspose2d(cin, cout, 4, 2, 1), cout, norm),
                         ConvBlock(cout, cout, norm, residual, dropout))


class FCBlock(nn.Sequential):
    """Linear(i, o) -> GELU -> Linear(o, o): embeds t/T or a class vector."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Linear(cin, cout), nn.GELU(), nn.Linear(cout, cout))


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        d, norm, res, p = cfg.hidden, cfg.norm, cfg.residual, cfg.dropout
        self.cfg = cfg
        self.encode1 = ConvBlock(1, d, norm, res, p)               # (B, D, 28, 28)
        self.encode2 = DownBlock(d, d, norm, res, p)               # (B, D, 14, 14)
        self.encode3 = DownBlock(d, 2 * d, norm, res, p)           # (B, 2D, 7, 7)
        self.flatten = nn.Sequential(nn.AvgPool2d(7), nn.GELU())   # (B, 2D, 1, 1)
        self.unflatten = _layer(nn.ConvTranspose2d(2 * d, 2 * d, 7, 7, 0), 2 * d, norm)  # (B, 2D, 7, 7)
        self.decode1 = UpBlock(4 * d, d, norm, res, p)             # (B, D, 14, 14)
        self.decode2 = UpBlock(2 * d, d, norm, res, p)             # (B, D, 28, 28)
        self.decode3 = ConvBlock(2 * d, d, norm, res, p)           # (B, D, 28, 28)
        k = cfg.final_kernel
        self.head = nn.Conv2d(d, 1, k, 1, k // 2)                  # (B, 1, 28, 28)
        if cfg.conditioning in ("time", "class"):
            self.time1, self.time2 = FCBlock(1, 2 * d), FCBlock(1, d)
        if cfg.conditioning == "class":
            self.class1, self.class2 = FCBlock(NUM_CLASSES, 2 * d), FCBlock(NUM_CLASSES, d)

    # Set by models.inference.split_skip_concatenations: the decoder layers that read a skip concatenation
    # take (u, e) and run as two convolutions, the skip's once per image (same function, less work).
    split_skips = False

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, c: torch.Tensor | None = None) -> torch.Tensor:
        e1 = self.encode1(x)
        e2 = self.encode2(e1)
        e3 = self.encode3(e2)
        u0 = self.unflatten(self.flatten(e3))
        cond = self.cfg.conditioning
        rows = len(c) if cond == "class" else len(t) if cond == "time" else len(x)
        if rows % len(x):
            raise ValueError(f"t/c have {rows} rows, not a multiple of the {len(x)} images")
        k = rows // len(x)                     # k conditionings of the same x: the encoder ran once
        if k > 1:
            u0 = u0.repeat(k, 1, 1, 1)
        if cond != "none":
            t = t.reshape(-1, 1).to(x.dtype)                            # (B, 1)
            t1 = self.time1(t)[:, :, None, None]                        # (B, 2D, 1, 1)
            t2 = self.time2(t)[:, :, None, None]                        # (B, D, 1, 1)
        if cond == "class":
            c = c.to(x.dtype)
            u0 = self.class1(c)[:, :, None, None] * u0 + t1
        elif cond == "time":
            u0 = u0 + t1
        u1 = self.decode1(self._join(u0, e3, k))
        if cond == "class":
            u1 = self.class2(c)[:, :, None, None] * u1 + t2
        elif cond == "time":
            u1 = u1 + t2
        u2 = self.decode2(self._join(u1, e2, k))
        return self.head(self.decode3(self._join(u2, e1, k)))

    def _join(self, u: torch.Tensor, e: torch.Tensor, k: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The decoder's input: cat[u, e] with the skip e repeated for the k conditionings of its image."""
        if self.split_skips:
            return u, e
        return torch.cat([u, e.repeat(k, 1, 1, 1) if k > 1 else e], dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def from_spec(spec: dict) -> UNet:
    """The UNet a checkpoint's model spec describes (weights not loaded)."""
    return UNet(UNetConfig(**spec["unet"]))
