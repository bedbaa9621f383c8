"""The training loop: it learns, it is deterministic for a seed, and it checkpoints where asked."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from experiments.core.config import DiffusionConfig, TrainConfig, UNetConfig
from experiments.core.data import Split, load_split
from experiments.core.diffusion.schedule import make_schedule
from experiments.core.models.unet import UNet
from experiments.core.objectives import denoising_objective, diffusion_objective
from experiments.pipeline.runner import RunOptions, run
from experiments.core.checkpoints import checkpoint_path
from experiments.core.training import Trainer

CPU = torch.device("cpu")
TIMING_METRICS = {"train_wall_s", "train_img_per_s"}     # the only numbers allowed to differ between runs


@pytest.fixture(scope="module")
def digits(data_root) -> Split:
    return load_split(data_root, train=True, limit=64)


def small_trainer(split: Split, work: Path, objective=None, seed: int = 0, **cfg) -> Trainer:
    torch.manual_seed(seed)
    model = UNet(UNetConfig(hidden=8, conditioning="none"))
    train = TrainConfig(**{"epochs": 2, "batch_size": 16, "lr": 3e-3, "lr_final_ratio": 1.0,
                           "reference_images": 64, "checkpoint_epochs": (1,), "log_every": 4, **cfg})
    return Trainer(model, objective or denoising_objective(0.5), split, train, CPU, work, show_progress=False)


def test_loss_goes_down_when_overfitting_a_small_batch(digits, tmp_path):
    batch = digits.head(16)
    result = small_trainer(batch, tmp_path, epochs=3, reference_images=16 * 20).fit()   # 60 steps, one batch
    losses = result.losses
    assert len(losses) == 60
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.3 * first, f"loss {first:.4f} -> {last:.4f}: not learning"


def test_diffusion_loss_goes_down(digits, tmp_path):
    sched = make_schedule(50)
    objective = diffusion_objective(sched, DiffusionConfig(T=50), class_conditioned=False)
    torch.manual_seed(0)
    model = UNet(UNetConfig(hidden=8, conditioning="time"))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=3e-3, lr_final_ratio=1.0, reference_images=16 * 25,
                      checkpoint_epochs=(2,), log_every=10)
    losses = Trainer(model, objective, digits.head(16), cfg, CPU, tmp_path, show_progress=False).fit().losses
    # eps-prediction starts near 1 (unit-variance targets) and must fall well below it
    assert sum(losses[:5]) / 5 > 0.6 and sum(losses[-10:]) / 10 < 0.5 * sum(losses[:5]) / 5


def test_same_seed_same_run_other_seed_other_run(digits, tmp_path):
    a = small_trainer(digits, tmp_path / "a", seed=1).fit()
    b = small_trainer(digits, tmp_path / "b", seed=1).fit()
    c = small_trainer(digits, tmp_path / "c", seed=2).fit()
    assert a.losses == b.losses
    assert a.losses != c.losses
    wa = torch.load(checkpoint_path(tmp_path / "a", 2), weights_only=True)["model"]
    wb = torch.load(checkpoint_path(tmp_path / "b", 2), weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_lockstep_runs_of_different_lengths(digits, tmp_path):
    """train_together stops a shorter run at its own last epoch and carries the longer one on."""
    from experiments.core.training import train_together

    short, long = train_together([small_trainer(digits, tmp_path / "s", seed=1, epochs=1, checkpoint_epochs=()),
                                  small_trainer(digits, tmp_path / "l", seed=1, epochs=3, checkpoint_epochs=())])
    assert short.steps == 4 and long.steps == 12 and len(short.losses) == 4 and len(long.losses) == 12
    assert checkpoint_path(tmp_path / "s", 1).exists() and not checkpoint_path(tmp_path / "s", 2).exists()
    assert sum(long.losses[-4:]) < sum(long.losses[:4])                     # the longer run kept learning
    with pytest.raises(ValueError, match="steps per epoch"):
        train_together([small_trainer(digits, tmp_path / "a"), small_trainer(digits, tmp_path / "b", batch_size=8)])


def test_checkpoints_at_configured_epochs(digits, tmp_path):
    trainer = small_trainer(digits, tmp_path, epochs=4, checkpoint_epochs=(1, 3))
    result = trainer.fit()
    assert sorted(result.checkpoints) == [1, 3, 4]                  # the final epoch is always kept
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == ["epoch_001.pt", "epoch_003.pt", "epoch_004.pt"]
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    assert state["epoch"] == 4 and {"model", "optimizer", "scheduler", "rng", "loss_log"} <= set(state)
    final = torch.load(checkpoint_path(tmp_path, 4), weights_only=True)["model"]
    live = trainer.model.state_dict()
    assert all(torch.equal(final[k], live[k]) for k in final)
    first = torch.load(checkpoint_path(tmp_path, 1), weights_only=True)["model"]
    assert any(not torch.equal(first[k], final[k]) for k in final)   # epoch 1 is a real, earlier snapshot
    assert not list(tmp_path.glob("*.partial"))


def test_lr_schedule_decays_per_epoch(digits, tmp_path):
    trainer = small_trainer(digits, tmp_path, epochs=4, lr=1e-3, lr_final_ratio=0.1)
    trainer.fit()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4, rel=1e-9)


def _comparable(manifest: dict) -> dict:
    return {k: v["value"] for k, v in manifest["metrics"].items() if k not in TIMING_METRICS}


def test_rerunning_a_section_gives_identical_losses_metrics_and_images(quick_run, data_root, tmp_path):
    """Two runs of a section (here: the fixture's and a fresh one) with seed 42 are byte-identical."""
    name = "time-conditioned"
    again = tmp_path / "results"
    run([name], RunOptions(profile="quick", device="cpu", results_root=again, work_root=tmp_path / "work",
                           data_root=data_root, show_progress=False))
    old, new = quick_run.results / name, again / name
    m_old, m_new = (json.loads((d / "manifest.json").read_text()) for d in (old, new))
    assert _comparable(m_old) == _comparable(m_new)
    assert m_old["files"] == m_new["files"]
    for file in m_old["files"]:          # loss.json, PNG samples and GIFs, byte for byte
        assert (old / file).read_bytes() == (new / file).read_bytes(), f"{file} differs between runs"


def test_a_run_without_checkpoints_writes_nothing_and_times_each_epoch(digits, tmp_path):
    """What the benchmark trains with: no files at all, and the end of each epoch (after its last step's
    sync) timed from the start, so a steady-state speed leaves out the first epoch's warm-up."""
    work = tmp_path / "never"
    trainer = small_trainer(digits, work, epochs=3)
    trainer.save_checkpoints = False
    result = trainer.fit()
    assert not work.exists() and result.checkpoints == {}
    assert len(result.epoch_end_s) == 3 and result.epoch_end_s == sorted(result.epoch_end_s)
    assert 0 < result.epoch_end_s[0] and result.epoch_end_s[-1] <= result.wall_s
    with_files = small_trainer(digits, tmp_path / "kept", epochs=3).fit()
    assert with_files.losses == result.losses                      # the same training, only nothing written
    assert set(with_files.checkpoints) == {1, 3}
