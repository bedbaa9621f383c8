"""What the Part 3 sections share: the class-conditioned model, its schedule, the judge and the loop call.

Every Part 3 section samples with `experiments.core.diffusion.sampling.sample` (the one loop) and plugs its
trick in as a hook from `experiments.core.diffusion.tricks`. Numbers are measured on many seeds at once:
one batch per condition, metrics kept on the device and read back once at the end.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from experiments.core import checkpoints
from experiments.core.config import DiffusionConfig, _require
from experiments.core.section import Context
from experiments.core.diffusion.process import predict_x0, strided_timesteps
from experiments.core.diffusion.sampling import EstimateFn, ProjectFn, SampleResult, ddpm_step_fn, guided_estimate, sample
from experiments.core.diffusion.schedule import Schedule
from experiments.core.diffusion.tricks import unconditional_estimate
from experiments.core.guidance import Guidance
from experiments.errors import UserError
from experiments.core.metrics import Evaluator
from experiments.core.ddpm import diffusion_schedule, prepare_for_sampling
from experiments.core.models import unet as unet_model
from experiments.core.models import classifier as classifier_model

DEPENDS = ("class-conditioned", "classifier")


@dataclass(frozen=True)
class Part3Config:
    """Fields every Part 3 section has; sections extend it."""

    seeds: int = 100            # samples (digits, noise draws) per measured condition, in one batch
    test_images: int = 0        # test digits behind the judge's statistics (0 = all 10,000)

    def validate(self) -> None:
        _require(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        _require(self.test_images >= 0, "test_images must be >= 0")


@dataclass(frozen=True)
class SamplingConfig(Part3Config):
    """A Part 3 section that runs the sampling loop."""

    stride: int = 10            # strided timesteps T-1, T-1-stride, ..., >= 0
    guidance: Guidance = field(default_factory=Guidance)   # classifier-free guidance wherever a class is asked for

    def validate(self) -> None:
        super().validate()
        _require(self.stride >= 1, f"stride must be >= 1, got {self.stride}")


@dataclass
class Lab:
    """The trained class-conditioned UNet with its schedule, and the classifier that judges results."""

    ctx: Context
    model: torch.nn.Module
    dcfg: DiffusionConfig
    sched: Schedule
    judge: Evaluator

    @property
    def T(self) -> int:
        return self.dcfg.T

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    def timesteps(self, stride: int, start: int | None = None) -> list[int]:
        return strided_timesteps(self.T, stride, start)

    def fraction(self, t: float) -> int:
        """A timestep at a fraction of T (T/4, T/2, 3T/4 ...), as a valid 0-based index."""
        return min(self.T - 1, max(0, round(t * self.T)))

    def uncond(self, n: int) -> EstimateFn:
        return unconditional_estimate(self.model, self.sched, n, self.device, self.dcfg.predict)

    def guided(self, labels: torch.Tensor, guidance: Guidance | torch.Tensor) -> EstimateFn:
        """CFG towards `labels`: a Guidance, or one scale per row ((B, 1, 1, 1) tensor)."""
        return guided_estimate(self.model, self.sched, labels.to(self.device), guidance, self.dcfg.predict)

    def run(self, x_T: torch.Tensor, timesteps: list[int], estimate: EstimateFn,
            project: ProjectFn | None = None, seed_offset: int = 0, record_every: int = 0) -> SampleResult:
        """The one sampling loop with the strided DDPM step; noise from the seeded default generator."""
        torch.manual_seed(self.ctx.seed + 2000 + seed_offset)   # graph-safe: the default generator
        return sample(x_T, timesteps, estimate, ddpm_step_fn(self.sched, compiled=self.ctx.compiled), project=project,
                      record_every=record_every, autocast=self.ctx.cuda, graphed=self.ctx.cuda)

    @torch.no_grad()
    def one_step(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0_hat from a single class-free noise estimate at per-row t (B,): (B, 1, 28, 28).

        Under the same autocast as the loop: on a GPU the sampling model has bf16 weights.
        """
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.ctx.cuda):
            eps = self.uncond(x_t.shape[0])(x_t, t).float()
        return predict_x0(x_t, eps, t, self.sched)

    def noise(self, n: int, seed_offset: int = 0) -> torch.Tensor:
        """(n, 1, 28, 28) standard normal, reproducible per offset."""
        return torch.randn((n, 1, 28, 28), generator=self.ctx.generator(3000 + seed_offset), device=self.device)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) -> (N, 10) classifier probabilities, on the device."""
        return self.judge.probabilities(images)


def load(ctx: Context) -> Lab:
    """The class-conditioned model and the judge (both from declared dependencies)."""
    model, spec = checkpoints.load(ctx, "class-conditioned", unet_model.from_spec)
    if spec.get("unet", {}).get("conditioning") != "class":
        raise UserError("the class-conditioned checkpoint is not a class-conditioned UNet; rerun that section")
    dcfg = DiffusionConfig(**spec["diffusion"])
    classifier, _ = checkpoints.load(ctx, "classifier", classifier_model.from_spec)
    judge = Evaluator.build(classifier, ctx.test_split(ctx.cfg.test_images).images)
    return Lab(ctx, prepare_for_sampling(ctx, model), dcfg, diffusion_schedule(dcfg, ctx.device), judge)


def check_stride(lab: Lab, stride: int, needed: int = 1) -> list[int]:
    """Strided timesteps from T-1, at least `needed` of them (else a one-line error)."""
    steps = lab.timesteps(stride)
    if len(steps) < needed:
        raise UserError(f"stride {stride} gives {len(steps)} timesteps for T = {lab.T}, {needed} needed: "
                        f"use a smaller stride")
    return steps


def parse_pairs(pairs: tuple[str, ...], sep: str, what: str) -> list[tuple[int, int]]:
    """("6/9", "1/7") -> [(6, 9), (1, 7)]; a malformed pair is a one-line error."""
    out = []
    for p in pairs:
        parts = str(p).split(sep)
        ok = len(parts) == 2 and all(s.strip().isdigit() and int(s) < 10 for s in parts)
        if not ok:
            raise UserError(f"{what} {p!r}: expected two digits 0-9 as 'a{sep}b'")
        out.append((int(parts[0]), int(parts[1])))
    _require(len(out) > 0, f"{what}: at least one pair is needed")
    return out


def mean_std(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of a 1-D tensor (one host sync)."""
    v = values.float()
    return float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0


def pick_best(score: torch.Tensor) -> list[int]:
    """(groups, n) scores -> the flat index (group * n + i) of each group's highest score (one host sync).

    The stated rule for every 'best example' figure: nothing is picked by hand.
    """
    n = score.shape[1]
    return (score.argmax(1) + torch.arange(score.shape[0], device=score.device) * n).tolist()
