"""Diagnostic: do GroupNorm + EMA fix DDIM and the class-conditioned FID? Do guidance intervals help?

Trains time- and class-conditioned UNets with the given switches on the full budget, then prints one JSON
line per (model, sampler, gamma). Reference checkpoints are read from the work folder.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from experiments import checkpoints
from experiments.config import DiffusionConfig, TrainConfig, UNetConfig
from experiments.data import load_split
from experiments.diffusion.process import ddim_step, predict_x0, strided_step
from experiments.diffusion.sampling import model_estimate, sample
from experiments.diffusion.schedule import make_schedule
from experiments.metrics import Evaluator
from experiments.models.inference import fast_inference_model
from experiments.models.unet import NUM_CLASSES, UNet
from experiments.objectives import diffusion_objective
from experiments.sections import common  # noqa: F401
from experiments.sections.beyond import spaced_timesteps
from experiments.training import Trainer

work, N = Path(sys.argv[1]), int(sys.argv[2])
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SMOKE = dev.type == "cpu"
clf, _ = checkpoints.load_model(work, "classifier", "full", dev)
ev = Evaluator.build(clf.to(dev), load_split(None, train=False).images.to(dev))
train = load_split(None, train=True).to(dev)
sched = make_schedule(300, device=dev)
dcfg = DiffusionConfig()
FULL_T = list(range(299, -1, -1)) if not SMOKE else [299, 150, 0]


def ddpm(x, eps, t, tp, z):
    return strided_step(x, predict_x0(x, eps, t, sched), t, tp, sched, z)


def ddim(eta):
    return lambda x, eps, t, tp, z: ddim_step(x, eps, t, tp, sched, eta=eta, noise=z)


def guided(net, labels, gamma, lo, hi):
    c = F.one_hot(labels, NUM_CLASSES).float()
    both = torch.cat([c, torch.zeros_like(c)])

    def est(x, t):
        e = net(torch.cat([x, x]), torch.cat([t, t]).float() / 300, both)
        ec, eu = e.chunk(2)
        g = torch.where((t >= lo) & (t <= hi), gamma, 1.0).view(-1, 1, 1, 1).to(ec.dtype)
        return eu + g * (ec - eu)
    return est


def run(net, step, ts, gamma=None, lo=0, hi=299, n=None, batch=2500):
    n = n or N
    xs, t0 = [], time.perf_counter()
    for i, s in enumerate(range(0, n, batch)):
        m = min(batch, n - s)
        torch.manual_seed(1000 + i)
        x_T = torch.randn((m, 1, 28, 28), device=dev)
        y = torch.arange(s, s + m, device=dev) % 10
        est = model_estimate(net, sched) if gamma is None else guided(net, y, gamma, lo, hi)
        xs.append(sample(x_T, ts, est, step, autocast=not SMOKE, graphed=not SMOKE).x0.clamp(0, 1))
    x = torch.cat(xs)
    out = {"fid": round(ev.fid(x), 2), "s": round(time.perf_counter() - t0, 2)}
    if gamma is not None:
        out["acc"] = round(ev.accuracy(x, torch.arange(n, device=dev) % 10), 4)
    return out


def trained(cond, norm, ema, epochs=20):
    cfg = TrainConfig(epochs=epochs, ema_decay=ema, checkpoint_epochs=(epochs,),
                      **({"reference_images": 256, "batch_size": 32} if SMOKE else {}))
    for how in ({"compile": not SMOKE}, {"compile": not SMOKE, "channels_last": False}, {"compile": False}):
        torch.manual_seed(0)
        model = UNet(UNetConfig(hidden=64, conditioning=cond, norm=norm))
        t0 = time.perf_counter()
        try:
            res = Trainer(model, diffusion_objective(sched, dcfg, cond == "class"), train, cfg, dev,
                          Path(f"/tmp/probe/{cond}-{norm}-{ema}-{epochs}-{len(str(how))}"), show_progress=False,
                          **how).fit()
            break
        except Exception as exc:  # noqa: BLE001
            print(json.dumps({"failed": str(how), "error": str(exc).splitlines()[0][:200]}), flush=True)
    print(json.dumps({"trained": f"{cond} {norm} ema={ema} epochs={epochs}", "how": str(how),
                      "s": round(time.perf_counter() - t0, 1), "loss": round(sum(res.losses[-400:]) / 400, 5)}), flush=True)
    return fast_inference_model(res.final_model.eval(), dev, compile=not SMOKE)


def ref(section):
    m, _ = checkpoints.load_model(work, section, "full", dev)
    return fast_inference_model(m.to(dev).eval(), dev, compile=not SMOKE)


def say(**kw):
    print(json.dumps(kw), flush=True)


models = {"ref": ref("time-conditioned"), "gn+ema": trained("time", "group", 0.999)}
for name, net in models.items():
    say(model=f"time {name}", sampler="ddpm300", **run(net, ddpm, FULL_T))
    say(model=f"time {name}", sampler="ddim50", **run(net, ddim(0.0), spaced_timesteps(300, 50)))
    say(model=f"time {name}", sampler="ddim20", **run(net, ddim(0.0), spaced_timesteps(300, 20)))
    if name == "ref":
        say(model=f"time {name}", sampler="ddim300", **run(net, ddim(0.0), FULL_T))
        say(model=f"time {name}", sampler="ddim50 eta=0.5", **run(net, ddim(0.5), spaced_timesteps(300, 50)))
models = {"ref": ref("class-conditioned"), "gn+ema": trained("class", "group", 0.999),
          "gn+ema 40ep": trained("class", "group", 0.999, epochs=40)}
N = N // 2
for name, net in models.items():
    for g in (1.0, 1.5, 2.0, 5.0):
        say(model=f"class {name}", gamma=g, **run(net, ddpm, FULL_T, gamma=g))
    for lo, hi in ((60, 240), (100, 299), (30, 150), (150, 299)):
        say(model=f"class {name}", gamma=5.0, interval=[lo, hi], **run(net, ddpm, FULL_T, gamma=5.0, lo=lo, hi=hi))
    say(model=f"class {name}", gamma=2.0, sampler="ddim50", **run(net, ddim(0.0), spaced_timesteps(300, 50), gamma=2.0))
