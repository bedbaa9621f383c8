"""The README's headline numbers are generated from summary.json, never typed: the committed README
says what the committed results say, and `build-site readme` touches only its block."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.errors import UserError
from generator import TEMPLATES_DIR, readme
from generator.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_readme_quotes_the_committed_results():
    assert readme.is_current(ROOT / "README.md", ROOT / "docs" / "results", TEMPLATES_DIR), \
        "README.md's headline numbers differ from docs/results/summary.json: run `build-site readme`"


def test_the_readme_stays_short_and_quotes_at_most_three_numbers():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode()) < 10_000
    start, end = text.index(readme.START), text.index(readme.END)
    assert text[start:end].count("- **") <= 3


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "results").mkdir()
    summary = json.loads((ROOT / "docs" / "results" / "summary.json").read_text())
    (tmp_path / "results" / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "README.md").write_text(f"# Title\n\nintro\n\n{readme.START}\n- **FID 1**\n{readme.END}\n\n## Rest\n")
    return tmp_path


def test_readme_rewrites_only_its_block_and_follows_the_numbers(project):
    path, results = project / "README.md", project / "results"
    assert not readme.is_current(path, results, TEMPLATES_DIR)
    assert readme.update(path, results, TEMPLATES_DIR) is True
    text = path.read_text()
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith(f"{readme.END}\n\n## Rest\n")
    assert readme.is_current(path, results, TEMPLATES_DIR)
    assert readme.update(path, results, TEMPLATES_DIR) is False          # nothing to do the second time

    summary = json.loads((results / "summary.json").read_text())
    summary["fid_time_conditioned"] = 12.345
    (results / "summary.json").write_text(json.dumps(summary))
    assert not readme.is_current(path, results, TEMPLATES_DIR)
    readme.update(path, results, TEMPLATES_DIR)
    assert "**FID 12.3**" in path.read_text()


def test_readme_without_markers_or_summary_is_refused_in_one_line(project, capsys):
    path = project / "README.md"
    path.write_text("# A README without the block\n")
    with pytest.raises(SystemExit) as exc:
        main(["readme", "--readme", str(path), "--results", str(project / "results")])
    assert exc.value.code == 2
    assert "has no headline block" in capsys.readouterr().err
    assert path.read_text() == "# A README without the block\n"            # untouched
    path.write_text(f"{readme.START}\n{readme.END}\n")
    with pytest.raises(UserError, match="no summary.json"):
        readme.update(path, project / "elsewhere", TEMPLATES_DIR)
    assert path.read_text() == f"{readme.START}\n{readme.END}\n"


def test_readme_check_fails_when_out_of_date(project, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["readme", "--check", "--readme", str(project / "README.md"), "--results", str(project / "results")])
    assert exc.value.code == 2 and "differ" in capsys.readouterr().err
