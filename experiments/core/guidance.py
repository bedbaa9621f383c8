"""Classifier-free guidance as one typed value: a scale and the timesteps it applies to.

    eps = eps_u + gamma(t) (eps_c - eps_u),   gamma(t) = scale for lo <= t <= hi, 1 elsewhere

`interval=None` guides every step. Guidance in a limited interval (Kynkaanniemi et al. 2024): strong
guidance at the noisiest steps collapses diversity, at the last steps it only sharpens; in the middle
it fixes the class. Written on the command line or in YAML as `5` or `3@30-150`; `Guidance.parse`
is the one place that reads that spelling.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from experiments.errors import UserError

_TEXT = re.compile(r"^(\d+(?:\.\d+)?)(?:@(\d+)-(\d+))?$")      # "5" or "3@30-150": scale[@lo-hi]


@dataclass(frozen=True)
class Guidance:
    scale: float = 5.0                          # gamma: 0 = unconditional, 1 = plain conditional
    interval: tuple[int, int] | None = None     # (lo, hi): guide only for lo <= t <= hi; None = every step

    def __post_init__(self) -> None:
        # configs and checkpoint specs come back from JSON as numbers and lists
        object.__setattr__(self, "scale", float(self.scale))
        if self.interval is not None:
            object.__setattr__(self, "interval", (int(self.interval[0]), int(self.interval[1])))

    def validate(self) -> None:
        if self.scale < 0:
            raise UserError(f"guidance scale must be >= 0, got {self.scale:g}")
        if self.interval is not None and not 0 <= self.interval[0] <= self.interval[1]:
            raise UserError(f"guidance {self}: the interval must have 0 <= lo <= hi")

    @classmethod
    def parse(cls, value: Any) -> "Guidance":
        """A Guidance from itself, a number, '5', '3@30-150' or a mapping {scale, interval}."""
        if isinstance(value, Guidance):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"scale", "interval"}
            if unknown:
                raise UserError(f"guidance {value!r}: unknown keys {', '.join(sorted(unknown))}")
            interval = value.get("interval")
            return cls(float(value.get("scale", 5.0)), None if interval is None else tuple(interval))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(float(value))
        match = _TEXT.match(str(value).strip())
        if not match:
            raise UserError(f"guidance {value!r} must look like 5 or 3@30-150 (scale, optionally @lo-hi timesteps)")
        scale, lo, hi = match.groups()
        guidance = cls(float(scale), None if lo is None else (int(lo), int(hi)))
        guidance.validate()
        return guidance

    def __str__(self) -> str:
        return f"{self.scale:g}" if self.interval is None else f"{self.scale:g}@{self.interval[0]}-{self.interval[1]}"

    def describe(self) -> str:
        """'γ = 5' or 'γ = 3 for t in [30, 150]': a label for readers."""
        if self.interval is None:
            return f"γ = {self.scale:g}"
        return f"γ = {self.scale:g} for t in [{self.interval[0]}, {self.interval[1]}]"

    def scale_at(self, t: torch.Tensor) -> float | torch.Tensor:
        """The scale per sample at timesteps t (B,): a (B, 1, 1, 1) tensor, computed from the t buffer so a
        captured sampling step stays valid; the plain float when every step is guided."""
        if self.interval is None:
            return self.scale
        lo, hi = self.interval
        return torch.where((t >= lo) & (t <= hi), self.scale, 1.0).view(-1, 1, 1, 1)


def guidances(values: Any) -> tuple[Guidance, ...]:
    """A tuple of Guidance from a list or a comma-separated string ('1,2,1.5@0-80')."""
    if isinstance(values, str):
        values = [v for v in values.replace("(", "").replace(")", "").split(",") if v.strip()]
    if isinstance(values, (Guidance, int, float, dict)):
        values = [values]
    return tuple(Guidance.parse(v) for v in values)


def scale_at(guidance: Guidance | float | torch.Tensor, t: torch.Tensor) -> float | torch.Tensor:
    """The guidance scale at timesteps t: from a Guidance, or a plain scale (a number, or one per row)."""
    return guidance.scale_at(t) if isinstance(guidance, Guidance) else guidance
