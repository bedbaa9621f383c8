"""Typed configuration: frozen dataclasses, validated, overridable from YAML or `key=value`.

Every section's config is a frozen dataclass built from the blocks below; its `full` profile holds
the reference hyperparameters and its `quick` profile a tiny CPU-sized version of the same run.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from experiments.core.guidance import Guidance
from experiments.errors import UserError

REFERENCE_TRAIN_SIZE = 60_000  # the official MNIST training split the reference epochs count
MAX_LR = 1.0                   # an Adam step size above this is a typo, not an experiment
MAX_INT = 2**31 - 1            # counts and sizes beyond this are typos (and overflow tensor sizes)
MAX_SEED = 2**63 - 1           # torch seeds are 64-bit; sections add small offsets to the seed


@dataclass(frozen=True)
class DataConfig:
    train_images: int = 0       # digits taken from the training split; 0 = all of it
    test_images: int = 0        # digits taken from the test split; 0 = all of it

    def validate(self) -> None:
        _require(self.train_images >= 0, "data.train_images must be >= 0")
        _require(self.test_images >= 0, "data.test_images must be >= 0")


@dataclass(frozen=True)
class UNetConfig:
    hidden: int = 64            # D, the hidden width
    conditioning: str = "none"  # none | time | class
    residual: bool = False      # ablation: skip connection around each ConvBlock
    norm: str = "batch"         # batch | group (ablation)
    final_kernel: int = 3       # kernel of the output conv: 3 (reference) or 1 (ablation)
    dropout: float = 0.0        # dropout between the two convs of each ConvBlock (Ho et al. 2020); 0 = none

    def validate(self) -> None:
        _require(self.hidden >= 1, f"unet.hidden (D) must be >= 1, got {self.hidden}")
        _require(0 <= self.dropout < 1, f"unet.dropout must be in [0, 1), got {self.dropout}")
        _require(self.conditioning in ("none", "time", "class"),
                 f"unet.conditioning must be none, time or class, got {self.conditioning!r}")
        _require(self.norm in ("batch", "group"), f"unet.norm must be batch or group, got {self.norm!r}")
        _require(self.final_kernel in (1, 3), f"unet.final_kernel must be 1 or 3, got {self.final_kernel}")
        if self.norm == "group":
            _require(self.hidden % 8 == 0, "unet.norm=group needs unet.hidden divisible by 8")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20            # reference epochs (an epoch = reference_images / batch_size steps)
    batch_size: int = 128
    lr: float = 1e-3            # Adam learning rate
    lr_final_ratio: float = 0.1 # ExponentialLR gamma = ratio ** (1 / epochs); 1.0 keeps lr constant
    reference_images: int = REFERENCE_TRAIN_SIZE  # digits per reference epoch: sets the step budget
    checkpoint_epochs: tuple[int, ...] = (1, 5, 10, 15, 20)  # epochs whose weights the figures need
    ema_decay: float = 0.0      # EMA of the weights; 0 = off (reference)
    log_every: int = 50         # steps between progress-bar refreshes (the only host syncs)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.reference_images / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def validate(self) -> None:
        _require(self.epochs > 0, f"train.epochs must be > 0, got {self.epochs}")
        _require(self.batch_size > 0, f"train.batch_size must be > 0, got {self.batch_size}")
        _require(0 < self.lr <= MAX_LR, f"train.lr must be > 0 and at most {MAX_LR:g}, got {self.lr:g}")
        _require(0 < self.lr_final_ratio <= 1, "train.lr_final_ratio must be in (0, 1]")
        _require(self.reference_images > 0, "train.reference_images must be > 0")
        _require(0 <= self.ema_decay < 1, "train.ema_decay must be in [0, 1)")
        _require(self.log_every > 0, "train.log_every must be > 0")
        bad = [e for e in self.checkpoint_epochs if not 1 <= e <= self.epochs]
        _require(not bad, f"train.checkpoint_epochs {bad} outside 1..{self.epochs}")


@dataclass(frozen=True)
class DiffusionConfig:
    T: int = 300                # number of diffusion steps
    beta_start: float = 1e-4
    beta_end: float = 0.02
    p_uncond: float = 0.1       # class dropout for classifier-free guidance
    guidance: Guidance = field(default_factory=Guidance)   # CFG scale (and interval) when sampling with a class
    predict: str = "eps"        # eps (reference) | x0 (ablation)
    t_per: str = "sample"       # sample (reference) | batch: one t for the whole batch (ablation)

    def __post_init__(self) -> None:
        object.__setattr__(self, "guidance", Guidance.parse(self.guidance))   # specs saved before: a number

    def validate(self) -> None:
        _require(self.T >= 2, f"diffusion.T must be >= 2, got {self.T}")
        _require(0 < self.beta_start < self.beta_end < 1, "diffusion betas need 0 < beta_start < beta_end < 1")
        _require(0 <= self.p_uncond < 1, "diffusion.p_uncond must be in [0, 1)")
        _require(self.predict in ("eps", "x0"), f"diffusion.predict must be eps or x0, got {self.predict!r}")
        _require(self.t_per in ("sample", "batch"), f"diffusion.t_per must be sample or batch, got {self.t_per!r}")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _check_number(key: str, value: Any) -> None:
    """No config number is infinite, NaN or beyond what a tensor or a counter can hold."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"{key} must be a finite number, got {v}")
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
            raise UserError(f"{key} = {v} is out of range (at most {MAX_INT:,} in size)")


def check_seed(seed: Any) -> None:
    """A seed is a whole number from 0 to 2**63 - 1 (torch's generators hold 64 bits)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed must be a whole number from 0 to {MAX_SEED} (2**63 - 1), got {seed}")


def validate(cfg: Any, prefix: str = "") -> Any:
    """Run every `validate()` in a (nested) config; returns cfg for chaining."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            validate(value, f"{prefix}{f.name}.")
        else:
            _check_number(f"{prefix}{f.name}", value)
    own = getattr(cfg, "validate", None)
    if callable(own):
        own()
    return cfg


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_hash(cfg: Any) -> str:
    text = json.dumps(to_dict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check/convert one override value against the field's type; wrong types are user errors."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"config {key}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise UserError(f"config {key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise UserError(f"config {key}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"config {key}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise UserError(f"config {key}: expected a string, got {value!r}")
    if is_dataclass(annotation) and isinstance(value, dict):        # a list item written out as a mapping
        try:
            default = annotation()
        except TypeError:
            raise UserError(f"config {key}: {annotation.__name__} cannot be given as a mapping") from None
        return override(default, value, prefix=f"{key}.")
    if is_dataclass(annotation) and hasattr(annotation, "parse"):    # a typed value with a spelling, e.g. Guidance
        return annotation.parse(value)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(annotation)
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config {key}: expected a list, got {value!r}")
        return tuple(_coerce(v, inner, key) for v in value)
    return value


def override(cfg: Any, updates: dict, prefix: str = "") -> Any:
    """Return cfg with nested `updates` applied; unknown keys and wrong types raise UserError."""
    if not isinstance(updates, dict):
        raise UserError(f"config {prefix or '<root>'}: expected a mapping, got {updates!r}")
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in fields(cfg)]
    changes = {}
    for key, value in updates.items():
        full_key = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise UserError(f"unknown config key {full_key!r}{hint}")
        current = getattr(cfg, key)
        if is_dataclass(current) and not isinstance(value, dict) and hasattr(type(current), "parse"):
            changes[key] = type(current).parse(value)      # e.g. diffusion.guidance=3@30-150
        elif is_dataclass(current):
            changes[key] = override(current, value, prefix=f"{full_key}.")
        else:
            changes[key] = _coerce(value, hints[key], full_key)
    return replace(cfg, **changes)


def parse_assignments(items: typing.Iterable[str]) -> dict:
    """['train.epochs=3', 'unet.hidden=8'] -> {'train': {'epochs': '3'}, 'unet': {'hidden': '8'}}."""
    tree: dict = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value.strip()
    return tree


def load_yaml(path: str) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not text (UTF-8)") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


__all__ = [
    "DataConfig", "UNetConfig", "TrainConfig", "DiffusionConfig", "Guidance", "REFERENCE_TRAIN_SIZE",
    "validate", "override", "parse_assignments", "load_yaml", "config_hash", "to_dict", "field", "check_seed",
]
