"""What a whole-writeup run tells its section processes while it runs: a folder of small files.

- `done-<section>` / `failed-<section>`: a section that started before its dependencies ended
  (`Section.reads_dependencies_late`) waits for these before it reads them (`wait_for`);
- `state.json`: which section runs on which GPU since when and for how long it is expected to, so a
  section can ask which GPUs are idle to spread independent work over (`spare_devices`);
- `loan-<section>.json`: the GPUs a section was granted that way, written by that section's process
  (under `loans.lock`, so two sections never get the same GPU); the writeup process reads them before
  it places sections (`Board.loans`) and removes them when the section ends.

The section processes get these two functions (bound to the folder) in their `Context`.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import shutil
import time
from pathlib import Path

import torch

from experiments.errors import UserError
from experiments.pipeline.placement import occupancy, spare_gpus
from experiments.pipeline.results import write_json_atomic

STATE = "state.json"
LOANS_LOCK = "loans.lock"
POLL_S = 0.5


def _loan_file(folder: Path, section: str) -> Path:
    return folder / f"loan-{section}.json"


def read_loans(folder: Path) -> dict[str, tuple[int, ...]]:
    """Every section's borrowed GPUs (a loan file being replaced or unreadable counts as none)."""
    loans = {}
    for path in folder.glob("loan-*.json"):
        try:
            loans[path.stem.removeprefix("loan-")] = tuple(json.loads(path.read_text(encoding="utf-8"))["gpus"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return loans


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
        _loan_file(self.folder, name).unlink(missing_ok=True)        # its borrowed GPUs are free again
        (self.folder / f"{'done' if ok else 'failed'}-{name}").touch()
        self._write()

    def loans(self) -> dict[str, tuple[int, ...]]:
        """The GPUs each running section borrowed (for `Planner.lend`)."""
        return {name: gpus for name, gpus in read_loans(self.folder).items() if name in self.running}

    def waiter(self, in_run: list[str]) -> functools.partial:
        """`Context.wait_for` for the section processes of this run."""
        return functools.partial(wait_for, str(self.folder), tuple(in_run))

    def spares(self, name: str) -> functools.partial:
        """`Context.spare_devices` for section `name`."""
        return functools.partial(spare_devices, str(self.folder), name)


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


@contextlib.contextmanager
def _loans_locked(folder: Path):
    with open(folder / LOANS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)          # the kernel drops it when the file closes or its process dies
        yield


def spare_devices(folder: str, section: str) -> list[torch.device]:
    """The idle GPUs other than this section's own (no section running there, none lent to another),
    lent to this section until it ends."""
    base = Path(folder)
    try:
        with _loans_locked(base):
            state = json.loads((base / STATE).read_text(encoding="utf-8"))
            running = {name: r["gpu"] for name, r in state["running"].items()}
            if section not in running:
                return []
            loans = read_loans(base)
            granted = spare_gpus(occupancy(state["gpus"], running, loans, but=section), running[section])
            if granted:
                write_json_atomic(_loan_file(base, section), {"gpus": sorted({*loans.get(section, ()), *granted})})
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return []                             # no readable board: spread nothing
    return [torch.device("cuda", g) for g in granted]
