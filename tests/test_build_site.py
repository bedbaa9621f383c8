"""build-site end to end on real quick-profile results: the site, staleness and reruns, bad input, the lock."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from html import unescape
from pathlib import Path

import pytest

from experiments.pipeline import registry, runner
from generator import checks, lock
from generator.cli import main
from generator.pages import section_path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Tree:
    root: Path
    results: Path       # <root>/docs/results, a copy of the quick run's results
    site: Path


def run_cli(*args: str) -> tuple[int, str, str]:
    """build-site in-process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def make_tree(quick_run, root: Path) -> Tree:
    results = root / "docs" / "results"
    shutil.copytree(quick_run.results, results)
    return Tree(root, results, root / "site")


def build_args(tree: Tree, *extra: str) -> list[str]:
    return ["--results", str(tree.results), "--site-dir", str(tree.site), *extra]


@pytest.fixture(scope="module")
def built(quick_run, tmp_path_factory) -> Tree:
    """The whole site, built once from a copy of the quick run (the repo's docs/results is never touched)."""
    tree = make_tree(quick_run, tmp_path_factory.mktemp("site"))
    code, out, err = run_cli(*build_args(tree))
    assert code == 0, err
    assert "built" in out
    return tree


@pytest.fixture()
def tree(quick_run, tmp_path) -> Tree:
    return make_tree(quick_run, tmp_path)


def snapshot(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


# ---- the site -----------------------------------------------------------------------------------------
def test_every_section_gets_a_page_with_its_figures(built):
    for section in registry.all_sections():
        m = json.loads((built.results / section.name / "manifest.json").read_text())
        path = section_path(section).removesuffix(".md")
        page = built.site / path / "index.html"
        html = unescape(page.read_text())
        assert section.title in html
        up = "../" * (path.count("/") + 1)
        for fig in m["figures"]:                     # placed with its observation, or among the rest
            assert (built.site / "results" / section.name / fig["file"]).is_file()
            assert f'{up}results/{section.name}/{fig["file"]}' in html, (section.name, fig["file"])
        provenance = html[html.index('<details class="provenance"'):]
        assert m["git_commit"] in provenance and m["config_hash"] in provenance   # collapsed at the end
        assert html.index("<h2") < html.index('<details class="provenance"')
    for extra in ("reproduce", "performance", "history", "conclusions", "model"):
        assert (built.site / extra / "index.html").is_file()


def test_site_features(built):
    index = (built.site / "index.html").read_text()
    assert 'class="arithmatex"' in index                             # formulas, typeset offline by KaTeX
    assert "assets/katex/katex.min.js" in index and "cdn" not in index.lower()
    assert "fonts.googleapis" not in index
    assert 'class="grid cards"' in index and "What we found" in index and "One number per model" in index
    for group in ("Part 1: denoising", "Part 2: diffusion models", "Part 3: sampling loops",
                  "Evaluation and extensions", "Conclusions", "Appendix", "Run history"):
        assert group in index, group                                 # the navigation follows the course
    class_page = (built.site / "part2" / "class-conditioned" / "index.html").read_text()
    assert 'class="side-by-side"' in class_page and "After epoch 1" in class_page   # epochs side by side
    assert "glightbox" in class_page and "<figcaption>" in class_page
    assert 'class="observation"' in class_page                       # what to see, below the figure
    assert 'data-search-exclude' in class_page                       # provenance stays out of search
    model = (built.site / "model" / "index.html").read_text()
    assert '<svg class="unet-diagram"' in model and ">skip " in model and "Algorithm 2" in model
    history = (built.site / "history" / "index.html").read_text()
    # the same weights sampled by three sections: FID pairs that differ in one thing only
    assert "How far an FID moves" in history and "the starting noise" in history and "(draw 2)" in history
    performance = (built.site / "performance" / "index.html").read_text()
    assert "Other sections at the same time" in performance        # times are read with what shared the GPU
    better = " ".join((built.site / "evaluation" / "better-recipe" / "index.html").read_text().split())
    assert "is what the starting noise alone does" in better


def test_checker_passes_on_the_built_site(built):
    assert checks.check_site(built.site) == []
    code, out, _ = run_cli("check", str(built.site))
    assert code == 0 and "every image" in out


def test_status_lists_every_section_fresh(built):
    code, out, _ = run_cli("--status", *build_args(built))
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[1] for line in lines] == [s.name for s in registry.all_sections()]
    assert all(line.startswith("fresh") for line in lines)


def test_rebuild_with_nothing_changed_runs_no_experiment(tree, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an experiment ran")

    monkeypatch.setattr(runner, "run", refuse)
    manifests = {p: p.read_bytes() for p in tree.results.rglob("manifest.json")}
    t0 = time.perf_counter()
    code, out, err = run_cli(*build_args(tree))
    elapsed = time.perf_counter() - t0
    assert code == 0, err
    assert "running" not in out
    assert {p: p.read_bytes() for p in tree.results.rglob("manifest.json")} == manifests
    assert elapsed < 120, f"a rebuild took {elapsed:.0f} s"


# ---- staleness and reruns -----------------------------------------------------------------------------
def test_changed_config_makes_a_section_stale(tree, monkeypatch):
    section = registry.get("noising")
    quick = section.profiles["quick"]
    changed = replace(section, profiles={**section.profiles, "quick": replace(quick, digits=quick.digits + 1)})
    monkeypatch.setitem(registry._REGISTRY, "noising", changed)
    code, out, _ = run_cli("--status", *build_args(tree))
    assert code == 0
    status = {line.split()[1]: line for line in out.splitlines()}
    assert status["noising"].startswith("stale") and "config changed" in status["noising"]
    assert status["single-step-denoiser"].startswith("fresh")


def test_rerun_marks_dependants_stale_and_does_not_rerun_them(quick_run, tree, data_root):
    work = tree.root / "work"
    shutil.copytree(quick_run.work, work)
    ood = tree.results / "out-of-distribution" / "manifest.json"
    before = json.loads(ood.read_text())["run_id"]
    code, out, err = run_cli(*build_args(tree, "--rerun", "single-step-denoiser", "--device", "cpu",
                                         "--work-dir", str(work), "--data-root", str(data_root)))
    assert code == 0, err
    assert "running single-step-denoiser" in out
    assert "stale: out-of-distribution (input single-step-denoiser was rerun)" in out
    assert json.loads(ood.read_text())["run_id"] == before           # marked stale, not rerun
    page = (tree.site / "part1" / "out-of-distribution" / "index.html").read_text()
    assert "These results were made by earlier code" in page
    code, out, _ = run_cli("--status", *build_args(tree))
    status = {line.split()[1]: line for line in out.splitlines()}
    assert status["single-step-denoiser"].startswith("fresh")
    assert status["out-of-distribution"].startswith("stale")


def test_results_built_on_weights_of_another_run_are_stale(tree):
    path = tree.results / "better-recipe" / "manifest.json"
    m = json.loads(path.read_text())
    assert m["loaded_weights"]["classifier"]
    m["loaded_weights"]["classifier"] = "0" * 16            # as if it loaded a retrained classifier
    path.write_text(json.dumps(m))
    code, out, _ = run_cli("--status", *build_args(tree))
    status = {line.split()[1]: line for line in out.splitlines()}
    assert status["better-recipe"].startswith("stale")
    assert "loaded weights of classifier from another run" in status["better-recipe"]
    assert status["evaluation"].startswith("fresh")


def set_unguided_fid(m: dict, fid: float) -> None:
    """Give the better recipe this FID at gamma = 1 from N(0, I): its metric and the grid's row."""
    m["metrics"]["fid_unguided"]["value"] = fid
    grid = next(t for t in m["tables"] if t["key"] == "grid")
    next(r for r in grid["rows"] if r[1] == "γ = 1" and r[2] == "N(0, I) start")[3] = fid


def test_better_recipe_page_names_recipes_in_words(built):
    m = json.loads((built.results / "better-recipe" / "manifest.json").read_text())
    page = " ".join(unescape((built.site / "evaluation" / "better-recipe" / "index.html").read_text()).split())
    training = next(t for t in m["tables"] if t["key"] == "training")["rows"]
    assert training[0][0] == m["config"]["recipe"]["label"] and "=" not in training[0][0]   # recorded in words
    assert training[0][0] in page
    head = page[:page.index('<details class="provenance"')]
    assert "norm=group" not in head and "ema_decay" not in head


def test_an_archived_run_stays_on_the_pages_after_a_rerun(tree):
    current = tree.results / "better-recipe" / "manifest.json"
    code, out, err = run_cli("archive", "better-recipe", "--results", str(tree.results))
    assert code == 0, err
    archived = Path(out.split("archived: ")[1].strip())
    assert archived.parent == tree.results / "archive" and archived.read_bytes() == current.read_bytes()
    assert run_cli("archive", "better-recipe", "--results", str(tree.results))[1].startswith("already archived")

    m = json.loads(current.read_text())                     # a rerun of the same recipe and seed, years later
    m["run_id"], m["git_commit"], m["started_at"] = "better-recipe-rerun", "f" * 40, "2031-01-02T03:04:05Z"
    set_unguided_fid(m, 123.25)
    name = m["config"]["recipe"]["label"]                    # its label in the tables
    current.write_text(json.dumps(m))
    code, _, err = run_cli(*build_args(tree))
    assert code == 0, err
    history = " ".join(unescape((tree.site / "history" / "index.html").read_text()).split())
    old = json.loads(archived.read_text())
    assert "The better recipe, run by run" in history
    assert f"{old['started_at'][:10]}, {old['device']}" in history
    assert f"{name}: 123.25 (" in history                                   # the current run's row
    assert "the training run (same recipe and seed, trained again with the same models" in history
    assert f"({old['started_at'][:10]}); " in history and "(2031-01-02)" in history
    better = (tree.site / "evaluation" / "better-recipe" / "index.html").read_text()
    main_text = better[:better.index('<details class="provenance"')]
    assert "history" in main_text and old["started_at"][:10] not in main_text   # a link, not the old rows


def test_archive_refuses_what_it_cannot_read(tree):
    code, _, err = run_cli("archive", "better-recipes", "--results", str(tree.results))
    _assert_one_line_error(code, err, "no manifest at", "better-recipes")
    (tree.results / "archive").mkdir()
    (tree.results / "archive" / "broken.json").write_text("{not json")
    code, _, err = run_cli(*build_args(tree))
    _assert_one_line_error(code, err, "corrupt results", "broken.json", "not valid JSON")
    (tree.results / "archive" / "broken.json").write_text(json.dumps({"schema": 1, "section": "better-recipe"}))
    code, _, err = run_cli(*build_args(tree))
    _assert_one_line_error(code, err, "corrupt results", "broken.json", "run_id")


def packed(tree: Tree, tmp_path: Path, edits: dict[str, dict]) -> Path:
    """A tarball laid out like `writeup --pack` (results/<section>/...) with these sections' manifests
    changed (key -> value), as if they had been rerun on a GPU machine."""
    from experiments.pipeline.writeup import pack

    staging = tmp_path / "gpu-job" / "results"
    for name, changes in edits.items():
        shutil.copytree(tree.results / name, staging / name)
        path = staging / name / "manifest.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | changes) if changes is not None else "{broken")
    return pack(staging, tmp_path / "gpu-job.tar.gz")


def unpack_args(tree: Tree, tarball: Path, *extra: str) -> list[str]:
    return ["unpack", str(tarball), "--results", str(tree.results), "--site-dir", str(tree.site), *extra]


def test_unpack_swaps_in_new_results_and_archives_the_old(tree, tmp_path):
    old = json.loads((tree.results / "better-recipe" / "manifest.json").read_text())
    tarball = packed(tree, tmp_path, {"better-recipe": {"run_id": "better-recipe-new"},
                                      "noising": {"run_id": "noising-new"}})
    code, out, err = run_cli(*unpack_args(tree, tarball), "--only", "better-recipe")
    assert code == 0, err
    assert json.loads((tree.results / "better-recipe" / "manifest.json").read_text())["run_id"] == "better-recipe-new"
    assert json.loads((tree.results / "noising" / "manifest.json").read_text())["run_id"] != "noising-new"  # not asked
    archived = list((tree.results / "archive").glob("better-recipe-*.json"))
    assert [json.loads(p.read_text())["run_id"] for p in archived] == [old["run_id"]]
    assert f"unpacked better-recipe (better-recipe-new); the previous run's manifest is in {archived[0]}" in out
    assert json.loads((tree.results / "summary.json").read_text())["sources"]["better-recipe"] == "better-recipe-new"
    assert not [p for p in tree.results.iterdir() if p.name.startswith(".unpack-")]          # no leftovers

    code, out, err = run_cli(*unpack_args(tree, tarball))        # everything in it
    assert code == 0, err
    assert json.loads((tree.results / "noising" / "manifest.json").read_text())["run_id"] == "noising-new"
    assert "unpacked better-recipe (better-recipe-new)\n" in out        # the same run again: nothing to archive
    code, _, err = run_cli(*build_args(tree))
    assert code == 0, err


def test_unpack_keeps_the_whole_writeup_run_it_replaces(tree, tmp_path):
    """A new run.json sends the old one to archive/runs/ (the Performance page lists both); a tarball
    that carries its own archive/runs/ is accepted, and its archive is not taken."""
    def record(wall: float, gpus: int, finished: str, commit: str) -> dict:
        return {"writeup_wall_s": wall, "writeup_gpus": gpus, "writeup_device": "NVIDIA H100 80GB HBM3",
                "writeup_git_commit": commit * 40, "writeup_finished_at": finished, "writeup_sections": "all"}

    (tree.results / "run.json").write_text(json.dumps(record(932.3, 1, "2026-11-27T10:11:24Z", "a")))
    tarball = packed(tree, tmp_path, {"noising": {"run_id": "noising-new"}})
    staging = tmp_path / "gpu-job" / "results"
    (staging / "run.json").write_text(json.dumps(record(480.2, 4, "2026-11-27T12:23:10Z", "b")))
    (staging / "archive" / "runs").mkdir(parents=True)
    (staging / "archive" / "runs" / "run-x.json").write_text("{}")
    from experiments.pipeline.writeup import pack

    pack(staging, tarball)
    code, _, err = run_cli(*unpack_args(tree, tarball))
    assert code == 0, err
    assert json.loads((tree.results / "run.json").read_text())["writeup_gpus"] == 4
    [kept] = (tree.results / "archive" / "runs").iterdir()
    assert kept.name == f"run-20261127T101124Z-{'a' * 12}.json" and json.loads(kept.read_text())["writeup_gpus"] == 1
    code, _, err = run_cli(*build_args(tree))
    assert code == 0, err
    page = (tree.site / "performance" / "index.html").read_text()
    assert "under 10 minutes on one GPU" in page and "15 min 32 s (another run)" in page
    assert "under 5 minutes on 4 GPUs" in page and "8 min 00 s" in page


def test_unpack_checks_every_manifest_before_replacing_anything(tree, tmp_path):
    before = snapshot(tree.results)
    tarball = packed(tree, tmp_path, {"better-recipe": {"run_id": "better-recipe-new"}, "noising": None})
    code, _, err = run_cli(*unpack_args(tree, tarball))
    _assert_one_line_error(code, err, "corrupt results", "noising/manifest.json", "not valid JSON")
    code, _, err = run_cli(*unpack_args(tree, tarball), "--only", "peer")
    _assert_one_line_error(code, err, "holds no results for peer", "it has: better-recipe, noising")
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tarball")
    code, _, err = run_cli(*unpack_args(tree, tmp_path / "bad.tar.gz"))
    _assert_one_line_error(code, err, "cannot unpack", "not a tar archive")
    assert snapshot(tree.results) == before


def test_dry_run_changes_nothing(tree):
    before = snapshot(tree.results)
    code, out, _ = run_cli(*build_args(tree, "--rerun", "single-step-denoiser", "--dry-run"))
    assert code == 0
    assert "would run: single-step-denoiser" in out
    assert "would mark stale (not rerun): out-of-distribution" in out
    assert not tree.site.exists() and snapshot(tree.results) == before


# ---- bad input: one line, non-zero exit, the previous site intact -----------------------------------
def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def built_tree(tree) -> Tree:
    code, _, err = run_cli(*build_args(tree))
    assert code == 0, err
    return tree


def test_unknown_section_suggests_the_closest(built_tree):
    before = snapshot(built_tree.site)
    code, _, err = run_cli(*build_args(built_tree, "--rerun", "class-condtioned"))
    _assert_one_line_error(code, err, "unknown section 'class-condtioned'", "did you mean 'class-conditioned'")
    assert snapshot(built_tree.site) == before


@pytest.mark.parametrize("damage, needles", [
    ("corrupt", ("corrupt results", "noising/manifest.json", "not valid JSON")),
    ("newer", ("schema 2", "newer than this code")),
    ("missing-figure", ("noising.png", "missing")),
    ("missing-section", ("missing results for noising", "build-site --rerun noising", "--run-missing")),
    ("corrupt-summary", ("summary.json", "not valid JSON")),
])
def test_bad_results_leave_the_previous_site(built_tree, damage, needles):
    before = snapshot(built_tree.site)
    manifest = built_tree.results / "noising" / "manifest.json"
    if damage == "corrupt":
        manifest.write_text(manifest.read_text()[:-40])
    elif damage == "newer":
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema": 2}))
    elif damage == "missing-figure":
        (built_tree.results / "noising" / "noising.png").unlink()
    elif damage == "missing-section":
        shutil.rmtree(built_tree.results / "noising")
    else:
        (built_tree.results / "summary.json").write_text('{"fid_floor": ')
    code, _, err = run_cli(*build_args(built_tree))
    _assert_one_line_error(code, err, *needles)
    assert snapshot(built_tree.site) == before
    assert not list((built_tree.root / ".build-site").glob("stage-*"))      # no staging left behind


@pytest.mark.parametrize("intro, needles", [
    # StrictUndefined: a value the results lack is an error naming the template and line
    ("Intro\n\n{{ metrics.no_such_metric }}\n",
     ("template error in templates/sections/noising.md.j2 line 3", "no_such_metric")),
    # a broken link is a warning, and --strict makes MkDocs fail on it
    ("See [nowhere](../part9/nothing.md).\n", ("mkdocs build --strict failed", "nothing.md")),
])
def test_a_broken_template_is_one_line(built_tree, intro, needles):
    before = snapshot(built_tree.site)
    templates = built_tree.root / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    (templates / "sections" / "noising.md.j2").write_text(intro)
    code, _, err = run_cli(*build_args(built_tree, "--templates", str(templates)))
    _assert_one_line_error(code, err, *needles)
    assert snapshot(built_tree.site) == before


def test_a_second_build_at_once_meets_the_lock(built_tree):
    """Another process holds the lock (as a running build would): this build stops with a clear line."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from generator import lock\n"
         f"with lock.acquire(Path({str(built_tree.site)!r})):\n    print('held', flush=True); sys.stdin.read()"],
        cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(built_tree.site)
        code, _, err = run_cli(*build_args(built_tree))
        _assert_one_line_error(code, err, "another build-site is running", f"pid {holder.pid}")
        assert snapshot(built_tree.site) == before
        results = snapshot(built_tree.results)          # nor does an unpack swap results under a build
        code, _, err = run_cli(*unpack_args(built_tree, built_tree.root / "any.tar.gz"))
        _assert_one_line_error(code, err, "another build-site is running")
        assert snapshot(built_tree.results) == results
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    code, _, err = run_cli(*build_args(built_tree))      # released when the holder exits
    assert code == 0, err
    assert lock.lock_path(built_tree.site).exists()


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_a_build_killed_at_any_moment_leaves_the_previous_site(built_tree, delay):
    """SIGKILL a real build-site process mid-build: site/ is byte-identical, and the next build works."""
    before = snapshot(built_tree.site)
    proc = subprocess.Popen([sys.executable, "-m", "generator", *build_args(built_tree)], cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=30)
    assert snapshot(built_tree.site) == before
    code, _, err = run_cli(*build_args(built_tree))          # the kill left no stale lock behind
    assert code == 0, err
