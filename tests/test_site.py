"""Unit tests of the site generator: formatting, templates, grouping, the checker, the lock, inputs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.errors import UserError
from experiments.pipeline import staleness
from generator import checks, lock
from generator.inputs import load_results
from generator.pages import link
from generator.performance_context import BENCHMARKS, labelled
from generator.render import Metric, Renderer, cell, fmt_duration, fmt_value


def test_number_formats():
    assert fmt_value(0.0123456, ".4f") == "0.0123"
    assert fmt_value(12345, ",d") == "12,345"
    assert fmt_value(12345.6, ",d") == "12,346"            # counts recorded as floats still print as ints
    assert fmt_value(0.987, "pct") == "98.7 %"
    assert fmt_value(0.9999, "pct") == "99.99 %" and fmt_value(1.0, "pct") == "100.0 %"   # not all is not 100.0
    assert fmt_value(None) == "—" and fmt_value(float("nan")) == "—"
    assert fmt_value("A100", ".2f") == "A100"
    assert str(Metric(0.5, "loss", ".3f")) == "0.500"
    assert [fmt_duration(s) for s in (3.21, 184, 7300)] == ["3.2 s", "3 min 04 s", "2 h 01 min"]
    # table cells: counts in full, floats compact, pipes escaped
    assert [cell(37520), cell(20), cell(0.0210301), cell(True), cell("a|b")] == ["37,520", "20", "0.02103", "True", "a\\|b"]


def test_strict_undefined_is_one_line_error_naming_template_and_line(tmp_path):
    (tmp_path / "t.md.j2").write_text("# Title\n\nvalue {{ m.present }}\nmissing {{ m.absent }}\n")
    r = Renderer(tmp_path)
    assert "value 1" in r.render("t.md.j2", m={"present": 1, "absent": 2})
    with pytest.raises(UserError) as err:
        r.render("t.md.j2", m={"present": 1})
    message = str(err.value)
    assert "t.md.j2 line 4" in message and "absent" in message and "\n" not in message


def test_template_syntax_error_names_line(tmp_path):
    (tmp_path / "bad.md.j2").write_text("ok\n{% if x %}\nno endif\n")
    with pytest.raises(UserError, match=r"bad\.md\.j2 line \d"):
        Renderer(tmp_path).render("bad.md.j2", x=True)


def test_repo_templates_reject_a_missing_value():
    """The real templates use StrictUndefined too: a value they read must exist."""
    r = Renderer(Path(__file__).resolve().parent.parent / "templates")
    with pytest.raises(UserError, match="single-step-denoiser.md.j2 line"):
        r.render("sections/single-step-denoiser.md.j2", config={"train": {"checkpoint_epochs": [1]}})  # no sigma


def test_links_and_labelled_rows():
    assert link("part1/noising.md", "results/noising") == "../results/noising"
    assert link("index.md", "part2/x.md") == "part2/x.md"
    rows = labelled({"train_speedup": 5.123, "device": "H200", "custom": 3, "nested": {"a": 1}}, BENCHMARKS)
    assert [(r.label, r.value) for r in rows] == [
        ("Device", "H200"), ("Training speed-up", "5.12×"), ("custom", "3")]


def _page(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><body>{body}</body></html>")


def test_checker_finds_broken_images_links_anchors_and_missing_alt(tmp_path):
    site = tmp_path / "site"
    _page(site / "index.html", '<h2 id="top">x</h2><img src="img/a.png" alt="a digit">'
          '<a href="sub/">sub</a><a href="#top">top</a><a href="https://example.org/">ext</a>')
    _page(site / "sub" / "index.html", '<a href="../index.html#top">back</a><img src="/img/a.png" alt="x">')
    (site / "img").mkdir()
    (site / "img" / "a.png").write_bytes(b"png")
    assert checks.check_site(site) == []
    _page(site / "bad" / "index.html", '<img src="../img/missing.png" alt="m"><img src="../img/a.png">'
          '<a href="../sub/#nowhere">x</a><a href="../../outside.html">out</a>')
    problems = "\n".join(checks.check_site(site))
    assert "missing.png does not resolve" in problems
    assert "has no alt text" in problems
    assert "no anchor #nowhere" in problems
    assert "points outside the site" in problems


def test_lock_refuses_a_second_holder(tmp_path):
    site = tmp_path / "site"
    with lock.acquire(site):
        with pytest.raises(UserError, match="another build-site is running"):
            with lock.acquire(site):
                pass
    with lock.acquire(site):            # released on exit
        pass


def test_rerun_names(monkeypatch):
    names = [s.section for s in staleness.statuses({})]
    assert set(names) >= {"noising", "single-step-denoiser", "out-of-distribution"}
    assert staleness.resolve_reruns(["all"], []) == names
    with pytest.raises(UserError, match="did you mean 'noising'"):
        staleness.resolve_reruns(["noisng"], [])
    current = [staleness.Status(n, staleness.FRESH) for n in names]
    current[names.index("single-step-denoiser")] = staleness.Status("single-step-denoiser", staleness.STALE, ("code changed",))
    chosen = staleness.resolve_reruns(["stale"], current)
    assert chosen[0] == "single-step-denoiser" and "out-of-distribution" in chosen   # dependants follow
    assert "noising" not in chosen


# ---- inputs, on a copy of real quick-profile results ---------------------------------------------
@pytest.fixture()
def results_copy(quick_run, tmp_path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(quick_run.results, dst)
    return dst


def _edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_inputs_load_and_reject_bad_results(results_copy):
    sections = [s.section for s in staleness.statuses({})]
    results = load_results(results_copy, sections)
    assert set(results.manifests) == set(sections) and results.summary is not None

    manifest = results_copy / "noising" / "manifest.json"
    original = manifest.read_text()
    _edit(manifest, schema=99)
    with pytest.raises(UserError, match="schema 99, newer"):
        load_results(results_copy, sections)
    manifest.write_text(original[: len(original) // 2])
    with pytest.raises(UserError, match="corrupt results.*not valid JSON"):
        load_results(results_copy, sections)
    manifest.write_text(original)
    (results_copy / "noising" / "noising.png").unlink()
    with pytest.raises(UserError, match="noising.png, which is missing"):
        load_results(results_copy, sections)
    (results_copy / "summary.json").write_text("{not json")
    shutil.copy(results_copy / "single-step-denoiser" / "loss.png", results_copy / "noising" / "noising.png")
    with pytest.raises(UserError, match="summary.json is not valid JSON"):
        load_results(results_copy, sections)


def test_pages_workflow_builds_from_committed_results_and_deploys():
    import yaml

    workflow = yaml.safe_load((Path(__file__).resolve().parent.parent / ".github/workflows/pages.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    assert "actions/upload-pages-artifact" in uses and "actions/deploy-pages" in uses
    commands = " ".join(step.get("run", "") for step in steps)
    assert "build-site" in commands and "--rerun" not in commands and "--run-missing" not in commands
    assert "experiments run" not in commands                    # no experiment in CI: committed results only
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
