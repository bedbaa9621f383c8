"""Hand-drawn-like digits drawn by code: polylines rendered as anti-aliased pen strokes on 28x28.

Each drawing is a few polylines in pixel coordinates (x right, y down) inside MNIST's central 20x20
box; every copy gets its own small random rotation, shift, scale and pen width, so a batch of copies
looks like the same digit drawn several times by an unsteady hand, not like MNIST.
"""
from __future__ import annotations

import math

import torch

from experiments.errors import UserError


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> list[tuple[float, float]]:
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


def _arc(cx: float, cy: float, r: float, start: float, end: float, n: int = 10) -> list[tuple[float, float]]:
    """Points on a circle from angle `start` to `end` (degrees, 0 = up, clockwise)."""
    return [(cx + r * math.sin(math.radians(a)), cy - r * math.cos(math.radians(a)))
            for a in (start + (end - start) * i / n for i in range(n + 1))]


# digit -> polylines (each a list of (x, y) points)
DRAWINGS: dict[str, tuple[int, list[list[tuple[float, float]]]]] = {
    "0": (0, [_ellipse(14, 14, 5.5, 8.5)]),
    "1": (1, [[(11.5, 8), (15, 5), (14, 23)]]),
    "2": (2, [_arc(14, 9.5, 5, -70, 135) + [(8, 23), (21, 23)]]),
    "3": (3, [_arc(14, 9, 4.5, -80, 180), _arc(14, 18, 5, 0, 240)]),
    "4": (4, [[(16, 23), (16, 5), (7, 17), (21, 17)]]),
    "7": (7, [[(8, 6), (20, 6), (12, 23)]]),
}


def _segments(name: str) -> tuple[int, torch.Tensor]:
    if name not in DRAWINGS:
        raise UserError(f"unknown drawing {name!r} (choose from {', '.join(DRAWINGS)})")
    label, lines = DRAWINGS[name]
    segs = [(a, b) for line in lines for a, b in zip(line[:-1], line[1:])]
    return label, torch.tensor(segs, dtype=torch.float32)                      # (S, 2, 2)


def draw(names: list[str], copies: int, generator: torch.Generator, device: torch.device,
         jitter: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Render `copies` jittered copies of each drawing: images (len(names) * copies, 1, 28, 28), labels.

    Copies of one drawing are consecutive rows. jitter = 0 draws every copy identically.
    """
    images, labels = [], []
    ys, xs = torch.meshgrid(torch.arange(28.0, device=device), torch.arange(28.0, device=device), indexing="ij")
    pixels = torch.stack([xs, ys], -1).view(1, -1, 1, 2) + 0.5                  # (1, 784, 1, 2) pixel centres
    for name in names:
        label, segs = _segments(name)
        segs = segs.to(device)
        r = torch.rand((copies, 5), generator=generator, device=device) * 2 - 1    # (copies, 5) in [-1, 1]
        angle = r[:, 0] * math.radians(12) * jitter
        scale = 1 + r[:, 1] * 0.1 * jitter
        shift = r[:, 2:4] * 1.5 * jitter                                           # px
        width = 1.3 + r[:, 4] * 0.35 * jitter                                      # pen radius, px
        cos, sin = angle.cos(), angle.sin()
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)   # (copies, 2, 2)
        centred = segs - 14.0                                                      # (S, 2, 2) about the centre
        moved = torch.einsum("cij,spj->cspi", rot, centred) * scale.view(-1, 1, 1, 1) + 14.0 + shift.view(-1, 1, 1, 2)
        a, b = moved[:, None, :, 0], moved[:, None, :, 1]                          # (copies, 1, S, 2)
        ab = b - a
        u = ((pixels - a) * ab).sum(-1) / ab.pow(2).sum(-1).clamp(min=1e-6)        # (copies, 784, S)
        nearest = a + u.clamp(0, 1)[..., None] * ab
        dist = (pixels - nearest).norm(dim=-1).min(-1).values                      # (copies, 784)
        ink = (width.view(-1, 1) - dist + 0.5).clamp(0, 1)                         # 1 px anti-aliased edge
        images.append(ink.view(copies, 1, 28, 28))
        labels.append(torch.full((copies,), label, dtype=torch.long, device=device))
    return torch.cat(images), torch.cat(labels)
