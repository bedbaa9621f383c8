"""The whole writeup in one command: every section in dependency order, timed, then packed.

    python -m experiments writeup --profile full --device cuda --out docs/results --pack results.tar.gz

Writes `<out>/run.json` (writeup_wall_s, device, per-section wall times) which summary.json merges,
and optionally a tarball of the results (images, GIFs, JSON; checkpoints live elsewhere) to commit.
"""
from __future__ import annotations

import tarfile
import time
from pathlib import Path

from experiments import provenance, registry
from experiments.results import load_manifest, write_json_atomic
from experiments.runner import RunOptions, resolve_device, run


def run_writeup(opts: RunOptions, keep_going: bool = False) -> dict:
    """Every section in dependency order; with keep_going a failure skips only its dependants."""
    t0 = time.perf_counter()
    failed: dict[str, str] = {}
    if keep_going:
        for section in registry.all_sections():
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
        run(["all"], opts)
    wall = time.perf_counter() - t0
    sections = {}
    for section in registry.all_sections():
        manifest = load_manifest(opts.results_root, section.name)
        if manifest is not None:
            sections[section.name] = manifest["wall_s"]
    record = {"writeup_wall_s": round(wall, 1), "device": provenance.device_name(resolve_device(opts.device)),
              "profile": opts.profile, "git_commit": provenance.git_commit(), "finished_at": provenance.now_iso(),
              "section_wall_s": sections, "failed": failed}
    write_json_atomic(opts.results_root / "run.json", record)
    try:  # refresh summary.json with the wall time (summary.py merges run.json)
        from experiments.summary import write_summary

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
