"""Which pages the site has, where they sit in the navigation and what each template sees.

Pages are Markdown paths relative to the docs folder: a section's page lives under its part
(`part1/noising.md`, the model at `model.md`) and reaches its files at `../results/<section>/`.
Everything a page shows comes from the results, read through `generator.reader`; the words are the
templates'.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from experiments.pipeline import registry
from experiments.pipeline.staleness import Status
from generator import ablation_runs, diagram, evaluation_notes, images, recipe_runs
from generator.configview import annotated_yaml
from generator.fid_noise import fid_noise_rows, headline_draws
from generator.inputs import Results
from generator.labels import one_notation, recipe_label
from generator.overlap import mean_others, shared_device
from generator.performance_context import (BENCHMARKS, commits_of, labelled, quality_of, targets_of, utc,
                                           writeup_run, writeup_runs)
from generator.phrases import GLOBALS
from generator.reader import SectionRun, Summary, run_labels
from generator.render import Renderer

INDEX, REPRODUCE, PERFORMANCE = "index.md", "reproduce.md", "performance.md"
CONCLUSIONS, HISTORY = "conclusions.md", "history.md"
TOP_LEVEL = {"model": "model.md"}        # sections whose page sits at the top of the site
# the navigation follows the course: its parts, then the evaluation and what goes beyond the reference
GROUPS = (("Part 1: denoising", ("part1",)), ("Part 2: diffusion models", ("part2",)),
          ("Part 3: sampling loops", ("part3",)), ("Evaluation and extensions", ("evaluation", "beyond")))
APPENDIX = (("Performance", PERFORMANCE), ("Reproduce", REPRODUCE), ("Run history", HISTORY))
# section -> (its run, its archived runs, summary) -> extra template context, computed in Python
DERIVED: dict[str, Callable[[SectionRun, list[SectionRun], Summary], dict]] = {
    "better-recipe": recipe_runs.page_context, "evaluation": evaluation_notes.page_context,
    "peer": evaluation_notes.reference_context, "fast-sampling": evaluation_notes.reference_context,
    "ablations": ablation_runs.page_context}


@dataclass(frozen=True)
class Card:
    section: registry.Section
    path: str
    run: SectionRun
    status: Status


def other_devices(summary: Summary) -> list[str]:
    """Sections whose results come from another device than the summary's, e.g. 'peer (NVIDIA H100)'."""
    device = summary.get("device")
    return [f"{section} ({d})" for section, d in sorted((summary.get("devices") or {}).items()) if d and d != device]


def headline_words(run: SectionRun) -> str:
    """The better recipe's headline in words: 'GroupNorm + EMA 0.999, …: FID 7.13 (mean of 7.15 and 7.10;
    3.3× the FID of real digits), 99.1 % read as the asked digit' ('' when the run has none)."""
    fid = run.value("fid_headline")
    if fid is None:
        return ""
    variant, setting = run.value("headline_variant"), run.value("headline_setting")
    setting = recipe_runs.setting_words(setting) if setting is not None else None   # the page's words
    model = recipe_label(str(variant)) if variant is not None else None
    named = (f"{model}, sampled with {setting}" if model and setting else
             ", ".join(str(v) for v in (model, setting) if v))
    draws = headline_draws(run)
    notes = []
    if len(draws) >= 2 and abs(sum(draws) / len(draws) - fid) <= 1e-3 * max(1.0, abs(fid)):
        notes.append(f"mean of {', '.join(f'{d:.2f}' for d in draws[:-1])} and {draws[-1]:.2f}")
    if run.value("fid_ratio_headline") is not None:
        notes.append(f"{run.value('fid_ratio_headline'):.1f}× the FID of real digits")
    words = f"FID {fid:.2f}" + (f" ({'; '.join(notes)})" if notes else "")
    if run.value("accuracy_headline") is not None:
        words += f", {100 * run.value('accuracy_headline'):.1f} % read as the asked digit"
    return one_notation(f"{named}: {words}" if named else words)


def section_path(section: registry.Section) -> str:
    return TOP_LEVEL.get(section.name, f"{section.part}/{section.name}.md")


def link(from_page: str, to_path: str) -> str:
    """Relative link between two docs-relative paths (MkDocs validates and rewrites it)."""
    return posixpath.relpath(to_path, posixpath.dirname(from_page) or ".")


def writeup_order(sections: list[registry.Section]) -> list[registry.Section]:
    """Sections in the order of the writeup (registry.ORDER), not the dependency order."""
    rank = {name: i for i, name in enumerate(registry.ORDER)}
    return sorted(sections, key=lambda s: rank.get(Path(s.module_file).stem, len(rank)))


class Pages:
    """Renders every page of the site into {docs-relative path: Markdown}."""

    def __init__(self, renderer: Renderer, results: Results, statuses: list[Status], results_label: str):
        self.r = renderer
        self.r.env.globals.update(GLOBALS)
        self.r.env.filters["percent"] = GLOBALS["percent"]
        self.r.env.filters["recipe"] = lambda variant: one_notation(recipe_label(variant))    # as every table names it
        self.r.env.filters["sentence"] = lambda text: str(text)[:1].upper() + str(text)[1:]
        self.results = results
        self.runs = results.runs
        self.archived = results.archived
        self.summary = results.headline
        self.status = {s.section: s for s in statuses}
        self.sections = writeup_order([s for s in registry.all_sections() if s.name in results.manifests])
        self.results_label = results_label
        self.shared = shared_device(results.manifests)
        # cross-section FID pairs (the run history and the evaluation): computed once, not once per page
        self.fid_noise = fid_noise_rows(self.runs, results.benchmark, self.archived)
        self.ablation_spread = self._ablation_spread()

    def render_all(self) -> dict[str, str]:
        pages = {section_path(s): self.section_page(s) for s in self.sections}
        pages[INDEX] = self.r.render("index.md.j2", **self.common(INDEX))
        better = self.runs.get("better-recipe")
        repeats = recipe_runs.repeats(better, self.archived.get("better-recipe", [])) if better else None
        pages[CONCLUSIONS] = self.r.render("conclusions.md.j2", **self.common(CONCLUSIONS), recipe_repeats=repeats)
        pages[HISTORY] = self.r.render("history.md.j2", **self.common(HISTORY), **self.history_context())
        pages[REPRODUCE] = self.r.render("reproduce.md.j2", **self.common(REPRODUCE), rows=self.reproduce_rows())
        pages[PERFORMANCE] = self.r.render("performance.md.j2", **self.common(PERFORMANCE),
                                           benchmark=labelled(self.results.benchmark, BENCHMARKS),
                                           commits=commits_of(self.results.benchmark, self.results.summary),
                                           quality=quality_of(self.results.benchmark),
                                           targets=targets_of(self.results.benchmark, self.results.summary,
                                                              self.results.run_records),
                                           writeup_runs=writeup_runs(self.results.summary, self.results.run_records),
                                           run=self.writeup_context(), rows=self.performance_rows())
        return pages

    def nav(self) -> list[Any]:
        """Home, the model, the parts of the course, conclusions, then the appendix."""
        out: list[Any] = [{"Home": INDEX}]
        out += [{s.title: section_path(s)} for s in self.sections if s.name in TOP_LEVEL]
        for title, parts in GROUPS:
            paths = [section_path(s) for s in self.sections if s.part in parts and s.name not in TOP_LEVEL]
            if paths:
                out.append({title: paths})
        return out + [{"Conclusions": CONCLUSIONS}, {"Appendix": [{t: p} for t, p in APPENDIX]}]

    # ---- contexts ------------------------------------------------------------------------------
    def common(self, page: str) -> dict[str, Any]:
        """What every template sees: every run by name, the summary, links relative to this page."""
        runs = list(self.runs.values())
        return {"page": page, "results_label": self.results_label, "runs": self.runs, "summary": self.summary,
                "profiles": sorted({r.profile for r in runs}), "devices": sorted({r.device for r in runs}),
                "total_wall_s": sum(r.wall_s for r in runs), "cards": self.cards(),
                "stale": [self.status[s.name] for s in self.sections if self.status[s.name].state == "stale"],
                "fid_noise": self.fid_noise, "ablation_spread": self.ablation_spread, "split_sizes": self.split_sizes(),
                "other_devices": other_devices(self.summary), "dataset": self.results.dataset.title,
                "data": self.results.dataset, "shown": self.results.shown,
                "results_base": lambda name: link(page, f"results/{name}") + "/",
                "display_width": lambda section, file, kind: images.display_width(
                    self.results.root / section / file, kind),
                "link": lambda to: link(page, to), "section_link": lambda name: link(page, self.path_of(name))}

    def _ablation_spread(self) -> dict[str, float] | None:
        """How far one configuration's FID moves between trainings in the ablation runs: the reference's
        largest over smallest FID and the largest such ratio of any variant (None before a second run)."""
        abl = self.runs.get("ablations")
        variants = ablation_runs.across_runs(abl, self.archived.get("ablations", [])) if abl else []
        ratios = [v.ratio for v in variants if v.ratio is not None]
        if not ratios or variants[0].ratio is None:
            return None
        return {"reference": variants[0].ratio, "largest": max(ratios)}

    def cards(self) -> dict[str, list[Card]]:
        """The sections of each navigation group (the index's map of the writeup)."""
        out = {}
        for title, parts in GROUPS:
            cards = [Card(s, section_path(s), self.runs[s.name], self.status[s.name])
                     for s in self.sections if s.part in parts and s.name not in TOP_LEVEL]
            if cards:
                out[title] = cards
        return out

    def split_sizes(self) -> dict[str, int | None]:
        """How many digits the training and test splits hold (what `train_images: 0` means)."""
        train = self.summary.value("train_images") or next(
            (r.value("train_images") for r in self.runs.values() if r.value("train_images")), None)
        test = next((r.value("test_images") for r in self.runs.values() if r.value("test_images")), None)
        return {"train_images": train, "test_images": test}

    def path_of(self, name: str) -> str:
        return section_path(registry.get(name))

    def section_page(self, section: registry.Section) -> str:
        page = section_path(section)
        run = self.runs[section.name]
        ctx = {"run": run, "metrics": run.metrics, "config": run.config, "section": section, "placed": [],
               "base": link(page, f"results/{section.name}") + "/", "status": self.status[section.name],
               "config_yaml": annotated_yaml(run.config, self.split_sizes()), **self.derived(section.name, run)}
        own = f"sections/{section.name}.md.j2"
        return self.r.render(own if self.r.exists(own) else "section.md.j2", **self.common(page), **ctx)

    def derived(self, name: str, run: SectionRun) -> dict[str, Any]:
        """What a section's template needs beyond its own run (see DERIVED)."""
        if name == "model":           # the diagram is drawn from the traced graph beside the manifest
            return {"diagram": diagram.from_results(self.results.root)}
        context = DERIVED.get(name)
        return context(run, self.archived.get(name, []), self.summary) if context else {}

    def history_context(self) -> dict[str, Any]:
        """The run history: archived runs of the better recipe and the ablations beside the current ones.
        The better recipe's runs name their models one way and their headline in words."""
        better, abl = self.runs.get("better-recipe"), self.runs.get("ablations")
        recipe = []
        if better:
            archived = self.archived.get("better-recipe", [])
            made = [*archived, better]
            recipe = [replace(r, headline=headline_words(run), label=f"{label}, {run.device}",
                              models=tuple(replace(m, name=one_notation(m.name)) for m in r.models))
                      for r, run, label in zip(recipe_runs.runs(better, archived), made, run_labels(made))]
        return {"recipe_runs": recipe,
                "ablations": ablation_runs.history(abl, self.archived.get("ablations", [])) if abl else
                {"run_labels": [], "across_runs": []}}

    def reproduce_rows(self) -> list[dict]:
        return [{"section": s, "m": self.results.manifests[s.name], "status": self.status[s.name],
                 "path": section_path(s)} for s in self.sections]

    def writeup_context(self) -> dict | None:
        """The last whole-writeup run (run.json, merged into summary.json): its phrases, when it finished,
        and what its sections' wall times add up to (more than the run's own when sections shared a GPU)."""
        summary = self.results.summary or {}
        if not isinstance(summary.get("writeup_wall_s"), (int, float)):
            return None
        walls = [w for w in (summary.get("section_wall_s") or {}).values() if isinstance(w, (int, float))]
        finished = summary.get("writeup_finished_at")
        return {"wall_s": summary["writeup_wall_s"], **writeup_run(summary),
                "per_gpu": summary.get("writeup_per_gpu"), "finished_at": utc(finished) if finished else None,
                "sections_wall_s": sum(walls) if walls else None, "placed": bool(summary.get("section_start_s"))}

    def performance_rows(self) -> list[dict]:
        """Each section's time: in the order the last whole-writeup run started them (with its start and
        GPU there), sections it did not run after them in the order of the writeup."""
        summary = self.results.summary or {}
        gpu, start, wall = (summary.get(k) or {} for k in ("section_gpu", "section_start_s", "section_wall_s"))
        rows = []
        for s in self.sections:
            run = self.runs[s.name]
            began, took = start.get(s.name), wall.get(s.name)
            rows.append({"section": s, "path": section_path(s), "m": self.results.manifests[s.name],
                         "train_wall_s": run.value("train_wall_s"),
                         "alongside": mean_others(self.shared.get(s.name, [])),
                         "img_per_s": run.value("train_img_per_s"),
                         "start_s": began, "gpu": gpu.get(s.name),
                         "compiled": self.results.manifests[s.name].get("compiled"),    # None: not recorded
                         # seconds from the run's start to this section's end: the largest ends the run
                         "end_s": began + took if began is not None and took is not None else None})
        return sorted(rows, key=lambda r: (r["start_s"] is None, r["start_s"] or 0.0))
