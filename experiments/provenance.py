"""Where a result came from: git commit, device, library versions, hashes of config and code."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(__file__).resolve().parent


GIT_COMMIT_ENV = "FUNDIFF_GIT_COMMIT"      # set by scripts/gpu_full_run.sh: a copied tree has no .git


def git_commit() -> str:
    """The commit named in $FUNDIFF_GIT_COMMIT when set (a copy of the tree on a GPU machine, whose
    .git, if any, is not the author's); else HEAD's short hash, with '+dirty' when tracked files
    differ; 'unknown' outside a checkout."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    fallback = "unknown"
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return fallback
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "experiments"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return fallback


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("torchvision", "numpy", "matplotlib", "imageio", "diffusers"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        versions[name] = getattr(module, "__version__", "?")
    if torch.cuda.is_available():
        versions["cuda"] = str(torch.version.cuda)
    return versions


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# Modules that cannot change a section's numbers or figures: the command line, the whole-writeup driver,
# the benchmark, provenance and summary bookkeeping, progress bars and test hooks.
NOT_RESULTS = {"cli.py", "__main__.py", "benchmark.py", "writeup.py", "provenance.py", "summary.py",
               "progress.py", "testhooks.py"}


def _core_files() -> list[Path]:
    """What every section runs on: the library outside sections/ (less NOT_RESULTS) and the helper
    modules inside sections/ (those that are not sections themselves)."""
    from experiments.sections import ORDER

    files = []
    for p in PACKAGE_ROOT.rglob("*.py"):
        parts = p.relative_to(PACKAGE_ROOT).parts
        if parts[0] == "sections":
            if len(parts) == 2 and p.stem not in ORDER and p.name != "__init__.py":
                files.append(p)
        elif p.name not in NOT_RESULTS:
            files.append(p)
    return sorted(files)


def code_hash(section_module_file: str | Path) -> str:
    """sha256 over the section's own module and the shared core (helpers included): a change to either
    stales it."""
    digest = hashlib.sha256()
    for path in [Path(section_module_file), *_core_files()]:
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
