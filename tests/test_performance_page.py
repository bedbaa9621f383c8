"""The Performance page, the run history and the ablations page as a reader sees them: goals stated as
goals, times in one format and one table, speed-ups with their unit, no commit outside the collapsed
note, run columns told apart, cross-run claims computed from the runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from generator.performance_context import (BENCHMARKS, commits_of, labelled, targets_of, utc, writeup_run,
                                          writeup_runs)
from generator.render import fmt_duration

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_ROOT / "docs" / "results"


# ---- what the page reads ------------------------------------------------------------------------------------
def test_benchmark_rows_hide_the_commit_and_write_units():
    rows = {r.label: r.value for r in labelled({"train_speedup": 6.35498, "sample_speedup": 5.1175,
                                                "git_commit": "7aa53eb", "measured_at": "2026-11-27T09:23:50Z",
                                                "custom": 3}, BENCHMARKS)}
    assert rows["Training speed-up"] == "6.35×" and rows["Sampling speed-up"] == "5.12×"
    assert rows["Measured at"] == "2026-11-27 09:23 UTC"
    assert "Commit" not in rows and "7aa53eb" not in rows.values() and rows["custom"] == "3"
    assert utc("2026-11-27T10:11:24Z") == "2026-11-27 10:11 UTC"


def test_goals_read_as_goals_with_durations_and_no_commit():
    summary = {"writeup_wall_s": 932.3, "writeup_gpus": 1, "writeup_git_commit": "b352c4b" + "0" * 33}
    speed, sampling, writeup = targets_of({"train_speedup": 6.35498, "sample_1000_cfg_s": 1.306}, summary)
    assert speed["what"].startswith("training at least 8× ") and speed["measured"] == "6.35×" and not speed["ok"]
    assert sampling["measured"] == "1.31 s" and not sampling["ok"]
    assert writeup["measured"] == fmt_duration(932.3) == "15 min 32 s" and not writeup["ok"]
    assert writeup["what"].endswith("under 10 minutes on one GPU")
    partial = targets_of(None, summary | {"writeup_sections": ["peer"], "writeup_wall_s": 100.0})[0]
    assert partial["measured"] == "1 min 40 s, only peer" and not partial["ok"]
    assert "commit" not in " ".join(str(v) for v in writeup_run(summary).values() if v)


def test_each_writeup_goal_reads_the_latest_run_it_applies_to():
    one = {"writeup_wall_s": 932.3, "writeup_gpus": 1, "writeup_finished_at": "2026-11-27T10:11:24Z"}
    older = one | {"writeup_wall_s": 590.0, "writeup_finished_at": "2026-11-26T10:11:24Z"}
    four = {"writeup_wall_s": 280.0, "writeup_gpus": 4, "writeup_finished_at": "2026-11-27T12:23:10Z"}
    one_gpu, four_gpus = targets_of(None, four, [older, one])
    assert four_gpus["what"].endswith("under 5 minutes on 4 GPUs") and four_gpus["ok"]
    assert four_gpus["measured"] == "4 min 40 s"
    assert one_gpu["what"].endswith("under 10 minutes on one GPU") and not one_gpu["ok"]   # the latest, not the best
    assert one_gpu["measured"] == "15 min 32 s (another run)"


def test_a_run_kept_after_the_shown_results_is_listed_first_but_not_as_theirs():
    shown = {"writeup_wall_s": 397.4, "writeup_gpus": 4, "writeup_finished_at": "2026-11-27T16:27:00Z"}
    later = {"writeup_wall_s": 1022.1, "writeup_gpus": 1, "writeup_finished_at": "2026-11-27T16:45:28Z"}
    newest, current = writeup_runs(shown, [later])
    assert newest["wall_s"] == 1022.1 and not newest["current"] and current["current"]
    one_gpu, four_gpus = targets_of(None, shown, [later])
    assert one_gpu["measured"] == "17 min 02 s (another run)" and four_gpus["measured"] == "6 min 37 s"


def test_the_commits_note_only_when_the_benchmark_or_its_quality_check_differ():
    summary = {"writeup_git_commit": "b352c4b9491486d571535f6705a983cc64586fc3"}
    assert commits_of({"git_commit": "7aa53eb"}, summary) == {"benchmark": "7aa53eb", "results": "b352c4b",
                                                             "quality": None}
    quality = {"git_commit": "7aa53eb", "quality_git_commit": "f96aca7" + "0" * 33}
    assert commits_of(quality, summary)["quality"] == "f96aca7"
    assert "f96aca7" not in " ".join(r.value for r in labelled(quality, BENCHMARKS))    # provenance, not a row
    assert commits_of({"git_commit": "7aa53eb", "quality_git_commit": "7aa53eb"}, summary)["quality"] is None
    assert commits_of({"git_commit": "b352c4b"}, summary) is None
    # speed numbers from the results' commit, the quality check from an earlier one: still noted
    assert commits_of({"git_commit": "b352c4b", "quality_git_commit": "f96aca7"}, summary) == {
        "benchmark": "b352c4b", "results": "b352c4b", "quality": "f96aca7"}
    assert commits_of({}, summary) is None and commits_of({"git_commit": "7aa53eb"}, {}) is None


# ---- the pages of the committed results -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    from experiments.pipeline import registry
    from experiments.pipeline.staleness import statuses
    from generator import TEMPLATES_DIR
    from generator.inputs import load_results
    from generator.pages import Pages
    from generator.render import Renderer

    results = load_results(RESULTS, [s.name for s in registry.all_sections()])
    return Pages(Renderer(TEMPLATES_DIR), results, statuses(results.manifests), "results").render_all()


def outside_notes(markdown: str) -> str:
    """The page without its collapsed blocks (`??? note` admonitions and provenance <details>)."""
    text = re.sub(r"<details.*?</details>", "", markdown, flags=re.S)
    return re.sub(r"^\?\?\? .*\n(?:(?: {4}.*)?\n)*", "", text, flags=re.M)


def test_performance_page_keeps_commits_and_internal_names_out_of_the_prose(pages):
    page = pages["performance.md"]
    run = json.loads((RESULTS / "run.json").read_text())
    bench = json.loads((RESULTS / "benchmark.json").read_text())
    shown = outside_notes(page)
    for commit in (run["writeup_git_commit"], bench["git_commit"]):
        assert commit[:7] not in shown
    if bench["git_commit"][:7] != run["writeup_git_commit"][:7]:     # which code measured what: collapsed
        assert page.count("??? note") == 1 and bench["git_commit"][:7] in page
    for name in ("run.json", "benchmark.json", "python -m experiments", "Commit |"):
        assert name not in page
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", page)             # time stamps written for people
    assert not re.search(r"\d(?:\.\d+)?x\b", page)                       # speed-ups in ×, not x
    assert "not yet met" in page or " met |" in page


def test_performance_page_reconciles_the_wall_times_in_one_table(pages):
    from experiments.pipeline import registry

    page = pages["performance.md"]
    run = json.loads((RESULTS / "run.json").read_text())
    wall, total = run["writeup_wall_s"], sum(run["section_wall_s"].values())
    assert f"**{fmt_duration(wall)}**" in page and fmt_duration(wall) in page.split("## Our goals")[1]
    if total > wall:
        assert f"add up to {fmt_duration(total)}" in page and f"up to {run['writeup_per_gpu']} sections" in page
    assert page.count("| Section |") == 1                                 # one table of section times
    header = next(line for line in page.splitlines() if line.startswith("| Section |"))
    assert "Started" in header and "Wall time" in header
    assert ("GPU |" in header.replace("images/s", "")) == (run["writeup_gpus"] > 1)
    assert ("least expected work left" in page) == (run["writeup_gpus"] > 1)
    assert "| time-conditioned |" not in page                            # sections by their titles
    column = [c.strip() for c in header.split("|")].index("Compiled")     # as each section recorded it
    from experiments.pipeline.results import load_manifest
    for section in registry.all_sections():
        row = next(line for line in page.splitlines() if line.startswith(f"| [{section.title}]("))
        compiled = (load_manifest(RESULTS, section.name) or {}).get("compiled")
        assert row.split("|")[column].strip() == ("—" if compiled is None else "yes" if compiled else "no")
    ends = {name: at + run["section_wall_s"][name] for name, at in run["section_start_s"].items()}
    last = max(ends, key=ends.get)                                      # the section that ended the run
    assert f"The last section to finish was [{registry.get(last).title}]" in page
    trained = ((load_manifest(RESULTS, last) or {}).get("metrics", {}).get("train_wall_s") or {}).get("value")
    assert (f"({fmt_duration(trained)} of it training)" in page) == (trained is not None)
    reproduce = pages["reproduce.md"]
    assert "Wall time" not in reproduce and "performance.md#time-per-section" in reproduce


def test_history_tells_runs_apart_and_names_recipes_one_way(pages):
    page = pages["history.md"]
    assert "✓" not in page and "× floor" not in page
    assert "predicting x0" not in page                                  # one notation: predicting x₀
    if "## The ablations, run by run" in page:
        header = next(line for line in page.split("## The ablations, run by run")[1].splitlines()
                      if line.startswith("| Variant |"))
        labels = [c.strip() for c in header.strip("|").split("|")][1:-1]
        assert len(labels) == len(set(labels))
        rows = page.split("## The ablations, run by run")[1]
        assert not re.search(r"\| (?:— \|\s*){2,}", rows.split("| GroupNorm")[1].splitlines()[0])
    better = json.loads((RESULTS / "better-recipe" / "manifest.json").read_text())["metrics"]
    fid = better["fid_headline"]["value"]
    draws = sorted((k, v["value"]) for k, v in better.items() if k.startswith("fid_headline_draw"))
    words = f"FID {fid:.2f} ("
    if len(draws) >= 2:
        words += f"mean of {', '.join(f'{v:.2f}' for _, v in draws[:-1])} and {draws[-1][1]:.2f}; "
    assert words + f"{better['fid_ratio_headline']['value']:.1f}× the FID of real digits)" in page
    assert f"{100 * better['accuracy_headline']['value']:.1f} % read as the asked digit" in page


def test_ablations_page_names_only_switches_that_hold_in_every_run(pages):
    page = " ".join(pages["beyond/ablations.md"].split())
    assert "switches lower the FID by more than 5 %" not in page
    assert "Lower than the reference in every run:" in page and "Higher in every run:" in page
    ev = json.loads((RESULTS / "evaluation" / "manifest.json").read_text())["metrics"]
    abl = json.loads((RESULTS / "ablations" / "manifest.json").read_text())
    ref = next(t for t in abl["tables"] if t["key"] == "ablations")["rows"][0][3]
    assert f"FID {ev['fid_time_conditioned']['value']:.1f} against {ref:.1f} for the reference" in page


def test_the_index_says_how_legible_the_better_recipe_is_from_its_numbers(pages):
    """'at the same legibility' only where the headline meets the accuracy goal; a near miss says so."""
    better = json.loads((RESULTS / "better-recipe" / "manifest.json").read_text())
    accuracy, goal = better["metrics"]["accuracy_headline"]["value"], better["config"]["target_accuracy"]
    heading = next(line for line in pages["index.md"].splitlines() if "**A better recipe" in line)
    expected = ("at the same legibility" if accuracy >= goal else
                "at nearly the same legibility" if accuracy >= goal - 0.005 else "if less legible")
    assert expected in heading
    assert ("at the same legibility" in heading) == (accuracy >= goal)


def test_the_index_says_digits_keep_improving_only_if_the_last_checkpoint_scores_best(pages):
    ev = json.loads((RESULTS / "evaluation" / "manifest.json").read_text())
    table = next(t for t in ev["tables"] if t["key"] == "fid_per_epoch")
    from generator.reader import column_key

    keys = table.get("keys") or [column_key(c) for c in table["columns"]]
    fids = [row[keys.index("fid_class_conditioned")] for row in table["rows"]]
    heading = next(line for line in pages["index.md"].splitlines() if "**Digits are legible early" in line)
    assert ("and keep improving" in heading) == (fids[-1] == min(fids))


def test_recipes_in_prose_are_named_one_way(pages):
    """Where a page's sentences name a recipe, it reads as the tables do (x₀), whatever the run recorded."""
    for name in ("conclusions.md", "evaluation/better-recipe.md"):
        assert "predicting x0" not in outside_notes(pages[name]), name


def test_the_better_recipe_page_names_the_goal_it_misses_from_its_numbers(pages):
    """The verdict, the comparison with the reference and the draws' spread follow the headline's numbers."""
    better = json.loads((RESULTS / "better-recipe" / "manifest.json").read_text())
    metrics, config = better["metrics"], better["config"]
    fid_ok = metrics["fid_ratio_headline"]["value"] <= config["target_fid_ratio"]
    accuracy_ok = metrics["accuracy_headline"]["value"] >= config["target_accuracy"]
    page = " ".join(pages["evaluation/better-recipe.md"].split())
    verdict = {(True, True): "It meets both our goals",
               (True, False): "It meets the FID goal but not the accuracy goal",
               (False, True): "It meets the accuracy goal but not the FID goal",
               (False, False): "It meets neither goal"}[(fid_ok, accuracy_ok)]
    assert verdict in page
    assert ("at the same accuracy goal" in page) == accuracy_ok
    assert f"their FID spread, {metrics['fid_headline_spread']['value']:.3f}," in page


def test_steps_are_listed_as_a_sentence_lists_them(pages):
    from generator.phrases import listed

    assert listed([1]) == "1" and listed([1, 50], "or") == "1 or 50" and listed([2, 3, 4, 5]) == "2, 3, 4 and 5"
    peer = json.loads((RESULTS / "peer" / "manifest.json").read_text())
    table = next(t for t in peer["tables"] if t["key"] == "sweep")
    steps, ddim, trailing = (table["columns"].index(c) for c in ("steps", "ours, DDIM", "peer, DDPMScheduler (trailing)"))
    losses = [row[steps] for row in table["rows"] if row[ddim] >= row[trailing]]
    page = " ".join(pages["beyond/peer.md"].split())
    if losses and len(losses) < len(table["rows"]):
        assert f"but not at {listed(losses, 'or')} step" in page


def test_run_to_run_movement_is_read_from_the_ablation_runs(pages):
    """No hand-typed size for how much a retrained configuration moves: it comes from the recorded runs."""
    for name in ("index.md", "conclusions.md"):
        text = " ".join(pages[name].split())
        assert "tens of percent" not in text
        assert re.search(r"trained again moves its FID by up to \d+\.\d× \(the reference", text), name
