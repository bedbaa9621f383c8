"""Sentences that state a comparison or a trend are computed from the numbers they describe: the
helpers, and the captions of real pages rendered from quick-run results with their numbers changed."""
from __future__ import annotations

import pytest

from generator.phrases import compare, direction, times, trend


def test_a_direction_is_named_only_when_every_step_goes_that_way():
    assert direction([0.9, 0.7, 0.4]) == "falls" and direction([1, 2, 3]) == "rises"
    assert direction([0.02, 0.02, 0.02]) == "level" and direction([5.0]) == "level"
    assert direction([1.0, 3.0, 2.0]) == "mixed"
    assert direction([10.0, 10.1, 5.0], rel_tol=0.02) == "falls"        # a step inside the tolerance is allowed
    assert direction([10.0, 10.1, 10.0], rel_tol=0.02) == "level"


def test_trend_sentences():
    assert str(trend([75, 150, 225], [0.73, 0.61, 0.47], "pct", "t = ")) == \
        "falls from 73.0 % at t = 75 to 47.0 % at t = 225"
    assert str(trend([75, 150, 225], [0.02, 0.02, 0.02], "pct", "t = ")) == "stays at about 2.0 % throughout"
    assert str(trend([0.0, 1.0, 10.0], [0.1, 1.0, 0.9], "pct", "γ = ")) == \
        "moves without a steady trend, between 10.0 % at γ = 0 and 100.0 % at γ = 1"
    assert str(trend([1, 2], [None, 3.0], ".1f")) == "stays at about 3.0"          # a missing value is skipped


def test_comparisons_and_ratios():
    assert compare(73.0, 70.2, 0.05) == "about the same as" and compare(80.0, 70.0, 0.05) == "higher than"
    assert compare(1, 2, words=("more", "less", "as much")) == "less"
    assert times(0.25, 0.00827) == "30×" and times(2.0, 1.0) == "2.0×" and times(1.0, 0) == "—"


# ---- the captions of real pages ------------------------------------------------------------------------------
def page(quick_run, name: str, edit) -> str:
    """The section's page rendered from the quick run's results with `edit` applied to its manifest."""
    from experiments.pipeline import registry
    from experiments.pipeline.staleness import statuses
    from generator import TEMPLATES_DIR
    from generator.inputs import load_results
    from generator.pages import Pages
    from generator.render import Renderer

    results = load_results(quick_run.results, [s.name for s in registry.all_sections()])
    edit(results.manifests[name])
    pages = Pages(Renderer(TEMPLATES_DIR), results, statuses(results.manifests), "results")
    return " ".join(pages.section_page(registry.get(name)).split())


def table(manifest: dict, key: str) -> dict:
    return next(t for t in manifest["tables"] if t["key"] == key)


def set_column(manifest: dict, key: str, column: str, values: list, skip: int = 0) -> None:
    t = table(manifest, key)
    i = t["keys"].index(column)
    for row, value in zip(t["rows"][skip:], values):
        row[i] = value


@pytest.mark.parametrize("reads, words", [([0.7, 0.5, 0.3], "falls from 70.0 %"), ([0.3, 0.5, 0.7], "rises from 30.0 %"),
                                         ([0.5, 0.5, 0.5], "stays at about 50.0 %")])
def test_the_forward_process_says_what_its_reading_does(quick_run, reads, words):
    text = page(quick_run, "forward-process",
                lambda m: set_column(m, "levels", "read_by_template", reads, skip=1))   # row 0: the clean digits
    assert f"can still be read as their digit {words}" in text


@pytest.mark.parametrize("fids, words", [([30.0, 20.0, 10.0, 5.0], "falls from 30.0 at γ = 0"),
                                        ([5.0, 10.0, 20.0, 30.0], "rises from 5.0 at γ = 0")])
def test_the_guidance_caption_follows_the_fids(quick_run, fids, words):
    def edit(m):
        t = table(m, "guidance")
        fid = next(i for i, c in enumerate(t["columns"]) if "FID" in c)
        for row, value in zip(t["rows"], fids):
            row[fid] = value
    assert f"classifier-FID {words}" in page(quick_run, "cfg", edit)


@pytest.mark.parametrize("loop, one, words", [(0.9, 0.5, "more often than"), (0.5, 0.9, "less often than"),
                                             (0.7, 0.7, "about as often as")])
def test_iterative_denoising_compares_the_loop_with_one_step(quick_run, loop, one, words):
    def edit(m):
        rows = table(m, "methods")["rows"]
        rows[0][4], rows[1][4] = loop, one
    assert f"its digits are read correctly {words} one step's" in page(quick_run, "iterative-denoising", edit)


def test_out_of_distribution_shows_no_ratio_without_noise(quick_run):
    import json

    m = json.loads((quick_run.results / "out-of-distribution" / "manifest.json").read_text())
    text = page(quick_run, "out-of-distribution", lambda m: None)
    zero = text[text.index("| 0 | 0.0000 |"):].split("|")[:5]
    assert zero[4].strip() == "—"                                      # σ = 0: nothing to improve on, no ratio
    digits = m["metrics"]["test_digits"]["value"]
    assert f"{digits:,} test digits" in text and " 0 test digits" not in text
