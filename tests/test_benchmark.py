"""The benchmark's arithmetic (the timings themselves need a GPU): alternation, medians, steady state."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments import benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_alternate_interleaves_the_two_measurements():
    calls = []
    a, b = benchmark.alternate(lambda: calls.append("plain") or 1.0, lambda: calls.append("ours") or 2.0, repeats=3)
    assert calls == ["plain", "ours"] * 3 and a == [1.0] * 3 and b == [2.0] * 3


def test_steady_state_leaves_out_the_first_epoch():
    # epoch 1 took 10 s (compile, capture); epochs 2 and 3 took 1 s each: 2 epochs x 4 steps x 8 images / 2 s
    results = [SimpleNamespace(epoch_end_s=[10.0, 11.0, 12.0])] * 2            # two models in lockstep
    assert benchmark.steady_images_per_s(results, batch=8, steps_per_epoch=4) == pytest.approx(2 * 64 / 2)


def test_peak_fraction_knows_the_datasheets():
    assert benchmark.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0 and benchmark.peak_tflops("CPU") is None


def test_no_speed_keeps_what_the_file_holds(tmp_path, monkeypatch):
    """--no-speed adds to an existing benchmark file (the quality check runs after a writeup) and keeps the rest."""
    from click.testing import CliRunner

    out = tmp_path / "benchmark.json"
    out.write_text(json.dumps({"train_speedup": 8.5}))
    monkeypatch.setattr(benchmark, "load_split", lambda *args, **kwargs: None)
    monkeypatch.setattr(benchmark, "quality_check", lambda *args, **kwargs: {"fid_plain": [100.0]})
    result = CliRunner().invoke(benchmark.main, ["--device", "cpu", "--no-speed", "--quality", str(tmp_path),
                                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == {"train_speedup": 8.5, "fid_plain": [100.0]}


def test_a_speed_run_keeps_the_earlier_quality_check_and_its_commit(tmp_path, monkeypatch):
    """Measuring the speed again replaces the speed numbers only: the quality check (hours of training
    apart) stays, marked with the commit it came from, and nothing else of the old file survives."""
    from click.testing import CliRunner

    out = tmp_path / "benchmark.json"
    out.write_text(json.dumps({"git_commit": "aaaaaaa", "train_speedup": 6.0, "peer_sample_s": 30.0,
                               "fid_plain": [100.0], "fid_ours": [99.0, 101.0], "quality_samples": 10_000}))
    monkeypatch.setattr(benchmark, "load_split", lambda *args, **kwargs: None)
    monkeypatch.setattr(benchmark, "speed", lambda *args, **kwargs: {"git_commit": "bbbbbbb", "train_speedup": 7.0})
    result = CliRunner().invoke(benchmark.main, ["--device", "cpu", "--no-others", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == {"git_commit": "bbbbbbb", "train_speedup": 7.0, "fid_plain": [100.0],
                                           "fid_ours": [99.0, 101.0], "quality_samples": 10_000,
                                           "quality_git_commit": "aaaaaaa"}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_file_that_is_no_benchmark_is_refused_in_one_line_and_kept(tmp_path, content):
    out = tmp_path / "benchmark.json"
    out.write_text(content)
    run = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--device", "cpu", "--no-speed",
                          "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
    assert out.read_text() == content
