"""Diagnostic: peer speed options, DDIM from a moment-matched start, a longer class-conditioned recipe."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from experiments import checkpoints
from experiments.config import TrainConfig
from experiments.data import Split, load_split
from experiments.models.peer import PeerConfig, PeerUNet, make_scheduler, peer_objective, peer_sample, to_peer
from experiments.training import Trainer

sys.argv += [""] * 3
mode, work = sys.argv[1], Path(sys.argv[2])
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SMOKE = dev.type == "cpu"
train = load_split(None, train=True).to(dev)


def say(**kw):
    print(json.dumps(kw), flush=True)


def sync():
    if not SMOKE:
        torch.cuda.synchronize()


if mode == "peer":
    pcfg = PeerConfig() if not SMOKE else PeerConfig(block_out_channels=(8, 16, 16), layers_per_block=1,
                                                     norm_num_groups=4, num_train_timesteps=20)
    space = Split(to_peer(train.images), train.labels)
    steps = 300 if not SMOKE else 3
    for how in ({"graph": False}, {"graph": False, "channels_last": False}, {"graph": True, "channels_last": False},
                {"graph": True}, {"graph": True, "channels_last": False, "compile": True}):
        torch.manual_seed(0)
        model = PeerUNet(pcfg)
        cfg = TrainConfig(epochs=1, reference_images=128 * steps, lr_final_ratio=1.0, checkpoint_epochs=())
        t0 = time.perf_counter()
        try:
            res = Trainer(model, peer_objective(make_scheduler(pcfg)), space, cfg, dev,
                          Path(f"/tmp/probe/peer{len(str(how))}{how.get('graph')}"), show_progress=False, **how).fit()
            say(peer_train=str(how), img_per_s=round(res.images_per_s), wall=round(time.perf_counter() - t0, 1),
                loss=round(sum(res.losses[-50:]) / 50, 4))
        except Exception as exc:  # noqa: BLE001
            say(peer_train=str(how), error=str(exc).splitlines()[0][:300])
    model = PeerUNet(pcfg).to(dev).eval()
    for name, net, n, ac in (("autocast b2000", model, 2000, True), ("autocast b10000", model, 10000, True),
                             ("channels_last b2000", model.to(memory_format=torch.channels_last), 2000, True)):
        peer_sample(net, pcfg, 16, 2, "trailing", dev, 0, autocast=not SMOKE)
        sync(); t0 = time.perf_counter()
        peer_sample(net, pcfg, n, 50 if not SMOKE else 2, "trailing", dev, 0, batch=n, autocast=ac and not SMOKE)
        sync(); dt = time.perf_counter() - t0
        say(peer_sample=name, s_per_step=round(dt / 50, 4), img_steps_per_s=round(n * 50 / dt))
    if not SMOKE:
        model = PeerUNet(pcfg).to(dev).eval()
        model.net = torch.compile(model.net)
        peer_sample(model, pcfg, 2000, 3, "trailing", dev, 0, autocast=True)
        sync(); t0 = time.perf_counter()
        peer_sample(model, pcfg, 2000, 50, "trailing", dev, 0, batch=2000, autocast=True)
        sync(); dt = time.perf_counter() - t0
        say(peer_sample="compiled b2000", s_per_step=round(dt / 50, 4), img_steps_per_s=round(2000 * 50 / dt))

if mode in ("ddim", "class"):
    import torch.nn.functional as F
    from experiments.config import DiffusionConfig, UNetConfig
    from experiments.diffusion.process import ddim_step, predict_x0, strided_step
    from experiments.diffusion.sampling import model_estimate, sample
    from experiments.diffusion.schedule import make_schedule
    from experiments.metrics import Evaluator
    from experiments.models.inference import fast_inference_model
    from experiments.models.unet import NUM_CLASSES, UNet
    from experiments.objectives import diffusion_objective
    from experiments.sections import common  # noqa: F401
    from experiments.sections.beyond import spaced_timesteps

    N = int(sys.argv[3] or 10000)
    clf, _ = checkpoints.load_model(work, "classifier", "full", dev)
    ev = Evaluator.build(clf.to(dev), load_split(None, train=False).images.to(dev))
    sched = make_schedule(300, device=dev)
    ab = float(sched.alphas_cumprod[-1])
    mu, var = train.images.mean(0, keepdim=True), train.images.var(0, keepdim=True)
    FULL_T = list(range(299, -1, -1)) if not SMOKE else [299, 150, 0]

    def ddpm(x, eps, t, tp, z):
        return strided_step(x, predict_x0(x, eps, t, sched), t, tp, sched, z)

    def ddim(x, eps, t, tp, z):
        return ddim_step(x, eps, t, tp, sched, eta=0.0, noise=z)

    def guided(net, labels, gamma, lo, hi):
        c = F.one_hot(labels, NUM_CLASSES).float()
        both = torch.cat([c, torch.zeros_like(c)])

        def est(x, t):
            e = net(torch.cat([x, x]), torch.cat([t, t]).float() / 300, both)
            ec, eu = e.chunk(2)
            g = torch.where((t >= lo) & (t <= hi), gamma, 1.0).view(-1, 1, 1, 1).to(ec.dtype)
            return eu + g * (ec - eu)
        return est

    def run(net, step, ts, start="noise", gamma=None, lo=0, hi=299, batch=2500):
        xs, t0 = [], time.perf_counter()
        for i, s in enumerate(range(0, N, batch)):
            m = min(batch, N - s)
            torch.manual_seed(1000 + i)
            x_T = torch.randn((m, 1, 28, 28), device=dev)
            if start == "matched":
                x_T = ab ** 0.5 * mu + (ab * var + 1 - ab).sqrt() * x_T
            elif start == "mean":
                x_T = ab ** 0.5 * mu + (1 - ab) ** 0.5 * x_T
            y = torch.arange(s, s + m, device=dev) % 10
            est = model_estimate(net, sched) if gamma is None else guided(net, y, gamma, lo, hi)
            xs.append(sample(x_T, ts, est, step, autocast=not SMOKE, graphed=not SMOKE).x0.clamp(0, 1))
        x = torch.cat(xs)
        out = {"fid": round(ev.fid(x), 2), "s": round(time.perf_counter() - t0, 2), "ink": round(float(x.mean()), 4)}
        if gamma is not None:
            out["acc"] = round(ev.accuracy(x, torch.arange(N, device=dev) % 10), 4)
        return out

    if mode == "ddim":
        m, _ = checkpoints.load_model(work, "time-conditioned", "full", dev)
        net = fast_inference_model(m.to(dev).eval(), dev, compile=not SMOKE)
        for start in ("noise", "mean", "matched"):
            say(start=start, sampler="ddpm300", **run(net, ddpm, FULL_T, start))
            for n in (10, 20, 50, 100):
                say(start=start, sampler=f"ddim{n}", **run(net, ddim, spaced_timesteps(300, n), start))
        m, _ = checkpoints.load_model(work, "class-conditioned", "full", dev)
        net = fast_inference_model(m.to(dev).eval(), dev, compile=not SMOKE)
        for g in (1.0, 2.0, 5.0):
            say(model="class ref", gamma=g, start="matched", **run(net, ddpm, FULL_T, "matched", gamma=g))
            say(model="class ref", gamma=g, start="matched", sampler="ddim50",
                **run(net, ddim, spaced_timesteps(300, 50), "matched", gamma=g))
    else:
        epochs = int(sys.argv[4] or 80)
        cfg = TrainConfig(epochs=epochs, ema_decay=0.999, checkpoint_epochs=(epochs,),
                          **({"reference_images": 256, "batch_size": 32} if SMOKE else {}))
        torch.manual_seed(0)
        model = UNet(UNetConfig(hidden=64, conditioning="class", norm="group"))
        t0 = time.perf_counter()
        res = Trainer(model, diffusion_objective(sched, DiffusionConfig(), True), train, cfg, dev,
                      Path(f"/tmp/probe/class{epochs}"), show_progress=False, compile=not SMOKE,
                      channels_last=False).fit()
        say(trained=f"class gn+ema {epochs}ep", s=round(time.perf_counter() - t0, 1), img_per_s=round(res.images_per_s))
        net = fast_inference_model(res.final_model.eval(), dev, compile=not SMOKE)
        for start in ("noise", "matched"):
            for g in (1.0, 1.5, 2.0, 3.0, 5.0):
                say(model=f"class {epochs}", gamma=g, start=start, **run(net, ddpm, FULL_T, start, gamma=g))
            for g, lo, hi in ((5.0, 30, 150), (3.0, 30, 150), (2.0, 0, 150)):
                say(model=f"class {epochs}", gamma=g, interval=[lo, hi], start=start,
                    **run(net, ddpm, FULL_T, start, gamma=g, lo=lo, hi=hi))
        say(model=f"class {epochs}", gamma=2.0, start="matched", sampler="ddim50",
            **run(net, ddim, spaced_timesteps(300, 50), "matched", gamma=2.0))
