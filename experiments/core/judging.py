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
from experiments.core.guidance import Guidance
from experiments.core.metrics import Evaluator, frechet_distance_from_stats, gaussian_stats
from experiments.core.models import classifier as classifier_model
from experiments.core.section import Context

R = TypeVar("R")
# Batch i of every FID set of our models starts from the noise of seed offset SEED_BASE + i: sets of
# the same size and batch start from the same noise in every section, so their numbers line up.
SEED_BASE = 50_000


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


def balanced_labels(start: int, m: int, device: torch.device) -> torch.Tensor:
    """Classes 0..9 in turn for digits start..start+m-1 of a set (every set of n digits is balanced)."""
    return torch.arange(start, start + m, device=device) % 10


def sample_set(ctx: Context, net: torch.nn.Module, dcfg: DiffusionConfig, n: int, batch: int, *,
               guidance: Guidance | None = None, timesteps: list[int] | None = None, step: StepFn | None = None,
               start_moments: tuple[torch.Tensor, torch.Tensor] | None = None,
               class_moments: tuple[torch.Tensor, torch.Tensor] | None = None,
               seed_base: int = SEED_BASE) -> torch.Tensor:
    """n digits (n, 1, 28, 28), not clipped, in batches of `batch` (batch i from seed seed_base + i).

    guidance: class-conditioned, classes 0..9 in turn, guided so; default all T DDPM steps from N(0, I);
    start_moments: the moment-matched x_T of the whole data; class_moments: per-class (10, 1, 28, 28)
    mean and variance, each digit starting from the moment-matched x_T of its asked class.
    """
    out = []
    for i, start in enumerate(range(0, n, batch)):
        m = min(batch, n - start)
        y = balanced_labels(start, m, ctx.device) if guidance is not None else None
        moments = start_moments if class_moments is None else tuple(v[y] for v in class_moments)
        out.append(generate(ctx, net, dcfg, m, labels=y, guidance=guidance, seed_offset=seed_base + i,
                            timesteps=timesteps, step=step, start_moments=moments).x0)
    return torch.cat(out)


def warm_up(ctx: Context, net: torch.nn.Module, dcfg: DiffusionConfig, batch: int, guided: bool = False,
            step: StepFn | None = None) -> None:
    """Two untimed sampler steps (of `step`, default DDPM) at the batch size the timed runs use, so
    one-off costs (compiling for that shape, kernel selection) stay out of their timings."""
    if ctx.cuda:
        sample_set(ctx, net, dcfg, batch, batch, guidance=dcfg.guidance if guided else None,
                   timesteps=spaced_timesteps(dcfg.T, 2), step=step)


@dataclass
class Judged:
    """A set of generated digits and the classifier's view of it (all on the device)."""

    images: torch.Tensor              # (N, 1, 28, 28), clipped to [0, 1]
    labels: torch.Tensor | None       # (N,) asked classes, None for the time-conditioned model
    features: torch.Tensor            # (N, F) penultimate activations
    predicted: torch.Tensor           # (N,) classifier's classes
    wall_s: float                     # sampling time

    def fid(self, ev: Evaluator, n: int | None = None) -> float:
        """Classifier-FID of the first n digits (all by default) against the test split."""
        return frechet_distance_from_stats(*gaussian_stats(self.features[:n]), ev.test_mu, ev.test_cov)

    def accuracy(self, n: int | None = None) -> float:
        return float((self.predicted[:n] == self.labels[:n]).float().mean())


def judged(ctx: Context, ev: Evaluator, images: torch.Tensor, guided: bool, wall_s: float) -> Judged:
    """A sampled set (clipped here) as the classifier sees it; labels are the balanced classes when guided."""
    images = images.to(ctx.device).clamp(0, 1)
    features = ev.features(images)
    predicted = ev.classifier.head(features).argmax(1)        # forward = head(features): no second pass
    return Judged(images, balanced_labels(0, len(images), ctx.device) if guided else None, features, predicted, wall_s)


def draw(ctx: Context, ev: Evaluator, net: torch.nn.Module, dcfg: DiffusionConfig, n: int,
         guidance: Guidance | None, batch: int, stride: int = 1, *,
         class_moments: tuple[torch.Tensor, torch.Tensor] | None = None, clip_x0: bool = False,
         seed_base: int = SEED_BASE) -> Judged:
    """n digits (balanced classes 0..9 when guided) with the strided DDPM sampler, judged by the classifier.
    class_moments: start each digit from the moment-matched x_T of its class; clip_x0: see `ddpm_step_fn`."""
    step = ddpm_step_fn(diffusion_schedule(dcfg, ctx.device), clip_x0=clip_x0, compiled=ctx.compiled)
    images, wall = timed(lambda: sample_set(ctx, net, dcfg, n, batch, guidance=guidance, step=step,
                                            timesteps=strided_timesteps(dcfg.T, stride),
                                            class_moments=class_moments, seed_base=seed_base), ctx.device)
    return judged(ctx, ev, images, guidance is not None, wall)


def floor_fids(ev: Evaluator, train: torch.Tensor, counts: set[int]) -> dict[int, float]:
    """FID of the first n training digits against the test split, for each n used by a generated set."""
    feats = ev.features(train[:max(counts)])
    return {n: frechet_distance_from_stats(*gaussian_stats(feats[:n]), ev.test_mu, ev.test_cov) for n in counts}
