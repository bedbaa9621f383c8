"""No page speaks of how the work was organised, names scripts, environment variables or config switches,
or shows a commit hash outside its collapsed provenance block: on a site built from quick-profile results
and on the site of the committed results."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from generator.cli import main
from site_words import problems, site_problems

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build(results: Path, root: Path) -> Path:
    copy = root / "docs" / "results"
    shutil.copytree(results, copy)
    try:
        main(["--results", str(copy), "--site-dir", str(root / "site")])
    except SystemExit as exc:                  # only errors exit
        pytest.fail(f"build-site failed with exit code {exc.code}")
    return root / "site"


def test_the_checker_finds_what_it_looks_for(tmp_path):
    page = tmp_path / "index.html"
    page.write_text("<p>As the spec says, run scripts/gpu_full_run.sh with FUNDIFF_DATA_ROOT set and "
                    "unet.norm=group; commit 0123456789abcdef0123456789abcdef01234567.</p>"
                    "<details class='provenance'><code>0123456789abcdef0123456789abcdef01234567</code></details>")
    found = "\n".join(problems(page, "index.html"))
    for needle in ("'the spec'", "'gpu_full_run.sh'", "'FUNDIFF_DATA_ROOT'", "'unet.norm='", "the hash"):
        assert needle in found, needle
    assert found.count("the hash") == 1                                # inside provenance it may stay
    page.write_text("<p>GroupNorm + EMA, 80 epochs, predicting x0; γ = 1.5 for t in [0, 80].</p>")
    assert problems(page, "index.html") == []


@pytest.fixture(scope="module")
def quick_site(quick_run, tmp_path_factory) -> Path:
    return build(quick_run.results, tmp_path_factory.mktemp("words"))


def test_a_site_of_quick_results_says_nothing_internal(quick_site):
    assert site_problems(quick_site) == []


def test_search_finds_content_not_provenance(quick_site, quick_run):
    """The search index holds the writeup's text; configuration and provenance blocks stay out of it,
    and headings carry no stray characters."""
    import json
    import re

    docs = json.loads((quick_site / "search" / "search_index.json").read_text())["docs"]
    text = " ".join(d["text"] for d in docs)
    commit = json.loads((quick_run.results / "noising" / "manifest.json").read_text())["git_commit"]
    assert "What we found" in " ".join(d["title"] for d in docs) and "classifier-free guidance" in text.lower()
    indexed = {d["location"]: d["text"] for d in docs}
    assert [where for where, words in indexed.items() if commit in words or "checkpoint_epochs" in words] == []
    assert not [where for where, words in indexed.items() if "Provenance: how these results were made" in words]
    strays = [d["title"] for d in docs if re.search(r"[¶#{}<>|*_`]", d["title"])]
    assert strays == []


def test_the_committed_results_site_says_nothing_internal(tmp_path):
    assert site_problems(build(PROJECT_ROOT / "docs" / "results", tmp_path)) == []
