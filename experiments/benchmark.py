"""Speed benchmark: the plain training/sampling loop as the reference writeups write it, against ours.

    python -m experiments.benchmark --device cuda --out docs/results/benchmark.json

Trains the class-conditioned UNet (D=64, batch 128, reference hyperparameters) both ways on the same
GPU and prints images/s, the ratio, achieved TFLOP/s (FLOPs from torch.utils.flop_counter) and the
fraction of the GPU's dense bf16 peak; then times sampling 1,000 class-conditioned digits with CFG
over all 300 steps, plain against ours. A script, not a test: numbers depend on the machine.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch
import torch.nn.functional as F

from experiments.pipeline import provenance
from experiments.core.config import DiffusionConfig, TrainConfig, UNetConfig
from experiments.core.data import load_split
from experiments.core.diffusion.process import add_noise, cfg_combine, ddpm_step
from experiments.core.diffusion.sampling import ddpm_step_fn, guided_estimate, sample
from experiments.core.diffusion.schedule import make_schedule
from experiments.core.models.inference import fast_inference_model
from experiments.core.models.unet import UNet
from experiments.core.objectives import diffusion_objective, one_hot_dropped
from experiments.core.training import Trainer, train_together
from experiments.core.models import classifier as classifier_model

# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s), by device-name fragment.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def flops_per_image(device: torch.device, batch: int = 128) -> float:
    """Forward + backward FLOPs of one training step, per image (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = UNet(UNetConfig(hidden=64, conditioning="class")).to(device)
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
    model = UNet(UNetConfig(hidden=64, conditioning="class")).to(device).train()
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


def fast_training(images: torch.Tensor, labels: torch.Tensor, device: torch.device, steps: int,
                  graph: bool = True, memory_format: str = "channels_last", compile: bool = False,
                  together: int = 1) -> float:
    """Ours: the shared Trainer (resident data, bf16, fused Adam, CUDA graph); steady state after one epoch."""
    from experiments.core.data import Split
    import tempfile

    spe = 469
    epochs = max(2, steps // spe + 1)
    cfg = TrainConfig(epochs=epochs, checkpoint_epochs=(), log_every=spe)
    sched = make_schedule(300, device=device)
    times = []

    class Clock(Trainer):
        def _save_state(self, epoch):            # the benchmark measures steps, not checkpoint writes
            sync(device)
            times.append(time.perf_counter())

        def _save_weights(self, epoch):
            return Path("/dev/null")

    with tempfile.TemporaryDirectory() as tmp:
        trainers = [Clock(UNet(UNetConfig(hidden=64, conditioning="class")),
                          diffusion_objective(sched, DiffusionConfig(), True), Split(images, labels), cfg,
                          device, Path(tmp) / str(k), graph=graph, channels_last=memory_format == "channels_last",
                          show_progress=False, compile=compile) for k in range(together)]
        train_together(trainers)
    # steady state: epochs after the first (capture and warm-up happen in the first); all models' images
    times = times[together - 1::together]
    return together * (len(times) - 1) * spe * 128 / (times[-1] - times[0])


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
        eps = cfg_combine(eps_u, eps_c, 5.0)
        x = ddpm_step(x, eps, t, sched, torch.randn_like(x) if step > 0 else None)
    sync(device)
    return time.perf_counter() - t0


@torch.no_grad()
def fast_sampling(model, device, n: int = 1000, T: int = 300, graphed: bool = True, mode: str = "folded") -> float:
    """Ours: batched CFG in one forward, the loop captured as a CUDA graph, bf16 (BN folded, compiled)."""
    if mode == "autocast":
        net = model.to(memory_format=torch.channels_last)
    else:
        net = fast_inference_model(model, device, compile=mode == "compiled")
    return time_cfg_sampling(net, device, n, T, graphed)


def time_cfg_sampling(net, device, n: int = 1000, T: int = 300, graphed: bool = True, reps: int = 1) -> float:
    """Seconds (best of `reps`, after a warm-up) for n CFG digits (gamma = 5) over all T steps with a
    ready network: the sampler of the sections, bf16 autocast, the loop graphed."""
    sched = make_schedule(T, device=device)
    labels = torch.arange(n, device=device) % 10
    estimate = guided_estimate(net, sched, labels, 5.0)
    x_T = torch.randn(n, 1, 28, 28, device=device)
    timesteps = list(range(T - 1, -1, -1))
    sample(x_T, timesteps[:3], estimate, ddpm_step_fn(sched), autocast=True, graphed=graphed)   # warm-up
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        sample(x_T, timesteps, estimate, ddpm_step_fn(sched), autocast=True, graphed=graphed)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def quality_check(split, device: torch.device, work_root: Path, seeds=(42, 43), samples: int = 10_000) -> dict:
    """FID (gamma = 5) of the class-conditioned model trained the plain way and ours (two seeds each way)."""
    from experiments.core import checkpoints
    from experiments.core.data import Split
    from experiments.core.metrics import Evaluator
    import tempfile

    classifier, _ = checkpoints.load_model(work_root, "classifier", "full", device, classifier_model.from_spec)
    test = load_split(None if not _DATA_ROOT else _DATA_ROOT, train=False, device=device)
    evaluator = Evaluator.build(classifier, test.images)
    cfg = TrainConfig()
    sched = make_schedule(300, device=device)
    labels = torch.arange(samples, device=device) % 10

    def fid_of(model) -> float:
        net = fast_inference_model(model.eval(), device, compile=True)
        images = []
        for chunk in labels.split(2500):
            x_T = torch.randn(len(chunk), 1, 28, 28, device=device)
            images.append(sample(x_T, list(range(299, -1, -1)), guided_estimate(net, sched, chunk, 5.0),
                                 ddpm_step_fn(sched), autocast=True, graphed=True).x0)
        return evaluator.fid(torch.cat(images))

    out = {"fid_plain": [], "fid_ours": [], "quality_seeds": list(seeds), "quality_samples": samples}
    for i, seed in enumerate(seeds):
        if i == 0:  # the plain loop is slow: one seed of it; the seed-to-seed noise comes from ours
            torch.manual_seed(seed)
            _, plain_model = plain_training(split.images, split.labels, device, steps=cfg.total_steps, warmup=0,
                                            return_model=True)
            torch.manual_seed(seed + 1)
            out["fid_plain"].append(fid_of(plain_model))
        torch.manual_seed(seed)
        model = UNet(UNetConfig(hidden=64, conditioning="class"))
        with tempfile.TemporaryDirectory() as tmp:
            Trainer(model, diffusion_objective(sched, DiffusionConfig(), True), Split(split.images.to(device),
                    split.labels.to(device)), cfg, device, Path(tmp), show_progress=False, compile=True).fit()
        torch.manual_seed(seed + 1)
        out["fid_ours"].append(fid_of(model))
        click.echo(f"seed {seed}: FID plain {out['fid_plain']}, ours {out['fid_ours']}")
    return out


_DATA_ROOT: str | None = None


@click.command()
@click.option("--device", default="cuda")
@click.option("--data-root", default=None)
@click.option("--steps", default=1500, show_default=True, help="Timed training steps per variant.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/results/benchmark.json"))
@click.option("--variants", is_flag=True, help="Also time intermediate variants (no graph, NCHW).")
@click.option("--quality", "quality_work_root", type=click.Path(path_type=Path), default=None,
              help="Also train both ways over the full budget (two seeds) and compare FID; needs the classifier "
                   "checkpoint of a full writeup run in this work folder (e.g. .work/full).")
def main(device: str, data_root: str | None, steps: int, out: Path, variants: bool,
         quality_work_root: Path | None) -> None:
    global _DATA_ROOT
    _DATA_ROOT = data_root
    dev = torch.device(device)
    torch.backends.cudnn.benchmark = True
    split = load_split(data_root, train=True)
    name = provenance.device_name(dev)
    flops = flops_per_image(dev)
    plain = plain_training(split.images, split.labels, dev, steps=min(steps, 600))
    ours = fast_training(split.images.to(dev), split.labels.to(dev), dev, steps, compile=True)
    extra = {}
    if variants:
        extra["train_img_per_s_eager_bf16_cl"] = fast_training(split.images.to(dev), split.labels.to(dev), dev,
                                                               steps, graph=False)
        extra["train_img_per_s_graph_nchw"] = fast_training(split.images.to(dev), split.labels.to(dev), dev,
                                                             steps, memory_format="nchw")
        extra["train_img_per_s_graph_bf16_cl"] = fast_training(split.images.to(dev), split.labels.to(dev), dev,
                                                               steps)
        for k in (2, 4, 6):
            extra[f"train_img_per_s_{k}_models_together"] = fast_training(
                split.images.to(dev), split.labels.to(dev), dev, steps, compile=True, together=k)
    model = UNet(UNetConfig(hidden=64, conditioning="class")).to(dev).eval()
    s_plain = plain_sampling(model, dev)
    s_ours = fast_sampling(model, dev, mode="compiled")
    if variants:
        extra["sample_1000_cfg_s_autocast_graph"] = fast_sampling(model, dev, mode="autocast")
        extra["sample_1000_cfg_s_folded_bf16_graph"] = fast_sampling(model, dev, mode="folded")
    peak = peak_tflops(name)
    tflops = flops * ours / 1e12
    result = {
        "device": name, "git_commit": provenance.git_commit(), "measured_at": provenance.now_iso(),
        "torch": torch.__version__, "batch_size": 128, "gflop_per_image_train": flops / 1e9,
        "train_img_per_s_plain": plain, "train_img_per_s": ours, "train_speedup": ours / plain,
        "train_tflops": tflops, "train_tflops_plain": flops * plain / 1e12,
        "peak_bf16_tflops": peak, "peak_fraction": tflops / peak if peak else None,
        "sample_1000_cfg_s_plain": s_plain, "sample_1000_cfg_s": s_ours, "sample_speedup": s_plain / s_ours,
        **extra,
    }
    if quality_work_root is not None:
        result.update(quality_check(split, dev, quality_work_root))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"device                 {name}")
    click.echo(f"train images/s plain   {plain:,.0f}")
    click.echo(f"train images/s ours    {ours:,.0f}   ({ours / plain:.2f}x)")
    for k, v in extra.items():
        click.echo(f"{k:<40} {v:,.2f}")
    click.echo(f"achieved TFLOP/s       {tflops:.1f}   ({result['peak_fraction'] or 0:.1%} of bf16 peak)")
    click.echo(f"1000 CFG samples, 300 steps: plain {s_plain:.2f} s, ours {s_ours:.2f} s ({s_plain / s_ours:.1f}x)")


if __name__ == "__main__":
    main()
