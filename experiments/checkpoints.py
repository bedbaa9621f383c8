"""Trained models between sections: a spec (model.json) beside each section's weights files.

Checkpoints live under the work folder (`.work/<profile>/<section>/`, never committed); a section
that needs another's model asks for it here and gets a clear error naming the command that makes it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from experiments.errors import UserError
from experiments.training import checkpoint_path, load_weights

SPEC = "model.json"
_BUILDERS: dict[str, Callable[[dict], nn.Module]] = {}


def register_builder(kind: str, build: Callable[[dict], nn.Module]) -> None:
    _BUILDERS[kind] = build


def write_spec(work_dir: Path, kind: str, final_epoch: int, **configs: dict) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / SPEC).write_text(json.dumps({"kind": kind, "final_epoch": final_epoch, **configs}, indent=2))


def read_spec(work_dir: Path) -> dict | None:
    path = work_dir / SPEC
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"corrupt model spec {path}; rerun the section that trains it") from None


def has_model(work_root: Path, section: str) -> bool:
    spec = read_spec(work_root / section)
    return spec is not None and checkpoint_path(work_root / section, spec["final_epoch"]).exists()


def fingerprint(work_root: Path, section: str) -> str | None:
    """sha256 (16 hex digits) of the final-epoch weights file of `section`, None if there is none.

    A section records the fingerprint of what it trained, and every section that loads those weights
    records the one it loaded: a retrain (even with the same seed) writes other bytes, so results
    built on weights from another run can be told apart from the committed run's.
    """
    spec = read_spec(work_root / section)
    if spec is None:
        return None
    path = checkpoint_path(work_root / section, spec["final_epoch"])
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


def load_model(work_root: Path, section: str, profile: str, device: torch.device,
               epoch: int | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model `section` trained and load its weights (final epoch unless given), eval mode."""
    work_dir = work_root / section
    spec = read_spec(work_dir)
    how = f"run `python -m experiments run {section} --profile {profile}` (or pass --run-missing)"
    if spec is None:
        raise UserError(f"no trained model from section {section!r} (profile {profile}) in {work_dir}: {how}")
    epoch = spec["final_epoch"] if epoch is None else epoch
    path = checkpoint_path(work_dir, epoch)
    if not path.exists():
        raise UserError(f"checkpoint of {section!r} at epoch {epoch} missing ({path}): {how}")
    if spec["kind"] not in _BUILDERS:
        raise UserError(f"unknown model kind {spec['kind']!r} in {work_dir / SPEC}")
    model = _BUILDERS[spec["kind"]](spec)
    load_weights(model, path)
    return model.to(device).eval(), spec
