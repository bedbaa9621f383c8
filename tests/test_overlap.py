"""Which sections shared the device: from the start and wall times in their manifests."""
from __future__ import annotations

import pytest

from generator.overlap import mean_others, shared_device


def run(start: str, wall: float, device: str = "H100", commit: str = "abc") -> dict:
    return {"started_at": f"2026-11-25T10:{start}Z", "wall_s": wall, "device": device, "git_commit": commit}


def test_overlap_fractions_and_what_does_not_count():
    manifests = {
        "long": run("00:00", 100.0),
        "inside": run("00:10", 20.0),                  # wholly inside "long"
        "tail": run("01:30", 40.0),                    # its first 10 s overlap "long"
        "other-gpu": run("00:00", 100.0, device="H200"),
        "other-commit": run("00:00", 100.0, commit="def"),
        "after": run("05:00", 10.0),
        "broken": {"started_at": "yesterday", "wall_s": 5.0, "device": "H100", "git_commit": "abc"},
    }
    shared = shared_device(manifests)
    assert shared["long"] == [("inside", pytest.approx(0.2)), ("tail", pytest.approx(0.1))]
    assert shared["inside"] == [("long", pytest.approx(1.0))]
    assert shared["tail"] == [("long", pytest.approx(0.25))]
    assert shared["after"] == [] and shared["other-gpu"] == [] and shared["other-commit"] == []
    assert "broken" not in shared
    assert mean_others(shared["long"]) == pytest.approx(0.3)
