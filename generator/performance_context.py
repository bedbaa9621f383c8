"""What the Performance page reads: the benchmark's numbers with labels, the quality check of the fast
path, the project's speed goals against the measurements, and each section's time.

Commits are provenance: they stay out of the rows and phrases here and reach the page only through
`commits_of`, for its collapsed note."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.render import fmt_duration, fmt_value

BENCHMARKS = {
    "device": ("Device", "s"),
    "train_img_per_s_plain": ("Training throughput, plain PyTorch (images/s)", ",.0f"),
    "train_img_per_s": ("Training throughput, optimised (images/s)", ",.0f"),
    "train_speedup": ("Training speed-up", "times"),
    "train_tflops": ("Training compute (TFLOP/s)", ".2f"),
    "peak_fraction": ("Fraction of the GPU's peak", "pct"),
    "sample_1000_cfg_s_plain": ("1,000 guided samples, plain PyTorch (s)", ".2f"),
    "sample_1000_cfg_s": ("1,000 guided samples, optimised (s)", ".2f"),
    "sample_speedup": ("Sampling speed-up", "times"),
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
    "quality_measured_at": ("Quality check measured at", "utc"),
    "torch": ("PyTorch", "s"),
    "git_commit": ("Commit", "s"),
    "measured_at": ("Measured at", "utc"),
}
HIDDEN = ("git_commit", "quality_git_commit", "schema")       # provenance, not measurements
TRAIN_SPEEDUP_TARGET = 8     # the optimised training loop against the plain one, in images/s
# the writeup's wall-time goals: GPUs -> seconds (1 GPU: 10 minutes; 4 or more: 5 minutes)
WRITEUP_TARGETS = {1: 600, 4: 300}


@dataclass(frozen=True)
class Row:
    label: str
    value: str


def scalar_items(data: dict[str, Any]) -> dict[str, Any]:
    """The plain numbers and strings of a summary/benchmark (nested values are not headline numbers)."""
    return {k: v for k, v in data.items() if k != "schema" and isinstance(v, (int, float, str))}


def utc(stamp: object) -> str:
    """'2026-11-27T09:23:50Z' -> '2026-11-27 09:23 UTC' (anything else as it is)."""
    text = str(stamp)
    if len(text) >= 16 and text[10:11] == "T":
        return f"{text[:10]} {text[11:16]} UTC"
    return text


def times(value: float) -> str:
    """A ratio of speeds: 6.35498 -> '6.35×'."""
    return f"{value:.2f}×"


def formatted(value: Any, fmt: str) -> str:
    """A benchmark value in its format: the fmt_value specs, 'times' (a speed-up) and 'utc' (a time stamp)."""
    if fmt == "times" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return times(value)
    if fmt == "utc" and isinstance(value, str):
        return utc(value)
    return fmt_value(value, fmt)


def labelled(data: dict | None, labels: dict[str, tuple[str, str]], skip: tuple[str, ...] = HIDDEN) -> list[Row]:
    """Known keys first in their order, then any other scalar, each formatted; never those in `skip`
    (provenance such as the commit, whether labelled or not)."""
    if not data:
        return []
    items = {k: v for k, v in scalar_items(data).items() if k not in skip}
    keys = [k for k in labels if k in items] + [k for k in items if k not in labels]
    return [Row(labels.get(k, (k, ".4g"))[0], formatted(items[k], labels.get(k, (k, ".4g"))[1])) for k in keys]


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


def writeup_run(summary: dict) -> dict[str, Any]:
    """Which whole-writeup run the wall time belongs to, as phrases (None where run.json does not say);
    `gpu_count` is the number of GPUs (1 for runs recorded before it was)."""
    gpus = summary.get("writeup_gpus")
    sections, skipped = summary.get("writeup_sections"), summary.get("writeup_skipped")
    partial = (f"only {', '.join(sections)}" if isinstance(sections, list) else
               f"without {', '.join(skipped)}" if skipped else None)
    return {"device": summary.get("writeup_device"),
            "gpus": f"{gpus} GPU{'s' if gpus != 1 else ''}" if isinstance(gpus, int) and gpus > 0 else None,
            "gpu_count": gpus if isinstance(gpus, int) and gpus > 0 else 1, "partial": partial}


def commits_of(benchmark: dict | None, summary: dict | None) -> dict[str, str] | None:
    """The short commits of the benchmark (its speed numbers, and its quality check where that ran at
    another commit) and of the results (the whole-writeup run's, else the summary's) when any of them
    differ, for the page's collapsed provenance note; None when they agree or one is unknown."""
    bench = str((benchmark or {}).get("git_commit") or "")
    quality = str((benchmark or {}).get("quality_git_commit") or "")
    results = str((summary or {}).get("writeup_git_commit") or (summary or {}).get("git_commit") or "")
    same = lambda a, b: a.startswith(b[:7]) or b.startswith(a[:7])       # noqa: E731 - short or full hashes
    apart = quality[:7] if quality and bench and not same(quality, bench) else None
    if not bench or not results or (same(bench, results) and not apart):
        return None
    return {"benchmark": bench[:7], "results": results[:7], "quality": apart}


def _writeup_goal(gpus: int) -> int:
    """The wall-time goal (seconds) for a run on `gpus` GPUs."""
    return WRITEUP_TARGETS[max(k for k in WRITEUP_TARGETS if gpus >= k)]


def writeup_runs(summary: dict | None, earlier: list[dict] | None = None) -> list[dict]:
    """Every recorded whole-writeup run, newest first (the current one, then the archived ones), each
    with its phrases, wall time, goal and whether it met it; commits stay out (provenance)."""
    records = [r for r in [*(earlier or []), summary] if r and isinstance(r.get("writeup_wall_s"), (int, float))]
    out = []
    for record in sorted(records, key=lambda r: str(r.get("writeup_finished_at") or ""), reverse=True):
        run = writeup_run(record)
        limit = _writeup_goal(run["gpu_count"])
        finished = record.get("writeup_finished_at")
        out.append({**run, "wall_s": record["writeup_wall_s"], "goal_s": limit,
                    "finished_at": utc(finished) if finished else None, "current": record is summary,
                    "ok": record["writeup_wall_s"] < limit and not run["partial"]})
    return out


def targets_of(benchmark: dict | None, summary: dict | None, earlier: list[dict] | None = None) -> list[dict]:
    """The project's speed goals against what was measured (only those with a measurement); for the
    whole writeup, one row per goal, from the latest run it applies to (current or archived)."""
    out = []
    if benchmark and benchmark.get("train_speedup") is not None:
        out.append({"what": f"training at least {TRAIN_SPEEDUP_TARGET}× the plain loop's images/s "
                            "(medians of alternating runs)",
                    "ok": benchmark["train_speedup"] >= TRAIN_SPEEDUP_TARGET,
                    "measured": times(benchmark["train_speedup"])})
    if benchmark and benchmark.get("sample_1000_cfg_s") is not None:
        out.append({"what": "1,000 guided samples over 300 steps in under 1 s",
                    "ok": benchmark["sample_1000_cfg_s"] < 1, "measured": f"{benchmark['sample_1000_cfg_s']:.2f} s"})
    latest: dict[int, dict] = {}
    for run in writeup_runs(summary, earlier):            # newest first: the first run for each goal counts
        latest.setdefault(_writeup_goal(run["gpu_count"]), run)
    for limit, run in sorted(latest.items(), reverse=True):
        gpus = run["gpu_count"]
        # the goal names the number of GPUs already; a partial run says what it left out
        measured = ", ".join(v for v in (fmt_duration(run["wall_s"]), run["partial"]) if v)
        out.append({"what": f"the whole writeup with the reference hyperparameters in under {limit // 60} "
                            f"minutes on {'one GPU' if gpus == 1 else f'{gpus} GPUs'}",
                    "ok": run["ok"], "measured": measured if run["current"] else f"{measured} (another run)"})
    return out
