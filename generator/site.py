"""The MkDocs side: stage a docs tree (static assets + rendered pages + results), build it strictly into a
new folder, and swap that into `site/` only when everything passed (a failure leaves the old site).

The site folder is replaced only if build-site made it: every built site carries a marker file, and
an existing folder without one (the project, docs/, results, anything of the user's) is refused.
"""
from __future__ import annotations

import ipaddress
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
from experiments.pipeline.results import FIGURE_DATA_SUFFIX, load_manifest, swap_in
from generator import MKDOCS_YML, PROJECT_ROOT, STATIC_DOCS
from experiments.pipeline.results import regular_file

WORK_NAME = ".build-site"     # beside site/: staging trees, on the same filesystem for an atomic swap
MARKER = ".fundiff-site"      # in every site build-site makes: only such a folder is ever replaced
ALLOW_OUTSIDE_ENV = "FUNDIFF_ALLOW_OUTSIDE"
# folders of the project a site may never be written into (nor over)
SOURCE_FOLDERS = (".git", "docs", "experiments", "generator", "templates", "tests", "scripts")


@dataclass(frozen=True)
class Staging:
    root: Path          # .build-site/<id>/
    docs: Path          # the docs tree MkDocs reads
    config: Path        # mkdocs.yml that INHERITs the project's and adds paths and nav
    site: Path          # where MkDocs writes


def _is_old_site(folder: Path) -> bool:
    """A site of this project built before sites were marked (replaced once, then marked)."""
    return all((folder / rel).is_file() for rel in ("index.html", "search/search_index.json",
                                                    "assets/katex/katex.min.js", "reproduce/index.html"))


def check_site_dir(site_dir: Path, allow_outside: bool = False) -> None:
    """Refuse a --site-dir that building would destroy or that lies outside the project: the project
    root or a folder above it, its source folders (docs/, docs/results/ ...), a link, a file, or an
    existing folder build-site did not make (no marker inside); outside the project only if allowed."""
    given = Path(site_dir)
    if given.is_symlink():
        raise UserError(f"site folder {given} is a link; pass the folder itself")
    target, root = given.resolve(), PROJECT_ROOT.resolve()
    if root.is_relative_to(target):
        raise UserError(f"site folder {given} holds the project ({root}); a site goes into a folder of its own "
                        f"(default: site/)")
    for name in SOURCE_FOLDERS:
        if target.is_relative_to(root / name):
            raise UserError(f"site folder {given} is inside the project's {name}/ folder, which build-site never "
                            f"replaces; choose another --site-dir (default: site/)")
    if not target.is_relative_to(root) and not allow_outside and os.environ.get(ALLOW_OUTSIDE_ENV) != "1":
        raise UserError(f"site folder {given} is outside the project ({root}); pass --allow-outside "
                        f"(or set {ALLOW_OUTSIDE_ENV}=1) to build there")
    check_replaceable(target)


def check_replaceable(site_dir: Path) -> None:
    """An existing site folder is replaced only if build-site made it (or it is empty)."""
    if not site_dir.exists():
        return
    if not site_dir.is_dir():
        raise UserError(f"site folder {site_dir} is a file")
    if (site_dir / MARKER).is_file() or _is_old_site(site_dir) or not any(site_dir.iterdir()):
        return
    raise UserError(f"site folder {site_dir} exists and was not built by build-site (no {MARKER} in it); "
                    "it is never replaced: remove it yourself or choose another --site-dir")


def check_dev_addr(addr: str) -> None:
    """--dev-addr is HOST:PORT with a port from 1 to 65535 (checked before anything runs)."""
    host, sep, port = addr.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ok_host = bool(bare) and (bool(re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})", bare))
                                  or ipaddress.ip_address(bare) is not None)
    except ValueError:
        ok_host = False
    if not (sep and ok_host and port.isdigit() and 1 <= int(port) <= 65535):
        raise UserError(f"--dev-addr must be HOST:PORT with a port from 1 to 65535 (e.g. 127.0.0.1:8000), "
                        f"got {addr!r}")


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


def _link_or_copy(src: Path, dst: Path) -> None:
    """A result file into the staged tree: a regular file only (never a link, which could point at
    any file of the machine); hard-linked where possible, since results can be large."""
    regular_file(src)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _result_files(results_root: Path, name: str) -> list[str]:
    """What a section's folder publishes: its manifest and the files the manifest lists."""
    manifest = load_manifest(results_root, name) or {}
    listed = [item["file"] for key in ("figures", "series") for item in manifest.get(key, [])]
    files = {"manifest.json", *listed, *manifest.get("files", [])}
    return sorted(f for f in files if not f.endswith(FIGURE_DATA_SUFFIX))    # figure data stays out of the site


def stage(site_dir: Path, results_root: Path, sections: list[str], extra_files: list[str],
          pages: dict[str, str], nav: list[Any], shown: str | None = None) -> Staging:
    """A complete docs tree for MkDocs: the project's docs/ (minus results), the results, the pages;
    `shown` (e.g. 'Fashion-MNIST, quick profile') joins the site name in every page's header and title."""
    root = work_root(site_dir) / f"stage-{uuid.uuid4().hex[:8]}"
    docs = root / "docs"
    shutil.copytree(STATIC_DOCS, docs, ignore=shutil.ignore_patterns("results", ".*"))
    for name in sections:
        (docs / "results" / name).mkdir(parents=True)
        for file in _result_files(results_root, name):
            _link_or_copy(results_root / name / file, docs / "results" / name / file)
    for name in extra_files:
        if (results_root / name).exists() or (results_root / name).is_symlink():
            _link_or_copy(results_root / name, docs / "results" / name)
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
    """Replace site_dir by new_site in one atomic exchange (two renames where the kernel has none;
    `recover` finishes them after a kill), and only if build-site made site_dir."""
    site_dir = Path(site_dir).resolve()
    check_replaceable(site_dir)
    (new_site / MARKER).write_text("built by build-site; replaced by the next build\n", encoding="utf-8")
    swap_in(new_site, site_dir, work_root(site_dir) / "previous-site")


def discard(staging: Staging) -> None:
    shutil.rmtree(staging.root, ignore_errors=True)


def serve(staging: Staging, dev_addr: str) -> None:
    """`mkdocs serve` on the staged tree until Ctrl-C (rerun build-site to pick up new results)."""
    check_dev_addr(dev_addr)
    try:
        proc = _mkdocs(["serve", "--dev-addr", dev_addr], staging.config, capture=False)
    except KeyboardInterrupt:    # the usual way to stop a preview, not an error
        return
    if proc.returncode not in (0, -2, 130):
        raise UserError(f"mkdocs serve stopped with exit code {proc.returncode} (is {dev_addr} free?)")


def publish(staging: Staging) -> None:
    """`mkdocs gh-deploy`: builds the staged tree and pushes it to the gh-pages branch."""
    proc = _mkdocs(["gh-deploy", "--force", "--strict"], staging.config)
    if proc.returncode != 0:
        raise UserError(f"mkdocs gh-deploy failed: {first_problem(proc.stderr + proc.stdout)}")
