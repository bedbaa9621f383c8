"""The Part 3 tricks as small hooks for the one sampling loop (`sampling.sample`), never a copy of it.

- SDEdit: `sdedit_start` noises a clean image to the strided index i_start; the loop runs from there.
- Inpainting: `inpaint_projection` is a `project` hook, x_t <- m x_t + (1 - m) forward(x_orig, t),
  with m = 1 where new content is generated and the known pixels exact at t = -1 (the clean image).
- Visual anagrams: `anagram_estimate`, eps = (eps(x_t, c1) + flip(eps(flip(x_t), c2))) / 2.
- Hybrid images: `hybrid_estimate`, eps = lowpass(eps(x_t, c1)) + highpass(eps(x_t, c2)).
- Class-conditional edits are SDEdit with `sampling.guided_estimate` towards the target class.

Every estimate applies classifier-free guidance per condition and evaluates all rows it needs in ONE
forward pass, so the loop's iteration stays a fixed amount of work (CUDA-graph friendly: no host sync,
constant class tensors built once). Images are (B, 1, 28, 28) in [0, 1]; t is 0-based, t = -1 clean.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from experiments.core.diffusion.process import add_noise, cfg_combine
from experiments.core.diffusion.sampling import EstimateFn, ProjectFn, model_estimate
from experiments.core.diffusion.schedule import Schedule
from experiments.core.guidance import Guidance, scale_at
from experiments.errors import UserError
from experiments.core.models.unet import NUM_CLASSES

FLIPS = ("rotate180", "vertical")


# ---- image operators ------------------------------------------------------------------------------
def flip(x: torch.Tensor, kind: str = "rotate180") -> torch.Tensor:
    """Turn images upside down: (B, C, H, W) -> same. Both kinds are involutions (flip(flip(x)) = x).

    "rotate180" (flip rows and columns) is how a digit is read upside down: a 6 becomes a 9.
    "vertical" mirrors the rows only, as the text-to-image version of the trick does.
    """
    if kind == "rotate180":
        return torch.flip(x, dims=(-2, -1))
    if kind == "vertical":
        return torch.flip(x, dims=(-2,))
    raise UserError(f"unknown flip {kind!r} (choose from {', '.join(FLIPS)})")


def gaussian_kernel(sigma: float, device: torch.device | str | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian of odd length 2 ceil(3 sigma) + 1: shape (K,), float32.

    For 28 px digits sigma ~ 1 px (7 taps) keeps the coarse shape of a stroke and removes its edges,
    as sigma = 2 on a 64 px image does for the text-to-image version. Build it once, outside a hook:
    a hook runs inside a CUDA graph, where no host-to-device copy may happen.
    """
    if not sigma > 0:
        raise UserError(f"blur sigma must be > 0, got {sigma}")
    radius = max(1, math.ceil(3 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (grid / sigma) ** 2)
    return (k / k.sum()).to(dtype=torch.float32, device=device)


def lowpass(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable blur with reflected borders: (B, C, H, W) -> same; linear in x."""
    r, c = kernel.numel() // 2, x.shape[1]
    if r >= min(x.shape[-2:]):
        raise UserError(f"a {kernel.numel()}-tap blur is too large for {tuple(x.shape[-2:])} images")
    k = kernel.to(x.dtype)
    y = F.pad(x, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)     # along W: (B, C, H + 2r, W)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along H: (B, C, H, W)


def highpass(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """identity - lowpass, so lowpass(x) + highpass(x) = x."""
    return x - lowpass(x, kernel)


# ---- SDEdit -----------------------------------------------------------------------------------------
def sdedit_start(x0: torch.Tensor, timesteps: list[int], i_start: int, sched: Schedule,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[int]]:
    """Noise clean images to timesteps[i_start]; returns (x_t, the timesteps left to run from there)."""
    if not 0 <= i_start < len(timesteps):
        raise UserError(f"i_start {i_start} outside the {len(timesteps)} strided timesteps "
                        f"(0..{len(timesteps) - 1}); use a smaller stride or i_start")
    t = torch.full((x0.shape[0],), timesteps[i_start], dtype=torch.long, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return add_noise(x0, eps, t, sched), timesteps[i_start:]


# ---- inpainting -------------------------------------------------------------------------------------
def inpaint_projection(x_orig: torch.Tensor, mask: torch.Tensor, sched: Schedule) -> ProjectFn:
    """Project hook: keep generated pixels where mask is True, the original noised to t' elsewhere.

    x_orig (B, 1, H, W) and mask (B or 1, 1, H, W) bool (True = fill in). At t' = -1 the known pixels
    are x_orig itself (selected, not computed), so the final image equals x_orig exactly outside the
    mask. Fresh noise comes from torch's default generator, which CUDA graphs can capture.
    """
    if mask.dtype != torch.bool:
        raise UserError("inpainting mask must be a bool tensor (True = region to generate)")

    def project(x: torch.Tensor, t_prev: torch.Tensor) -> torch.Tensor:
        noised = add_noise(x_orig, torch.randn_like(x_orig), t_prev.clamp(min=0), sched)
        known = torch.where((t_prev >= 0).view(-1, 1, 1, 1), noised, x_orig)
        return torch.where(mask, x, known)

    return project


# ---- noise estimates --------------------------------------------------------------------------------
def _one_hot(labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels.long(), NUM_CLASSES).float()


def unconditional_estimate(model: torch.nn.Module, sched: Schedule, n: int, device: torch.device,
                           predict: str = "eps") -> EstimateFn:
    """eps(x_t, t, c = 0): the class-conditioned model with its class dropped (no guidance)."""
    return model_estimate(model, sched, predict, torch.zeros(n, NUM_CLASSES, device=device))


def anagram_estimate(model: torch.nn.Module, sched: Schedule, c1: torch.Tensor, c2: torch.Tensor,
                     guidance: Guidance | float, predict: str = "eps", flip_kind: str = "rotate180") -> EstimateFn:
    """eps = (eps_g(x_t, c1) + flip(eps_g(flip(x_t), c2))) / 2, eps_g guided with `guidance`.

    One forward on 4B rows [x, flip(x), x, flip(x)] with classes [c1, c2, 0, 0]; each orientation
    needs its own unconditional estimate, because the inputs differ.
    """
    if flip_kind not in FLIPS:
        raise UserError(f"unknown flip {flip_kind!r} (choose from {', '.join(FLIPS)})")
    c = torch.cat([_one_hot(c1), _one_hot(c2)])                                # (2B, 10)
    inner = model_estimate(model, sched, predict, torch.cat([c, torch.zeros_like(c)]))  # (4B, 10)

    def estimate(x_t, t):
        flipped = flip(x_t, flip_kind)
        eps = inner(torch.cat([x_t, flipped, x_t, flipped]), t.repeat(4))      # (4B, 1, H, W)
        e1c, e2c, e1u, e2u = eps.chunk(4)
        gamma = scale_at(guidance, t)
        e1 = cfg_combine(e1u, e1c, gamma)
        e2 = flip(cfg_combine(e2u, e2c, gamma), flip_kind)
        return (e1 + e2) / 2

    return estimate


def hybrid_estimate(model: torch.nn.Module, sched: Schedule, c1: torch.Tensor, c2: torch.Tensor,
                    guidance: Guidance | float, sigma: float, predict: str = "eps") -> EstimateFn:
    """eps = lowpass(eps_g(x_t, c1)) + highpass(eps_g(x_t, c2)), eps_g guided with `guidance`.

    One forward of x_t under 3 conditionings [c1, c2, 0] (the UNet runs its encoder once for them):
    the two guided estimates share the unconditional one, because their input is the same x_t.
    """
    kernel = gaussian_kernel(sigma, c1.device)
    c = torch.cat([_one_hot(c1), _one_hot(c2)])
    inner = model_estimate(model, sched, predict, torch.cat([c, torch.zeros_like(c[: len(c1)])]))  # (3B, 10)

    def estimate(x_t, t):
        eps = inner(x_t, t.repeat(3))                                          # (3B, 1, H, W)
        e1c, e2c, eu = eps.chunk(3)
        gamma = scale_at(guidance, t)
        return lowpass(cfg_combine(eu, e1c, gamma), kernel) + highpass(cfg_combine(eu, e2c, gamma), kernel)

    return estimate

