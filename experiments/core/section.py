"""What a section is (a declaration) and what it sees while it runs (its `Context`).

A section module defines `SECTION = Section(...)` and a `run(ctx)`; the pipeline finds it, builds the
context and records what it returns. Nothing here writes results: `ctx.out` is the pipeline's writer,
and `ctx.dependency` reads another section's results through a function the pipeline passes in.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from experiments.core.data import DEFAULT_DATASET, Dataset, Split, dataset_flag, dataset_of, get_dataset, load_split
from experiments.errors import UserError

if TYPE_CHECKING:        # the writer belongs to the pipeline; sections only call its methods
    from experiments.pipeline.results import ResultWriter


@dataclass(frozen=True)
class Section:
    name: str                              # CLI and folder name, e.g. "class-conditioned"
    title: str                             # page title
    part: str                              # where the page sits in the writeup (see pipeline.registry.PARTS)
    summary: str                           # one sentence for the index
    profiles: dict[str, Any]               # profile name -> frozen config dataclass
    run: Callable[[Any], None]             # run(ctx): computes and records everything
    depends_on: tuple[str, ...] = ()       # sections whose outputs (checkpoints, metrics) it reads
    # True when it reads them only after work of its own (e.g. training): a whole-writeup run may start it
    # once they have started, and its reads wait until they are done (Context.wait_for)
    reads_dependencies_late: bool = False
    # torch.compile its networks on a GPU: only where the section's jobs are long enough to win back the
    # tens of seconds each first compile costs on a fresh machine (eager it is still bf16 and CUDA graphs)
    compiles: bool = False
    module_file: str = field(default="", compare=False)   # filled in by the registry


def _no_wait(section: str) -> None:
    """Outside a whole-writeup run a dependency's results are there before the section starts."""


def _no_spares() -> list[torch.device]:
    return []


def _no_results(section: str, file: str) -> dict | None:
    raise RuntimeError("a worker process reads no results; its parent section does")


@functools.lru_cache(maxsize=8)
def _cached_split(root: str | None, train: bool, limit: int, device: str, dataset: str) -> Split:
    return load_split(root, train=train, limit=limit, device=device, dataset=dataset)


@dataclass
class Context:
    section: Section
    cfg: Any
    profile: str
    device: torch.device
    seed: int
    work_root: Path                 # .work/<profile>: checkpoints, never committed
    data_root: Path | None
    out: "ResultWriter"
    read_result: Callable[[str, str], dict | None]   # (section, JSON file) -> its content, None if absent
    resume: bool = False
    show_progress: bool = True
    compile: bool = False           # torch.compile the networks on a GPU (the section's `compiles`, unless turned off)
    loaded_weights: dict[str, str | None] = field(default_factory=dict)   # section -> weights fingerprint
    weights_key: str = ""           # this run's checkpoint folder under the section's (pipeline/workdirs.py)
    dataset: str = DEFAULT_DATASET  # data.dataset: every section of a results folder shares it
    # blocks until a dependency's results are there (a writeup may start a section before its dependencies end)
    wait_for: Callable[[str], None] = _no_wait
    # further GPUs this section may spread independent work over now (`experiments.core.parallel.spread`)
    spare_devices: Callable[[], list[torch.device]] = _no_spares

    @property
    def work_dir(self) -> Path:
        folder = self.work_root / self.section.name
        return folder / self.weights_key if self.weights_key else folder

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def data(self) -> Dataset:
        """The dataset's description: its title, class names and the word for one image."""
        return get_dataset(self.dataset)

    @property
    def compiled(self) -> bool:
        """Whether the networks are compiled (torch.compile) here: on a GPU, where the run says so."""
        return self.cuda and self.compile

    def train_split(self, limit: int = 0) -> Split:
        return _cached_split(str(self.data_root) if self.data_root else None, True, limit, str(self.device),
                             self.dataset)

    def test_split(self, limit: int = 0) -> Split:
        return _cached_split(str(self.data_root) if self.data_root else None, False, limit, str(self.device),
                             self.dataset)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh generator on the section's device, seeded from the run's seed (+ offset)."""
        return torch.Generator(device=self.device).manual_seed(self.seed + offset)

    def on_device(self, device: torch.device) -> "Context":
        """This context for a worker process on another device: same section, config, seed and folders; it
        writes no results and reads none (the parent section does both)."""
        return dataclasses.replace(self, device=device, out=None, read_result=_no_results, loaded_weights={},
                                   wait_for=_no_wait, spare_devices=_no_spares, show_progress=False)

    def dependency(self, section: str, file: str = "manifest.json") -> dict:
        """A declared dependency's manifest (metrics, config), or another JSON file of its results;
        it must have run in this profile."""
        if section not in self.section.depends_on:
            raise RuntimeError(f"{self.section.name} reads {section} without declaring the dependency")
        self.wait_for(section)
        manifest = self.read_result(section, "manifest.json")
        data = manifest if file == "manifest.json" else self.read_result(section, file)
        if manifest is None or manifest.get("profile") != self.profile or data is None \
                or dataset_of(manifest) != self.dataset:
            raise UserError(f"{self.section.name} needs results of {section!r} ({self.data.title}, profile "
                            f"{self.profile}): run `python -m experiments run {section} --profile {self.profile}"
                            f"{dataset_flag(self.dataset)}`")
        return data
