"""Figures: digit grids (torchvision's make_grid), loss curves, line plots, histograms, GIFs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import imageio.v3 as iio  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DPI = 110


def _to_uint8(images: torch.Tensor, nrow: int, scale: int = 1, pad: int = 2) -> np.ndarray:
    """(N, 1, 28, 28) in [0, 1] -> (H, W) uint8 grid; values are clipped for display only."""
    from torchvision.utils import make_grid   # here: importing torchvision costs every process seconds

    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=pad, pad_value=1.0)
    arr = (grid[0].numpy() * 255).round().astype(np.uint8)
    if scale > 1:
        arr = arr.repeat(scale, axis=0).repeat(scale, axis=1)
    return arr


def save_grid(path: Path, images: torch.Tensor, nrow: int, scale: int = 2) -> None:
    """A plain image grid (nearest-neighbour upscaled so digits stay crisp in the browser)."""
    iio.imwrite(path, _to_uint8(images, nrow, scale))


def save_labelled_grid(path: Path, rows: Sequence[torch.Tensor], row_labels: Sequence[str],
                       col_labels: Sequence[str] | None = None, title: str | None = None,
                       cell: float = 0.9) -> None:
    """A matplotlib figure: one row of digits per entry of `rows`, labelled on the left/top."""
    n_rows, n_cols = len(rows), max(r.shape[0] for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + 1.2, cell * n_rows + (0.5 if title else 0.2)),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([]); ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < row.shape[0]:
                ax.imshow(row[j, 0].detach().float().clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=9)
            if i == 0 and col_labels is not None and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < window:
        return v
    kernel = np.ones(window) / window
    head = np.cumsum(v[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(v, kernel, mode="valid")])


def save_loss_curve(path: Path, losses: Sequence[float], steps_per_epoch: int, title: str,
                    log_y: bool = True) -> None:
    """Raw per-step loss (faint) with a moving average on top; epoch boundaries on a second axis."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.7, label="per step")
    window = max(1, min(100, len(losses) // 20))
    ax.plot(steps, smooth(losses, window), color="tab:blue", linewidth=1.6, label=f"moving average ({window})")
    if log_y and min(losses) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step"); ax.set_ylabel("loss"); ax.set_title(title)
    ax.grid(alpha=0.3); ax.legend(loc="upper right", fontsize=8)
    if steps_per_epoch and len(losses) > steps_per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
        top.set_xlabel("epoch")
    fig.tight_layout(); fig.savefig(path, dpi=DPI); plt.close(fig)


def save_line_plot(path: Path, x: Sequence[float], series: dict[str, Sequence[float]], xlabel: str,
                   ylabel: str, title: str, log_x: bool = False, log_y: bool = False,
                   hline: tuple[float, str] | None = None, second: dict | None = None) -> None:
    """Lines with markers; `second` = {'ylabel':..., 'series': {...}} draws on a right-hand axis."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, ys in series.items():
        ax.plot(x, ys, marker="o", label=name)
    if hline is not None:
        ax.axhline(hline[0], color="gray", linestyle="--", linewidth=1, label=hline[1])
    if log_x:
        ax.set_xscale("log")
        ax.set_xticks(list(x), [f"{v:g}" for v in x])    # the measured points, not 2x10^1-style labels
        ax.minorticks_off()
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel); ax.set_ylabel(ylabel); ax.set_title(title); ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if second:
        ax2 = ax.twinx()
        for name, ys in second["series"].items():
            ax2.plot(x, ys, marker="s", linestyle=":", color="tab:red", label=name)
        ax2.set_ylabel(second["ylabel"])
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=8, loc="best")
    fig.tight_layout(); fig.savefig(path, dpi=DPI); plt.close(fig)


def save_histograms(path: Path, samples: dict[str, Sequence[float]], xlabel: str, title: str, bins: int = 40) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, values in samples.items():
        ax.hist(np.asarray(values), bins=bins, alpha=0.5, density=True, label=name)
    ax.set_xlabel(xlabel); ax.set_ylabel("density"); ax.set_title(title); ax.legend(fontsize=8); ax.grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(path, dpi=DPI); plt.close(fig)


def save_gif(path: Path, frames: Sequence[torch.Tensor], nrow: int, scale: int = 1, fps: int = 12,
             hold_last: int = 12) -> None:
    """Animate a list of (N, 1, 28, 28) batches as one grid per frame; the last frame is held.
    Native scale: noisy frames barely compress, so 2x would be 4x the bytes; the page scales it up."""
    images = [_to_uint8(f, nrow, scale) for f in frames]
    images += [images[-1]] * hold_last
    iio.imwrite(path, np.stack(images), extension=".gif", duration=1000 / fps, loop=0)
