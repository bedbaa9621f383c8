"""Which sections ran at the same time on the same device (`writeup --per-gpu K`), from their manifests.

A section's wall time and training throughput include whatever else the GPU ran meanwhile, so a
reader comparing times needs to know. Each manifest records when its run started and how long it
took; two runs of the same commit on the same device (the same GPU of the machine, where the manifests
record which) whose intervals overlap shared that device.
(Two machines with the same device name running the same commit at the same time would read as
sharing: the writeup's own runs never do that.)
"""
from __future__ import annotations

from datetime import datetime, timezone


def _interval(manifest: dict) -> tuple[float, float] | None:
    try:
        start = datetime.strptime(manifest["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        return start.timestamp(), start.timestamp() + float(manifest["wall_s"])
    except (KeyError, TypeError, ValueError):
        return None


def shared_device(manifests: dict[str, dict]) -> dict[str, list[tuple[str, float]]]:
    """section -> [(other section, fraction of this section's wall time they overlapped)], largest first;
    sections that ran alone map to []."""
    spans = {name: span for name, m in manifests.items() if (span := _interval(m)) is not None}
    out: dict[str, list[tuple[str, float]]] = {}
    for name, (start, end) in spans.items():
        m, overlaps = manifests[name], []
        for other, (o_start, o_end) in spans.items():
            o = manifests[other]
            key = ("device", "device_index", "git_commit")
            if other == name or tuple(o.get(k) for k in key) != tuple(m.get(k) for k in key):
                continue
            seconds = min(end, o_end) - max(start, o_start)
            if seconds > 0:
                overlaps.append((other, seconds / max(end - start, 1e-9)))
        out[name] = sorted(overlaps, key=lambda pair: (-pair[1], pair[0]))
    return out


def mean_others(overlaps: list[tuple[str, float]]) -> float:
    """How many other sections ran at the same time, averaged over this section's wall time."""
    return sum(fraction for _, fraction in overlaps)
