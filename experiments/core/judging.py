"""Judging generated digits with the trained classifier: sets of samples, their FID and class accuracy.

Also evenly spaced timesteps for few-step samplers and wall-clock timing that waits for the GPU.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from experiments.core import checkpoints
from experiments.core.config import DiffusionConfig
from experiments.core.ddpm import diffusion_schedule, generate
from experiments.core.diffusion.process import strided_timesteps
from experiments.core.diffusion.sampling import StepFn, ddpm_step_fn
from experiments.core.metrics import Evaluator, frechet_distance_from_stats, gaussian_stats
from experiments.core.models import classifier as classifier_model
from experiments.core.section import Context

R = TypeVar("R")
SEED_BASE = 50_000            # seed offsets of evaluation batches (batch i uses SEED_BASE + i)
SAMPLE_SEED_OFFSET = 777      # one starting noise for every FID sample of our model: numbers agree across sections


def judge(ctx: Context, test_images: int) -> Evaluator:
    """The trained classifier (section "classifier") with test-split statistics cached."""
    classifier, _ = checkpoints.load(ctx, "classifier", classifier_model.from_spec)
    return Evaluator.build(classifier, ctx.test_split(test_images).images)


def spaced_timesteps(T: int, n: int) -> list[int]:
    """n descending timesteps in [0, T): T-1 first, evenly spread ("trailing": n = T gives T-1..0)."""
    if not 1 <= n <= T:
        raise ValueError(f"steps must be in 1..{T}, got {n}")
    return [round(T - i * T / n) - 1 for i in range(n)]


def timed(fn: Callable[[], R], device: torch.device) -> tuple[R, float]:
    """Run fn and return (its result, wall seconds), waiting for queued GPU work on both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def sample_ours(ctx: Context, model: torch.nn.Module, dcfg, n: int, timesteps: list[int] | None = None,
                step: StepFn | None = None, batch: int = 5000,
                start_moments: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """n digits (n, 1, 28, 28) from our UNet with the shared loop (default: all T DDPM steps), in batches;
    start_moments: begin from the moment-matched x_T instead of pure noise (see `matched_start`)."""
    out = []
    for i, start in enumerate(range(0, n, batch)):
        res = generate(ctx, model, dcfg, min(batch, n - start), timesteps=timesteps, step=step,
                       seed_offset=SAMPLE_SEED_OFFSET + i, start_moments=start_moments)
        out.append(res.x0)
    return torch.cat(out)


def warm_up(ctx: Context, model: torch.nn.Module, dcfg) -> None:
    """A tiny untimed sampling run so one-off costs (kernel selection, lazy init) stay out of timings."""
    if ctx.cuda:
        sample_ours(ctx, model, dcfg, 8, timesteps=spaced_timesteps(dcfg.T, 2))


@dataclass
class Judged:
    """A set of generated digits and the classifier's view of it (all on the device)."""

    images: torch.Tensor              # (N, 1, 28, 28), clipped to [0, 1]
    labels: torch.Tensor | None       # (N,) asked classes, None for the time-conditioned model
    features: torch.Tensor            # (N, F) penultimate activations
    predicted: torch.Tensor           # (N,) classifier's classes
    wall_s: float                     # sampling time

    def fid(self, ev: Evaluator, n: int) -> float:
        """Classifier-FID of the first n digits against the test split."""
        return frechet_distance_from_stats(*gaussian_stats(self.features[:n]), ev.test_mu, ev.test_cov)

    def accuracy(self, n: int) -> float:
        return float((self.predicted[:n] == self.labels[:n]).float().mean())


def draw(ctx: Context, ev: Evaluator, net: torch.nn.Module, dcfg: DiffusionConfig, n: int,
         gamma: float | None, batch: int, stride: int = 1, interval: tuple[int, int] | None = None, *,
         class_moments: tuple[torch.Tensor, torch.Tensor] | None = None, clip_x0: bool = False,
         seed_base: int = SEED_BASE) -> Judged:
    """n digits in batches (balanced classes 0..9 when gamma is given), judged by the classifier.
    Batch i always starts from the same noise (seed seed_base + i), so sets are comparable.
    class_moments: per-class (10, 1, 28, 28) mean and variance of the training digits: each digit
    then starts from the moment-matched x_T of its asked class; clip_x0: see `ddpm_step_fn`."""
    timesteps = strided_timesteps(dcfg.T, stride)
    step = ddpm_step_fn(diffusion_schedule(dcfg, ctx.device), clip_x0=clip_x0)
    t0 = time.perf_counter()
    chunks, labels = [], []
    for i, start in enumerate(range(0, n, batch)):
        m = min(batch, n - start)
        y = torch.arange(start, start + m, device=ctx.device) % 10 if gamma is not None else None
        moments = None if class_moments is None else tuple(v[y] for v in class_moments)
        result = generate(ctx, net, dcfg, m, labels=y, gamma=gamma, seed_offset=seed_base + i, timesteps=timesteps,
                          interval=interval, step=step, start_moments=moments)
        chunks.append(result.x0.clamp(0, 1))
        labels.append(y)
    images = torch.cat(chunks)
    features = ev.features(images)
    predicted = ev.classifier.head(features).argmax(1)        # forward = head(features): no second pass
    if ctx.cuda:
        torch.cuda.synchronize(ctx.device)
    return Judged(images, torch.cat(labels) if gamma is not None else None, features, predicted,
                  time.perf_counter() - t0)


def floor_fids(ev: Evaluator, train: torch.Tensor, counts: set[int]) -> dict[int, float]:
    """FID of the first n training digits against the test split, for each n used by a generated set."""
    feats = ev.features(train[:max(counts)])
    return {n: frechet_distance_from_stats(*gaussian_stats(feats[:n]), ev.test_mu, ev.test_cov) for n in counts}
