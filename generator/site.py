"""The MkDocs side: stage a docs tree (static assets + rendered pages + results), build it strictly into a
new folder, and swap that into `site/` only when everything passed (a failure leaves the old site)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from experiments.errors import UserError
from generator import MKDOCS_YML, PROJECT_ROOT, STATIC_DOCS

WORK_NAME = ".build-site"     # beside site/: staging trees, on the same filesystem for an atomic swap


@dataclass(frozen=True)
class Staging:
    root: Path          # .build-site/<id>/
    docs: Path          # the docs tree MkDocs reads
    config: Path        # mkdocs.yml that INHERITs the project's and adds paths and nav
    site: Path          # where MkDocs writes


def work_root(site_dir: Path) -> Path:
    root = Path(site_dir).resolve().parent / WORK_NAME
    root.mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text("*\n")   # never committed, whatever the project's .gitignore says
    return root


def recover(site_dir: Path) -> None:
    """Finish or undo a swap a kill interrupted, and drop leftover staging trees (call under the lock)."""
    site_dir = Path(site_dir).resolve()
    root = work_root(site_dir)
    old = root / "previous-site"
    if old.exists():
        if not site_dir.exists():
            os.replace(old, site_dir)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob("stage-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)          # results can be large: hard links cost nothing
    except OSError:
        shutil.copy2(src, dst)


def stage(site_dir: Path, results_root: Path, sections: list[str], extra_files: list[str],
          pages: dict[str, str], nav: list[Any], shown: str | None = None) -> Staging:
    """A complete docs tree for MkDocs: the project's docs/ (minus results), the results, the pages;
    `shown` (e.g. 'Fashion-MNIST, quick profile') joins the site name in every page's header and title."""
    root = work_root(site_dir) / f"stage-{uuid.uuid4().hex[:8]}"
    docs = root / "docs"
    shutil.copytree(STATIC_DOCS, docs, ignore=shutil.ignore_patterns("results", ".*"))
    for name in sections:
        shutil.copytree(results_root / name, docs / "results" / name, copy_function=_link_or_copy,
                        ignore=shutil.ignore_patterns(".*"))
    for name in extra_files:
        if (results_root / name).is_file():
            _link_or_copy(str(results_root / name), str(docs / "results" / name))
    for rel, text in pages.items():
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    config = root / "mkdocs.yml"
    settings = {"INHERIT": str(MKDOCS_YML), "docs_dir": str(docs), "site_dir": str(root / "site"), "nav": nav}
    if shown:
        site_name = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))["site_name"]
        settings["site_name"] = f"{site_name} · {shown}"
    config.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return Staging(root, docs, config, root / "site")


def _mkdocs(args: list[str], config: Path, capture: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mkdocs", *args, "-f", str(config)]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=capture, text=True)


def first_problem(log: str) -> str:
    """The first WARNING/ERROR line of MkDocs' log, without the level prefix."""
    for line in log.splitlines():
        match = re.match(r"\s*(WARNING|ERROR)\s*-\s*(.*)", line)
        if match and "strict mode" not in match.group(2):
            return match.group(2).strip()
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def build(staging: Staging) -> None:
    """`mkdocs build --strict`: any warning (a broken link or anchor, a missing image) fails the build."""
    proc = _mkdocs(["build", "--strict", "--clean"], staging.config)
    if proc.returncode != 0 or not (staging.site / "index.html").exists():
        raise UserError(f"mkdocs build --strict failed: {first_problem(proc.stderr + proc.stdout)}")


def swap_into(new_site: Path, site_dir: Path) -> None:
    """Replace site_dir by new_site with renames only (the old site survives until the new one is there)."""
    site_dir = Path(site_dir).resolve()
    if site_dir.exists() and not site_dir.is_dir():
        raise UserError(f"site folder {site_dir} is a file")
    old = work_root(site_dir) / "previous-site"
    if site_dir.exists():
        os.replace(site_dir, old)
    os.replace(new_site, site_dir)
    shutil.rmtree(old, ignore_errors=True)


def discard(staging: Staging) -> None:
    shutil.rmtree(staging.root, ignore_errors=True)


def serve(staging: Staging, dev_addr: str) -> None:
    """`mkdocs serve` on the staged tree until Ctrl-C (rerun build-site to pick up new results)."""
    try:
        _mkdocs(["serve", "--dev-addr", dev_addr], staging.config, capture=False)
    except KeyboardInterrupt:    # the usual way to stop a preview, not an error
        pass


def publish(staging: Staging) -> None:
    """`mkdocs gh-deploy`: builds the staged tree and pushes it to the gh-pages branch."""
    proc = _mkdocs(["gh-deploy", "--force", "--strict"], staging.config)
    if proc.returncode != 0:
        raise UserError(f"mkdocs gh-deploy failed: {first_problem(proc.stderr + proc.stdout)}")
