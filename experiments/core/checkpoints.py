"""Trained models between sections: a spec (model.json) beside each section's weights files.

Checkpoints live under the work folder (`.work/<profile>/<section>/<key>/`, never committed; the key
says which run made them, see experiments/pipeline/workdirs.py, and the manifest records it); a
section that needs another's model asks for it here and gets a clear error naming the command that
makes it. Folders without a key (`.work/<profile>/<section>/`) are those of older versions.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from experiments.errors import UserError

if TYPE_CHECKING:
    from experiments.core.section import Context

SPEC = "model.json"


def save_atomic(obj: object, path: Path) -> None:
    """torch.save to a temporary name, then rename: a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def checkpoint_path(work_dir: Path, epoch: int) -> Path:
    return work_dir / f"epoch_{epoch:03d}.pt"


def load_weights(model: nn.Module, path: Path, ema: bool = True) -> nn.Module:
    """Load weights saved by `train` (the EMA copy when present and asked for)."""
    if not path.exists():
        raise UserError(f"checkpoint missing: {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    key = "ema" if ema and blob.get("ema") is not None else "model"
    model.load_state_dict(blob[key])
    return model

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


def model_dir(work_root: Path, section: str, key: str | None = None) -> Path:
    """The folder of `section`'s weights: its run's key folder when the key is known (a manifest
    records it); else an older unkeyed folder, else the key folder written last."""
    base = Path(work_root) / section
    if key:
        return base / key
    if (base / SPEC).is_file() or not base.is_dir():
        return base
    keyed = [d for d in base.iterdir() if d.is_dir() and (d / SPEC).is_file()]
    return max(keyed, key=lambda d: (d / SPEC).stat().st_mtime) if keyed else base


def has_model(work_root: Path, section: str, key: str | None = None) -> bool:
    folder = model_dir(work_root, section, key)
    spec = read_spec(folder)
    return spec is not None and checkpoint_path(folder, spec["final_epoch"]).exists()


def fingerprint(work_root: Path, section: str, key: str | None = None) -> str | None:
    """sha256 (16 hex digits) of the final-epoch weights file of `section`, None if there is none.

    A section records the fingerprint of what it trained, and every section that loads those weights
    records the one it loaded: a retrain (even with the same seed) writes other bytes, so results
    built on weights from another run can be told apart from the committed run's.
    """
    folder = model_dir(work_root, section, key)
    spec = read_spec(folder)
    if spec is None:
        return None
    path = checkpoint_path(folder, spec["final_epoch"])
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


def load_model(work_root: Path, section: str, profile: str, device: torch.device,
               build: Callable[[dict], nn.Module], epoch: int | None = None,
               key: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model `section` trained with `build(spec)` (the model module's `from_spec`) and load
    its weights (final epoch unless given) from the run `key` (see model_dir), eval mode."""
    work_dir = model_dir(work_root, section, key)
    spec = read_spec(work_dir)
    how = f"run `python -m experiments run {section} --profile {profile}` (or pass --run-missing)"
    if spec is None:
        raise UserError(f"no trained model from section {section!r} (profile {profile}) in {work_dir}: {how}")
    epoch = spec["final_epoch"] if epoch is None else epoch
    path = checkpoint_path(work_dir, epoch)
    if not path.exists():
        raise UserError(f"checkpoint of {section!r} at epoch {epoch} missing ({path}): {how}")
    model = build(spec)
    load_weights(model, path)
    return model.to(device).eval(), spec


def load(ctx: "Context", section: str, build: Callable[[dict], nn.Module],
         epoch: int | None = None) -> tuple[nn.Module, dict]:
    """The model a declared dependency (or this section) trained, final epoch unless given; records the
    weights' fingerprint in the context, so the manifest says which weights its numbers came from."""
    if section not in ctx.section.depends_on and section != ctx.section.name:
        raise RuntimeError(f"{ctx.section.name} reads {section} without declaring the dependency")
    if section == ctx.section.name:
        key = ctx.weights_key or None
    else:   # exactly the weights the dependency's current results were made with, once they are there
        ctx.wait_for(section)
        key = (ctx.read_result(section, "manifest.json") or {}).get("weights_key")
    loaded = load_model(ctx.work_root, section, ctx.profile, ctx.device, build, epoch, key)
    if section != ctx.section.name and section not in ctx.loaded_weights:
        ctx.loaded_weights[section] = fingerprint(ctx.work_root, section, key)
    return loaded
