"""The whole-writeup run: placement of sections on GPUs (fake sections and durations, no GPU), the run's
board, work spread over devices (real worker processes on the CPU), and the `writeup` command."""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from experiments import cli
from experiments.errors import UserError
from experiments.pipeline import registry
from experiments.pipeline.placement import Job, Planner, chain_lengths, simulate

# The committed full-profile section times on one H200 (4 at a time), the trial the placement must beat
TRIAL = {"noising": 1.0, "single-step-denoiser": 83.7, "out-of-distribution": 16.0, "pure-noise": 46.0,
         "time-conditioned": 122.2, "class-conditioned": 121.5, "classifier": 31.9, "evaluation": 334.0,
         "better-recipe": 703.0, "forward-process": 2.5, "classical-vs-learned": 20.2, "iterative-denoising": 3.6,
         "cfg": 13.9, "sdedit": 15.0, "inpainting": 6.4, "visual-anagrams": 11.3, "hybrid-images": 9.1,
         "peer": 905.0, "ablations": 750.8, "fast-sampling": 113.9, "model": 1.0}


def writeup_jobs(walls: dict[str, float]) -> list[Job]:
    """The real sections (dependencies, early starts) with fake expected times."""
    return [Job(s.name, s.depends_on, walls[s.name], s.reads_dependencies_late) for s in registry.all_sections()]


def call(argv, capsys):
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
        raise SystemExit(0)      # main returns normally on success
    out, err = capsys.readouterr()
    return exc.value.code, out, err


# ---- placement -----------------------------------------------------------------------------------

def test_chain_lengths_count_the_longest_chain_of_dependants():
    jobs = [Job("a", (), 10.0), Job("b", ("a",), 100.0), Job("c", ("a",), 5.0), Job("d", (), 50.0)]
    assert chain_lengths(jobs) == {"a": 110.0, "b": 100.0, "c": 5.0, "d": 50.0}


def test_four_gpus_keep_the_long_sections_apart():
    """The 4-GPU trial of naive least-loaded placement put the ablations and the peer on one GPU while two
    GPUs idled: here the three longest sections each get a GPU of their own and the run ends with the
    longest of them, not with two of them shared."""
    timeline = simulate(writeup_jobs(TRIAL), TRIAL, gpus=4, per_gpu=4)
    longest = ("peer", "ablations", "better-recipe")
    assert len({timeline.gpu[n] for n in longest}) == 3
    assert all(timeline.together(a, b) == 0 for a in longest for b in longest if a != b)
    assert timeline.wall_s < 1.1 * (TRIAL["time-conditioned"] + TRIAL["peer"])   # near the critical path
    # the better recipe reads the classifier only after training, so it starts with everything else
    assert timeline.start["better-recipe"] == 0 and timeline.start["peer"] == 0


def test_dependencies_are_respected_and_early_starts_wait_for_their_inputs():
    timeline = simulate(writeup_jobs(TRIAL), TRIAL, gpus=2, per_gpu=3)
    for section in registry.all_sections():
        for dep in section.depends_on:
            if section.reads_dependencies_late:
                assert timeline.start[section.name] >= timeline.start[dep]
                assert timeline.end[section.name] >= timeline.end[dep]
            else:
                assert timeline.start[section.name] >= timeline.end[dep], (section.name, dep)


def test_one_gpu_never_runs_more_than_per_gpu_sections():
    timeline = simulate(writeup_jobs(TRIAL), TRIAL, gpus=1, per_gpu=3)
    events = sorted([(t, 1) for t in timeline.start.values()] + [(t, -1) for t in timeline.end.values()],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 3
    assert timeline.wall_s == pytest.approx(sum(TRIAL.values()), rel=0.02)   # one GPU: the work adds up


def test_the_longest_chain_starts_first():
    jobs = [Job("short", (), 10.0), Job("head", (), 20.0), Job("tail", ("head",), 500.0), Job("mid", (), 100.0)]
    planner = Planner(jobs, gpus=1, per_gpu=1)
    assert planner.place(0.0) == [("head", 0)]           # 20 s now, but 520 s with what waits on it
    planner.finish("head")
    assert planner.place(20.0) == [("tail", 0)]


def test_a_failure_skips_its_dependants_only():
    jobs = [Job("a", (), 10.0), Job("b", ("a",), 10.0), Job("c", ("b",), 10.0), Job("d", (), 10.0)]
    planner = Planner(jobs, gpus=2, per_gpu=1)
    assert {n for n, _ in planner.place(0.0)} == {"a", "d"}
    assert planner.finish("a", ok=False, why="boom") == ["b", "c"]
    planner.finish("d")
    assert planner.place(10.0) == [] and planner.finished()
    assert planner.failed == {"a": "boom", "b": "skipped: a failed", "c": "skipped: b failed"}


def test_spares_are_idle_gpus_and_a_loan_keeps_new_sections_off_them():
    jobs = [Job("long", (), 500.0), Job("short", (), 20.0), Job("mine", (), 300.0), Job("next", (), 50.0)]
    planner = Planner(jobs, gpus=3, per_gpu=2)
    placed = dict(planner.place(0.0))                          # long, mine, short: one GPU each; next beside short
    assert placed["next"] == placed["short"]
    assert planner.spares("mine") == []                        # every other GPU has a section on it
    planner.finish("short")
    planner.finish("next")
    idle = placed["short"]
    assert planner.spares("mine") == [idle]
    planner.lend("mine", [idle])
    assert planner.spares("mine") == [idle]                    # still its own to use ...
    assert planner.busy()[idle] == 1
    planner.jobs.append(Job("late", (), 30.0))                 # ... and a new section goes elsewhere first
    planner.by_name["late"] = planner.jobs[-1]
    planner.priority["late"] = 30.0
    [(name, gpu)] = planner.place(10.0)
    assert name == "late" and gpu != idle
    planner.finish("mine")                                      # the loan ends with its borrower
    assert planner.busy()[idle] == 0 and planner.lent == {}


# ---- the run's board and spreading over devices ----------------------------------------------------

def test_board_waits_for_a_dependency_and_reports_a_failed_one(tmp_path):
    from experiments.pipeline.board import Board, spare_devices, wait_for

    board = Board(tmp_path / "run", gpus=2)
    wait = board.waiter(["a", "b"])
    wait("not-in-this-run")                                   # earlier results: nothing to wait for
    threading.Timer(0.3, lambda: board.finished("a", ok=True)).start()
    t0 = time.perf_counter()
    wait("a")
    assert time.perf_counter() - t0 >= 0.25
    board.finished("b", ok=False)
    with pytest.raises(UserError, match="b failed"):
        wait_for(str(tmp_path / "run"), ("b",), "b")
    board = Board(tmp_path / "run", gpus=3)
    board.started("mine", 0, 300.0)
    board.started("other", 1, 10.0)
    assert spare_devices(str(tmp_path / "run"), "mine") == [torch.device("cuda", 2)]    # the one idle GPU
    assert board.loans() == {"mine": (2,)}
    assert board.spares("other")() == []                     # GPU 2 is lent, GPU 0 runs "mine"
    assert board.spares("mine")() == [torch.device("cuda", 2)]                         # its own loan, asked again
    board.finished("mine", ok=True)
    assert board.loans() == {} and board.spares("other")() == [torch.device("cuda", 0), torch.device("cuda", 2)]
    assert board.spares("gone")() == []                      # not running: nothing to lend


def _seeded(ctx, seed: int, n: int) -> torch.Tensor:
    """A job that depends only on its arguments: the same numbers wherever it runs."""
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) + ctx.seed


def _fails(ctx, seed: int, n: int) -> torch.Tensor:
    if seed != 2:                                  # the jobs dealt to the worker process (see the costs below)
        raise ValueError(f"bad job {seed}")
    return torch.zeros(n)


def _cpu_context(spares: int):
    import functools

    from experiments.core.section import Context

    section = registry.get("noising")
    return Context(section=section, cfg=None, profile="quick", device=torch.device("cpu"), seed=3,
                   work_root=None, data_root=None, out=None, read_result=None,
                   spare_devices=functools.partial(_devices, spares))


def _devices(count: int) -> list[torch.device]:
    return [torch.device("cpu")] * count


def test_spread_gives_the_same_results_in_one_process_or_several():
    from experiments.core.parallel import deal, spread

    assert deal([5, 5, 10, 10, 5], 3) == [[2, 4], [3], [0, 1]]          # costs 15, 10, 10
    jobs = [(seed, 4) for seed in range(5)]
    alone = spread(_cpu_context(0), _seeded, jobs)
    together = spread(_cpu_context(1), _seeded, jobs, cost=[1, 1, 5, 1, 1])   # a real worker process
    assert all(torch.equal(a, b) for a, b in zip(alone, together))
    with pytest.raises(RuntimeError, match="on cpu: ValueError: bad job 0"):     # one line from the worker
        spread(_cpu_context(1), _fails, jobs, cost=[1, 1, 5, 1, 1])


def test_a_section_knows_how_many_devices_its_work_was_spread_over():
    """Asked once, before spreading: the count a section records is the count that ran its jobs."""
    from experiments.core.parallel import devices_for, spread

    ctx = _cpu_context(3)
    assert len(devices_for(ctx, [(0, 4), (1, 4)])) == 2                   # no more devices than jobs
    assert len(devices_for(ctx, [(0, 4)] * 9)) == 4 and len(devices_for(ctx, [])) == 1
    jobs = [(seed, 4) for seed in range(5)]
    with pytest.raises(ValueError, match="bad job 0"):                     # in this process: no worker was used
        spread(ctx, _fails, jobs, cost=[1, 1, 5, 1, 1], devices=devices_for(_cpu_context(0), jobs))


def _note_where(ctx, path: str, word: str) -> None:
    """A compile-ahead job: records the process, the context and whether gradients were on."""
    import os

    Path(path).write_text(f"{os.getpid()} {ctx.section.name} {ctx.seed} {word} {torch.is_grad_enabled()} {os.nice(0)}")


def _fails_ahead(ctx, path: str, word: str) -> None:
    raise RuntimeError("out of memory")


def test_compiling_ahead_runs_in_a_side_process_only_where_the_section_compiles(tmp_path):
    """On the CPU (never compiled) nothing starts; the side process runs the job with the section's context,
    no gradients and the lowest CPU priority, and a failed one only means the section compiles for itself."""
    import os

    from experiments.core.compiling import compile_ahead, in_side_process

    marker = tmp_path / "ahead.txt"
    ahead = compile_ahead(_cpu_context(0), _note_where, str(marker), "sampler")
    assert ahead.wait() is False and not marker.exists()
    ahead = in_side_process(_cpu_context(0), _note_where, str(marker), "sampler")
    assert ahead.wait() is True
    pid, section, seed, word, grad, nice = marker.read_text().split()
    assert int(pid) != os.getpid() and (section, seed, word, grad) == ("noising", "3", "sampler", "False")
    assert int(nice) == 19                       # the lowest CPU priority: the section's own work comes first
    assert in_side_process(_cpu_context(0), _fails_ahead, str(marker), "x").wait() is False


# ---- the command -----------------------------------------------------------------------------------

def test_every_section_gets_a_fresh_worker_process():
    """A worker never runs a second section: what one leaves in its process (compiled code, CUDA graphs,
    the current GPU) must not reach a section that may run on another GPU."""
    import os

    from experiments.pipeline.writeup import section_pool

    with section_pool(2, initializer=None) as pool:
        pids = [pool.submit(os.getpid).result() for _ in range(4)]
    assert len(set(pids)) == 4 and os.getpid() not in pids


def test_writeup_per_gpu_must_be_positive(tmp_path, capsys):
    code, out, err = call(["writeup", "--profile", "quick", "--per-gpu", "0", "--out", str(tmp_path / "r"),
                           "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 2 and "--per-gpu" in err and len(err.strip().splitlines()) == 1


def test_writeup_more_gpus_than_visible_is_a_user_error(tmp_path, capsys, monkeypatch):
    import experiments.pipeline.writeup as writeup

    monkeypatch.setattr(writeup, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(writeup, "_visible_gpus", lambda: 2)
    code, out, err = call(["writeup", "--profile", "quick", "--gpus", "4", "--out", str(tmp_path / "r"),
                           "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 2 and err == "error: --gpus 4: only 2 GPU(s) visible\n"


def test_writeup_records_the_run_and_the_cli_reports_it(quick_run, tmp_path, monkeypatch, capsys):
    """The quick run (two sections at a time in worker processes) wrote run.json: every section, where and
    when it ran; the CLI's closing line reads those keys."""
    import experiments.pipeline.writeup

    record = json.loads((quick_run.results / "run.json").read_text())
    names = [s.name for s in registry.all_sections()]
    assert record["writeup_sections"] == "all" and record["failed"] == {}
    assert record["writeup_gpus"] == 0 and record["writeup_per_gpu"] == 2
    assert set(record["section_wall_s"]) == set(names) == set(record["section_start_s"])
    starts = record["section_start_s"]
    for section in registry.all_sections():
        if not section.reads_dependencies_late:
            assert all(starts[section.name] >= starts[d] for d in section.depends_on)
    monkeypatch.setattr(experiments.pipeline.writeup, "run_writeup", lambda *args, **kwargs: record)
    code, out, err = call(["writeup", "--profile", "quick", "--out", str(tmp_path / "results"),
                           "--work-dir", str(tmp_path / "work")], capsys)
    assert code == 0 and err == ""
    assert out.strip() == f"writeup: {record['writeup_wall_s']:.1f} s on {record['writeup_device']} (2 at a time)"


def test_expected_walls_come_from_the_last_run_else_the_manifests(quick_run, tmp_path):
    from experiments.pipeline.writeup import expected_walls

    results = tmp_path / "results"
    shutil.copytree(quick_run.results, results)
    (results / "noising" / "manifest.json").write_text("{not json")
    (results / "run.json").unlink()
    walls = expected_walls(results)
    peer = json.loads((results / "peer" / "manifest.json").read_text())["wall_s"]
    assert walls["peer"] == peer and "noising" not in walls and len(walls) == len(registry.ORDER) - 1
    (results / "run.json").write_text(json.dumps({"section_wall_s": {"peer": 1234.5}}))
    assert expected_walls(results)["peer"] == 1234.5


def test_writeup_of_named_sections_packs_only_them(quick_run, tmp_path, capsys):
    """One job of a run split over machines: the named section on the results there, packed alone."""
    import tarfile

    results, work = tmp_path / "results", tmp_path / "work"
    shutil.copytree(quick_run.results, results)
    shutil.copytree(quick_run.work, work)
    code, out, err = call(["writeup", "noising", "--profile", "quick", "--device", "cpu", "--out", str(results),
                           "--work-dir", str(work), "--pack", str(tmp_path / "noising.tar.gz")], capsys)
    assert code == 0, err
    with tarfile.open(tmp_path / "noising.tar.gz") as tar:
        assert {n.split("/")[1] for n in tar.getnames()} == {"noising"}
    record = json.loads((results / "run.json").read_text())
    assert record["writeup_sections"] == ["noising"] and list(record["section_wall_s"]) == ["noising"]


def test_a_writeup_with_a_failed_section_exits_non_zero(tmp_path, monkeypatch, capsys):
    import experiments.pipeline.writeup

    record = {"writeup_wall_s": 1.0, "writeup_device": "CPU", "writeup_gpus": 0, "writeup_per_gpu": 1,
              "writeup_sections": "all", "failed": {"peer": "ValueError: boom", "ablations": "skipped: peer failed"}}
    monkeypatch.setattr(experiments.pipeline.writeup, "run_writeup", lambda *args, **kwargs: record)
    code, out, err = call(["writeup", "--profile", "quick", "--out", str(tmp_path / "r"),
                           "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 1
    assert err.splitlines() == ["failed: peer: ValueError: boom", "failed: ablations: skipped: peer failed"]


def test_writeup_benchmark_needs_a_gpu_and_refuses_before_any_section(tmp_path, monkeypatch, capsys):
    import experiments.pipeline.writeup

    monkeypatch.setattr(experiments.pipeline.writeup, "run_writeup", lambda *args, **kwargs: pytest.fail("ran"))
    code, out, err = call(["writeup", "--profile", "quick", "--device", "cpu", "--benchmark",
                           "--out", str(tmp_path / "r"), "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 2 and err.startswith("error: --benchmark") and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_writeup_benchmark_runs_after_the_sections_and_is_packed_with_them(tmp_path, monkeypatch, capsys):
    """One command for a GPU host: the sections, then the benchmark on the GPUs they freed, written into the
    results beside run.json, then the tarball holding both."""
    import tarfile

    import experiments.benchmark
    import experiments.pipeline.runner
    import experiments.pipeline.writeup

    results, calls = tmp_path / "results", []
    record = {"writeup_wall_s": 1.0, "writeup_device": "GPU", "writeup_gpus": 1, "writeup_per_gpu": 4,
              "writeup_sections": "all", "failed": {}}

    def fake_writeup(opts, **kwargs):
        calls.append("sections")
        (opts.results_root / "noising").mkdir(parents=True)
        (opts.results_root / "noising" / "manifest.json").write_text("{}")
        return record

    def fake_measure(device, data_root, out, **kwargs):
        calls.append(("benchmark", out))
        out.write_text(json.dumps({"train_speedup": 7.0, "sample_1000_cfg_s": 1.2}))
        return json.loads(out.read_text())

    monkeypatch.setattr(experiments.pipeline.runner, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(experiments.pipeline.writeup, "run_writeup", fake_writeup)
    monkeypatch.setattr(experiments.benchmark, "measure", fake_measure)
    code, out, err = call(["writeup", "--profile", "quick", "--device", "cuda", "--benchmark", "--out", str(results),
                           "--work-dir", str(tmp_path / "w"), "--pack", str(tmp_path / "all.tar.gz")], capsys)
    assert code == 0, err
    assert calls == ["sections", ("benchmark", results / "benchmark.json")]
    assert "benchmark: training 7.00x the plain loop" in out
    with tarfile.open(tmp_path / "all.tar.gz") as tar:
        assert {"results/benchmark.json", "results/noising/manifest.json"} <= set(tar.getnames())
