"""Speed benchmark: the plain training/sampling loop as the reference writeups write it, against ours.

    python -m experiments.benchmark --out docs/results/benchmark.json                 # speed (a GPU, ~5 min)
    python -m experiments.benchmark --no-speed --quality .work/full --out docs/results/benchmark.json

Training: the class-conditioned UNet (D=64, batch 128, reference hyperparameters), the plain loop and
ours alternately in one process (plain, ours, plain, ours, ...): the plain loop's speed moves between
machines and over time, so the ratio of the two medians is what is reported, with achieved TFLOP/s
(torch.utils.flop_counter) and the fraction of the GPU's dense bf16 peak. Sampling: 1,000 class-
conditioned digits with CFG over all 300 steps, plain, ours, and ours without the split skip
concatenations. Then the other models the writeup trains on the fast path (the diffusers peer, its
1,000-step sampler, the better recipe's GroupNorm model): what the writeup's time is made of.
`--quality` trains the class-conditioned model both ways over the full budget and compares FIDs
(it needs the classifier of a full-profile run); its keys are merged into an existing file, and a
later speed run keeps them.
The Performance page renders only from this file and the writeup's run.json.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import click
import torch
import torch.nn.functional as F

from experiments.core.config import DiffusionConfig, TrainConfig, UNetConfig
from experiments.core.data import Split, load_split
from experiments.core.diffusion.process import add_noise, cfg_combine, ddpm_step
from experiments.core.diffusion.sampling import ddpm_step_fn, guided_estimate, sample
from experiments.core.diffusion.schedule import make_schedule
from experiments.core.guidance import Guidance
from experiments.core.models import classifier as classifier_model
from experiments.core.models.inference import fast_inference_model
from experiments.core.models.unet import UNet
from experiments.core.objectives import diffusion_objective, one_hot_dropped
from experiments.core.training import Trainer, TrainResult
from experiments.cli import run_click
from experiments.errors import UserError, one_line
from experiments.pipeline import provenance
from experiments.pipeline.results import write_json_atomic
from experiments.pipeline.runner import resolve_device

# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s), by device-name fragment.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
GUIDANCE = Guidance(5.0)
# what `quality_check` writes: kept when only the speed is measured again
QUALITY_KEYS = ("fid_plain", "fid_ours", "quality_seeds", "quality_samples", "quality_git_commit",
                "quality_measured_at")
REPEATS = 3                      # plain and ours alternate this many times each


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def class_unet() -> UNet:
    return UNet(UNetConfig(hidden=64, conditioning="class"))


def flops_per_image(device: torch.device, batch: int = 128) -> float:
    """Forward + backward FLOPs of one training step, per image (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = class_unet().to(device)
    x = torch.rand(batch, 1, 28, 28, device=device)
    t = torch.rand(batch, device=device)
    c = F.one_hot(torch.randint(0, 10, (batch,), device=device), 10).float()
    with FlopCounterMode(display=False) as counter:
        model(x, t, c).pow(2).mean().backward()
    return counter.get_total_flops() / batch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_training(images: torch.Tensor, labels: torch.Tensor, device: torch.device, steps: int,
                   warmup: int = 20, return_model: bool = False):
    """The reference-style loop: DataLoader over CPU tensors, fp32, eager, one .item() per step."""
    from torch.utils.data import DataLoader, TensorDataset

    sched = make_schedule(300, device=device)
    model = class_unet().to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = TrainConfig()
    lr_decay = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_final_ratio ** (1 / cfg.epochs))
    loader = DataLoader(TensorDataset(images, labels), batch_size=128, shuffle=True, drop_last=True)
    done, t0 = 0, None
    while done < steps + warmup:
        for x, y in loader:
            if done == warmup:
                sync(device)
                t0 = time.perf_counter()
            x, y = x.to(device), y.to(device)
            t = torch.randint(0, 300, (x.shape[0],), device=device)
            eps = torch.randn_like(x)
            c = one_hot_dropped(y, 0.1)
            loss = F.mse_loss(model(add_noise(x, eps, t, sched), t.float() / 300, c), eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()                       # the per-step host sync the reference loops have
            done += 1
            if done % cfg.steps_per_epoch == 0:
                lr_decay.step()
            if done == steps + warmup:
                break
    sync(device)
    speed = steps * 128 / (time.perf_counter() - t0)
    return (speed, model) if return_model else speed


def steady_images_per_s(results: list[TrainResult], batch: int, steps_per_epoch: int) -> float:
    """All models' images per second over the epochs after the first (capture and compile happen in it)."""
    ends = results[0].epoch_end_s
    return len(results) * (len(ends) - 1) * steps_per_epoch * batch / (ends[-1] - ends[0])


def time_training(model: torch.nn.Module, objective, data: Split, device: torch.device, epochs: int = 3,
                  ema_decay: float = 0.0, reference_images: int = 60_000) -> float:
    """Images per second of our Trainer (bf16, the loss compiled, one CUDA graph per step), steady state."""
    cfg = TrainConfig(epochs=epochs, checkpoint_epochs=(), ema_decay=ema_decay, reference_images=reference_images)
    trainer = Trainer(model, objective, data, cfg, device, Path(tempfile.gettempdir()), show_progress=False,
                      compile=True, save_checkpoints=False)
    return steady_images_per_s([trainer.fit()], cfg.batch_size, cfg.steps_per_epoch)


def fast_training(images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """Ours on the class-conditioned UNet: the shared Trainer, as every section trains."""
    sched = make_schedule(300, device=device)
    return time_training(class_unet(), diffusion_objective(sched, DiffusionConfig(), True), Split(images, labels),
                         device)


def alternate(a: Callable[[], float], b: Callable[[], float], repeats: int = REPEATS) -> tuple[list[float], list[float]]:
    """a, b, a, b, ...: both measured under the same drift of the machine."""
    runs_a, runs_b = [], []
    for _ in range(repeats):
        runs_a.append(a())
        runs_b.append(b())
    return runs_a, runs_b


@torch.no_grad()
def plain_sampling(model, device, n: int = 1000, T: int = 300) -> float:
    """Reference-style CFG sampling: fp32 eager, conditional and unconditional passes separately."""
    sched = make_schedule(T, device=device)
    labels = torch.arange(n, device=device) % 10
    c = F.one_hot(labels, 10).float()
    x = torch.randn(n, 1, 28, 28, device=device)
    sync(device)
    t0 = time.perf_counter()
    for step in range(T - 1, -1, -1):
        t = torch.full((n,), step, device=device)
        eps_c = model(x, t.float() / T, c)
        eps_u = model(x, t.float() / T, torch.zeros_like(c))
        eps = cfg_combine(eps_u, eps_c, GUIDANCE.scale)
        x = ddpm_step(x, eps, t, sched, torch.randn_like(x) if step > 0 else None)
    sync(device)
    return time.perf_counter() - t0


def cfg_sampler(net, device, n: int = 1000, T: int = 300) -> Callable[[], float]:
    """Seconds for n CFG digits (gamma = 5) over all T steps with a ready network, as the sections sample:
    bf16 autocast, the loop graphed, the step arithmetic compiled (after one untimed warm-up)."""
    sched = make_schedule(T, device=device)
    estimate = guided_estimate(net, sched, torch.arange(n, device=device) % 10, GUIDANCE)
    step = ddpm_step_fn(sched, compiled=device.type == "cuda")
    x_T = torch.randn(n, 1, 28, 28, device=device)
    timesteps = list(range(T - 1, -1, -1))
    sample(x_T, timesteps[:3], estimate, step, autocast=True, graphed=True)       # compile, capture once

    def run() -> float:
        sync(device)
        t0 = time.perf_counter()
        sample(x_T, timesteps, estimate, step, autocast=True, graphed=True)
        sync(device)
        return time.perf_counter() - t0

    return run


def peer_speed(split: Split, device: torch.device, digits: int = 2_500) -> dict:
    """The diffusers peer on our fast path: training images/s, and `digits` samples over its 1,000 steps."""
    from experiments.core.models.peer import PeerConfig, PeerUNet, make_scheduler, peer_objective, peer_sample
    from experiments.core.models.peer import sampling_peer, to_peer

    cfg = PeerConfig()
    torch.manual_seed(0)
    model = PeerUNet(cfg)
    data = Split(to_peer(split.images, cfg.sample_size), split.labels)
    train = time_training(model, peer_objective(make_scheduler(cfg), device), data, device)
    net = sampling_peer(model, device, compile=True)
    peer_sample(net, cfg, digits, 2, "trailing", device, 0, batch=digits, graphed=True)     # compile for the shape
    sync(device)
    t0 = time.perf_counter()
    peer_sample(net, cfg, digits, cfg.num_train_timesteps, "trailing", device, 0, batch=digits, graphed=True)
    sync(device)
    return {"peer_train_img_per_s": train, "peer_sample_s": time.perf_counter() - t0, "peer_sample_digits": digits}


def recipe_speed(split: Split, device: torch.device) -> dict:
    """The better recipe's model (GroupNorm, x0 prediction, EMA 0.999) on our Trainer: images/s."""
    sched = make_schedule(300, device=device)
    model = UNet(UNetConfig(hidden=64, conditioning="class", norm="group"))
    return {"recipe_train_img_per_s": time_training(model, diffusion_objective(sched, DiffusionConfig(predict="x0"),
                                                                               True), split, device, ema_decay=0.999)}


def quality_check(split, device: torch.device, work_root: Path, data_root: str | None, seeds=(42, 43),
                  samples: int = 10_000) -> dict:
    """FID (gamma = 5) of the class-conditioned model trained the plain way (one seed) and ours (two)."""
    from experiments.core import checkpoints
    from experiments.core.metrics import Evaluator

    classifier, _ = checkpoints.load_model(work_root, "classifier", "full", device, classifier_model.from_spec)
    evaluator = Evaluator.build(classifier, load_split(data_root, train=False, device=device).images)
    cfg = TrainConfig()
    sched = make_schedule(300, device=device)
    labels = torch.arange(samples, device=device) % 10

    def fid_of(model) -> float:
        net = fast_inference_model(model.eval(), device, compile=True)
        images = []
        for chunk in labels.split(2500):
            x_T = torch.randn(len(chunk), 1, 28, 28, device=device)
            images.append(sample(x_T, list(range(299, -1, -1)), guided_estimate(net, sched, chunk, GUIDANCE),
                                 ddpm_step_fn(sched), autocast=True, graphed=True).x0)
        return evaluator.fid(torch.cat(images))

    out = {"fid_plain": [], "fid_ours": [], "quality_seeds": list(seeds), "quality_samples": samples,
           "quality_git_commit": provenance.git_commit(), "quality_measured_at": provenance.now_iso()}
    for i, seed in enumerate(seeds):
        if i == 0:  # the plain loop is slow: one seed of it; the seed-to-seed noise comes from ours
            torch.manual_seed(seed)
            _, plain_model = plain_training(split.images, split.labels, device, steps=cfg.total_steps, warmup=0,
                                            return_model=True)
            torch.manual_seed(seed + 1)
            out["fid_plain"].append(fid_of(plain_model))
        torch.manual_seed(seed)
        model = class_unet()
        Trainer(model, diffusion_objective(sched, DiffusionConfig(), True), Split(split.images.to(device),
                split.labels.to(device)), cfg, device, Path(tempfile.gettempdir()), show_progress=False, compile=True,
                save_checkpoints=False).fit()
        torch.manual_seed(seed + 1)
        out["fid_ours"].append(fid_of(model))
        click.echo(f"seed {seed}: FID plain {out['fid_plain']}, ours {out['fid_ours']}")
    return out


def speed(split, device: torch.device, steps: int, others: bool) -> dict:
    """Training and sampling, plain against ours (alternating), and the other fast-path models."""
    name = provenance.device_name(device)
    flops = flops_per_image(device)
    images, labels = split.images.to(device), split.labels.to(device)
    plain_runs, ours_runs = alternate(lambda: plain_training(split.images, split.labels, device, steps=steps),
                                      lambda: fast_training(images, labels, device))
    plain, ours = statistics.median(plain_runs), statistics.median(ours_runs)
    model = class_unet().to(device).eval()
    fast = cfg_sampler(fast_inference_model(model, device, compile=True), device)
    unsplit = cfg_sampler(fast_inference_model(model, device, compile=True, split_skips=False), device)
    s_plain_runs, s_ours_runs = alternate(lambda: plain_sampling(model, device), fast)
    s_plain, s_ours = statistics.median(s_plain_runs), statistics.median(s_ours_runs)
    peak = peak_tflops(name)
    result = {
        "device": name, "git_commit": provenance.git_commit(), "measured_at": provenance.now_iso(),
        "torch": torch.__version__, "batch_size": 128, "gflop_per_image_train": flops / 1e9,
        "train_img_per_s_plain": plain, "train_img_per_s": ours, "train_speedup": ours / plain,
        "train_img_per_s_plain_runs": plain_runs, "train_img_per_s_runs": ours_runs, "repeats": REPEATS,
        "train_tflops": flops * ours / 1e12, "train_tflops_plain": flops * plain / 1e12,
        "peak_bf16_tflops": peak, "peak_fraction": flops * ours / 1e12 / peak if peak else None,
        "sample_1000_cfg_s_plain": s_plain, "sample_1000_cfg_s": s_ours, "sample_speedup": s_plain / s_ours,
        "sample_1000_cfg_s_plain_runs": s_plain_runs, "sample_1000_cfg_s_runs": s_ours_runs,
        "sample_1000_cfg_s_unsplit": statistics.median(unsplit() for _ in range(REPEATS)),
    }
    if others:
        result.update(recipe_speed(Split(images, labels), device))
        result.update(peer_speed(Split(images, labels), device))
    return result


def earlier_results(out: Path) -> dict:
    """What the benchmark file holds already (nothing if there is none); a file that is not a benchmark
    is refused rather than replaced."""
    if not out.exists():
        return {}
    try:
        result = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {out} as a benchmark file ({one_line(exc)}); move it away or pass another "
                        "--out") from None
    if not isinstance(result, dict):
        raise UserError(f"{out} holds no benchmark (a JSON object); move it away or pass another --out")
    return result


def report(result: dict) -> None:
    """What was measured, one line each."""
    for key, value in result.items():
        if isinstance(value, float):
            click.echo(f"{key:<32} {value:,.3f}")
        elif not isinstance(value, list):
            click.echo(f"{key:<32} {value}")


@click.command()
@click.option("--device", default="cuda")
@click.option("--data-root", default=None)
@click.option("--steps", default=600, show_default=True, help="Timed steps of each plain training run.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/results/benchmark.json"))
@click.option("--speed/--no-speed", "measure_speed", default=True, help="Measure speed (plain against ours).")
@click.option("--others/--no-others", default=True, help="Also time the peer and the better recipe's model.")
@click.option("--quality", "quality_work_root", type=click.Path(path_type=Path), default=None,
              help="Also train both ways over the full budget (two seeds) and compare FID; needs the classifier "
                   "checkpoint of a full writeup run in this work folder (e.g. .work/full).")
def main(device: str, data_root: str | None, steps: int, out: Path, measure_speed: bool, others: bool,
         quality_work_root: Path | None) -> None:
    """Plain loops against ours; writes the benchmark file, keeping what the run does not measure again."""
    report(measure(device, data_root, out, steps=steps, measure_speed=measure_speed, others=others,
                   quality_work_root=quality_work_root))


def measure(device: str, data_root: str | Path | None, out: Path, *, steps: int = 600, measure_speed: bool = True,
            others: bool = True, quality_work_root: Path | None = None, dataset: str = "mnist") -> dict:
    """Measure and write `out` (what `main` does; a whole-writeup run calls it after its sections)."""
    result = earlier_results(out)             # checked first: a bad file fails before minutes of timing
    dev = resolve_device(device)
    if not measure_speed and quality_work_root is None:
        raise UserError("nothing to measure: --no-speed needs --quality")
    torch.backends.cudnn.benchmark = True
    split = load_split(data_root, train=True, dataset=dataset)
    if measure_speed:      # new speed numbers replace the old ones; an earlier quality check stays, with its commit
        kept = {k: v for k, v in result.items() if k in QUALITY_KEYS}
        if kept and "quality_git_commit" not in kept and result.get("git_commit"):
            kept["quality_git_commit"] = result["git_commit"]     # it was added beside those speed numbers
        result = {**kept, **speed(split, dev, steps, others)}
    if quality_work_root is not None:
        result.update(quality_check(split, dev, quality_work_root, data_root))
    write_json_atomic(out, result)            # whole or not at all: an interrupted write keeps the old file
    return result


if __name__ == "__main__":
    run_click(main, None, "python -m experiments.benchmark", "interrupted; the benchmark file is unchanged")
