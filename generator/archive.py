"""Earlier runs on the pages: archived manifests (kept by experiments/pipeline/archive.py) named by run."""
from __future__ import annotations

from experiments.pipeline.archive import ARCHIVE, REQUIRED, archive, archive_name, load_archive

__all__ = ["ARCHIVE", "REQUIRED", "archive", "archive_name", "load_archive", "describe_run"]


def describe_run(manifest: dict) -> str:
    """'commit 8194968, 2026-11-25 (NVIDIA H100 80GB HBM3)': which run a number comes from."""
    return f"commit {manifest['git_commit'][:7]}, {manifest['started_at'][:10]} ({manifest['device']})"
