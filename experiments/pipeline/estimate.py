"""Roughly how long a full-profile run takes on this CPU, before it starts.

Each section's wall time as recorded in the writeup's results (docs/results, made on a GPU), less a
few seconds every run spends whatever the device (start-up, drawing; all of it, for a section that
neither trains nor runs a network), times how much slower this CPU
trains the reference UNet (D = 64) than those runs did (a few training steps are timed here, with the
run's thread count). An order of magnitude, to decide before hours of work.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from experiments.core.config import UNetConfig
from experiments.core.models.unet import UNet
from experiments.errors import UserError
from experiments.pipeline import registry
from experiments.pipeline.cpu import cpu_threads
from experiments.pipeline.destination import WRITEUP
from experiments.pipeline.results import load_manifest

GPU_IMAGES_PER_S = 10_000.0      # the reference UNet's training rate in a whole-writeup GPU run, if unrecorded
REFERENCE_SECTIONS = ("time-conditioned", "class-conditioned")   # they train the D = 64 UNet the probe times
FIXED_S = 2.0                    # what a section spends on any device (start-up, figures)
PROBE_BATCH = 16


def cpu_images_per_s(steps: int = 2) -> float:
    """Training images per second of the reference time-conditioned UNet (D = 64) on this CPU."""
    torch.set_num_threads(cpu_threads())
    model = UNet(UNetConfig(hidden=64, conditioning="time"))
    optimizer = torch.optim.Adam(model.parameters())
    x, t = torch.rand(PROBE_BATCH, 1, 28, 28), torch.rand(PROBE_BATCH, 1)

    def step() -> None:
        loss = (model(x, t) - x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()                                           # the first step allocates
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * PROBE_BATCH / (time.perf_counter() - t0)


def gpu_images_per_s(reference: Path = WRITEUP) -> float:
    """The rate the reference UNet trained at in the recorded runs (their train_img_per_s: on a GPU shared
    by several sections, well below a benchmark's), else a typical one."""
    rates = []
    for section in REFERENCE_SECTIONS:
        try:
            manifest = load_manifest(reference, section) or {}
        except UserError:
            manifest = {}
        rate = manifest.get("metrics", {}).get("train_img_per_s", {}).get("value")
        if isinstance(rate, (int, float)) and rate > 0 and manifest.get("profile") == "full":
            rates.append(float(rate))
    return sum(rates) / len(rates) if rates else GPU_IMAGES_PER_S


def gpu_seconds(names: list[str], reference: Path = WRITEUP) -> float:
    """The recorded full-profile GPU time of the named sections (beyond the fixed part of any run)."""
    total = 0.0
    for section in registry.resolve(names):
        try:
            manifest = load_manifest(reference, section.name)
        except UserError:
            manifest = None
        if not manifest or manifest.get("profile") != "full" or not isinstance(manifest.get("wall_s"), (int, float)):
            continue
        if not manifest.get("trains_model") and not manifest.get("loaded_weights"):
            continue        # no network to train or run: start-up and drawing, about as long on any device
        total += max(0.0, manifest["wall_s"] - FIXED_S)
    return total


def cpu_seconds(names: list[str], reference: Path = WRITEUP) -> float:
    """Roughly how long the named sections take in the full profile on this CPU."""
    busy = gpu_seconds(names, reference)
    return busy * gpu_images_per_s(reference) / cpu_images_per_s() if busy else 0.0
