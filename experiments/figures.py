"""Figures: digit grids (torchvision's make_grid), loss curves, line plots, histograms, GIFs.

Every drawing function is `redrawable`: beside each figure it writes `<figure file>.npz`, the small
arrays and arguments it was drawn from (digit images as uint8, exactly what is shown), so a change to
how figures look is redrawn on the CPU from those arrays (`redraw`) without rerunning a section.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import json
import os
import textwrap
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import imageio.v3 as iio  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DPI = 110
LABEL_CHAR_IN = 0.085         # inches per character of an 11 pt label (DejaVu Sans, on average)
ROW_LABEL_CHARS = 24          # longer row labels wrap: a two-line label takes less width from the digits
# right-hand series of a line plot (dotted): each its own colour and marker, so several stay apart
SECOND_STYLES = (("tab:red", "s"), ("tab:purple", "^"), ("tab:brown", "D"), ("tab:pink", "v"), ("tab:olive", "P"))
DATA_SUFFIX = ".npz"                  # figure data: `<figure file>.npz` beside the figure
DRAWERS: dict[str, Callable[..., None]] = {}    # function name -> the undecorated drawing function


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Arguments -> JSON, with arrays moved into `arrays` (image batches as uint8, as displayed)."""
    if isinstance(value, torch.Tensor):
        key = f"a{len(arrays)}"
        data = value.detach().float().cpu()
        if data.dim() == 4:                  # (N, C, H, W) images in [0, 1]: drawn clipped, stored as shown
            arrays[key] = (data.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            return {"__array__": key, "as": "images"}
        arrays[key] = data.numpy()
        return {"__array__": key, "as": "tensor"}
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__array__": key, "as": "array"}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot keep a {type(value).__name__} as figure data")


def _decode(value: Any, arrays: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if isinstance(value, dict):
        if "__array__" in value:
            data = arrays[value["__array__"]]
            if value["as"] == "images":
                return torch.from_numpy(data.astype(np.float32) / 255.0)
            return torch.from_numpy(data) if value["as"] == "tensor" else data
        if "__tuple__" in value:
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__dict__"]}
    return value


def data_path(figure: Path) -> Path:
    return figure.with_name(figure.name + DATA_SUFFIX)


def redrawable(draw: Callable[..., None]) -> Callable[..., None]:
    """Decorate a drawing function `draw(path, ...)`: also keep its arguments in `<path>.npz`."""
    signature = inspect.signature(draw)
    DRAWERS[draw.__name__] = draw

    @functools.wraps(draw)
    def wrapper(path: Path, *args: Any, **kwargs: Any) -> None:
        draw(path, *args, **kwargs)
        bound = signature.bind(path, *args, **kwargs)          # defaults stay out: a redraw takes today's
        arrays: dict[str, np.ndarray] = {}
        call = {"draw": draw.__name__, "args": _encode({k: v for k, v in bound.arguments.items()
                                                       if k != "path"}, arrays)}
        target = data_path(Path(path))
        partial = target.with_name(target.name + ".partial.npz")
        np.savez_compressed(partial, __call__=np.array(json.dumps(call)), **arrays)
        os.replace(partial, target)

    return wrapper


def redraw(figure: Path) -> None:
    """Draw `figure` again from the data beside it, with today's drawing code (atomic replace)."""
    with np.load(data_path(figure), allow_pickle=False) as data:
        call = json.loads(str(data["__call__"]))
        kwargs = _decode(call["args"], data)
    draw = DRAWERS.get(call["draw"])
    if draw is None:
        raise KeyError(f"no drawing function {call['draw']!r} for {figure.name}")
    partial = figure.with_name(f"{figure.stem}.partial{figure.suffix}")
    draw(partial, **{str(k): v for k, v in kwargs.items()})
    os.replace(partial, figure)


def _to_uint8(images: torch.Tensor, nrow: int, scale: int = 1, pad: int = 2) -> np.ndarray:
    """(N, 1, 28, 28) in [0, 1] -> (H, W) uint8 grid; values are clipped for display only."""
    from torchvision.utils import make_grid   # here: importing torchvision costs every process seconds

    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=pad, pad_value=1.0)
    arr = (grid[0].numpy() * 255).round().astype(np.uint8)
    if scale > 1:
        arr = arr.repeat(scale, axis=0).repeat(scale, axis=1)
    return arr


@redrawable
def save_grid(path: Path, images: torch.Tensor, nrow: int, scale: int = 2) -> None:
    """A plain image grid (nearest-neighbour upscaled so digits stay crisp in the browser)."""
    iio.imwrite(path, _to_uint8(images, nrow, scale))


def example_labels(n: int, item: str = "digit") -> list[str]:
    """Row labels for the first n test images: 'test digit #1', ... ('digit 1' would read as the class 1)."""
    return [f"test {item} #{i + 1}" for i in range(n)]


def _wrap(label: str, chars: int) -> str:
    """`label` broken at spaces into lines of at most `chars` characters (a longer word stays whole, and
    so do 'x = 1' and 't ≤ 80'); the line breaks it already has are kept."""
    # no-break spaces around '=' and '≤': textwrap breaks only at ASCII whitespace
    kept = label.replace(" = ", "\u00a0=\u00a0").replace(" ≤ ", "\u00a0≤\u00a0")
    lines = [textwrap.fill(line, chars, break_long_words=False, break_on_hyphens=False) or line
             for line in kept.split("\n")]
    return "\n".join(lines).replace("\u00a0", " ")


def _lines(labels: Sequence[str]) -> list[str]:
    return [line for label in labels for line in label.split("\n")]


@redrawable
def save_labelled_grid(path: Path, rows: Sequence[torch.Tensor], row_labels: Sequence[str],
                       col_labels: Sequence[str] | None = None, title: str | None = None,
                       cell: float = 0.75, max_cols: int = 10) -> None:
    """A matplotlib figure: one row of digits per entry of `rows`, labelled on the left/top.

    Rows longer than `max_cols` wrap into blocks of `max_cols` columns (each block repeats the row labels
    and carries its own column labels), so a long strip becomes a grid that stays legible at page width.
    Labels wrap at spaces: column labels to the width of a cell (so neighbours do not run into each
    other), row labels past ROW_LABEL_CHARS; the figure widens for its row labels instead of shrinking
    the digits."""
    row_labels = [_wrap(label, ROW_LABEL_CHARS) for label in row_labels]
    if col_labels is not None:
        col_labels = [_wrap(label, max(4, int(cell / LABEL_CHAR_IN))) for label in col_labels]
    width = max(r.shape[0] for r in rows)
    if width > max_cols:
        blocks = range(0, width, max_cols)
        rows = [r[b:b + max_cols] for b in blocks for r in rows]
        row_labels = [label for _ in blocks for label in row_labels]
        per_block = len(rows) // len(blocks)
        col_labels = [list(col_labels[b:b + max_cols]) if col_labels is not None else None for b in blocks]
    else:
        per_block = len(rows)
        col_labels = [list(col_labels) if col_labels is not None else None]
    n_rows, n_cols = len(rows), min(width, max_cols)
    label_width = max(1.4, LABEL_CHAR_IN * max(len(line) for line in _lines(row_labels)) + 0.3)
    title_lines = sum(max((label.count("\n") for label in labels), default=0) for labels in col_labels if labels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + label_width,
                                                      cell * n_rows + (0.5 if title else 0.2) + 0.2 * title_lines),
                             squeeze=False)
    for i, row in enumerate(rows):
        labels = col_labels[i // per_block]
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([]); ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < row.shape[0]:
                ax.imshow(row[j, 0].detach().float().clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=11)
            if i % per_block == 0 and labels is not None and j < len(labels):
                ax.set_title(labels[j], fontsize=11)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def smooth(values: Sequence[float], window: int, geometric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(steps, centred moving average) where the whole window fits: a trailing average lags behind a
    falling loss and sits above it, and a warm-up over a shorter window bends the curve's start. On a
    log axis the average is geometric, so a steep exponential fall is not pulled up by its first steps."""
    v = np.asarray(values, dtype=float)
    steps = np.arange(1, len(v) + 1)
    if window <= 1 or len(v) < window:
        return steps, v
    kernel = np.ones(window) / window
    averaged = np.exp(np.convolve(np.log(v), kernel, mode="valid")) if geometric else np.convolve(v, kernel, mode="valid")
    return steps[window // 2: window // 2 + len(averaged)], averaged


@redrawable
def save_loss_curve(path: Path, losses: Sequence[float], steps_per_epoch: int, title: str,
                    log_y: bool = True) -> None:
    """Raw per-step loss (faint) with a moving average on top; epoch boundaries on a second axis."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.7, label="per step")
    window = max(1, min(100, len(losses) // 20))
    log_y = log_y and min(losses) > 0
    ax.plot(*smooth(losses, window, geometric=log_y), color="tab:blue", linewidth=1.6,
            label=f"centred moving average ({window})")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step"); ax.set_ylabel("loss"); ax.set_title(title)
    ax.grid(alpha=0.3); ax.legend(loc="upper right", fontsize=8)
    if steps_per_epoch and len(losses) > steps_per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
        top.set_xlabel("epoch")
    fig.tight_layout(); fig.savefig(path, dpi=DPI); plt.close(fig)


@redrawable
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
        for (name, ys), (color, marker) in zip(second["series"].items(), itertools.cycle(SECOND_STYLES)):
            ax2.plot(x, ys, marker=marker, linestyle=":", color=color, label=name)
        ax2.set_ylabel(second["ylabel"])
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
        # below the plot: loc="best" sees only the left axis, so it could cover the right axis's lines
        ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    else:
        ax.legend(handles, labels, fontsize=8, loc="best")
    fig.tight_layout(); fig.savefig(path, dpi=DPI); plt.close(fig)


@redrawable
def save_histograms(path: Path, samples: dict[str, Sequence[float]], xlabel: str, title: str, bins: int = 40) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, values in samples.items():
        ax.hist(np.asarray(values), bins=bins, alpha=0.5, density=True, label=name)
    ax.set_xlabel(xlabel); ax.set_ylabel("density"); ax.set_title(title); ax.legend(fontsize=8); ax.grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(path, dpi=DPI); plt.close(fig)


@redrawable
def save_gif(path: Path, frames: Sequence[torch.Tensor], nrow: int, scale: int = 1, fps: int = 12,
             hold_last: int = 12, poster: int = 12) -> None:
    """Animate a list of (N, 1, 28, 28) batches as one grid per frame; the last frame is held.
    The animation opens on its result, held for `poster` frames, so a viewer that shows only the first
    frame (print, reduced motion) shows digits, not noise. Native scale: noisy frames barely compress,
    so 2x would be 4x the bytes; the page scales it up."""
    images = [_to_uint8(f, nrow, scale) for f in frames]
    images = [images[-1]] * poster + images + [images[-1]] * hold_last
    iio.imwrite(path, np.stack(images), extension=".gif", duration=1000 / fps, loop=0)


def save_trajectory_strip(path: Path, frames: Sequence[torch.Tensor], frame_steps: Sequence[int],
                          row_labels: Sequence[str], columns: int = 8) -> None:
    """A sampling trajectory as a still grid for print: one row per sample (the first len(row_labels)
    of each frame), `columns` evenly spaced frames from the first to the last, titled with their step."""
    k = min(columns, len(frames))
    picks = sorted({round(i * (len(frames) - 1) / max(k - 1, 1)) for i in range(k)})
    rows = [torch.stack([frames[i][r] for i in picks]) for r in range(len(row_labels))]
    save_labelled_grid(path, rows, row_labels, [f"t = {max(frame_steps[i], 0)}" for i in picks], max_cols=columns)
