"""The sampling loop, written once, with hooks for every trick.

    x <- x_T
    for (t, t') in pairs(timesteps):            # t' = next timestep, -1 after the last
        eps = estimate(x, t)                    # hook: model, CFG, anagram, hybrid...
        x   = step(x, eps, t, t', noise)        # hook: DDPM / strided (default) or DDIM
        x   = project(x, t')                    # hook: e.g. inpainting's known pixels

Noise is drawn every step and zeroed after the last one, so every iteration has the same shape of
work; on a GPU the iteration can then be captured once in a CUDA graph and replayed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from experiments.core.diffusion.process import cfg_combine, ddim_step, predict_eps, predict_x0, strided_step
from experiments.core.diffusion.schedule import Schedule
from experiments.core.models.unet import NUM_CLASSES

EstimateFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]          # (x_t, t) -> eps
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ProjectFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]           # (x_t', t') -> x_t'


@dataclass
class SampleResult:
    x0: torch.Tensor                 # (B, 1, 28, 28), not clipped
    frames: list[torch.Tensor]       # intermediate x_t (after each recorded step), on the device
    frame_steps: list[int]           # the t' each frame shows


def ddpm_step_fn(sched: Schedule, clip_x0: bool = False) -> StepFn:
    """The spec's (strided) DDPM update: x0_hat from eps, then the posterior mean plus sqrt(beta) z.

    clip_x0: clamp x0_hat to the data range [0, 1] first (Ho et al.'s `clip_denoised`): an estimate
    outside the range of any digit is pulled back before it steers the next mean.
    """

    def step(x_t, eps, t, t_prev, noise):
        x0_hat = predict_x0(x_t, eps, t, sched)
        if clip_x0:
            x0_hat = x0_hat.clamp(0, 1)
        return strided_step(x_t, x0_hat, t, t_prev, sched, noise)

    return step


def ddim_step_fn(sched: Schedule, eta: float = 0.0) -> StepFn:
    def step(x_t, eps, t, t_prev, noise):
        return ddim_step(x_t, eps, t, t_prev, sched, eta=eta, noise=noise)

    return step


def model_estimate(model: torch.nn.Module, sched: Schedule, predict: str = "eps",
                   classes: torch.Tensor | None = None) -> EstimateFn:
    """eps from the UNet at (x_t, t/T, c); converts an x0-predicting model's output to eps."""

    def estimate(x_t, t):
        out = model(x_t, t.float() / sched.T, classes)
        if predict == "eps":
            return out
        if len(out) != len(x_t):               # one x_t under several conditionings (see guided_estimate)
            x_t = x_t.repeat(len(out) // len(x_t), 1, 1, 1)
        return predict_eps(x_t, out, t, sched)

    return estimate


def interval_gamma(t: torch.Tensor, gamma: float, interval: tuple[int, int] | None) -> float | torch.Tensor:
    """Guidance scale per sample: gamma for lo <= t <= hi, plain conditional (1) outside.

    Guidance in a limited interval (Kynkaanniemi et al. 2024): strong guidance at the noisiest
    steps collapses diversity and at the last steps only sharpens; in the middle it fixes the class.
    Returns a (B, 1, 1, 1) tensor (graph-safe: computed from the t buffer), or gamma itself.
    """
    if interval is None:
        return gamma
    lo, hi = interval
    inside = (t >= lo) & (t <= hi)
    return torch.where(inside, gamma, 1.0).view(-1, 1, 1, 1)


def guided_estimate(model: torch.nn.Module, sched: Schedule, labels: torch.Tensor, gamma: float,
                    predict: str = "eps", interval: tuple[int, int] | None = None) -> EstimateFn:
    """Classifier-free guidance in one batch: classes [c | 0] for the same x_t (the UNet runs its
    encoder once and its decoder on both halves); with `interval` (lo, hi) the scale is gamma only
    for lo <= t <= hi and 1 elsewhere."""
    c = F.one_hot(labels, NUM_CLASSES).float()
    both = torch.cat([c, torch.zeros_like(c)])                        # (2B, 10)
    inner = model_estimate(model, sched, predict, both)

    def estimate(x_t, t):
        eps = inner(x_t, torch.cat([t, t]))                           # (2B, 1, 28, 28)
        eps_cond, eps_uncond = eps.chunk(2)
        return cfg_combine(eps_uncond, eps_cond, interval_gamma(t, gamma, interval))

    return estimate


def timestep_pairs(timesteps: list[int]) -> list[tuple[int, int]]:
    return list(zip(timesteps, timesteps[1:] + [-1]))


@torch.no_grad()
def sample(x_T: torch.Tensor, timesteps: list[int], estimate: EstimateFn, step: StepFn,
           project: ProjectFn | None = None, record_every: int = 0,
           generator: torch.Generator | None = None, autocast: bool = False,
           graphed: bool = False) -> SampleResult:
    """Run the loop from x_T over descending `timesteps` (e.g. T-1..0 or a strided list)."""
    device, batch = x_T.device, x_T.shape[0]
    x = x_T.clone()
    t_buf = torch.zeros(batch, dtype=torch.long, device=device)
    t_prev_buf = torch.zeros(batch, dtype=torch.long, device=device)
    noise_buf = torch.empty_like(x)

    def body():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            eps = estimate(x, t_buf).float()
        keep = (t_prev_buf >= 0).to(x.dtype).view(-1, 1, 1, 1)     # z = 0 on the last step
        new = step(x, eps, t_buf, t_prev_buf, noise_buf * keep)
        if project is not None:
            new = project(new, t_prev_buf)
        x.copy_(new)

    graph = None
    if graphed and device.type == "cuda" and generator is None:
        t_buf.fill_(timesteps[0]); t_prev_buf.fill_(timesteps[0] - 1)
        saved = x.clone()
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            body()                                                  # warm-up (discarded)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            noise_buf.normal_()
            body()
        x.copy_(saved)

    frames, frame_steps = [], []
    pairs = timestep_pairs(timesteps)
    for i, (t, t_prev) in enumerate(pairs):
        t_buf.fill_(t)
        t_prev_buf.fill_(t_prev)
        if graph is not None:
            graph.replay()
        else:
            noise_buf.normal_(generator=generator) if generator is not None else noise_buf.normal_()
            body()
        if record_every and (i % record_every == record_every - 1 or i == len(pairs) - 1):
            frames.append(x.clone())
            frame_steps.append(t_prev)
    return SampleResult(x, frames, frame_steps)
