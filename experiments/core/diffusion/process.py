"""Forward process, x0 / eps conversions, DDPM, strided and DDIM steps, classifier-free guidance.

All functions are pure: tensors in, tensors out. `t` and `t_prev` are (B,) int64 indices, 0-based,
with t_prev = -1 meaning "the clean image" (abar = 1). Equations follow Ho et al. (2020) in the
writeup's notation; numbers in comments refer to the steps of the sampling algorithm on its model page.
"""
from __future__ import annotations

import torch

from experiments.core.diffusion.schedule import Schedule


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1) to broadcast against images."""
    return v.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def add_noise(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, sched: Schedule) -> torch.Tensor:
    """q(x_t | x0): x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
    abar = per_sample(sched.abar(t), x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * eps


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, sched: Schedule) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    return x0_from_eps(x_t, eps, per_sample(sched.abar(t), x_t))


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """`predict_x0` from the (B, 1, 1, 1) abar values of t."""
    return (x_t - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()


def predict_eps(x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, sched: Schedule) -> torch.Tensor:
    """The eps that maps x0 to x_t: (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
    abar = per_sample(sched.abar(t), x_t)
    return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()


def strided_step(x_t: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor,
                 sched: Schedule, noise: torch.Tensor | None) -> torch.Tensor:
    """Move from t to an earlier t_prev < t (any stride).

    alpha = abar_t / abar_{t'}, beta = 1 - alpha;
    x_{t'} = sqrt(abar_{t'}) beta / (1 - abar_t) x0_hat + sqrt(alpha) (1 - abar_{t'}) / (1 - abar_t) x_t
             + sqrt(beta) z,   with z = 0 when noise is None (the last step).
    At stride 1 this is exactly the DDPM step.
    """
    return strided_update(x_t, x0_hat, per_sample(sched.abar(t), x_t), per_sample(sched.abar(t_prev), x_t), noise)


def strided_update(x_t: torch.Tensor, x0_hat: torch.Tensor, abar_t: torch.Tensor, abar_prev: torch.Tensor,
                   noise: torch.Tensor | None) -> torch.Tensor:
    """`strided_step` from the (B, 1, 1, 1) abar values of t and t_prev: elementwise arithmetic only."""
    alpha = abar_t / abar_prev
    beta = 1 - alpha
    mean = abar_prev.sqrt() * beta / (1 - abar_t) * x0_hat + alpha.sqrt() * (1 - abar_prev) / (1 - abar_t) * x_t
    if noise is None:
        return mean
    return mean + beta.sqrt() * noise


def ddpm_update(x_t: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor, abar_prev: torch.Tensor,
                noise: torch.Tensor, clip_x0: bool) -> torch.Tensor:
    """The sampler's DDPM step from a noise estimate: x0_hat (clamped to [0, 1] with clip_x0), then
    `strided_update`. Pure elementwise work: the unit the GPU sampler compiles into one kernel."""
    x0_hat = x0_from_eps(x_t, eps, abar_t)
    if clip_x0:
        x0_hat = x0_hat.clamp(0, 1)
    return strided_update(x_t, x0_hat, abar_t, abar_prev, noise)


def ddpm_step(x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, sched: Schedule,
              noise: torch.Tensor | None) -> torch.Tensor:
    """One ancestral DDPM step t -> t - 1 from a noise estimate (spec: x_{t-1} from x0_hat and x_t)."""
    return strided_step(x_t, predict_x0(x_t, eps, t, sched), t, t - 1, sched, noise)


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor,
              sched: Schedule, eta: float = 0.0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """DDIM (Song et al. 2021): x_{t'} = sqrt(abar_{t'}) x0_hat + sqrt(1 - abar_{t'} - s^2) eps + s z."""
    return ddim_update(x_t, eps, per_sample(sched.abar(t), x_t), per_sample(sched.abar(t_prev), x_t), eta, noise)


def ddim_update(x_t: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor, abar_prev: torch.Tensor,
                eta: float, noise: torch.Tensor | None) -> torch.Tensor:
    """`ddim_step` from the (B, 1, 1, 1) abar values of t and t_prev: elementwise arithmetic only."""
    x0_hat = x0_from_eps(x_t, eps, abar_t)
    sigma = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).clamp(min=0).sqrt()
    out = abar_prev.sqrt() * x0_hat + (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * eps
    if noise is not None and eta > 0:
        out = out + sigma * noise
    return out


def matched_start(noise: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, sched: Schedule) -> torch.Tensor:
    """x_T with the first two moments of q(x_T) instead of N(0, I).

    When x0 has per-pixel mean m and variance v, x_T = sqrt(abar) x0 + sqrt(1 - abar) eps has mean
    sqrt(abar) m and variance abar v + 1 - abar (abar = abar_{T-1}). A short linear schedule leaves
    abar well above 0 (0.048 at T = 300: 22% of the signal), so pure noise misses the data's mean
    ink and a deterministic sampler (DDIM) never recovers it. noise: (B, ...) standard normal;
    mean, var: per-pixel (...) tensors broadcast over the batch.
    """
    abar = sched.abar(torch.full((noise.shape[0],), sched.T - 1, device=noise.device))
    abar = per_sample(abar, noise)
    return abar.sqrt() * mean.to(noise) + (abar * var.to(noise) + 1 - abar).sqrt() * noise


def cfg_combine(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance: eps = eps_u + gamma (eps_c - eps_u)."""
    return eps_uncond + gamma * (eps_cond - eps_uncond)


def strided_timesteps(T: int, stride: int, start: int | None = None) -> list[int]:
    """[start, start - stride, ..., >= 0]: the strided schedule (start defaults to T - 1)."""
    first = T - 1 if start is None else start
    return list(range(first, -1, -stride))
