"""The tools never destroy what they did not make, and nothing read from results reaches outside.

Each test is an attack or an everyday mistake that used to lose data or publish something it should
not: a --site-dir over the project, two runs of one results folder at once, links and fake images in
results, a kill between two renames, crafted tarballs and manifests, script in result strings,
resuming with other data, a loss that explodes, and inputs that used to end in a traceback.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from experiments import cli as experiments_cli
from experiments.core.config import TrainConfig, UNetConfig
from experiments.core.data import load_split
from experiments.core.models.unet import UNet
from experiments.core.training import Trainer
from experiments.errors import DivergenceError, UserError
from experiments.pipeline import results as results_mod
from experiments.pipeline.results import load_manifest, recover
from experiments.pipeline.writeup import pack
from generator import checks, site
from generator.cli import main as site_main

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones included, lock files aside) by relative path; links by their target."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.name.endswith((".lock", ".fundiff-lock")):
            continue
        if p.is_symlink():
            out[str(p.relative_to(root))] = f"-> {os.readlink(p)}".encode()
        elif p.is_file():
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def call(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """A command line in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal" not in lines[0], err
    for needle in needles:
        assert needle in lines[0], lines[0]


def folders(root: Path, data_root: Path, profile: str | None = "quick") -> list[str]:
    return ["--out", str(root / "results"), "--work-dir", str(root / "work"), "--data-root", str(data_root),
            "--no-progress", *(["--profile", profile] if profile else [])]


@pytest.fixture()
def results(quick_run, tmp_path) -> Path:
    """A copy of the quick run's results (the session's own stay untouched)."""
    dst = tmp_path / "results"
    shutil.copytree(quick_run.results, dst)
    return dst


def build(results: Path, site_dir: Path, capsys, *extra: str) -> tuple[int, str, str]:
    return call(site_main, ["--results", str(results), "--site-dir", str(site_dir), *extra], capsys)


# ---- 1. the site folder: only a site build-site made is ever replaced ----------------------------------
@pytest.fixture()
def project(quick_run, tmp_path, monkeypatch) -> Path:
    """A stand-in checkout (build-site takes it for the project), so a failure here destroys only a copy."""
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'fun-with-diffusion'\n")
    shutil.copytree(quick_run.results, root / "docs" / "results")
    monkeypatch.setattr(site, "PROJECT_ROOT", root)
    monkeypatch.delenv("FUNDIFF_ALLOW_OUTSIDE", raising=False)
    return root


@pytest.mark.parametrize("where, needle", [
    ("{root}", "holds the project"),
    ("{root}/docs", "inside the project's docs/ folder"),
    ("{root}/docs/results", "inside the project's docs/ folder"),
    ("{root}/.git", "inside the project's .git/ folder"),
    ("{root}/..", "holds the project"),
])
def test_site_dir_never_replaces_the_project_or_its_sources(project, capsys, where, needle):
    before = snapshot(project.parent)
    target = Path(where.format(root=project))
    code, _, err = build(project / "docs" / "results", target, capsys)
    one_line_error(code, err, needle)
    assert snapshot(project.parent) == before


def test_site_dir_of_the_users_own_is_refused_and_a_built_site_is_replaced(project, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    results = project / "docs" / "results"
    code, _, err = build(results, mine, capsys)
    one_line_error(code, err, "outside the project", "--allow-outside")
    code, _, err = build(results, mine, capsys, "--allow-outside")
    one_line_error(code, err, "was not built by build-site", site.MARKER)
    assert (mine / "thesis.tex").read_text() == "years of work"

    inside = project / "site"                               # the default place: built, marked, rebuilt
    code, out, err = build(results, inside, capsys)
    assert code == 0, err
    assert (inside / site.MARKER).is_file() and (inside / "index.html").is_file()
    (inside / "stale.html").write_text("from the previous build")
    code, _, err = build(results, inside, capsys)
    assert code == 0, err
    assert not (inside / "stale.html").exists() and (inside / site.MARKER).is_file()


# ---- 3. two runs of one results folder, and checkpoints of different runs ------------------------------
def test_a_second_run_of_the_same_results_is_busy_and_leaves_the_first_alone(quick_run, tmp_path, data_root,
                                                                              capsys):
    from test_reliability import Run

    root = tmp_path
    shutil.copytree(quick_run.results / "noising", root / "results" / "noising")
    first = Run(["noising", *folders(root, data_root), "--set", "digits=2"], pause="writing")
    try:
        first.wait_for_pause("writing")
        staged = [p for p in (root / "results").iterdir() if p.name.startswith(".tmp-noising-")]
        assert len(staged) == 1 and f"-{first.proc.pid}-" in staged[0].name
        code, _, err = call(experiments_cli.main, ["run", "noising", *folders(root, data_root)], capsys)
        one_line_error(code, err, "is busy", f"pid {first.proc.pid}")
        assert (staged[0] / "manifest.json").is_file(), "the live run's temporary folder was removed"
    finally:
        first.kill()
    # the owner is dead now: the next run of the folder tidies its leftover and runs
    code, _, err = call(experiments_cli.main, ["run", "noising", *folders(root, data_root)], capsys)
    assert code == 0, err
    assert not [p for p in (root / "results").iterdir() if p.name.startswith(".")]


def test_recovery_removes_only_leftovers_of_dead_processes(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    live = tmp_path / f".tmp-noising-{os.getppid()}-0000abcd"        # pytest's parent is alive
    dead = tmp_path / f".tmp-noising-{dead_pid}-0000abcd"
    for folder in (live, dead):
        folder.mkdir()
        (folder / "manifest.json").write_text("{}")
    recover(tmp_path)
    assert live.is_dir() and not dead.exists()


def test_checkpoints_of_another_seed_never_replace_the_weights_results_were_made_with(quick_run, tmp_path,
                                                                                       data_root, capsys):
    shutil.copytree(quick_run.results, tmp_path / "results")
    shutil.copytree(quick_run.work, tmp_path / "work")
    other = ["--out", str(tmp_path / "other"), "--work-dir", str(tmp_path / "work"), "--data-root", str(data_root),
             "--no-progress", "--profile", "quick"]
    code, _, err = call(experiments_cli.main, ["run", "single-step-denoiser", "--seed", "7", *other], capsys)
    assert code == 0, err
    code, _, err = call(experiments_cli.main, ["run", "out-of-distribution", *folders(tmp_path, data_root)], capsys)
    assert code == 0, err
    ours = load_manifest(tmp_path / "results", "single-step-denoiser")
    seven = load_manifest(tmp_path / "other", "single-step-denoiser")
    ood = load_manifest(tmp_path / "results", "out-of-distribution")
    assert ours["weights_fingerprint"] != seven["weights_fingerprint"]
    assert ood["loaded_weights"]["single-step-denoiser"] == ours["weights_fingerprint"]


# ---- 4. links and fake images ---------------------------------------------------------------------------
@pytest.mark.parametrize("damage, needle", [
    ("random-bytes", "is not a PNG or GIF image"),
    ("image-link", "is a link"),
    ("folder-link", "is a link"),
    ("summary-link", "is a link"),
])
def test_links_and_fake_images_in_results_are_refused(results, tmp_path, capsys, damage, needle):
    image = results / "noising" / "noising.png"
    outside = tmp_path / "outside"
    outside.mkdir()
    if damage == "random-bytes":
        image.write_bytes(os.urandom(4096))
    elif damage == "image-link":                       # a real PNG, but anywhere on the machine
        shutil.copy(image, outside / "secret.png")
        image.unlink()
        image.symlink_to(outside / "secret.png")
    elif damage == "folder-link":
        shutil.move(results / "noising", outside / "noising")
        (results / "noising").symlink_to(outside / "noising")
    else:
        shutil.move(results / "summary.json", outside / "summary.json")
        (results / "summary.json").symlink_to(outside / "summary.json")
    code, _, err = build(results, tmp_path / "site", capsys)
    one_line_error(code, err, needle)
    assert not (tmp_path / "site").exists()


# ---- 5. swaps: one atomic exchange, leftovers recovered --------------------------------------------------
def _exchange_supported(tmp_path: Path) -> bool:
    a, b = tmp_path / "xa", tmp_path / "xb"
    a.mkdir(), b.mkdir()
    ok = results_mod._exchange(a, b)
    shutil.rmtree(a), shutil.rmtree(b)
    return ok


def test_a_kill_between_renames_cannot_lose_the_site(results, tmp_path, capsys, monkeypatch):
    if not _exchange_supported(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) unsupported here")
    site_dir = tmp_path / "site"
    code, _, err = build(results, site_dir, capsys)
    assert code == 0, err
    real_replace, real_rename = os.replace, os.rename

    def killed_after(real):
        def move(src, dst, *args, **kwargs):
            real(src, dst, *args, **kwargs)
            if Path(src).resolve() == site_dir.resolve():       # the site moved aside, the new one not in yet
                raise KeyboardInterrupt
        return move

    monkeypatch.setattr(os, "replace", killed_after(real_replace))
    monkeypatch.setattr(os, "rename", killed_after(real_rename))
    code, _, err = build(results, site_dir, capsys)
    monkeypatch.undo()
    assert code == 0, err
    assert (site_dir / "index.html").is_file() and (site_dir / site.MARKER).is_file()


def test_an_interrupted_unpack_is_recovered_at_the_next_start(results, tmp_path, capsys):
    # what a kill between the two renames of an older unpack left: the folder aside in its staging folder
    aside = results / ".unpack-k1ll3d00" / ".old-noising"
    aside.parent.mkdir()
    shutil.move(results / "noising", aside)
    before = snapshot(aside)
    tarball = pack_sections(results, tmp_path, ["pure-noise"])
    code, _, err = call(site_main, unpack_args(results, tarball, tmp_path), capsys)
    assert code == 0, err
    assert snapshot(results / "noising") == before
    assert not [p for p in results.iterdir() if p.name.startswith(".unpack-")]


# ---- 6. tarballs: every member checked, bytes written by hand --------------------------------------------
def pack_sections(results: Path, tmp_path: Path, names: list[str], name: str = "packed.tar.gz") -> Path:
    staging = tmp_path / "packed" / "results"
    for section in names:
        shutil.copytree(results / section, staging / section, dirs_exist_ok=True)
    return pack(staging, tmp_path / name)


def unpack_args(results: Path, tarball: Path, tmp_path: Path) -> list[str]:
    return ["unpack", str(tarball), "--results", str(results), "--site-dir", str(tmp_path / "site")]


def crafted(tarball: Path, out: Path, add: list[tuple[tarfile.TarInfo, bytes | None]], drop: str = "") -> Path:
    """The tarball with the member named `drop` left out and `add`'s members appended."""
    with tarfile.open(tarball) as src, tarfile.open(out, "w:gz") as dst:
        for info in src.getmembers():
            if info.name != drop:
                dst.addfile(info, src.extractfile(info) if info.isreg() else None)
        for info, data in add:
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = b"x", link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if data is not None and kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


class Zeros(io.RawIOBase):
    """n zero bytes, without holding them in memory."""

    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


@pytest.mark.parametrize("attack, needle", [
    ("symlink", "is a symbolic link"),
    ("symlink-out", "is a symbolic link"),
    ("hardlink", "is a hard link"),
    ("unlisted", "is not listed in noising/manifest.json"),
    ("too-large", "more than the"),
    ("dot-dot", "'..'"),
    ("absolute", "absolute"),
    ("unknown-folder", "is neither a section's results"),
    ("hidden", "a name results never have"),
    ("device", "a device, FIFO or sparse file"),
])
def test_a_crafted_tarball_is_refused_before_anything_is_written(results, tmp_path, capsys, attack, needle):
    good = pack_sections(results, tmp_path, ["noising"])
    png = "results/noising/noising.png"
    if attack == "symlink":             # inside the tarball, but the image would be a link
        bad = crafted(good, tmp_path / "bad.tar.gz", [member(png, tarfile.SYMTYPE, link="manifest.json")], drop=png)
    elif attack == "symlink-out":
        bad = crafted(good, tmp_path / "bad.tar.gz", [member(png, tarfile.SYMTYPE, link="../../../../etc/hostname")],
                      drop=png)
    elif attack == "hardlink":
        bad = crafted(good, tmp_path / "bad.tar.gz", [member(png, tarfile.LNKTYPE, link="results/noising/manifest.json")],
                      drop=png)
    elif attack == "unlisted":
        bad = crafted(good, tmp_path / "bad.tar.gz", [member("results/noising/run.sh", data=b"rm -rf ~\n")])
    elif attack == "too-large":
        bad = tmp_path / "bad.tar.gz"
        with tarfile.open(good) as src, tarfile.open(bad, "w:gz") as dst:
            for info in src.getmembers():
                if info.name == png:
                    info.size = 40 * 2**20               # zeros: a tarball of about 40 KB
                    dst.addfile(info, io.BufferedReader(Zeros(info.size)))
                else:
                    dst.addfile(info, src.extractfile(info))
    elif attack == "dot-dot":
        bad = crafted(good, tmp_path / "bad.tar.gz", [member("results/../../escape.txt")])
    elif attack == "absolute":
        bad = crafted(good, tmp_path / "bad.tar.gz", [member(str(tmp_path / "escape.txt"))])
    elif attack == "unknown-folder":
        bad = crafted(good, tmp_path / "bad.tar.gz", [member("results/evil/payload.txt")])
    elif attack == "hidden":
        bad = crafted(good, tmp_path / "bad.tar.gz", [member("results/noising/.bashrc")])
    else:
        bad = crafted(good, tmp_path / "bad.tar.gz", [member("results/noising/fifo", tarfile.FIFOTYPE)])
    before = snapshot(results)
    code, _, err = call(site_main, unpack_args(results, bad, tmp_path), capsys)
    one_line_error(code, err, "cannot unpack", needle)
    assert snapshot(results) == before
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path.parent / "escape.txt").exists()


def test_unpack_never_calls_the_tar_modules_extraction(results, tmp_path, capsys, monkeypatch):
    tarball = pack_sections(results, tmp_path, ["noising", "pure-noise"])

    def forbidden(*args, **kwargs):
        raise AssertionError("tarfile extraction called")

    for name in ("extract", "extractall", "_extract_member", "_extract_one"):
        monkeypatch.setattr(tarfile.TarFile, name, forbidden, raising=False)
    code, out, err = call(site_main, unpack_args(results, tarball, tmp_path), capsys)
    assert code == 0, err
    assert "unpacked noising" in out and "unpacked pure-noise" in out
    from generator import tarsafe

    monkeypatch.setattr(tarsafe, "MAX_TOTAL_BYTES", 10_000)           # the total is limited too
    before = snapshot(results)
    code, _, err = call(site_main, unpack_args(results, tarball, tmp_path), capsys)
    one_line_error(code, err, "cannot unpack", "add up to more than")
    assert snapshot(results) == before


def test_a_random_file_named_png_in_a_tarball_is_refused(results, tmp_path, capsys):
    real = (results / "noising" / "noising.png").read_bytes()
    (results / "noising" / "noising.png").write_bytes(os.urandom(2048))
    tarball = pack_sections(results, tmp_path, ["noising"])
    (results / "noising" / "noising.png").write_bytes(real)
    before = snapshot(results)
    code, _, err = call(site_main, unpack_args(results, tarball, tmp_path), capsys)
    one_line_error(code, err, "noising.png is not a PNG or GIF image")
    assert snapshot(results) == before


# ---- 7. names read from results never become paths outside ----------------------------------------------
@pytest.mark.parametrize("field, value, needle", [
    ("section", "../../evil", "invalid section name"),
    ("section", "no-such-section", "unknown section"),
    ("git_commit", "../../../evil", "invalid git_commit"),
])
def test_archive_refuses_names_that_would_leave_the_archive(results, tmp_path, capsys, field, value, needle):
    manifest = json.loads((results / "noising" / "manifest.json").read_text())
    manifest[field] = value
    crafted_manifest = tmp_path / "explore" / "manifest.json"
    crafted_manifest.parent.mkdir()
    crafted_manifest.write_text(json.dumps(manifest))
    before = snapshot(tmp_path)
    code, _, err = call(site_main, ["archive", str(crafted_manifest), "--results", str(results)], capsys)
    one_line_error(code, err, needle)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("field, value, needle", [
    ("section", "../../evil", "invalid section name"),
    ("section", "pure-noise", "is the manifest of 'pure-noise', not of 'noising'"),
    ("files", "+../../../etc/passwd", "names an invalid file"),
    ("weights_key", "../../x", "invalid weights_key"),
])
def test_unpack_refuses_a_manifest_whose_names_point_elsewhere(results, tmp_path, capsys, field, value, needle):
    path = results / "noising" / "manifest.json"
    original = path.read_text()
    manifest = json.loads(original)
    manifest[field] = manifest[field] + [value[1:]] if field == "files" else value
    path.write_text(json.dumps(manifest))
    tarball = pack_sections(results, tmp_path, ["noising"])
    path.write_text(original)
    before = snapshot(tmp_path)
    code, _, err = call(site_main, unpack_args(results, tarball, tmp_path), capsys)
    one_line_error(code, err, needle)
    assert snapshot(tmp_path) == before


# ---- 8. strings from results are text in the pages ------------------------------------------------------
def poison(results: Path) -> None:
    """Script in every string of the noising section's results a page shows, and in the run-wide files."""
    path = results / "noising" / "manifest.json"
    m = json.loads(path.read_text())
    for fig in m["figures"]:
        fig.update(title=PAYLOAD, caption=PAYLOAD, alt=PAYLOAD, group=PAYLOAD)
    for table in m["tables"]:      # labels and text cells poisoned; the keys pages read values by stay
        table.update(title=PAYLOAD, caption=PAYLOAD, columns=[PAYLOAD] * len(table["columns"]))
        table["rows"] = [[PAYLOAD if isinstance(cell, str) else cell for cell in row] for row in table["rows"]]
    m["tables"].append({"key": "xss", "title": PAYLOAD, "caption": PAYLOAD, "columns": [PAYLOAD, PAYLOAD],
                        "rows": [[PAYLOAD, PAYLOAD]]})            # a table no template places: shown as it is
    for metric in m["metrics"].values():
        metric["label"] = PAYLOAD
    m["metrics"]["xss"] = {"value": PAYLOAD, "label": PAYLOAD, "fmt": "s"}
    m["notes"] = [PAYLOAD, "line one\n" + PAYLOAD]
    m["series"] = [dict(s, title=PAYLOAD) for s in m["series"]]
    m.update(device=PAYLOAD, git_commit=PAYLOAD, run_id=PAYLOAD, started_at=PAYLOAD, title=PAYLOAD)
    m["config"] = {**m["config"], "note": "x\n```\n" + PAYLOAD, PAYLOAD: 1}
    m["versions"] = {PAYLOAD: PAYLOAD}
    path.write_text(json.dumps(m))
    summary = json.loads((results / "summary.json").read_text())
    summary.update(device=PAYLOAD, git_commit=PAYLOAD, devices={"noising": PAYLOAD}, commits={"noising": PAYLOAD})
    summary[PAYLOAD] = PAYLOAD
    (results / "summary.json").write_text(json.dumps(summary))


def test_script_in_results_never_reaches_a_page(results, tmp_path, capsys):
    poison(results)
    code, _, err = build(results, tmp_path / "site", capsys)
    assert code == 0, err
    pages = list((tmp_path / "site").rglob("*.html"))
    raw = [p for p in pages if "<script>alert" in p.read_text() or "<img src=x onerror" in p.read_text()]
    assert not raw, f"script from results reached {raw}"
    noising = (tmp_path / "site" / "part1" / "noising" / "index.html").read_text()
    assert "&lt;script&gt;alert" in noising                 # shown as text
    assert checks.check_site(tmp_path / "site") == []


@pytest.mark.parametrize("note", [
    "[click me](javascript:alert(1))",
    "[click me](  JaVaScRiPt:alert(1))",
    "**bold**{: onmouseover=alert(1) }",
])
def test_markdown_tricks_in_results_fail_the_build(results, tmp_path, capsys, note):
    path = results / "noising" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "notes": [note]}))
    code, _, err = build(results, tmp_path / "site", capsys)
    if code == 0:        # Markdown may leave the trick as text: then no page carries it as markup
        active = re.compile(r"""href=["']?\s*javascript:|\sonmouseover=""", re.IGNORECASE)
        assert not [p for p in (tmp_path / "site").rglob("*.html") if active.search(p.read_text())]
    else:
        one_line_error(code, err, "built site failed its checks")
        assert not (tmp_path / "site").exists()


def test_the_checker_refuses_script_in_page_content(tmp_path):
    (tmp_path / "index.html").write_text('<html><body><article class="md-content__inner">'
                                         '<p>hi</p><script>alert(1)</script><a href="javascript:x()">a</a>'
                                         '<img src="a.png" alt="a" onerror="alert(1)"></article></body></html>')
    (tmp_path / "a.png").write_bytes(b"")
    problems = checks.check_site(tmp_path)
    assert any("<script> inside the page content" in p for p in problems)
    assert any("script URL" in p for p in problems)
    assert any("onerror attribute" in p for p in problems)


# ---- 9. --resume continues only the same run: config and data -------------------------------------------
def test_resume_with_other_data_settings_is_refused(tmp_path, data_root, capsys):
    args = ["run", "single-step-denoiser", *folders(tmp_path, data_root)]
    code, _, err = call(experiments_cli.main, [*args, "--set", "data.train_images=128"], capsys)
    assert code == 0, err
    before = snapshot(tmp_path / "results")
    code, _, err = call(experiments_cli.main, [*args, "--set", "data.train_images=64", "--resume"], capsys)
    one_line_error(code, err, "cannot resume", "data.train_images 128 -> 64", "drop --resume")
    assert snapshot(tmp_path / "results") == before
    code, _, err = call(experiments_cli.main, [*args, "--set", "data.train_images=128", "--resume"], capsys)
    assert code == 0, err                                   # the same run resumes as before


def test_the_checkpoint_key_covers_the_data_files(tmp_path):
    from experiments.pipeline.workdirs import RunKey, data_fingerprint

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / f"{name}.gz").write_bytes(name.encode())
    first = data_fingerprint(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"extracted later")     # extraction changes nothing
    assert data_fingerprint(tmp_path) == first
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(b"other labels")
    assert data_fingerprint(tmp_path) != first
    assert data_fingerprint(tmp_path / "nowhere") == "absent"
    key = RunKey("noising", "quick", 42, {"digits": 2}, first)
    assert key.digest != RunKey("noising", "quick", 42, {"digits": 2}, "other").digest
    assert key.digest != RunKey("noising", "quick", 7, {"digits": 2}, first).digest


# ---- 10. a loss that explodes but stays finite ----------------------------------------------------------
def test_a_finite_loss_explosion_stops_training_and_keeps_the_last_good_state(data_root, tmp_path):
    digits = load_split(data_root, train=True, limit=64)
    torch.manual_seed(0)
    calls = {"n": 0}

    def objective(model, x0, labels):
        calls["n"] += 1
        loss = ((model(x0) - x0) ** 2).mean()
        return loss * 1e6 if calls["n"] >= 7 else loss       # epoch 2 (4 steps an epoch) explodes

    cfg = TrainConfig(epochs=3, batch_size=16, reference_images=64, checkpoint_epochs=(1,), log_every=2)
    trainer = Trainer(UNet(UNetConfig(hidden=8)), objective, digits, cfg, torch.device("cpu"), tmp_path,
                      config_key="k", show_progress=False)
    with pytest.raises(DivergenceError) as info:
        trainer.fit()
    message = str(info.value)
    assert "training diverged" in message and "(epoch 2)" in message and "100x its starting" in message
    assert "\n" not in message
    assert torch.load(tmp_path / "state.pt", weights_only=False)["epoch"] == 1


# ---- 11. inputs that used to end in a traceback --------------------------------------------------------
@pytest.fixture()
def bad_labels_root(tmp_path, data_root) -> Path:
    """The MNIST mirror's images with label files holding a 12."""
    from experiments.core.data import get_dataset, prepare

    source = prepare(Path(data_root), get_dataset("mnist"), train=True) / "MNIST" / "raw"
    raw = tmp_path / "bad-data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (raw / name).symlink_to(source / name)
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        data = bytearray((source / name).read_bytes())
        data[8 + 3] = 12
        (raw / name).write_bytes(bytes(data))
    return tmp_path / "bad-data"


@pytest.mark.parametrize("case, needle", [
    ("config-folder", "is a folder, not a YAML file"),
    ("seed-65-bits", "--seed must be a whole number from 0 to"),
    ("lr-1e300", "train.lr must be > 0 and at most 1"),
    ("lr-inf", "train.lr must be a finite number"),
    ("epochs-huge", "train.epochs = 10000000000000 is out of range"),
    ("bad-labels", "holds class label 12 at index 3; labels are 0-9"),
])
def test_inputs_that_used_to_crash_are_one_line(tmp_path, data_root, bad_labels_root, capsys, case, needle):
    shutil.copytree(PROJECT_ROOT / "docs" / "results" / "noising", tmp_path / "results" / "noising")
    before = snapshot(tmp_path / "results")
    args = ["run", "single-step-denoiser" if case.startswith(("lr", "epochs")) else "noising",
            *folders(tmp_path, bad_labels_root if case == "bad-labels" else data_root, profile=None)]
    extra = {"config-folder": ["--config", str(tmp_path)], "seed-65-bits": ["--seed", str(2**64)],
             "lr-1e300": ["--set", "train.lr=1e300"], "lr-inf": ["--set", "train.lr=inf"],
             "epochs-huge": ["--set", "train.epochs=10000000000000"], "bad-labels": []}[case]
    code, _, err = call(experiments_cli.main, [*args, *extra], capsys)
    one_line_error(code, err, needle)
    assert code == 2
    assert snapshot(tmp_path / "results") == before


@pytest.mark.parametrize("addr", ["0.0.0.0:99999", "localhost", ":8000", "127.0.0.1:http", "bad host:80"])
def test_a_bad_dev_addr_is_refused_before_anything_runs(results, tmp_path, capsys, addr):
    code, _, err = build(results, tmp_path / "site", capsys, "--serve", "--dev-addr", addr)
    one_line_error(code, err, "--dev-addr must be HOST:PORT", repr(addr))
    assert not (tmp_path / "site").exists()
    site.check_dev_addr("127.0.0.1:8000")
    site.check_dev_addr("[::1]:8000")
    with pytest.raises(UserError):
        site.check_dev_addr("[::1]:0")


def test_a_killed_run_of_a_fresh_folder_leaves_nothing_but_its_lock(tmp_path, data_root):
    """Kill a run while it writes: the results folder holds no partial section, and the lock the kernel
    released lets the next run in at once."""
    from test_reliability import Run

    killed = Run(["noising", *folders(tmp_path, data_root)], pause="writing")
    killed.wait_for_pause("writing")
    assert killed.kill(signal.SIGKILL) != 0
    assert not (tmp_path / "results" / "noising").exists()
    code, _, err = Run(["noising", *folders(tmp_path, data_root)]).finish()
    assert code == 0, err
    assert load_manifest(tmp_path / "results", "noising") is not None
