"""What a whole-writeup run tells its section processes while it runs: a folder of small files.

- `done-<section>` / `failed-<section>`: a section that started before its dependencies ended
  (`Section.reads_dependencies_late`) waits for these before it reads them (`wait_for`);
- `state.json`: which section runs on which GPU since when and for how long it is expected to, so a
  section can ask which GPUs are about to be free to spread independent work over (`spare_devices`).

The section processes get these two functions (bound to the folder) in their `Context`.
"""
from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path

import torch

from experiments.errors import UserError
from experiments.pipeline.placement import free_gpus, work_left
from experiments.pipeline.results import write_json_atomic

STATE = "state.json"
POLL_S = 0.5


class Board:
    """The run folder, written by the writeup process only."""

    def __init__(self, folder: Path, gpus: int):
        self.folder, self.gpus = Path(folder), gpus
        self.running: dict[str, tuple[int, float, float]] = {}      # name -> (gpu, start (epoch s), expected s)
        shutil.rmtree(self.folder, ignore_errors=True)              # a previous run's markers would lie
        self.folder.mkdir(parents=True)
        self._write()

    def _write(self) -> None:
        write_json_atomic(self.folder / STATE, {"gpus": self.gpus, "running": {
            name: {"gpu": g, "at": at, "expected_s": e} for name, (g, at, e) in self.running.items()}})

    def started(self, name: str, gpu: int, expected_s: float) -> None:
        self.running[name] = (gpu, time.time(), expected_s)
        self._write()

    def finished(self, name: str, ok: bool) -> None:
        self.running.pop(name, None)
        (self.folder / f"{'done' if ok else 'failed'}-{name}").touch()
        self._write()

    def waiter(self, in_run: list[str]) -> functools.partial:
        """`Context.wait_for` for the section processes of this run."""
        return functools.partial(wait_for, str(self.folder), tuple(in_run))

    def spares(self, name: str, horizon_s: float = 30.0) -> functools.partial:
        """`Context.spare_devices` for section `name`."""
        return functools.partial(spare_devices, str(self.folder), name, horizon_s)


def wait_for(folder: str, in_run: tuple[str, ...], section: str) -> None:
    """Block until `section` (when it is part of this run) is done; a failed one is a one-line error."""
    if section not in in_run:
        return                        # not run now: its earlier results are what there is
    base = Path(folder)
    while True:
        if (base / f"done-{section}").exists():
            return
        if (base / f"failed-{section}").exists():
            raise UserError(f"{section} failed in this run; its results cannot be read")
        time.sleep(POLL_S)


def spare_devices(folder: str, section: str, horizon_s: float) -> list[torch.device]:
    """The GPUs other than this section's own that are expected to be free within `horizon_s` now."""
    try:
        state = json.loads((Path(folder) / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    running = {name: (r["gpu"], r["at"], r["expected_s"]) for name, r in state["running"].items()}
    if section not in running:
        return []
    left = work_left({n: r for n, r in running.items() if n != section}, state["gpus"], time.time())
    return [torch.device("cuda", g) for g in free_gpus(left, running[section][0], horizon_s)]
