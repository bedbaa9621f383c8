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

from experiments.core.diffusion.process import per_sample, cfg_combine, ddim_update, ddpm_update, predict_eps
from experiments.core.diffusion.schedule import Schedule
from experiments.core.guidance import Guidance, scale_at
from experiments.core.models.unet import NUM_CLASSES

EstimateFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]          # (x_t, t) -> eps
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ProjectFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]           # (x_t', t') -> x_t'


@dataclass
class SampleResult:
    x0: torch.Tensor                 # (B, 1, 28, 28), not clipped
    frames: list[torch.Tensor]       # intermediate x_t (after each recorded step), on the device
    frame_steps: list[int]           # the t' each frame shows


_COMPILED: dict[Callable, Callable] = {}


def _update(fn: Callable, compiled: bool) -> Callable:
    """fn, or its torch.compile'd twin (one per function for the whole process, so every sampling call of a
    section reuses the same compiled code; dynamic=False: one kernel per batch shape)."""
    if not compiled:
        return fn
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=False)
    return _COMPILED[fn]


def ddpm_step_fn(sched: Schedule, clip_x0: bool = False, compiled: bool = False) -> StepFn:
    """The (strided) DDPM update: x0_hat from eps, then the posterior mean plus sqrt(beta) z.

    clip_x0: clamp x0_hat to the data range [0, 1] first (Ho et al.'s `clip_denoised`): an estimate
    outside the range of any digit is pulled back before it steers the next mean. compiled: the
    elementwise arithmetic as one compiled kernel (GPU sampling; same maths).
    """
    update = _update(ddpm_update, compiled)

    def step(x_t, eps, t, t_prev, noise):
        return update(x_t, eps, per_sample(sched.abar(t), x_t), per_sample(sched.abar(t_prev), x_t), noise, clip_x0)

    return step


def ddim_step_fn(sched: Schedule, eta: float = 0.0, compiled: bool = False) -> StepFn:
    """DDIM's update (see `process.ddim_step`); compiled as for `ddpm_step_fn`."""
    update = _update(ddim_update, compiled)

    def step(x_t, eps, t, t_prev, noise):
        return update(x_t, eps, per_sample(sched.abar(t), x_t), per_sample(sched.abar(t_prev), x_t), eta, noise)

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


def guided_estimate(model: torch.nn.Module, sched: Schedule, labels: torch.Tensor,
                    guidance: Guidance | float | torch.Tensor, predict: str = "eps") -> EstimateFn:
    """Classifier-free guidance in one batch: classes [c | 0] for the same x_t (the UNet runs its
    encoder once and its decoder on both halves). `guidance`: a Guidance (scale, and the interval of t
    it applies to), or a plain scale (a number, or a (B, 1, 1, 1) tensor of one scale per row)."""
    c = F.one_hot(labels, NUM_CLASSES).float()
    both = torch.cat([c, torch.zeros_like(c)])                        # (2B, 10)
    inner = model_estimate(model, sched, predict, both)

    def estimate(x_t, t):
        eps = inner(x_t, torch.cat([t, t]))                           # (2B, 1, 28, 28)
        eps_cond, eps_uncond = eps.chunk(2)
        return cfg_combine(eps_uncond, eps_cond, scale_at(guidance, t))

    return estimate


def capture_step(state: torch.Tensor, noise: torch.Tensor, body: Callable[[], None]) -> torch.cuda.CUDAGraph:
    """One sampler step in a CUDA graph: `body` (which updates `state` in place) runs once on a side stream
    (compiling and warming up for these shapes), then a fresh draw into `noise` and `body` are captured;
    `state` is left as it was. Replay the graph once per step, after refreshing its input buffers."""
    device = state.device
    saved = state.clone()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        body()                                                      # warm-up (discarded)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        noise.normal_()
        body()
    state.copy_(saved)
    return graph


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
        graph = capture_step(x, noise_buf, body)

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
