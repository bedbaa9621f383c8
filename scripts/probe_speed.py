"""Probe (GPU): CFG sampling with the shared encoder against the repeated-image batch, and the
training step compiled in inductor's default mode against max-autotune (Triton conv templates).

    python scripts/probe_speed.py [--autotune]
"""
import os
import sys
import time

import torch
from torch import nn

from experiments.benchmark import fast_training, time_cfg_sampling
from experiments.config import UNetConfig
from experiments.data import load_split
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


model = UNet(UNetConfig(hidden=64, conditioning="class")).to(dev).eval()
shared = fast_inference_model(model, dev, compile=True)
folded = fast_inference_model(model, dev, compile=False)
repeated = torch.compile(Repeated(folded), dynamic=False)
for name, net in (("compiled, shared encoder", shared), ("compiled, images repeated", repeated),
                  ("folded eager, shared encoder", folded), ("folded eager, images repeated", Repeated(folded))):
    print(f"sample 1000 CFG x 300 steps, {name}: {time_cfg_sampling(net, dev, reps=3):.3f} s", flush=True)
for n in (2000, 5000):
    print(f"sample {n} CFG x 300, compiled shared: {time_cfg_sampling(shared, dev, n=n):.3f} s", flush=True)

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
