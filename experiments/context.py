"""What a running section sees: its config, device, seed, data, outputs and other sections' models."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from experiments import checkpoints
from experiments.data import Split, load_split
from experiments.registry import Section
from experiments.results import ResultWriter, load_manifest
from experiments.errors import UserError


@functools.lru_cache(maxsize=8)
def _cached_split(root: str | None, train: bool, limit: int, device: str) -> Split:
    return load_split(root, train=train, limit=limit, device=device)


@dataclass
class Context:
    section: Section
    cfg: Any
    profile: str
    device: torch.device
    seed: int
    results_root: Path
    work_root: Path                 # .work/<profile>: checkpoints, never committed
    data_root: Path | None
    out: ResultWriter
    resume: bool = False
    show_progress: bool = True
    loaded_weights: dict[str, str | None] = field(default_factory=dict)   # section -> weights fingerprint

    @property
    def work_dir(self) -> Path:
        return self.work_root / self.section.name

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def train_split(self, limit: int = 0) -> Split:
        return _cached_split(str(self.data_root) if self.data_root else None, True, limit, str(self.device))

    def test_split(self, limit: int = 0) -> Split:
        return _cached_split(str(self.data_root) if self.data_root else None, False, limit, str(self.device))

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh generator on the section's device, seeded from the run's seed (+ offset)."""
        return torch.Generator(device=self.device).manual_seed(self.seed + offset)

    def model(self, section: str, epoch: int | None = None) -> tuple[nn.Module, dict]:
        if section not in self.section.depends_on and section != self.section.name:
            raise RuntimeError(f"{self.section.name} reads {section} without declaring the dependency")
        loaded = checkpoints.load_model(self.work_root, section, self.profile, self.device, epoch)
        if section != self.section.name and section not in self.loaded_weights:
            self.loaded_weights[section] = checkpoints.fingerprint(self.work_root, section)
        return loaded

    def dependency(self, section: str) -> dict:
        """Another section's manifest (metrics, config); it must have run in this profile."""
        manifest = load_manifest(self.results_root, section)
        if manifest is None or manifest.get("profile") != self.profile:
            raise UserError(f"{self.section.name} needs results of {section!r} (profile {self.profile}): "
                            f"run `python -m experiments run {section} --profile {self.profile}`")
        return manifest
