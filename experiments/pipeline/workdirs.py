"""Checkpoint folders keyed by everything that makes a run's weights differ.

A section's weights go to `<work>/<profile>/<section>/<key>/`, the key a hash of the section, profile,
seed, the whole resolved config and a fingerprint of the data files. Runs that differ in any of them
never share checkpoints (a seed-7 run cannot replace the weights a seed-42 manifest records), the
manifest names its key so dependants load exactly those weights, and `--resume` continues only a run
with the same key: anything else is a one-line error naming what differs.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from experiments.core.data import DEFAULT_DATASET, data_fingerprint as core_data_fingerprint
from experiments.errors import UserError
from experiments.pipeline import locking
from experiments.pipeline.results import write_json_atomic

KEY_FILE = "key.json"          # what the key of a checkpoint folder was made of
STATE = "state.pt"             # the training state --resume continues from (experiments/core/training.py)


def data_fingerprint(data_root: Path | None, dataset: str = DEFAULT_DATASET) -> str:
    """The fingerprint of the dataset's files a run reads ('absent' when there are none)."""
    try:
        return core_data_fingerprint(data_root, dataset)
    except UserError:
        return "absent"


@dataclass(frozen=True)
class RunKey:
    section: str
    profile: str
    seed: int
    config: dict
    data: str             # data_fingerprint of the files the run reads

    @property
    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def folder(self, work_root: Path) -> Path:
        """The checkpoint folder under the profile's work root (`.work/<profile>`)."""
        return Path(work_root) / self.section / self.digest


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix.rstrip("."): data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def differences(recorded: dict, key: RunKey, limit: int = 3) -> str:
    """'data.train_images 4096 -> 256, seed 7 -> 42': how a recorded key differs from this run's."""
    old = {**_flat(recorded.get("config", {}), "")}
    new = _flat(key.config, "")
    changes = [f"{k} {old.get(k, '(none)')} -> {new.get(k, '(none)')}"
               for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    if recorded.get("seed") != key.seed:
        changes.insert(0, f"seed {recorded.get('seed')} -> {key.seed}")
    if recorded.get("data") != key.data:
        changes.append("other data files")
    if not changes:
        return "another version of the code"
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return ", ".join(changes[:limit]) + more


def _newest_state(folder: Path) -> float | None:
    times = [p.stat().st_mtime for p in folder.rglob(STATE) if p.is_file()]
    return max(times) if times else None


def check_resume(work_root: Path, key: RunKey) -> None:
    """`--resume` continues only a run with this key; an interrupted run with another config, seed or
    data (or one from before keyed folders) is a one-line error, never silently mixed or restarted."""
    mine = key.folder(work_root)
    if mine.is_dir() and _newest_state(mine) is not None:
        return
    section_dir = Path(work_root) / key.section
    if (section_dir / STATE).is_file():
        raise UserError(f"cannot resume: {section_dir / STATE} was written by an older version that kept one "
                        f"checkpoint folder per section; drop --resume to start over")
    others = [(t, d) for d in (section_dir.iterdir() if section_dir.is_dir() else ())
              if d.is_dir() and d != mine and (t := _newest_state(d)) is not None]
    if not others:
        return                           # nothing was interrupted: the run starts from the beginning
    _, latest = max(others)
    try:
        recorded = json.loads((latest / KEY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    raise UserError(f"cannot resume: the checkpoints in {latest} were written with another config or data "
                    f"({differences(recorded, key)}); drop --resume to start over")


@contextlib.contextmanager
def claim(work_root: Path, key: RunKey, resume: bool) -> Iterator[Path]:
    """Hold the run's checkpoint folder (a second run with the same key stops as busy), check that
    --resume has something of this key to continue, and record what the key is made of."""
    folder = key.folder(work_root)
    with locking.hold(folder, "checkpoint folder"):
        if resume:
            check_resume(work_root, key)
        write_json_atomic(folder / KEY_FILE, asdict(key))
        yield folder
