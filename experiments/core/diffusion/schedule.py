"""The noise schedule: betas, alphas and their cumulative product, computed once."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch


def linear_betas(T: int, start: float = 1e-4, end: float = 0.02, dtype=torch.float64) -> torch.Tensor:
    """betas = linspace(start, end, T), shape (T,)."""
    return torch.linspace(start, end, T, dtype=dtype)


@dataclass(frozen=True)
class Schedule:
    """Named per-t coefficients, each of shape (T,); index t is 0-based."""

    betas: torch.Tensor           # beta_t
    alphas: torch.Tensor          # alpha_t = 1 - beta_t
    alphas_cumprod: torch.Tensor  # abar_t = prod_{s<=t} alpha_s

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    @cached_property
    def _abar_from_minus_one(self) -> torch.Tensor:
        return torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod])  # (T + 1,)

    def abar(self, t: torch.Tensor) -> torch.Tensor:
        """abar_t with the convention abar_{-1} = 1 (t = -1 is the clean image)."""
        return self._abar_from_minus_one[t + 1]

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "Schedule":
        return Schedule(*(v.to(device=device, dtype=dtype) for v in (self.betas, self.alphas, self.alphas_cumprod)))


def make_schedule(T: int = 300, beta_start: float = 1e-4, beta_end: float = 0.02,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Schedule:
    betas = linear_betas(T, beta_start, beta_end)   # float64 first, so abar is exact before the cast
    alphas = 1.0 - betas
    return Schedule(betas, alphas, torch.cumprod(alphas, dim=0)).to(device, dtype)


def extract(coeffs: torch.Tensor, t: torch.Tensor, ndim: int = 4) -> torch.Tensor:
    """coeffs[t] reshaped to (B, 1, ..., 1) so it broadcasts against a (B, ...) batch."""
    return coeffs[t].reshape(-1, *([1] * (ndim - 1)))
