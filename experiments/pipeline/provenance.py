"""Where a result came from: git commit, device, library versions, time."""
from __future__ import annotations

import os
import platform
from importlib import metadata
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


GIT_COMMIT_ENV = "FUNDIFF_GIT_COMMIT"      # set where a tree copied to a GPU machine has no .git


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
    """Versions of the libraries a result depends on, from the installed packages' metadata (importing
    them, diffusers above all, would cost every section process seconds)."""
    versions = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("torchvision", "numpy", "matplotlib", "imageio", "diffusers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if torch.cuda.is_available():
        versions["cuda"] = str(torch.version.cuda)
    return versions


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
