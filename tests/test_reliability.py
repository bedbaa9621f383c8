"""Reliability: kills never lose results, --resume is bit-identical, divergence stops cleanly.

Kills hit exact moments through the test hook FUNDIFF_TEST_PAUSE_AT (experiments/testhooks.py):
the run prints "test hook: paused at <point>" and sleeps there until the test kills it.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from experiments import cli
from experiments.pipeline import results as results_mod
from experiments.core.config import DiffusionConfig, TrainConfig, UNetConfig
from experiments.core.data import load_split
from experiments.core.diffusion.schedule import make_schedule
from experiments.errors import DivergenceError, UserError
from experiments.core.models.unet import UNet
from experiments.core.objectives import diffusion_objective
from experiments.pipeline.results import ResultWriter, load_manifest, recover
from experiments.pipeline.runner import RunOptions, run
from experiments.core.checkpoints import checkpoint_path
from experiments.core.training import Trainer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TIMING_METRICS = {"train_wall_s", "train_img_per_s"}
CPU = torch.device("cpu")


def snapshot(root: Path, hidden: bool = True) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (hidden or not any(part.startswith(".") for part in p.relative_to(root).parts))}


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action. A shell that starts pytest in the background (without job
    control) makes it ignore SIGINT, and children inherit that, so the run would never see the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """`python -m experiments run ...` in a subprocess whose stderr is read line by line."""

    started: list["Run"] = []           # every run of the current test, stopped at its end (no_leftover_runs)

    def __init__(self, args: list[str], pause: str | None = None):
        env = {**os.environ}
        env.pop("FUNDIFF_TEST_PAUSE_AT", None)
        if pause:
            env["FUNDIFF_TEST_PAUSE_AT"] = pause
        self.proc = subprocess.Popen([sys.executable, "-m", "experiments", "run", *args, "--no-progress"],
                                     cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, preexec_fn=_default_sigint)
        Run.started.append(self)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_pause(self, point: str, timeout: float = 300) -> None:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no pause at {point} within {timeout} s")
            if line is None:
                pytest.fail(f"run ended before pausing at {point}: {''.join(self.stderr)}")
            self.stderr.append(line)
            if line.startswith(f"test hook: paused at {point}"):
                return

    def kill(self, sig: int = signal.SIGKILL) -> int:
        os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout=120)

    def finish(self, timeout: float = 600) -> tuple[int, str, str]:
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout=timeout)
        while (line := self.lines.get(timeout=10)) is not None:
            self.stderr.append(line)
        return code, out, "".join(self.stderr)


@pytest.fixture(autouse=True)
def no_leftover_runs():
    """A failing test must not leave a paused run behind: kill whatever is still running at its end."""
    yield
    while Run.started:
        proc = Run.started.pop().proc
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def folders(tmp_path: Path, data_root: Path) -> list[str]:
    return ["--out", str(tmp_path / "results"), "--work-dir", str(tmp_path / "work"), "--data-root", str(data_root)]


def comparable_metrics(manifest: dict) -> dict:
    return {k: v["value"] for k, v in manifest["metrics"].items() if k not in TIMING_METRICS}


# ---- atomic results and resume (subprocesses, SIGKILL) -------------------------------------------

def test_kill_mid_training_keeps_results_and_resume_is_bit_identical(quick_run, tmp_path, data_root):
    name = "single-step-denoiser"
    key = load_manifest(quick_run.results, name)["weights_key"]        # the same run: the same checkpoint key
    results, work = tmp_path / "results", tmp_path / "work" / "quick" / name / key
    shutil.copytree(quick_run.results / name, results / name)
    before = snapshot(results)

    killed = Run([name, *folders(tmp_path, data_root)], pause="training")
    killed.wait_for_pause("training")
    killed.kill()
    assert snapshot(results) == before, "a kill mid-training changed the previous results"
    assert torch.load(work / "state.pt", weights_only=False)["epoch"] == 1
    assert not checkpoint_path(work, 2).exists()

    code, out, err = Run([name, *folders(tmp_path, data_root), "--resume"]).finish()
    assert code == 0, err
    assert f"wrote {results / name}" in out
    # the same weights, metrics and files as the uninterrupted run of the session fixture
    reference = quick_run.work / "quick" / name / key
    for epoch in (1, 2):
        ours = torch.load(checkpoint_path(work, epoch), weights_only=True)["model"]
        theirs = torch.load(checkpoint_path(reference, epoch), weights_only=True)["model"]
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), f"epoch {epoch} weights differ after resume"
    new, old = (json.loads((d / name / "manifest.json").read_text()) for d in (results, quick_run.results))
    assert comparable_metrics(new) == comparable_metrics(old)
    for file in old["files"]:
        assert (results / name / file).read_bytes() == (quick_run.results / name / file).read_bytes(), file
    assert new["started_at"] != "" and not [p for p in results.iterdir() if p.name.startswith(".")]


def test_kill_mid_writing_keeps_results_then_a_rerun_recovers(quick_run, tmp_path, data_root):
    results = tmp_path / "results"
    shutil.copytree(quick_run.results / "noising", results / "noising")
    before = snapshot(results)
    args = ["noising", *folders(tmp_path, data_root), "--set", "digits=2"]   # new results differ from old

    killed = Run(args, pause="writing")
    killed.wait_for_pause("writing")
    staged = [p for p in results.iterdir() if p.name.startswith(".tmp-noising-")]
    assert len(staged) == 1 and (staged[0] / "manifest.json").is_file(), "the pause is after the writing"
    killed.kill()
    assert snapshot(results, hidden=False) == before, "a kill mid-writing changed the previous results"

    # the next run (in-process, to save an interpreter start) tidies the leftover and commits
    run(["noising"], RunOptions(device="cpu", results_root=results, work_root=tmp_path / "work",
                                data_root=data_root, overrides={"digits": 2}, show_progress=False))
    assert not [p for p in results.iterdir() if p.name.startswith(".")], "the leftover was not cleaned"
    after = json.loads((results / "noising" / "manifest.json").read_text())
    assert after["config"]["digits"] == 2


def test_ctrl_c_mid_writing_says_so_and_keeps_results(quick_run, tmp_path, data_root):
    results = tmp_path / "results"
    shutil.copytree(quick_run.results / "noising", results / "noising")
    before = snapshot(results)
    interrupted = Run(["noising", *folders(tmp_path, data_root)], pause="writing")
    interrupted.wait_for_pause("writing")
    code = interrupted.kill(signal.SIGINT)
    _, _, err = interrupted.finish()
    assert code == 130
    assert err.strip().splitlines()[-1] == f"error: {cli.INTERRUPTED}"
    assert snapshot(results) == before          # the temporary folder was removed too


# ---- the swap itself (in-process) ----------------------------------------------------------------

def _writer_with(root: Path, section: str, text: str) -> ResultWriter:
    writer = ResultWriter(root, section)
    writer.path("a.txt").write_text(text)
    return writer


def test_commit_replaces_whole_folder(tmp_path):
    _writer_with(tmp_path, "s", "old").commit({"section": "s"})
    (tmp_path / "s" / "stale.txt").write_text("from an older run")
    _writer_with(tmp_path, "s", "new").commit({"section": "s"})
    assert (tmp_path / "s" / "a.txt").read_text() == "new"
    assert not (tmp_path / "s" / "stale.txt").exists()
    assert load_manifest(tmp_path, "s")["files"] == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_exchange_is_one_atomic_swap(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("A")
    (b / "x").write_text("B")
    if not results_mod._exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) unsupported here; the two-rename fallback is tested below")
    assert (a / "x").read_text() == "B" and (b / "x").read_text() == "A"


def test_fallback_swap_and_recovery_after_a_kill_between_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(results_mod, "_exchange", lambda a, b: False)
    _writer_with(tmp_path, "s", "old").commit({"section": "s"})
    _writer_with(tmp_path, "s", "new").commit({"section": "s"})          # fallback path works
    assert (tmp_path / "s" / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    before = snapshot(tmp_path / "s")
    # the state a kill between the two renames leaves: previous folder aside, new one staged
    staged = _writer_with(tmp_path, "s", "newer")
    staged.path("manifest.json").write_text("{}")
    os.replace(tmp_path / "s", tmp_path / ".old-s-1234abcd")
    recover(tmp_path)
    assert snapshot(tmp_path / "s") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_corrupt_or_newer_results_are_one_line_errors(tmp_path):
    folder = tmp_path / "single-step-denoiser"
    folder.mkdir()
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt results: .* is not valid JSON"):
        load_manifest(tmp_path, "single-step-denoiser")
    (folder / "manifest.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(UserError, match="schema 99, newer than this code"):
        load_manifest(tmp_path, "single-step-denoiser")
    (folder / "manifest.json").write_text(json.dumps({"section": "x"}))
    with pytest.raises(UserError, match="no schema field"):
        load_manifest(tmp_path, "single-step-denoiser")
    # a dependant section reading it fails cleanly too
    with pytest.raises(UserError, match="no schema field"):
        run(["out-of-distribution"], RunOptions(device="cpu", results_root=tmp_path, work_root=tmp_path / "w",
                                                show_progress=False))


# ---- resume and divergence in the training loop (in-process) -------------------------------------

class Interrupt(Exception):
    pass


def _diffusion_trainer(split, work: Path, fail_at: int | None = None, nan_at: int | None = None,
                       epochs: int = 3) -> Trainer:
    """A class-conditioned diffusion trainer (random t, eps and class dropout all draw from the RNG)."""
    torch.manual_seed(7)
    sched = make_schedule(20)
    inner = diffusion_objective(sched, DiffusionConfig(T=20, p_uncond=0.3), class_conditioned=True)
    calls = {"n": 0}

    def objective(model, x0, labels):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise Interrupt()
        loss = inner(model, x0, labels)
        return loss * float("nan") if calls["n"] == nan_at else loss

    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, lr_final_ratio=0.5, reference_images=64,
                      checkpoint_epochs=(1,), log_every=2)
    return Trainer(UNet(UNetConfig(hidden=8, conditioning="class")), objective, split, cfg, CPU, work,
                   config_key="k", show_progress=False)


@pytest.fixture(scope="module")
def digits(data_root):
    return load_split(data_root, train=True, limit=64)


def test_resume_after_interruption_is_bit_identical(digits, tmp_path):
    full = _diffusion_trainer(digits, tmp_path / "full").fit()
    with pytest.raises(Interrupt):
        _diffusion_trainer(digits, tmp_path / "cut", fail_at=6).fit()       # step 6 = epoch 2 (4 steps/epoch)
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=False)["epoch"] == 1
    resumed = _diffusion_trainer(digits, tmp_path / "cut").fit(resume=True)
    assert resumed.resumed_from_epoch == 1
    assert resumed.losses == full.losses
    a = torch.load(checkpoint_path(tmp_path / "full", 3), weights_only=True)["model"]
    b = torch.load(checkpoint_path(tmp_path / "cut", 3), weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a = torch.load(tmp_path / "full" / "state.pt", weights_only=False)["optimizer"]["state"]
    opt_b = torch.load(tmp_path / "cut" / "state.pt", weights_only=False)["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)


def test_resume_refuses_a_checkpoint_of_another_config(digits, tmp_path):
    _diffusion_trainer(digits, tmp_path, epochs=1).fit()
    other = _diffusion_trainer(digits, tmp_path)
    other.config_key = "another"
    with pytest.raises(UserError, match="written with another config"):
        other.fit(resume=True)
    (tmp_path / "state.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot resume: .* unreadable"):
        _diffusion_trainer(digits, tmp_path).fit(resume=True)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    good = _diffusion_trainer(digits, tmp_path / "good", epochs=1).fit()
    with pytest.raises(DivergenceError) as info:
        _diffusion_trainer(digits, tmp_path / "bad", nan_at=7).fit()        # epoch 2, its 3rd step
    message = str(info.value)
    assert "loss nan at step 7 (epoch 2)" in message and "last good checkpoint" in message
    assert "\n" not in message
    state = torch.load(tmp_path / "bad" / "state.pt", weights_only=False)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert state["loss_log"][:4].tolist() == good.losses[:4]
    assert sorted(p.name for p in (tmp_path / "bad").glob("epoch_*.pt")) == ["epoch_001.pt"]


def test_divergence_from_the_cli_writes_no_results(quick_run, tmp_path, data_root, capsys):
    name = "single-step-denoiser"
    results = tmp_path / "results"
    shutil.copytree(quick_run.results / name, results / name)
    before = snapshot(results)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", name, "--set", "train.lr=1", *folders(tmp_path, data_root), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(err) == 1 and err[0].startswith("error: training diverged: loss ")
    assert " at step " in err[0] and "(epoch 1)" in err[0] and "no checkpoint yet" in err[0]
    assert snapshot(results) == before
    assert not list((tmp_path / "work" / "quick" / name).rglob("model.json"))
