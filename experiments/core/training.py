"""One training loop for every section: random batches by index from a resident dataset tensor.

Fast by design on a GPU: the dataset is one tensor on the device, each epoch's batch indices are
drawn on the device, losses are written into a device buffer (read only every `log_every` steps),
bf16 autocast, fused/capturable Adam with a tensor learning rate, channels_last, and optionally
the whole step (forward, backward, optimizer, EMA, loss logging) captured in one CUDA graph.
On the CPU the same code runs eagerly in float32 and is bit-for-bit deterministic, resume included.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from experiments.core.checkpoints import checkpoint_path, save_atomic
from experiments.core.compiling import allow_recompiles
from experiments.core.config import TrainConfig
from experiments.core.data import Split
from experiments.errors import DivergenceError, UserError
from experiments.core.progress import progress_bar
from experiments.testhooks import pause_at

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
DIVERGENCE_FACTOR = 100.0   # a loss this many times its starting value has exploded (lr far too high)
MIN_START_LOSS = 1e-3       # below this a starting loss is no yardstick (the model already fits)


@dataclass
class TrainResult:
    losses: list[float]                 # one per optimizer step
    checkpoints: dict[int, Path]        # epoch -> weights file
    wall_s: float
    images_per_s: float
    steps: int
    passes_over_data: float             # how many times the (possibly small) split was seen
    resumed_from_epoch: int = 0
    final_model: nn.Module | None = field(default=None, repr=False)
    epoch_end_s: list[float] = field(default_factory=list)   # seconds from the start to each epoch's end (synced)


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _epoch_indices(n: int, steps: int, batch: int, device: torch.device) -> torch.Tensor:
    """(steps, batch) indices: consecutive random permutations of range(n), drawn on the device."""
    need = steps * batch
    perms = [torch.randperm(n, device=device) for _ in range(math.ceil(need / n))]
    return torch.cat(perms)[:need].view(steps, batch)


def _bound(objective: Objective, model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss(x, labels) of `model`: the unit that is compiled, network included."""

    def loss(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return objective(model, x, labels)

    return loss


class Trainer:
    """Trains `model` on `data` with `objective`; see module docstring for the fast path."""

    def __init__(self, model: nn.Module, objective: Objective, data: Split, cfg: TrainConfig,
                 device: torch.device, work_dir: Path, *, graph: bool | None = None,
                 autocast: bool | None = None, channels_last: bool | None = None, description: str = "train",
                 config_key: str = "", show_progress: bool = True, compile: bool = False,
                 save_checkpoints: bool = True):
        self.cfg, self.device, self.work_dir = cfg, device, Path(work_dir)
        self.objective, self.description, self.config_key = objective, description, config_key
        self.show_progress, self.save_checkpoints = show_progress, save_checkpoints
        cuda = device.type == "cuda"
        self.autocast = cuda if autocast is None else autocast
        self.graph = cuda if graph is None else (graph and cuda)
        # channels_last lets cuDNN pick NHWC tensor-core kernels: a large win at batch 128 on the GPU.
        # Not by default for GroupNorm models: with torch.compile, inductor's conv backward then fails
        # on a stride assertion (measured on torch 2.x, H200), and the diffusers peer is faster in NCHW.
        has_group_norm = any(isinstance(m, nn.GroupNorm) for m in model.modules())
        if channels_last is None:
            channels_last = cuda and not has_group_norm
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.memory_format)
        if cuda:
            torch.backends.cudnn.benchmark = True      # fixed shapes: let cuDNN time its algorithms once
        # On the GPU the whole loss is compiled (noise and timestep draws, label dropout, the network, the
        # MSE): inductor fuses the elementwise work around the convolutions (4 % faster than compiling the
        # network alone, H200), and the step graph then replays it. dynamic=False: after the sampler
        # compiled the same forward at other batch sizes, dynamo would otherwise make the batch dimension
        # symbolic here, and inductor's channels_last conv backward then fails a stride assertion.
        loss = _bound(objective, self.model)
        if compile and cuda:
            allow_recompiles()
        self.loss = torch.compile(loss, dynamic=False) if compile and cuda else loss
        self.images = data.images.to(device).contiguous(memory_format=self.memory_format)
        self.labels = data.labels.to(device)
        if len(self.labels) == 0:
            raise UserError("training split is empty")
        lr = torch.tensor(cfg.lr, device=device) if cuda else cfg.lr
        # A tensor lr keeps the schedule live inside a captured graph; fused Adam is one kernel.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, fused=cuda, capturable=cuda)
        gamma = cfg.lr_final_ratio ** (1.0 / cfg.epochs)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=gamma)
        self.ema = copy.deepcopy(self.model).eval() if cfg.ema_decay > 0 else None
        if self.ema is not None:
            for p in self.ema.parameters():
                p.requires_grad_(False)
        self.loss_log = torch.zeros(cfg.total_steps, device=device)
        self.global_step = torch.zeros((), dtype=torch.long, device=device)  # written inside the graph
        self.batch_in_epoch = torch.zeros((), dtype=torch.long, device=device)
        self.indices = torch.zeros(cfg.steps_per_epoch, cfg.batch_size, dtype=torch.long, device=device)
        self._graph: torch.cuda.CUDAGraph | None = None

    # ---- the step -------------------------------------------------------------------------
    def _step_body(self) -> None:
        # index_select with a device counter: no .item(), so the step stays capturable
        idx = self.indices.index_select(0, self.batch_in_epoch.view(1)).view(-1)  # (B,)
        x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)  # (B,1,28,28), (B,)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.loss(x, y)
        loss.backward()
        self.optimizer.step()
        if self.ema is not None:
            ema_p = list(self.ema.parameters())
            torch._foreach_lerp_(ema_p, [p.detach() for p in self.model.parameters()], 1 - self.cfg.ema_decay)
            # BatchNorm running statistics are buffers, not parameters: the EMA copy takes them as they are
            for ema_b, b in zip(self.ema.buffers(), self.model.buffers()):
                ema_b.copy_(b)
        self.loss_log.index_copy_(0, self.global_step.view(1), loss.detach().float().view(1))
        self.global_step.add_(1)
        self.batch_in_epoch.add_(1)

    def _eager_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._step_body()

    def _capture(self) -> None:
        """Warm up on a side stream (three real steps), then capture one whole step."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._eager_step()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        # Capture records the step without running it: the counters do not advance here.
        with torch.cuda.graph(graph):
            self._step_body()
        self._graph = graph

    # ---- checkpoints ----------------------------------------------------------------------
    def _state_path(self) -> Path:
        return self.work_dir / "state.pt"

    def _save_state(self, epoch: int) -> None:
        save_atomic({
            "epoch": epoch, "config_key": self.config_key,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "loss_log": self.loss_log.cpu(), "rng": _rng_state(self.device),
        }, self._state_path())

    def _save_weights(self, epoch: int) -> Path:
        path = checkpoint_path(self.work_dir, epoch)
        save_atomic({"epoch": epoch, "model": self.model.state_dict(),
                     "ema": self.ema.state_dict() if self.ema is not None else None}, path)
        return path

    def _load_state(self) -> int:
        path = self._state_path()
        if not path.exists():
            return 0
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # a corrupt file is a user-facing problem, not a traceback
            raise UserError(f"cannot resume: {path} is unreadable ({type(exc).__name__})") from None
        if state.get("config_key") != self.config_key:
            raise UserError(f"cannot resume: {path} was written with another config; drop --resume to start over")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.loss_log.copy_(state["loss_log"].to(self.device))
        _set_rng_state(state["rng"], self.device)
        epoch = int(state["epoch"])
        self.global_step.fill_(epoch * self.cfg.steps_per_epoch)
        return epoch

    # ---- divergence -----------------------------------------------------------------------
    def _check_finite(self, start: int, stop: int, epoch: int) -> None:
        """Stop on a NaN/infinite loss, or on one that exploded while staying finite: the median of the
        latest `log_every` losses above DIVERGENCE_FACTOR x the starting loss (the first step's)."""
        window = self.loss_log[start:stop]
        recent = self.loss_log[max(0, stop - self.cfg.log_every):stop]
        # one host sync for both checks (this runs only at the periodic loss reads)
        finite, level, first = torch.stack([torch.isfinite(window).all().float(), recent.median(),
                                            self.loss_log[0].abs()]).tolist()
        if finite == 1.0 and not level > DIVERGENCE_FACTOR * max(first, MIN_START_LOSS):
            return
        last = f"last good checkpoint {self._state_path()}" if self._state_path().exists() else "no checkpoint yet"
        if finite != 1.0:
            bad = start + int((~torch.isfinite(window)).nonzero()[0])
            value = float(self.loss_log[bad])
            raise DivergenceError(f"training diverged: loss {value} at step {bad + 1} (epoch {epoch}); {last}")
        raise DivergenceError(f"training diverged: loss {level:.3g} at step {stop} (epoch {epoch}), more than "
                              f"{DIVERGENCE_FACTOR:g}x its starting {first:.3g}; {last}")

    # ---- the loop, in phases (so several trainers can run in lockstep) ----------------------
    def _begin(self, resume: bool) -> None:
        if self.save_checkpoints:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        self._start_epoch = self._load_state() if resume else 0
        self.model.train()
        self._t0 = time.perf_counter()
        self._bar = progress_bar(total=self.cfg.total_steps, initial=self._start_epoch * self.cfg.steps_per_epoch,
                                 desc=self.description, unit="step", disable=not self.show_progress)
        self._checkpoints = {e: checkpoint_path(self.work_dir, e)
                             for e in self.cfg.checkpoint_epochs if e <= self._start_epoch}
        self._epoch_end_s: list[float] = []

    def _begin_epoch(self, epoch: int) -> None:
        cfg = self.cfg
        self.indices.copy_(_epoch_indices(len(self.labels), cfg.steps_per_epoch, cfg.batch_size, self.device))
        self.batch_in_epoch.zero_()
        self._done = self._synced = 0

    def _advance(self, epoch: int) -> None:
        """One step (three on the step that captures the graph); syncs every log_every steps."""
        cfg, spe = self.cfg, self.cfg.steps_per_epoch
        if self.graph and self._graph is None and spe - self._done >= 3:
            self._capture()           # three real (eager) warm-up steps, then capture
            self._done += 3
        elif self._graph is not None:
            self._graph.replay()
            self._done += 1
        else:
            self._eager_step()
            self._done += 1
        if self._done - self._synced >= cfg.log_every or self._done == spe:
            first = (epoch - 1) * spe
            self._check_finite(first, first + self._done, epoch)   # the only host sync
            self._bar.update(self._done - self._synced)
            self._bar.set_postfix(epoch=epoch, loss=f"{float(self.loss_log[first + self._done - 1]):.4f}")
            self._synced = self._done

    def _end_epoch(self, epoch: int) -> None:
        cfg = self.cfg
        self._epoch_end_s.append(time.perf_counter() - self._t0)    # the epoch's last step synced in _advance
        self.scheduler.step()
        if not self.save_checkpoints:
            return
        if epoch in cfg.checkpoint_epochs or epoch == cfg.epochs:
            self._checkpoints[epoch] = self._save_weights(epoch)
        self._save_state(epoch)
        if epoch < cfg.epochs:
            pause_at("training", f"after epoch {epoch}")   # test hook (no-op unless set)

    def _finish(self) -> TrainResult:
        cfg = self.cfg
        self._bar.close()
        wall = time.perf_counter() - self._t0
        steps_run = (cfg.epochs - self._start_epoch) * cfg.steps_per_epoch
        losses = self.loss_log.cpu().tolist()
        return TrainResult(
            losses=losses, checkpoints=self._checkpoints, wall_s=wall,
            images_per_s=steps_run * cfg.batch_size / wall if wall > 0 else 0.0,
            steps=cfg.total_steps, passes_over_data=cfg.total_steps * cfg.batch_size / len(self.labels),
            resumed_from_epoch=self._start_epoch, final_model=self.ema if self.ema is not None else self.model,
            epoch_end_s=self._epoch_end_s)

    def fit(self, resume: bool = False) -> TrainResult:
        """Train for the configured epochs (from the last saved epoch with `resume`)."""
        return train_together([self], resume)[0]


def train_together(trainers: list[Trainer], resume: bool = False) -> list[TrainResult]:
    """Train several models in lockstep; on a GPU each on its own CUDA stream.

    At batch 128 one model's step leaves most of the GPU idle (launch-bound small kernels), so
    replaying several models' step graphs on separate streams overlaps them: the same work per model,
    done side by side. On the CPU (or with one trainer) this is exactly the plain sequential loop.
    """
    if len({t.cfg.steps_per_epoch for t in trainers}) != 1:
        raise ValueError("trainers in lockstep need the same steps per epoch")
    use_streams = len(trainers) > 1 and all(t.device.type == "cuda" for t in trainers)
    streams = [torch.cuda.Stream(t.device) if use_streams else None for t in trainers]

    def on(stream):
        return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()

    for t, stream in zip(trainers, streams):
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream(t.device))
        with on(stream):
            t._begin(resume)
    spe = trainers[0].cfg.steps_per_epoch
    finished: dict[int, TrainResult] = {}
    for epoch in range(1, max(t.cfg.epochs for t in trainers) + 1):       # a shorter run simply stops early
        active = [(t, s) for t, s in zip(trainers, streams) if t._start_epoch < epoch <= t.cfg.epochs]
        for t, stream in active:
            with on(stream):
                t._begin_epoch(epoch)
        for _ in range(spe):
            for t, stream in active:
                if t._done < spe:
                    with on(stream):
                        t._advance(epoch)
        for t, stream in active:
            with on(stream):
                t._end_epoch(epoch)
                if epoch == t.cfg.epochs:            # done: its wall time stops here, not at the longest run
                    finished[id(t)] = t._finish()
    results = []
    for t, stream in zip(trainers, streams):
        if id(t) not in finished:                     # resumed at its last epoch: nothing left to run
            with on(stream):
                finished[id(t)] = t._finish()
        results.append(finished[id(t)])
        if stream is not None:
            torch.cuda.current_stream(t.device).wait_stream(stream)
    return results
