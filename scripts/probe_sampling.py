"""Diagnostic: how x0-clipping and the sampler change FID on trained full-profile models.

Loads the classifier, time- and class-conditioned checkpoints from a work folder and prints one JSON line
per configuration. Not part of the writeup; used to decide what the sections should do.
"""
from __future__ import annotations

import json
import sys
import time

import torch

from experiments import checkpoints
from experiments.data import load_split
from experiments.diffusion.process import predict_x0, strided_step
from experiments.diffusion.sampling import guided_estimate, model_estimate, sample
from experiments.diffusion.schedule import make_schedule
from experiments.metrics import Evaluator
from experiments.models.inference import fast_inference_model
from experiments.sections import beyond, common  # noqa: F401  (registers the unet builder)
from experiments.sections.beyond import spaced_timesteps

work = sys.argv[1]
N = int(sys.argv[2])
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
cuda = dev.type == "cuda"
clf, _ = checkpoints.load_model(__import__("pathlib").Path(work), "classifier", "full", dev)
test = load_split(None, train=False)
ev = Evaluator.build(clf.to(dev), test.images.to(dev))
sched = make_schedule(300, device=dev)


def clipper(on):
    return (lambda x: x.clamp(0, 1)) if on else (lambda x: x)


def ddpm(clip):
    c = clipper(clip)
    return lambda x, eps, t, tp, z: strided_step(x, c(predict_x0(x, eps, t, sched)), t, tp, sched, z)


def ddim(clip):
    c = clipper(clip)

    def step(x, eps, t, tp, z):
        x0 = c(predict_x0(x, eps, t, sched))
        ab_t, ab_p = sched.abar(t).view(-1, 1, 1, 1), sched.abar(tp).view(-1, 1, 1, 1)
        eps2 = (x - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()          # eps consistent with the clipped x0
        return ab_p.sqrt() * x0 + (1 - ab_p).sqrt() * eps2
    return step


def load(section):
    m, spec = checkpoints.load_model(__import__("pathlib").Path(work), section, "full", dev)
    return fast_inference_model(m.to(dev).eval(), dev, compile=cuda), spec


def run(net, step, timesteps, labels=None, gamma=None, batch=2000):
    xs = []
    t0 = time.perf_counter()
    for i, s in enumerate(range(0, N, batch)):
        m = min(batch, N - s)
        torch.manual_seed(1000 + i)
        x_T = torch.randn((m, 1, 28, 28), device=dev)
        if labels is None:
            est = model_estimate(net, sched)
        else:
            est = guided_estimate(net, sched, (torch.arange(s, s + m, device=dev) % 10), gamma)
        xs.append(sample(x_T, timesteps, est, step, autocast=cuda, graphed=cuda).x0.clamp(0, 1))
    x = torch.cat(xs)
    out = {"fid": round(ev.fid(x), 2), "s": round(time.perf_counter() - t0, 2)}
    if labels is not None:
        out["acc"] = round(ev.accuracy(x, torch.arange(N, device=dev) % 10), 4)
    return out


full = list(range(299, -1, -1))
net, _ = load("time-conditioned")
for clip in (False, True):
    print(json.dumps({"model": "time", "sampler": "ddpm300", "clip": clip, **run(net, ddpm(clip), full)}), flush=True)
    for n in (10, 20, 50, 100):
        print(json.dumps({"model": "time", "sampler": f"ddim{n}", "clip": clip,
                          **run(net, ddim(clip), spaced_timesteps(300, n))}), flush=True)
net, _ = load("class-conditioned")
for gamma in [float(g) for g in sys.argv[3].split(",")] if len(sys.argv) > 3 else (1.0, 3.0, 5.0):
    for clip in (False, True):
        print(json.dumps({"model": "class", "gamma": gamma, "clip": clip,
                          **run(net, ddpm(clip), full, labels=True, gamma=gamma)}), flush=True)
        print(json.dumps({"model": "class", "gamma": gamma, "clip": clip, "sampler": "ddim50",
                          **run(net, ddim(clip), spaced_timesteps(300, 50), labels=True, gamma=gamma)}), flush=True)
