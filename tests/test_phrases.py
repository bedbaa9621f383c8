"""Sentences that state a comparison or a trend are computed from the numbers they describe: the
helpers, and the captions of real pages rendered from quick-run results with their numbers changed."""
from __future__ import annotations

import pytest

from generator.phrases import apart_fmt, compare, direction, times, trend


def test_a_direction_is_named_only_when_every_step_goes_that_way():
    assert direction([0.9, 0.7, 0.4]) == "falls" and direction([1, 2, 3]) == "rises"
    assert direction([0.02, 0.02, 0.02]) == "level" and direction([5.0]) == "level"
    assert direction([10.0, 10.1, 5.0], rel_tol=0.02) == "falls"        # a step inside the tolerance is allowed
    assert direction([10.0, 10.1, 10.0], rel_tol=0.02) == "level"


def test_small_steps_inside_the_tolerance_cannot_add_up_to_a_trend_the_other_way():
    # every step is within 2 %, but the curve ends 3 % below its start: not a rise
    assert direction([1.0, 0.99, 0.98, 0.97]) == "falls"
    assert direction([1.0, 1.01, 1.02, 1.03]) == "rises"


def test_a_single_peak_or_trough_is_named():
    improvement = [9.64, 25.4, 30.46, 32.34, 29.05, 26.42]              # denoising at unseen noise levels
    assert direction(improvement) == "peaks" and direction([1.0, 3.0, 2.0]) == "peaks"
    assert direction([202.958, 15.685, 111.343, 129.328]) == "dips"     # classifier-FID against γ
    assert str(trend([0.2, 0.4, 0.5, 0.6, 0.8, 1.0], improvement, ".1f", "σ = ")) == \
        "rises from 9.6 at σ = 0.2 to a peak of 32.3 at σ = 0.6, then falls to 26.4 at σ = 1"
    assert str(trend([0.0, 1.0, 5.0, 7.0], [202.958, 15.685, 111.343, 129.328], ".1f", "γ = ")) == \
        "falls from 203.0 at γ = 0 to a low of 15.7 at γ = 1, then rises to 129.3 at γ = 7"


def test_a_share_that_tops_out_says_where():
    gammas = [0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0]
    accuracy = [0.0988, 0.9524, 0.9996, 1.0, 1.0, 0.9992, 0.996]
    # an absolute tolerance of 0.1 points: the fall from 100 % to 99.6 % counts
    assert str(trend(gammas, accuracy, "pct", "γ = ", rel_tol=0, abs_tol=0.001)) == \
        "rises from 9.9 % at γ = 0 to a peak of 100.0 % at γ = 3–5, then falls to 99.6 % at γ = 10"
    # inside a relative tolerance of 1 % it is still a rise, but the sentence says where the top is
    assert str(trend(gammas, accuracy, "pct", "γ = ", 0.01)) == \
        "rises from 9.9 % at γ = 0 to 100.0 % at γ = 3–5 and stays near that (99.6 % at γ = 10)"


def test_a_noisy_curve_is_described_by_its_range_only():
    assert direction([1.0, 3.0, 2.0, 4.0, 1.5]) == "mixed"
    assert direction([19.96, 19.88, 19.67, 17.96, 19.46, 18.79]) == "mixed"   # falls, rises, falls again
    assert str(trend([1, 2, 3, 4, 5], [1.0, 3.0, 2.0, 4.0, 1.5], ".1f")) == \
        "moves without a steady trend, between 1.0 at 1 and 4.0 at 4"


def test_trend_sentences():
    assert str(trend([75, 150, 225], [0.73, 0.61, 0.47], "pct", "t = ")) == \
        "falls from 73.0 % at t = 75 to 47.0 % at t = 225"
    assert str(trend([75, 150, 225], [0.02, 0.02, 0.02], "pct", "t = ")) == "stays at about 2.0 % throughout"
    assert str(trend([0.0, 1.0, 10.0], [0.1, 1.0, 0.9], "pct", "γ = ")) == \
        "rises from 10.0 % at γ = 0 to a peak of 100.0 % at γ = 1, then falls to 90.0 % at γ = 10"
    assert str(trend([1, 2], [None, 3.0], ".1f")) == "stays at about 3.0"          # a missing value is skipped


def test_comparisons_and_ratios():
    assert compare(73.0, 70.2, 0.05) == "about the same as" and compare(80.0, 70.0, 0.05) == "higher than"
    assert compare(1, 2, words=("more", "less", "as much")) == "less"
    # one decimal below 100, as the tables print ratios: 0.25 / 0.008195 and 0.25 / 0.00821 read alike
    assert times(0.25, 0.008195474743843079) == times(0.25, 0.00821) == "30.5×"
    assert times(0.0673, 0.000108) == "623×" and times(2.0, 1.0) == "2.0×" and times(1.0, 0) == "—"


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


FULL_OOD = [[0.0, 0.0, 0.0035, None], [0.2, 0.04, 0.00415, 9.64], [0.4, 0.16, 0.0063, 25.4],
            [0.5, 0.25, 0.00821, 30.46], [0.6, 0.36, 0.01113, 32.34], [0.8, 0.64, 0.02203, 29.05],
            [1.0, 1.0, 0.03786, 26.42]]


def test_out_of_distribution_claims_help_only_where_the_error_falls(quick_run):
    import json

    def edit(m):
        table(m, "mse")["rows"] = [list(r) for r in FULL_OOD]
        m["metrics"]["trained_sigma"]["value"] = 0.5
    text = page(quick_run, "out-of-distribution", edit)       # at σ = 0 the output can only add error
    assert "It lowers the error at every $\\sigma > 0$ we tried, most at $\\sigma = 0.6$" in text
    assert "every noise level" not in text and "strokes.For" not in text and "000test" not in text
    assert "The improvement rises from 9.6 at σ = 0.2 to a peak of 32.3 at σ = 0.6, then falls to 26.4 at σ = 1" in text
    assert "1.4× its value at $\\sigma = 0.5$ (0.0082) at $\\sigma = 0.6$, 2.7× at $\\sigma = 0.8$ and 4.6× at $\\sigma = 1$" in text
    assert "from $\\sigma = 0.8$ on, the denoised strokes" in text

    # where the output's error is not below the input's, the lead names only the levels where it is
    m = json.loads((quick_run.results / "out-of-distribution" / "manifest.json").read_text())
    rows = table(m, "mse")["rows"]
    helped = [r[0] for r in rows if r[2] < r[1]]
    text = page(quick_run, "out-of-distribution", lambda m: None)
    if len(helped) < len(rows) - 1:
        levels = ", ".join(f"{s:g}" for s in helped)
        assert f"It lowers the error only at $\\sigma \\in \\{{{levels}\\}}$" in text


def test_the_noising_crossover_is_computed_from_the_ratios(quick_run):
    def edit(m):                                # mean x² / σ² as recorded: mean x² = 0.0964, so σ* = 0.31
        table(m, "snr")["rows"] = [[0.0, None], [0.2, 2.411], [0.4, 0.603], [1.0, 0.096]]
    text = page(quick_run, "noising", edit)
    assert "\\approx 0.31" in text and "between $\\sigma = 0.2$ and $\\sigma = 0.4$" in text
    last = text[text.index("| 1 | "):].split("|")[2].strip()         # the table's cell at σ = 1
    assert last.startswith("0.096") and f"to {last} at σ = 1" in text  # as many decimals as the table
    assert "at σ = 0.4" not in text.split("##")[0]                # the lead names the crossover, not a grid level


def test_a_unit_follows_every_value_not_the_x():
    from generator.phrases import trend
    assert str(trend([75, 150, 225], [10.4, 8.0, 6.0], ".1f", "t = ", unit="dB")) == \
        "falls from 10.4 dB at t = 75 to 6.0 dB at t = 225"
    assert str(trend([1, 2], [5.0, 5.01], ".1f", "t = ", unit="dB")) == "stays at about 5.0 dB"


def test_reaching_keeps_the_rows_whose_share_meets_the_goal():
    from generator.phrases import reaching
    rows = [{"g": 1, "acc": "95.24%"}, {"g": 2, "acc": 0.9996}, {"g": 3, "acc": None}]
    assert [r["g"] for r in reaching(rows, "acc", 0.99)] == [2]


def test_two_numbers_that_would_print_alike_get_one_more_decimal():
    assert apart_fmt(2.958, 3) == ".2f" and apart_fmt(2.7, 3) == ".1f"
    assert apart_fmt(17.42, 17.44) == ".2f" and apart_fmt(17.42, 17.44, ".2f") == ".2f"
