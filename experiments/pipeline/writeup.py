"""The whole writeup in one command: every section on every visible GPU, timed, then packed.

    python -m experiments writeup --profile full --pack results.tar.gz          # all GPUs of this machine
    python -m experiments writeup peer --profile full --pack peer.tar.gz        # one section (a cluster job)

Sections run in worker processes placed by `placement.Planner`: longest chain first, each on the GPU
with the least expected work left, up to `per_gpu` at a time per GPU (most sections leave a GPU idle
between small kernels or while they compile), expected times from the previous run (`run.json`, else
the manifests' wall times). A section that reads its dependencies only after training of its own
starts once they have started and waits for them (`board`); one that samples large independent sets
spreads them over idle GPUs (`experiments.core.parallel`), which new sections then avoid until it ends.

Writes `<out>/run.json` (wall time, GPU count, device, commit, per-section times and GPUs), which
summary.json merges, and optionally a tarball of the results (images, GIFs, JSON; checkpoints live
elsewhere) for `build-site unpack`.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import tarfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from experiments.errors import UserError, one_line
from experiments.pipeline import provenance, registry
from experiments.pipeline.archive import archive_run_record
from experiments.pipeline.board import Board
from experiments.pipeline.cpu import cpu_threads
from experiments.pipeline.placement import UNMEASURED_S, Job, Planner
from experiments.pipeline.results import load_manifest, write_json_atomic, writing
from experiments.pipeline.runner import RunOptions, check_output_folder, prepare, resolve_device, run_one

RUN_RECORD = "run.json"
RUN_FILES = (RUN_RECORD, "summary.json", "benchmark.json")      # results of a whole run, beside the sections


def expected_walls(results_root: Path) -> dict[str, float]:
    """Each section's expected time: its time in the last whole run (run.json), else its manifest's wall_s."""
    walls: dict[str, float] = {}
    for section in registry.all_sections():
        try:
            manifest = load_manifest(results_root, section.name)
        except UserError:
            continue                            # an estimate only places the run: skip what is unreadable
        if manifest is not None and isinstance(manifest.get("wall_s"), (int, float)):
            walls[section.name] = float(manifest["wall_s"])
    try:
        recorded = json.loads((results_root / RUN_RECORD).read_text(encoding="utf-8")).get("section_wall_s", {})
        walls.update({k: float(v) for k, v in recorded.items() if isinstance(v, (int, float))})
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return walls


def _warm_worker() -> None:
    """A worker process imports torch and the sections while the run starts, not when its section does."""
    registry.all_sections()


def section_pool(workers: int, initializer: Callable[[], None] | None = _warm_worker) -> ProcessPoolExecutor:
    """Worker processes for sections, a fresh one for every section: nothing a section leaves in its
    process (compiled code, captured CUDA graphs, the current device) can reach the next one, which
    may run on another GPU. Replacements start, and warm up, while the running sections work."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=initializer, max_tasks_per_child=1)


def _run_in_worker(name: str, opts: RunOptions, device: str, threads: int, wait_for: Callable,
                   spare_devices: Callable) -> float:
    """A worker process runs one section on `device` (no recovery sweep: siblings are writing beside it)."""
    import torch

    torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)            # CUDA graphs and streams use the current device
    t0 = time.perf_counter()
    try:
        run_one(registry.get(name), opts, dev, None, wait_for=wait_for, spare_devices=spare_devices)
    except BaseException as exc:  # noqa: BLE001 - torch errors may not pickle: send one line back
        raise RuntimeError(one_line(exc)) from None
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return time.perf_counter() - t0


def run_sections(opts: RunOptions, names: list[str], gpus: int, per_gpu: int, keep_going: bool,
                 device_type: str) -> tuple[dict[str, str], dict[str, tuple[int, float]]]:
    """The named sections (dependency order) in worker processes; ({failed: why}, {section: (gpu, start s)})."""
    walls = expected_walls(opts.results_root)
    jobs = [Job(s.name, s.depends_on, walls.get(s.name, UNMEASURED_S), s.reads_dependencies_late)
            for s in registry.all_sections() if s.name in names]
    planner = Planner(jobs, gpus, per_gpu)
    board = Board(opts.work_dir / ".writeup", gpus)
    threads = cpu_threads(gpus * per_gpu)
    running: dict[Future, str] = {}
    t0 = time.perf_counter()
    with section_pool(gpus * per_gpu) as pool:
        while not planner.finished():
            for name, borrowed in board.loans().items():      # idle GPUs sections borrowed meanwhile
                planner.lend(name, borrowed)
            for name, gpu in planner.place(time.perf_counter() - t0):
                device = f"cuda:{gpu}" if device_type == "cuda" else "cpu"
                board.started(name, gpu, planner.by_name[name].expected_s)
                running[pool.submit(_run_in_worker, name, opts, device, threads, board.waiter(names),
                                    board.spares(name) if device_type == "cuda" else _no_spares)] = name
                print(f"start {name} on {device}", flush=True)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    wall = future.result()
                except Exception as exc:  # noqa: BLE001 - report; dependants are skipped
                    why = str(exc) if isinstance(exc, RuntimeError) else one_line(exc)
                    board.finished(name, ok=False)
                    for skipped in planner.finish(name, ok=False, why=why):
                        board.finished(skipped, ok=False)
                    print(f"FAILED {name}: {why}", flush=True)
                    if not keep_going:
                        planner.abandon(f"skipped: {name} failed")
                    continue
                board.finished(name, ok=True)
                planner.finish(name)
                print(f"done {name} ({wall:.1f} s)", flush=True)
    placed = {n: (s.gpu, round(s.at, 1)) for n, s in planner.started.items()}
    return dict(planner.failed), placed


def _no_spares() -> list:
    return []


def run_writeup(opts: RunOptions, names: list[str] | None = None, gpus: int | None = None, per_gpu: int | None = None,
                keep_going: bool = False) -> dict:
    """Every section (or the named ones, whose dependencies must have results), in dependency order, on
    `gpus` GPUs (default: all visible; on the CPU one process at a time unless per_gpu says otherwise)."""
    check_output_folder(opts.results_root, "output folder", opts.allow_outside)
    with writing(opts.results_root):          # the workers write under this process's lock
        return _writeup(opts, names, gpus, per_gpu, keep_going)


def _writeup(opts: RunOptions, names: list[str] | None, gpus: int | None, per_gpu: int | None,
             keep_going: bool) -> dict:
    device = resolve_device(opts.device)
    visible = _visible_gpus() if device.type == "cuda" else 0
    if device.type == "cuda":
        gpus = gpus or visible
        if gpus > visible:
            raise UserError(f"--gpus {gpus}: only {visible} GPU(s) visible")
        per_gpu = per_gpu or 4
    else:
        gpus, per_gpu = 1, per_gpu or 1
    _, sections, _ = prepare(list(names or ["all"]), opts)
    chosen = [s.name for s in sections]
    t0 = time.perf_counter()
    failed: dict[str, str] = {}
    placed: dict[str, tuple[int, float]] = {}
    if gpus * per_gpu > 1:                    # side by side: progress bars would interleave
        failed, placed = run_sections(dataclasses.replace(opts, show_progress=False), chosen, gpus, per_gpu,
                                      keep_going, device.type)
    else:
        failed, placed = _run_here(opts, sections, device, keep_going, t0)
    wall = time.perf_counter() - t0
    walls = {}
    for name in chosen:
        manifest = load_manifest(opts.results_root, name)
        if manifest is not None and name not in failed:
            walls[name] = manifest["wall_s"]
    everything = [s.name for s in registry.all_sections()]
    # writeup_* keys: summary.json merges them beside the sections' own provenance, which a later
    # rerun of one section may change; these say which whole run the wall time belongs to.
    record = {"writeup_wall_s": round(wall, 1), "writeup_gpus": gpus if device.type == "cuda" else 0,
              "writeup_per_gpu": per_gpu, "writeup_device": provenance.device_name(device), "profile": opts.profile,
              "writeup_git_commit": provenance.git_commit(), "writeup_finished_at": provenance.now_iso(),
              "writeup_sections": "all" if chosen == everything else chosen,
              "section_wall_s": walls, "section_gpu": {n: g for n, (g, _) in placed.items()},
              "section_start_s": {n: at for n, (_, at) in placed.items()}, "failed": failed}
    archive_run_record(opts.results_root, RUN_RECORD)      # the run this one replaces stays on the pages
    write_json_atomic(opts.results_root / RUN_RECORD, record)
    from experiments.pipeline.summary import write_summary

    write_summary(opts.results_root)          # summary.json merges run.json
    return record


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _run_here(opts: RunOptions, sections: list[registry.Section], device, keep_going: bool,
              t0: float) -> tuple[dict[str, str], dict[str, tuple[int, float]]]:
    """One section after another in this process (the CPU, or one GPU with per_gpu = 1)."""
    failed: dict[str, str] = {}
    placed: dict[str, tuple[int, float]] = {}
    for section in sections:
        blocked = [d for d in section.depends_on if d in failed]
        if blocked:
            failed[section.name] = f"skipped: {', '.join(blocked)} failed"
            continue
        placed[section.name] = (0, round(time.perf_counter() - t0, 1))
        try:
            run_one(section, opts, device, None)
        except Exception as exc:  # noqa: BLE001 - report and go on with the independent sections
            if not keep_going:
                raise
            failed[section.name] = one_line(exc)
            print(f"FAILED {section.name}: {failed[section.name]}", flush=True)
    return failed, placed


def pack(results_root: Path, tarball: Path, sections: list[str] | None = None) -> Path:
    """Tar the committed kind of results (no hidden temp folders, no checkpoints): every section and the
    run's files, or only the named sections' folders (one job of a run split over several machines)."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(results_root.rglob("*")):
            rel = path.relative_to(results_root)
            if sections is not None and rel.parts[0] not in sections:
                continue
            if path.is_file() and not any(part.startswith(".") for part in rel.parts) and path.suffix != ".pt":
                tar.add(path, arcname=str(Path(results_root.name) / rel))
    return tarball
