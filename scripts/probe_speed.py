"""Probe (GPU): CFG sampling with the shared encoder against the repeated-image batch, and the
training step compiled in inductor's default mode against max-autotune (Triton conv templates).

    python scripts/probe_speed.py [--autotune]
"""
import os
import sys
import time

import torch
from torch import nn

from experiments.benchmark import fast_sampling, fast_training, sync
from experiments.config import UNetConfig
from experiments.data import load_split
from experiments.diffusion.sampling import ddpm_step_fn, guided_estimate, sample
from experiments.diffusion.schedule import make_schedule
from experiments.models.inference import fast_inference_model
from experiments.models.unet import UNet

dev = torch.device("cuda")
torch.backends.cudnn.benchmark = True
print(torch.cuda.get_device_name(dev), torch.__version__, flush=True)


class Repeated(nn.Module):
    """The old CFG batch: the images repeated for every conditioning (the encoder runs twice)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t, c):
        return self.net(x.repeat(len(c) // len(x), 1, 1, 1), t, c)


@torch.no_grad()
def time_sampling(net, n=1000, T=300, reps=3):
    sched = make_schedule(T, device=dev)
    labels = torch.arange(n, device=dev) % 10
    estimate = guided_estimate(net, sched, labels, 5.0)
    x_T = torch.randn(n, 1, 28, 28, device=dev)
    steps = list(range(T - 1, -1, -1))
    sample(x_T, steps[:3], estimate, ddpm_step_fn(sched), autocast=True, graphed=True)
    best = float("inf")
    for _ in range(reps):
        sync(dev)
        t0 = time.perf_counter()
        sample(x_T, steps, estimate, ddpm_step_fn(sched), autocast=True, graphed=True)
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


model = UNet(UNetConfig(hidden=64, conditioning="class")).to(dev).eval()
shared = fast_inference_model(model, dev, compile=True)
folded = fast_inference_model(model, dev, compile=False)
repeated = torch.compile(Repeated(folded), dynamic=False)
for name, net in (("compiled, shared encoder", shared), ("compiled, images repeated", repeated),
                  ("folded eager, shared encoder", folded), ("folded eager, images repeated", Repeated(folded))):
    print(f"sample 1000 CFG x 300 steps, {name}: {time_sampling(net):.3f} s", flush=True)
for n in (2000, 5000):
    print(f"sample {n} CFG x 300, compiled shared: {time_sampling(shared, n=n, reps=1):.3f} s", flush=True)

split = load_split(os.environ.get("FUNDIFF_DATA_ROOT") or None, train=True)
images, labels = split.images.to(dev), split.labels.to(dev)
print(f"train img/s, graph + compile (default): {fast_training(images, labels, dev, 1500, compile=True):,.0f}",
      flush=True)
if "--autotune" in sys.argv:
    os.environ["FUNDIFF_COMPILE_MODE"] = "max-autotune-no-cudagraphs"
    t0 = time.perf_counter()
    speed = fast_training(images, labels, dev, 1500, compile=True)
    print(f"train img/s, graph + compile (max-autotune-no-cudagraphs): {speed:,.0f} "
          f"(with build {time.perf_counter() - t0:.0f} s)", flush=True)
