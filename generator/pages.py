"""Which pages the site has and what each template sees: index, one page per section, reproduce, performance.

Pages are Markdown paths relative to the docs folder; section pages live under their part
(`part1/noising.md`) and reach their files at `../results/<section>/`.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from experiments.pipeline import registry
from generator import ablation_runs, evaluation_notes, recipe_runs
from generator.fid_noise import fid_noise_rows
from generator.inputs import Results, metric_value, scalar_items
from generator.overlap import describe, mean_others, shared_device
from generator.render import Metric, Renderer, fmt_value
from experiments.pipeline.staleness import Status

INDEX, REPRODUCE, PERFORMANCE = "index.md", "reproduce.md", "performance.md"

# summary.json keys -> (label, format); unknown scalar keys are shown under their own name
HEADLINES = {
    "classifier_test_accuracy": ("MNIST classifier, test accuracy", "pct"),
    "fid_floor": ("Classifier-FID floor (training digits vs test digits)", ".2f"),
    "fid_time_conditioned": ("FID, time-conditioned DDPM", ".2f"),
    "fid_class_conditioned": ("FID, class-conditioned DDPM with guidance", ".2f"),
    "class_accuracy_class_conditioned": ("Guided samples classified as the asked digit", "pct"),
    "fid_ratio_class_conditioned": ("Class-conditioned FID in multiples of the floor", ".1f"),
    "memorisation_ratio": ("Distance to the nearest training digit, samples / test digits (≥ 1: no copying)",
                           ".2f"),
    "generated_samples": ("Generated digits behind each FID", ",d"),
    "fid_peer": ("FID, diffusers UNet2DModel peer", ".2f"),
    "fid_ddpm_300_matched": ("FID, DDPM sampler (300 steps) from the moment-matched start", ".2f"),
    "fid_ddim_50": ("FID, DDIM sampler (50 steps) from the moment-matched start", ".2f"),
    "fid_ddim_50_from_noise": ("FID, DDIM sampler (50 steps) from pure noise", ".2f"),
    "fid_class_conditioned_improved": ("FID, class-conditioned, better recipe (GroupNorm, EMA, more steps: "
                                       "its best model and sampler setting at the accuracy target)", ".2f"),
    "class_accuracy_class_conditioned_improved": ("Better recipe: samples classified as the asked digit", "pct"),
    "fid_ratio_class_conditioned_improved": ("Better recipe: FID in multiples of the floor", ".1f"),
    "train_images": ("Training digits", ",d"),
    "writeup_wall_s": ("Time to compute the whole writeup", "duration"),
}
# section -> (its manifest, its archived runs, summary) -> extra template context, computed in Python
DERIVED = {"better-recipe": recipe_runs.page_context, "ablations": ablation_runs.page_context,
           "evaluation": evaluation_notes.page_context, "peer": evaluation_notes.reference_context,
           "fast-sampling": evaluation_notes.reference_context}
# run.json's details of the whole-writeup run: folded into the wall-time row, not rows of their own
WRITEUP_DETAILS = ("writeup_jobs", "writeup_device", "writeup_git_commit", "writeup_finished_at", "finished_at",
                   "writeup_skipped", "writeup_gpus", "writeup_per_gpu", "writeup_sections")
# the writeup's wall-time targets: GPUs -> seconds (1 GPU: 10 minutes; 4 or more: 5 minutes)
WRITEUP_TARGETS = {1: 600, 4: 300}
PROVENANCE = {"profile": ("profile", "s"), "device": ("device", "s"), "git_commit": ("commit", "s")}
BENCHMARKS = {
    "device": ("Device", "s"),
    "train_img_per_s_plain": ("Training throughput, plain PyTorch (images/s)", ",.0f"),
    "train_img_per_s": ("Training throughput, optimised (images/s)", ",.0f"),
    "train_speedup": ("Training speed-up", ".2f"),
    "train_tflops": ("Training compute (TFLOP/s)", ".2f"),
    "peak_fraction": ("Fraction of the GPU's peak", "pct"),
    "sample_1000_cfg_s_plain": ("1,000 guided samples, plain PyTorch (s)", ".2f"),
    "sample_1000_cfg_s": ("1,000 guided samples, optimised (s)", ".2f"),
    "sample_speedup": ("Sampling speed-up", ".2f"),
    "sample_1000_cfg_s_unsplit": ("1,000 guided samples, optimised but the skip concatenations not split (s)", ".2f"),
    "recipe_train_img_per_s": ("Training throughput, the better recipe's GroupNorm model, optimised (images/s)",
                               ",.0f"),
    "peer_train_img_per_s": ("Training throughput, the diffusers peer, optimised (images/s)", ",.0f"),
    "peer_sample_s": ("Peer samples over all 1,000 DDPMScheduler steps, optimised (s)", ".2f"),
    "peer_sample_digits": ("Peer samples timed", ",d"),
    "repeats": ("Alternating runs of plain and optimised (medians shown)", "d"),
    "batch_size": ("Batch size", "d"),
    "gflop_per_image_train": ("GFLOP per image (forward + backward)", ".3f"),
    "train_tflops_plain": ("Training compute, plain (TFLOP/s)", ".2f"),
    "peak_bf16_tflops": ("Dense bf16 peak of the GPU (TFLOP/s, datasheet)", ".0f"),
    "quality_samples": ("Digits behind each quality FID", ",d"),
    "torch": ("PyTorch", "s"),
    "git_commit": ("Commit", "s"),
    "measured_at": ("Measured at", "s"),
}


@dataclass(frozen=True)
class Row:
    label: str
    value: str


def quality_of(benchmark: dict | None) -> dict | None:
    """FID of the class-conditioned model trained the plain way and ours (lists, one per seed)."""
    if not benchmark or not benchmark.get("fid_plain") or not benchmark.get("fid_ours"):
        return None
    ours, plain = [float(v) for v in benchmark["fid_ours"]], [float(v) for v in benchmark["fid_plain"]]
    # where the plain run falls against our seeds: "above" (a higher FID: ours is not worse), "below" or "inside"
    reference = sum(plain) / len(plain)
    position = "above" if reference > max(ours) else "below" if reference < min(ours) else "inside"
    gap = reference - max(ours) if position == "above" else min(ours) - reference if position == "below" else 0.0
    return {"plain": plain, "ours": ours, "spread": max(ours) - min(ours), "position": position, "gap": gap,
            "samples": benchmark.get("quality_samples", 0), "seeds": benchmark.get("quality_seeds", [])}


def targets_of(benchmark: dict | None, summary: dict | None) -> list[dict]:
    """The speed targets against what was measured (only those with a measurement)."""
    out = []
    if benchmark and benchmark.get("train_speedup") is not None:
        out.append({"what": "training at least 8x the plain loop's images/s (medians of alternating runs)",
                    "ok": benchmark["train_speedup"] >= 8, "measured": f"{benchmark['train_speedup']:.2f}x"})
    if benchmark and benchmark.get("sample_1000_cfg_s") is not None:
        out.append({"what": "1,000 CFG samples over 300 steps in under 1 s", "ok": benchmark["sample_1000_cfg_s"] < 1,
                    "measured": f"{benchmark['sample_1000_cfg_s']:.2f} s"})
    if summary and isinstance(summary.get("writeup_wall_s"), (int, float)):
        run = writeup_run(summary)
        gpus = summary.get("writeup_gpus") or 1        # runs recorded before the GPU count: one GPU
        limit = WRITEUP_TARGETS[max(k for k in WRITEUP_TARGETS if gpus >= k)]
        measured = ", ".join(v for v in (f"{summary['writeup_wall_s']:.0f} s", run["gpus"], run["partial"],
                                         run["commit"]) if v)
        # a partial run cannot meet a target set for the whole writeup
        out.append({"what": f"the whole full-profile writeup in under {limit // 60} minutes on "
                            f"{'one GPU' if gpus == 1 else f'{gpus} GPUs'}",
                    "ok": summary["writeup_wall_s"] < limit and not run["partial"], "measured": measured})
    return out


def writeup_run(summary: dict) -> dict[str, str | None]:
    """Which whole-writeup run the wall time belongs to, as phrases (None where run.json does not say)."""
    gpus, commit = summary.get("writeup_gpus"), summary.get("writeup_git_commit")
    sections, skipped = summary.get("writeup_sections"), summary.get("writeup_skipped")
    partial = (f"only {', '.join(sections)}" if isinstance(sections, list) else
               f"without {', '.join(skipped)}" if skipped else None)
    return {"device": summary.get("writeup_device"), "commit": f"commit {commit}" if commit else None,
            "gpus": f"{gpus} GPU{'s' if gpus != 1 else ''}" if isinstance(gpus, int) and gpus > 0 else None,
            "partial": partial}


def headline_rows(summary: dict | None) -> list[Row]:
    """The summary's numbers; the whole-writeup wall time says which run (device, commit, jobs) it was."""
    rows = labelled(summary, HEADLINES, skip=tuple(PROVENANCE) + WRITEUP_DETAILS + ("profile",))
    if not summary or not summary.get("writeup_git_commit"):
        return rows
    run = writeup_run(summary)
    detail = ", ".join(v for v in (run["device"], run["gpus"], run["commit"], run["partial"]) if v)
    label = HEADLINES["writeup_wall_s"][0]
    return [Row(r.label, f"{r.value} ({detail})") if r.label == label else r for r in rows]


def provenance_exceptions(summary: dict | None) -> list[str]:
    """Sections whose device or commit differ from the summary's provenance line, e.g. 'peer (commit abc)'."""
    summary = summary or {}
    commits, out = summary.get("commits") or {}, []
    for section, device in sorted((summary.get("devices") or {}).items()):
        commit = commits.get(section)
        differ = ([device] if device and device != summary.get("device") else []) + \
                 ([f"commit {commit}"] if commit and commit != summary.get("git_commit") else [])
        if differ:
            out.append(f"{section} ({', '.join(differ)})")
    return out


def section_path(section: registry.Section) -> str:
    return f"{section.part}/{section.name}.md"


def link(from_page: str, to_path: str) -> str:
    """Relative link between two docs-relative paths (MkDocs validates and rewrites it)."""
    return posixpath.relpath(to_path, posixpath.dirname(from_page) or ".")


def labelled(data: dict | None, labels: dict[str, tuple[str, str]], skip: tuple[str, ...] = ()) -> list[Row]:
    """Known keys first in their order, then any other scalar (but `skip`), each formatted."""
    if not data:
        return []
    items = scalar_items(data)
    keys = [k for k in labels if k in items] + [k for k in items if k not in labels and k not in skip]
    return [Row(labels.get(k, (k, ".4g"))[0], fmt_value(items[k], labels.get(k, (k, ".4g"))[1])) for k in keys]


def figure_blocks(figures: list[dict]) -> list[dict]:
    """Consecutive figures with a `group` become one set of content tabs; others stand alone."""
    blocks: list[dict] = []
    for fig in figures:
        group = fig.get("group")
        if not group:
            blocks.append({"figure": fig})
            continue
        if not blocks or "tabs" not in blocks[-1]:
            blocks.append({"tabs": {}})
        blocks[-1]["tabs"].setdefault(str(group), []).append(fig)
    return blocks


def hero_figure(m: dict) -> dict | None:
    """The figure for the index card: the first still image of the last group (the final epoch), else the
    first still image, else any figure."""
    images = [f for f in m["figures"] if f["kind"] == "image"]
    grouped = [f for f in images if f.get("group")]
    if grouped:
        last = grouped[-1]["group"]
        return next(f for f in grouped if f["group"] == last)
    return (images or m["figures"] or [None])[0]


class Pages:
    """Renders every page of the site into {docs-relative path: Markdown}."""

    def __init__(self, renderer: Renderer, results: Results, statuses: list[Status], results_label: str):
        self.r = renderer
        self.results = results
        self.status = {s.section: s for s in statuses}
        self.sections = [s for s in registry.all_sections() if s.name in results.manifests]
        self.results_label = results_label
        self.shared = shared_device(results.manifests)
        # cross-section FID pairs, shown on the evaluation page: computed once, not once per page
        self.fid_noise = fid_noise_rows(results.manifests, results.benchmark, results.archive)

    def render_all(self) -> dict[str, str]:
        pages = {section_path(s): self.section_page(s) for s in self.sections}
        pages[INDEX] = self.r.render("index.md.j2", **self.common(INDEX), **self.index_context())
        pages[REPRODUCE] = self.r.render("reproduce.md.j2", **self.common(REPRODUCE), rows=self.reproduce_rows())
        pages[PERFORMANCE] = self.r.render("performance.md.j2", **self.common(PERFORMANCE),
                                           benchmark=labelled(self.results.benchmark, BENCHMARKS),
                                           quality=quality_of(self.results.benchmark),
                                           targets=targets_of(self.results.benchmark, self.results.summary),
                                           run=self.writeup_context(), rows=self.performance_rows())
        return pages

    def nav(self) -> list[Any]:
        """Home, one entry per part (its sections), then Performance and Reproduce."""
        out: list[Any] = [{"Home": INDEX}]
        for part, title in registry.PARTS.items():
            paths = [section_path(s) for s in self.sections if s.part == part]
            if paths:
                out.append({title: paths})
        return out + [{"Performance": PERFORMANCE}, {"Reproduce": REPRODUCE}]

    # ---- contexts ------------------------------------------------------------------------------
    def common(self, page: str) -> dict[str, Any]:
        manifests = list(self.results.manifests.values())
        return {"page": page, "results_label": self.results_label, "parts": registry.PARTS,
                "profiles": sorted({m["profile"] for m in manifests}),
                "devices": sorted({m["device"] for m in manifests}),
                "commits": sorted({m["git_commit"] for m in manifests}),
                "total_wall_s": sum(m["wall_s"] for m in manifests),
                "stale": [self.status[s.name] for s in self.sections if self.status[s.name].state == "stale"],
                "link": lambda to: link(page, to), "section_link": lambda name: link(page, self.path_of(name))}

    def path_of(self, name: str) -> str:
        return section_path(registry.get(name))

    def section_page(self, section: registry.Section) -> str:
        page = section_path(section)
        m = self.results.manifests[section.name]
        metrics = {k: Metric(v["value"], v["label"], v.get("fmt", ".4g")) for k, v in m["metrics"].items()}
        ctx = {"m": m, "metrics": metrics, "config": m["config"], "section": section,
               "base": link(page, f"results/{section.name}") + "/",
               "fid_noise": self.fid_noise, **self.derived(section.name, m),
               "alongside": describe(self.shared.get(section.name, []))}
        intro_name = f"sections/{section.name}.md.j2"
        intro = self.r.render(intro_name, **ctx).strip() if self.r.exists(intro_name) else None
        return self.r.render("section.md.j2", **self.common(page), **ctx, intro=intro,
                             status=self.status[section.name], blocks=figure_blocks(m["figures"]))

    def derived(self, name: str, m: dict) -> dict[str, Any]:
        """What a section's template needs beyond its own manifest (see DERIVED)."""
        context = DERIVED.get(name)
        return context(m, self.results.archive.get(name, []), self.results.summary) if context else {}

    def index_context(self) -> dict[str, Any]:
        cards = []
        for s in self.sections:
            m = self.results.manifests[s.name]
            cards.append({"section": s, "path": section_path(s), "figure": hero_figure(m),
                          "base": f"results/{s.name}/", "status": self.status[s.name]})
        by_part = {part: [c for c in cards if c["section"].part == part] for part in registry.PARTS}
        summary = self.results.summary
        return {"headline": headline_rows(summary),
                "provenance": labelled({k: v for k, v in (summary or {}).items() if k in PROVENANCE}, PROVENANCE),
                "provenance_exceptions": provenance_exceptions(summary),
                "by_part": {p: cs for p, cs in by_part.items() if cs}}

    def reproduce_rows(self) -> list[dict]:
        return [{"section": s, "m": self.results.manifests[s.name], "status": self.status[s.name],
                 "path": section_path(s)} for s in self.sections]

    def writeup_context(self) -> dict | None:
        """The last whole-writeup run (run.json, merged into summary.json): its phrases and where each section ran."""
        summary = self.results.summary or {}
        if not isinstance(summary.get("writeup_wall_s"), (int, float)):
            return None
        gpu, start, wall = (summary.get(k) or {} for k in ("section_gpu", "section_start_s", "section_wall_s"))
        placed = sorted(((name, gpu[name], start.get(name), wall.get(name)) for name in gpu),
                        key=lambda r: (r[1], r[2] or 0.0))
        return {"wall_s": summary["writeup_wall_s"], **writeup_run(summary),
                "per_gpu": summary.get("writeup_per_gpu"), "finished_at": summary.get("writeup_finished_at"),
                "placed": [{"section": n, "gpu": g, "start_s": a, "wall_s": w} for n, g, a, w in placed]}

    def performance_rows(self) -> list[dict]:
        rows = []
        for s in self.sections:
            m = self.results.manifests[s.name]
            rows.append({"section": s, "path": section_path(s), "m": m,
                         "train_wall_s": metric_value(m, "train_wall_s"),
                         "alongside": mean_others(self.shared.get(s.name, [])),
                         "img_per_s": metric_value(m, "train_img_per_s")})
        return rows
