"""Helpers shared by the "beyond the reference" sections (peer, ablations, fast sampling).

Judging samples with the classifier section's Evaluator, evenly spaced timesteps for few-step
samplers, and wall-clock timing that waits for the GPU. Registers no section.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

import torch

from experiments.context import Context
from experiments.diffusion.sampling import StepFn
from experiments.metrics import Evaluator
from experiments.sections.common import generate

R = TypeVar("R")
SAMPLE_SEED_OFFSET = 777      # one starting noise for every FID sample of our model: numbers agree across sections


def judge(ctx: Context, test_images: int) -> Evaluator:
    """The trained classifier (section "classifier") with test-split statistics cached."""
    classifier, _ = ctx.model("classifier")
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
