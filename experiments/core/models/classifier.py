"""A small CNN digit classifier: the judge of every generated digit (accuracy and classifier-FID).

`features(x)` is the penultimate layer (the FID embedding); `forward(x)` gives logits.
Input: (B, 1, 28, 28) in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from experiments.core.config import _require


@dataclass(frozen=True)
class ClassifierNetConfig:
    width: int = 32          # channels of the first stage (the second has 2x)
    features: int = 128      # size of the penultimate layer: the FID feature space
    dropout: float = 0.3

    def validate(self) -> None:
        _require(self.width >= 1 and self.features >= 2, "classifier width >= 1 and features >= 2")
        _require(0 <= self.dropout < 1, "classifier dropout must be in [0, 1)")


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2))


class DigitClassifier(nn.Module):
    def __init__(self, cfg: ClassifierNetConfig = ClassifierNetConfig()):
        super().__init__()
        w = cfg.width
        self.body = nn.Sequential(_stage(1, w), _stage(w, 2 * w), nn.Flatten())   # (B, 2w*7*7)
        self.embed = nn.Sequential(nn.Linear(2 * w * 49, cfg.features), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.features, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, F): the penultimate activations used for classifier-FID."""
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def from_spec(spec: dict) -> DigitClassifier:
    """The classifier a checkpoint's model spec describes (weights not loaded)."""
    return DigitClassifier(ClassifierNetConfig(**spec["net"]))
