"""Training objectives: what a batch of clean digits becomes, and the loss the network is held to.

Each returns `loss(model, x0, labels) -> scalar`; randomness comes from torch's global generator, so
a fixed seed fixes the run (and a restored RNG state resumes it exactly).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from experiments.core.config import DiffusionConfig
from experiments.core.diffusion.process import add_noise
from experiments.core.diffusion.schedule import Schedule
from experiments.core.models.unet import NUM_CLASSES
from experiments.core.training import Objective


def denoising_objective(sigma: float, pure_noise: bool = False) -> Objective:
    """Part 1: L2 between D(z) and x with z = x + sigma eps (or z = eps: the input says nothing)."""

    def loss(model, x0, labels):
        eps = torch.randn_like(x0)
        z = eps if pure_noise else x0 + sigma * eps
        return F.mse_loss(model(z).float(), x0)

    return loss


def one_hot_dropped(labels: torch.Tensor, p_uncond: float) -> torch.Tensor:
    """(B,) labels -> (B, 10) one-hot rows, each zeroed with probability p_uncond (CFG training)."""
    c = F.one_hot(labels, NUM_CLASSES).float()
    keep = (torch.rand(labels.shape[0], device=labels.device) >= p_uncond).float()
    return c * keep[:, None]


def diffusion_objective(sched: Schedule, cfg: DiffusionConfig, class_conditioned: bool) -> Objective:
    """Part 2: the DDPM loss ||eps - eps_theta(x_t, t/T, c)||^2 (or on x0 for the x0 ablation)."""
    T = sched.T

    def loss(model, x0, labels):
        batch = x0.shape[0]
        if cfg.t_per == "sample":
            t = torch.randint(0, T, (batch,), device=x0.device)            # (B,)
        else:  # ablation: one t for the whole batch
            t = torch.randint(0, T, (1,), device=x0.device).expand(batch)
        eps = torch.randn_like(x0)
        x_t = add_noise(x0, eps, t, sched)
        c = one_hot_dropped(labels, cfg.p_uncond) if class_conditioned else None
        out = model(x_t, t.float() / T, c).float()
        return F.mse_loss(out, eps if cfg.predict == "eps" else x0)

    return loss


def classification_objective() -> Objective:
    def loss(model, x0, labels):
        return F.cross_entropy(model(x0).float(), labels)

    return loss
