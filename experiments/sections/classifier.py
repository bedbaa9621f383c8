"""Evaluation, the judge: a small CNN digit classifier trained on the training split.

Its penultimate layer is the feature space of classifier-FID and its prediction the class accuracy of
generated digits (section "evaluation"). Training adds a random shift (and optionally a small
rotation) to every digit, drawn on the device inside the objective so the step stays graph-capturable.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from experiments.core import checkpoints
from experiments import figures
from experiments.core.config import DataConfig, TrainConfig, _require
from experiments.core.section import Context, Section
from experiments.core.models.classifier import ClassifierNetConfig, DigitClassifier
from experiments.core.ddpm import record_training, train_model
from experiments.core.training import Objective
from experiments.core.models import classifier as classifier_model

KIND = "classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    data: DataConfig = field(default_factory=DataConfig)            # train on all of it, test on all 10,000
    net: ClassifierNetConfig = field(default_factory=ClassifierNetConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=30, batch_size=128, lr=2e-3, lr_final_ratio=0.01, reference_images=10_000,
        checkpoint_epochs=()))          # epochs are passes over 10,000 digits; the last is always saved
    shift: int = 2                    # max random shift in pixels (MNIST digits sit in a 4-pixel margin)
    rotate: float = 10.0              # max random rotation in degrees (0 = shifts only)
    errors_shown: int = 12            # misclassified test digits in the figure (one row)

    def validate(self) -> None:
        _require(0 <= self.shift <= 6, "shift must be in 0..6 pixels")
        _require(0 <= self.rotate <= 45, "rotate must be in [0, 45] degrees")
        _require(self.errors_shown >= 0, "errors_shown must be >= 0")


def augment(x: torch.Tensor, shift: int, rotate: float) -> torch.Tensor:
    """(B, 1, 28, 28) -> same: each digit rotated by U(-rotate, rotate) deg and moved by an integer shift.

    One affine grid_sample per batch; random numbers come from torch's global generator on x's device.
    """
    if shift == 0 and rotate == 0:
        return x
    batch, size = x.shape[0], x.shape[-1]
    angle = (torch.rand(batch, device=x.device) * 2 - 1) * math.radians(rotate)            # (B,)
    # integer pixel shifts in [-shift, shift], as normalised coordinates (2 / size per pixel)
    move = torch.randint(-shift, shift + 1, (batch, 2), device=x.device).float() * (2.0 / size)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1),
                         torch.stack([sin, cos, move[:, 1]], 1)], 1)                    # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(x.dtype)


def augmented_classification_objective(shift: int, rotate: float) -> Objective:
    """Cross-entropy on randomly shifted/rotated digits (augmentation on the device, no host sync)."""

    def loss(model, x0, labels):
        return F.cross_entropy(model(augment(x0, shift, rotate)).float(), labels)

    return loss


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """(N, 1, 28, 28) -> (N,) predicted classes, on images' device."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(c.to(device).float()).argmax(1) for c in images.split(batch)]).to(images.device)


def run(ctx: Context) -> None:
    cfg: ClassifierConfig = ctx.cfg
    model = DigitClassifier(cfg.net)
    objective = augmented_classification_objective(cfg.shift, cfg.rotate)
    result = train_model(ctx, model, objective, cfg.data, cfg.train, KIND,
                         {"net": dataclasses.asdict(cfg.net)}, label=ctx.section.name)
    split_size = len(ctx.train_split(cfg.data.train_images))
    record_training(ctx, result, cfg.train, split_size, f"{ctx.data.item} classifier (width {cfg.net.width})", model)

    net, _ = checkpoints.load(ctx, ctx.section.name, classifier_model.from_spec)            # what the evaluation will load: the saved weights
    test = ctx.test_split(cfg.data.test_images)
    pred = predict(net, test.images)
    correct = (pred == test.labels).cpu()
    labels = test.labels.cpu()
    accuracy = float(correct.float().mean())
    out, data = ctx.out, ctx.data
    out.add_metric("test_accuracy", accuracy, "Test accuracy", ".2%")
    out.add_metric("test_errors", int((~correct).sum()), f"Misclassified test {data.items} (of {len(test):,})", ",d")
    out.add_metric("test_images", len(test), f"Test {data.items}", ",d")
    per_class = [float(correct[labels == d].float().mean()) if bool((labels == d).any()) else float("nan")
                 for d in range(10)]
    counts = [int((labels == d).sum()) for d in range(10)]
    if list(data.classes) == [str(d) for d in range(10)]:       # MNIST: a class is named by its label
        columns, rows = {"class": data.item}, [[d] for d in range(10)]
    else:
        columns, rows = {"label": "label", "class": "class"}, [[d, data.class_name(d)] for d in range(10)]
    out.add_table("per_class", "Test accuracy per class", {**columns, "test_images": f"test {data.items}",
                  "accuracy": "accuracy"}, [[*row, n, round(a, 4)] for row, n, a in zip(rows, counts, per_class)])
    wrong = (~correct).nonzero().flatten()[:cfg.errors_shown]
    if len(wrong) > 0:
        images = test.images[wrong.to(test.images.device)].cpu()
        figures.save_labelled_grid(out.path("errors.png"), [images], ["predicted (true)"],
                                   [f"{data.class_name(pred[i])} ({data.class_name(labels[i])})" for i in wrong.tolist()])
        out.add_figure("errors.png", f"Test {data.items} it gets wrong",
                       alt=f"Misclassified test {data.items} with predicted and true labels")


FULL = ClassifierConfig()
QUICK = ClassifierConfig(
    data=DataConfig(train_images=1000, test_images=500),
    net=ClassifierNetConfig(width=8, features=32, dropout=0.1),
    train=TrainConfig(epochs=3, batch_size=50, lr=3e-3, lr_final_ratio=0.3, reference_images=1000,
                      checkpoint_epochs=()),
    errors_shown=10)

SECTION = Section(
    name="classifier", title="The judge: a digit classifier", part="evaluation",
    summary="Trains a small CNN on the training split; its features and predictions score generated digits.",
    profiles={"full": FULL, "quick": QUICK}, run=run)
