"""Shared fixtures: the committed sample of MNIST and Fashion-MNIST (tests/data) and one quick-profile run
of every section (CPU)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("FUNDIFF_NO_PROGRESS", "1")
os.environ.setdefault("FUNDIFF_ALLOW_OUTSIDE", "1")   # fixtures write to tmp, outside the project
# One OpenMP thread for the tiny quick models: on a busy 2-core machine, OpenMP's spinning threads made a
# training step 20x slower (measured 1.6 s vs 0.08 s). Subprocesses inherit it, which keeps their runs
# bit-comparable with the fixture's (CPU results depend on the thread count).
os.environ.setdefault("OMP_NUM_THREADS", "1")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The tests read only the committed sample (tests/data/README.md), never a mirror or a download: every
# run, in this process or a subprocess, finds it as its default data root.
DATA_ROOT = Path(__file__).resolve().parent / "data"
os.environ["FUNDIFF_DATA_ROOT"] = str(DATA_ROOT)


@dataclass(frozen=True)
class QuickRun:
    results: Path      # one folder per section, as docs/results
    work: Path         # checkpoints (work root, before the profile subfolder)
    root: Path


@pytest.fixture(scope="session")
def data_root() -> Path:
    return DATA_ROOT


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, data_root) -> QuickRun:
    """Every section in the quick profile on the CPU, once per test session (read-only for tests).

    Made by the whole-writeup driver with two sections at a time (worker processes), so every test
    session also exercises the parallel scheduler end to end."""
    from experiments.pipeline.runner import RunOptions
    from experiments.pipeline.writeup import run_writeup

    root = tmp_path_factory.mktemp("quick")
    results, work = root / "results", root / "work"
    record = run_writeup(RunOptions(profile="quick", device="cpu", results_root=results, work_root=work,
                                    data_root=data_root, show_progress=False), per_gpu=2)
    if record["failed"]:
        pytest.fail(f"quick writeup failed: {record['failed']}")
    return QuickRun(results, work, root)
