"""The whole writeup in one command: every section in dependency order, timed, then packed.

    python -m experiments writeup --profile full --device cuda --out docs/results --pack results.tar.gz

Writes `<out>/run.json` (writeup_wall_s, device, per-section wall times) which summary.json merges,
and optionally a tarball of the results (images, GIFs, JSON; checkpoints live elsewhere) to commit.

With `jobs > 1` independent sections run at the same time, each in its own process (one GPU is
shared: most sections leave it idle between small kernels, so they overlap well). A section starts
once its dependencies are done; among the ready ones the longest remaining chain goes first,
estimated from the previous run's wall times in run.json, or else from the manifests of another
results folder (`estimates`, e.g. the committed results on a fresh GPU machine).

`skip` leaves sections (and whatever depends on them) out, e.g. to split a writeup that outlasts
one time-limited GPU job into two runs; run.json then lists them under `writeup_skipped`, and the wall time
is labelled as that of a partial writeup.
"""
from __future__ import annotations

import json
import multiprocessing
import tarfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Iterable

from experiments.pipeline import provenance, registry
from experiments.errors import UserError
from experiments.pipeline.cpu import cpu_threads
from experiments.pipeline.results import load_manifest, write_json_atomic, writing
from experiments.pipeline.runner import RunOptions, check_output_folder, prepare, resolve_device, run, run_one

RUN_RECORD = "run.json"


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def _run_in_worker(name: str, opts: RunOptions, threads: int) -> float:
    """A worker process runs one section (no recovery sweep: siblings are writing next to it)."""
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        run_one(registry.get(name), opts, resolve_device(opts.device), None)
    except BaseException as exc:  # noqa: BLE001 - torch errors may not pickle: send one line back
        raise RuntimeError(_one_line(exc)) from None
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()              # give the memory back to the sibling processes
    return time.perf_counter() - t0


def _chain_lengths(sections: list[registry.Section], previous: dict[str, float]) -> dict[str, float]:
    """Wall time of each section plus its longest chain of dependants (1 s when never measured)."""
    lengths: dict[str, float] = {}
    for section in reversed(sections):          # dependants come later in topological order
        after = [lengths[s.name] for s in sections if section.name in s.depends_on]
        lengths[section.name] = previous.get(section.name, 1.0) + max(after, default=0.0)
    return lengths


def previous_walls(results_root: Path, estimates: Path | None = None) -> dict[str, float]:
    """Section wall times to order a run by: each manifest's wall_s under `estimates`, overridden by
    the section times of the last whole run recorded in `results_root`/run.json."""
    walls: dict[str, float] = {}
    for section in registry.all_sections() if estimates is not None else ():
        try:
            manifest = load_manifest(estimates, section.name)
        except UserError:
            continue                            # an estimate only orders the run: skip what is unreadable
        if manifest is not None and isinstance(manifest.get("wall_s"), (int, float)):
            walls[section.name] = float(manifest["wall_s"])
    try:
        recorded = json.loads((results_root / RUN_RECORD).read_text(encoding="utf-8")).get("section_wall_s", {})
        walls.update({k: float(v) for k, v in recorded.items()})
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return walls


def with_dependants(names: Iterable[str]) -> list[str]:
    """Registered section names and, transitively, every section that depends on one (registry order).
    (Here rather than in the registry: editing a core module would mark every committed result stale.)"""
    chosen = set(names)
    for section in registry.all_sections():                 # dependency order: one pass is transitive
        if any(dep in chosen for dep in section.depends_on):
            chosen.add(section.name)
    return [s.name for s in registry.all_sections() if s.name in chosen]


def skipped_sections(names: Iterable[str]) -> list[str]:
    """The named sections and everything that depends on one; unknown names: UserError, closest match."""
    return with_dependants(registry.get(name).name for name in names)


def run_parallel(opts: RunOptions, jobs: int, keep_going: bool, names: list[str],
                 estimates: Path | None = None) -> dict[str, str]:
    """The named sections, up to `jobs` at a time in worker processes; returns {failed section: why}."""
    _, sections, _ = prepare(names, opts)
    lengths = _chain_lengths(sections, previous_walls(opts.results_root, estimates))
    pending = sorted(sections, key=lambda s: -lengths[s.name])
    done: set[str] = set()
    failed: dict[str, str] = {}
    running: dict[Future, str] = {}
    threads = cpu_threads(jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while pending or running:
            for section in list(pending):
                blocked = [d for d in section.depends_on if d in failed]
                if blocked:
                    failed[section.name] = f"skipped: {', '.join(blocked)} failed"
                    pending.remove(section)
                elif len(running) < jobs and all(d in done for d in section.depends_on):
                    running[pool.submit(_run_in_worker, section.name, opts, threads)] = section.name
                    pending.remove(section)
                    print(f"start {section.name}", flush=True)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    wall = future.result()
                    done.add(name)
                    print(f"done {name} ({wall:.1f} s)", flush=True)
                except Exception as exc:  # noqa: BLE001 - report; dependants are skipped
                    failed[name] = str(exc) if isinstance(exc, RuntimeError) else _one_line(exc)
                    print(f"FAILED {name}: {failed[name]}", flush=True)
                    if not keep_going:
                        for section in pending:
                            failed[section.name] = f"skipped: {name} failed"
                        pending.clear()
    return failed


def run_writeup(opts: RunOptions, keep_going: bool = False, jobs: int = 1, skip: tuple[str, ...] = (),
                estimates: Path | None = None) -> dict:
    """Every section in dependency order; with keep_going a failure skips only its dependants;
    with jobs > 1 independent sections run side by side in worker processes, longest chain first
    (see previous_walls for `estimates`); `skip` (names) and their dependants are left out."""
    check_output_folder(opts.results_root, "output folder", opts.allow_outside)
    with writing(opts.results_root):          # the workers write under this process's lock
        return _writeup(opts, keep_going, jobs, skip, estimates)


def _writeup(opts: RunOptions, keep_going: bool, jobs: int, skip: tuple[str, ...],
             estimates: Path | None) -> dict:
    skipped = skipped_sections(skip)
    wanted = [s for s in registry.all_sections() if s.name not in skipped]
    t0 = time.perf_counter()
    failed: dict[str, str] = {}
    if jobs > 1:
        failed = run_parallel(opts, jobs, keep_going, [s.name for s in wanted], estimates)
    elif keep_going:
        for section in wanted:
            blocked = [d for d in section.depends_on if d in failed]
            if blocked:
                failed[section.name] = f"skipped: {', '.join(blocked)} failed"
                continue
            try:
                run([section.name], opts)
            except Exception as exc:  # noqa: BLE001 - report and go on with the independent sections
                failed[section.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                print(f"FAILED {section.name}: {failed[section.name]}", flush=True)
    else:
        run([s.name for s in wanted], opts)
    wall = time.perf_counter() - t0
    sections = {}
    for section in registry.all_sections():
        manifest = load_manifest(opts.results_root, section.name)
        if manifest is not None:
            sections[section.name] = manifest["wall_s"]
    # writeup_* keys: summary.json merges them beside the sections' own provenance, which a later
    # rerun of one section may change; these say which whole run the wall time belongs to.
    record = {"writeup_wall_s": round(wall, 1), "writeup_jobs": jobs,
              "writeup_device": provenance.device_name(resolve_device(opts.device)), "profile": opts.profile,
              "writeup_git_commit": provenance.git_commit(), "writeup_finished_at": provenance.now_iso(),
              "section_wall_s": sections, "failed": failed, "writeup_skipped": skipped}
    write_json_atomic(opts.results_root / RUN_RECORD, record)
    try:  # refresh summary.json with the wall time (summary.py merges run.json)
        from experiments.pipeline.summary import write_summary

        write_summary(opts.results_root)
    except ImportError:
        pass
    return record


def pack(results_root: Path, tarball: Path) -> Path:
    """Tar the committed kind of results (no hidden temp folders, no checkpoints)."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(results_root.rglob("*")):
            rel = path.relative_to(results_root)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts) and path.suffix != ".pt":
                tar.add(path, arcname=str(Path(results_root.name) / rel))
    return tarball
