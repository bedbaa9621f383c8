"""Run sections: resolve names and dependencies, seed, run, record provenance, commit atomically."""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from experiments.core import checkpoints
from experiments.core.data import DEFAULT_DATASET, data_fingerprint, dataset_flag, dataset_of, get_dataset
from experiments.pipeline import destination, fingerprint, provenance, registry, workdirs
from experiments.pipeline.archive import archive_previous
from experiments.pipeline.cpu import use_cpu_threads
from experiments.pipeline.summary import write_summary
from experiments.core.config import check_seed, config_hash, override, to_dict, validate
from experiments.core.section import Context
from experiments.errors import UserError
from experiments.pipeline.results import ResultWriter, load_manifest, read_result, writing

DEFAULT_SEED = 42


@dataclass(frozen=True)
class RunOptions:
    profile: str = "quick"
    device: str = "auto"
    results_root: Path = Path("docs/results")
    work_root: Path = Path(".work")
    data_root: Path | None = None
    seed: int = DEFAULT_SEED
    overrides: dict | None = None
    resume: bool = False
    run_missing: bool = False
    show_progress: bool = True
    allow_outside: bool = False     # write --out / --work-dir outside the project (or FUNDIFF_ALLOW_OUTSIDE=1)
    dataset: str = DEFAULT_DATASET  # data.dataset: every section of the run reads it
    replace: bool = False           # may replace results of another dataset or profile (destination.check)
    # asked (section names, profile, device) once the run is checked and planned, before any compute:
    # the command line's "this takes hours on the CPU, start it?" (it raises to stop)
    confirm: Callable[[list[str], str, torch.device], None] | None = field(default=None, compare=False)

    @property
    def work_dir(self) -> Path:
        """Checkpoints of this run's dataset and profile."""
        return destination.work_folder(self.work_root, self.dataset, self.profile)


ALLOW_OUTSIDE_ENV = "FUNDIFF_ALLOW_OUTSIDE"
COMPILE_ENV = "FUNDIFF_COMPILE"          # 0: no torch.compile on the GPU, even where a section compiles


def project_root() -> Path:
    """The checkout holding experiments/ (when installed elsewhere: the current folder)."""
    root = provenance.PROJECT_ROOT
    return root if (root / "pyproject.toml").exists() else Path.cwd().resolve()


def check_output_folder(path: Path, what: str, allow_outside: bool) -> None:
    """An output folder must be a folder, inside the project unless explicitly allowed."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder")
    if allow_outside or os.environ.get(ALLOW_OUTSIDE_ENV) == "1":
        return
    root = project_root()
    if not path.resolve().is_relative_to(root):
        raise UserError(f"{what} {path} is outside the project ({root}); pass --allow-outside "
                        f"(or set {ALLOW_OUTSIDE_ENV}=1) to write there")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} requested but no CUDA GPU is visible (use --device cpu)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown device {name!r} (use auto, cpu or cuda)")


def section_config(section: registry.Section, profile: str, overrides: dict | None) -> Any:
    cfg = registry.config_for(section, profile)
    if overrides:
        cfg = override(cfg, overrides)
    return validate(cfg)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def has_results(section: str, opts: RunOptions) -> bool:
    """Results exist in this profile and dataset."""
    manifest = load_manifest(opts.results_root, section)
    return manifest is not None and manifest.get("profile") == opts.profile and dataset_of(manifest) == opts.dataset


def is_available(section: str, opts: RunOptions) -> bool:
    """Results exist in this profile and dataset (and, for model-training sections, their weights too)."""
    if not has_results(section, opts):
        return False
    manifest = load_manifest(opts.results_root, section)
    needs_weights = manifest.get("trains_model", False)
    return not needs_weights or checkpoints.has_model(opts.work_dir, section, manifest.get("weights_key"))


def plan(names: list[str], opts: RunOptions) -> list[registry.Section]:
    """The sections to run, in order; missing dependencies are added or reported."""
    chosen = registry.resolve(names)
    chosen_names = {s.name for s in chosen}
    # A section reads only its direct dependencies' results and weights: those must exist (or be run).
    # The dependencies of a dependency matter only when that dependency itself has to run.
    missing, queue, seen = [], list(chosen), set(chosen_names)
    while queue:
        for dep in queue.pop(0).depends_on:
            if dep not in seen and not is_available(dep, opts):
                missing.append(dep)
                queue.append(registry.get(dep))
            seen.add(dep)
    if missing and not opts.run_missing:
        uniq = list(dict.fromkeys(missing))
        command = (f"`python -m experiments run {' '.join(uniq)} --profile {opts.profile}"
                   f"{dataset_flag(opts.dataset)}`")
        if all(has_results(name, opts) for name in uniq):      # the results are there, the weights are not
            raise UserError(f"weights missing: rerun {', '.join(uniq)} first ({command}; no trained model in "
                            f"{opts.work_dir}) or add --run-missing")
        raise UserError(f"missing results for {', '.join(uniq)} ({get_dataset(opts.dataset).title}, profile "
                        f"{opts.profile}): run {command} or add --run-missing")
    wanted = set(missing) | chosen_names
    # topological() adds every upstream section; keep only those asked for or missing
    return [s for s in registry.topological(list(dict.fromkeys(missing)) + [s.name for s in chosen])
            if s.name in wanted]


def compiles(section: registry.Section) -> bool:
    """Whether the section compiles its networks on a GPU: where it says so, unless FUNDIFF_COMPILE=0."""
    return section.compiles and os.environ.get(COMPILE_ENV, "1") != "0"


def run_one(section: registry.Section, opts: RunOptions, device: torch.device, overrides: dict | None, *,
            wait_for: Callable[[str], None] | None = None,
            spare_devices: Callable[[], list[torch.device]] | None = None) -> Path:
    """Run one section and commit its results; wait_for / spare_devices: see `Context` (a whole-writeup run)."""
    cfg = section_config(section, opts.profile, overrides)
    seed_everything(opts.seed)
    writer = ResultWriter(opts.results_root, section.name)
    key = workdirs.RunKey(section.name, opts.profile, opts.seed, to_dict(cfg), workdirs.data_fingerprint(opts.data_root, opts.dataset))
    ctx = Context(section=section, cfg=cfg, profile=opts.profile, device=device, seed=opts.seed,
                  work_root=opts.work_dir, data_root=opts.data_root, out=writer, dataset=opts.dataset,
                  read_result=lambda name, file: read_result(opts.results_root, name, file), resume=opts.resume,
                  show_progress=opts.show_progress, compile=compiles(section),
                  weights_key=key.digest)
    if wait_for is not None:
        ctx.wait_for = wait_for
    if spare_devices is not None:
        ctx.spare_devices = spare_devices
    module = fingerprint.section_module(section.module_file)
    started, t0 = provenance.now_iso(), time.perf_counter()
    try:
        with workdirs.claim(ctx.work_root, key, opts.resume):     # its own checkpoints, one run at a time
            section.run(ctx)
        inputs = {}
        for dep in section.depends_on:
            dep_manifest = load_manifest(opts.results_root, dep)
            inputs[dep] = dep_manifest.get("run_id") if dep_manifest else None
        wall = time.perf_counter() - t0
        manifest = {
            "section": section.name, "title": section.title, "part": section.part,
            "summary": section.summary, "depends_on": list(section.depends_on), "inputs": inputs,
            "run_id": f"{section.name}-{started}-{config_hash(cfg)}",
            "profile": opts.profile, "config": to_dict(cfg), "config_hash": config_hash(cfg),
            "code": fingerprint.code_fingerprint(module), "drawing": fingerprint.drawing_fingerprint(module),
            "seed": opts.seed,
            "device": provenance.device_name(device), "device_type": device.type,
            "device_index": (device.index or 0) if device.type == "cuda" else None,   # which GPU of the machine
            "compiled": ctx.compiled,                                   # torch.compile (the maths are the same)
            "git_commit": provenance.git_commit(), "started_at": started, "wall_s": round(wall, 3),
            "versions": provenance.library_versions(),
            "trains_model": checkpoints.read_spec(ctx.work_dir) is not None,
            "weights_fingerprint": checkpoints.fingerprint(ctx.work_root, section.name, key.digest),
            "weights_key": key.digest,
            "loaded_weights": ctx.loaded_weights,
            "dataset": dataset_record(opts),
        }
        return writer.commit(manifest, before_swap=lambda: archive_previous(opts.results_root, section.name))
    except BaseException:
        writer.abort()
        raise


def dataset_record(opts: RunOptions) -> dict:
    """What a manifest says about its data: the dataset, its class names and a fingerprint of its files."""
    data = get_dataset(opts.dataset)
    try:
        fingerprint_ = data_fingerprint(opts.data_root, opts.dataset)
    except UserError:
        fingerprint_ = None                   # a section that read no data, where there is none
    return {"name": data.name, "title": data.title, "classes": list(data.classes), "item": data.item,
            "fingerprint": fingerprint_}


def prepare(names: list[str], opts: RunOptions) -> tuple[torch.device, list[registry.Section], dict]:
    """Check folders and device, plan the sections and validate every config before any compute."""
    check_output_folder(opts.results_root, "output folder", opts.allow_outside)
    check_output_folder(opts.work_root, "work folder", opts.allow_outside)
    check_seed(opts.seed)
    device = resolve_device(opts.device)
    get_dataset(opts.dataset)           # an unknown dataset fails before anything else
    for s in registry.resolve(names):   # a bad value is reported before missing dependencies
        section_config(s, opts.profile, opts.overrides)
    sections = plan(names, opts)
    named = {s.name for s in registry.resolve(names)}
    # --set applies to the sections asked for, not to dependencies pulled in by --run-missing
    per_section = {s.name: (opts.overrides if s.name in named else None) for s in sections}
    for s in sections:  # validate every config before spending any compute
        section_config(s, opts.profile, per_section[s.name])
    destination.check(opts.results_root, opts.dataset, opts.profile, opts.replace)
    use_cpu_threads(device)
    try:
        opts.results_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {opts.results_root}: {exc.strerror}") from None
    return device, sections, per_section


def run(names: list[str], opts: RunOptions) -> list[Path]:
    device, sections, per_section = prepare(names, opts)
    if opts.confirm is not None:
        opts.confirm([s.name for s in sections], opts.profile, device)
    with writing(opts.results_root):          # one run per results folder; tidies killed runs' leftovers
        paths = [run_one(s, opts, device, per_section[s.name]) for s in sections]
        write_summary(opts.results_root)      # headline numbers of whatever has run: summary.json
    return paths
