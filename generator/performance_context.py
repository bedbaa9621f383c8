"""What the Performance page reads: the benchmark's numbers with labels, the quality check of the fast
path, the project's speed goals against the measurements, and each section's time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.render import fmt_value

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
HIDDEN = ("git_commit", "schema")       # provenance, not measurements
# the writeup's wall-time goals: GPUs -> seconds (1 GPU: 10 minutes; 4 or more: 5 minutes)
WRITEUP_TARGETS = {1: 600, 4: 300}


@dataclass(frozen=True)
class Row:
    label: str
    value: str


def scalar_items(data: dict[str, Any]) -> dict[str, Any]:
    """The plain numbers and strings of a summary/benchmark (nested values are not headline numbers)."""
    return {k: v for k, v in data.items() if k != "schema" and isinstance(v, (int, float, str))}


def labelled(data: dict | None, labels: dict[str, tuple[str, str]], skip: tuple[str, ...] = ()) -> list[Row]:
    """Known keys first in their order, then any other scalar (but `skip`), each formatted."""
    if not data:
        return []
    items = scalar_items(data)
    keys = [k for k in labels if k in items] + [k for k in items if k not in labels and k not in skip]
    return [Row(labels.get(k, (k, ".4g"))[0], fmt_value(items[k], labels.get(k, (k, ".4g"))[1])) for k in keys]


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


def writeup_run(summary: dict) -> dict[str, str | None]:
    """Which whole-writeup run the wall time belongs to, as phrases (None where run.json does not say)."""
    gpus, commit = summary.get("writeup_gpus"), summary.get("writeup_git_commit")
    sections, skipped = summary.get("writeup_sections"), summary.get("writeup_skipped")
    partial = (f"only {', '.join(sections)}" if isinstance(sections, list) else
               f"without {', '.join(skipped)}" if skipped else None)
    return {"device": summary.get("writeup_device"), "commit": f"commit {str(commit)[:7]}" if commit else None,
            "gpus": f"{gpus} GPU{'s' if gpus != 1 else ''}" if isinstance(gpus, int) and gpus > 0 else None,
            "partial": partial}


def targets_of(benchmark: dict | None, summary: dict | None) -> list[dict]:
    """The project's speed goals against what was measured (only those with a measurement)."""
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
