"""Diagnostic: where one training step and one CFG sampling call spend GPU time, and whether rewrites
that keep the parameters and the function are faster (the table on the Performance page):

- subpixel: transposed convs as conv -> pixel_shuffle;
- splitcat: the decoder's skip concatenations split (layer(cat[u, e]) = layer_u(u) + layer_e(e));
- taps: the one-channel convs as nine shifted products; objective: the whole loss compiled;
- body: the sampler's step arithmetic compiled with the network.

    PYTHONPATH=. python3 scripts/probe_rewrites.py [subpixel|splitcat|more]     (on a GPU)
Each mode times its variants beside the present code, with kernel tables (torch.profiler).
Not part of the writeup; the variants are checked against the present modules on the CPU first.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from experiments.benchmark import time_cfg_sampling
from experiments.config import DiffusionConfig, TrainConfig, UNetConfig
from experiments.data import Split
from experiments.diffusion.schedule import make_schedule
from experiments.models.inference import fast_inference_model
from experiments.models.unet import UNet
from experiments.objectives import diffusion_objective
from experiments.training import Trainer

# kernel index of the transposed conv for output phase a and 3x3 tap u (4 = a zero slot)
_TAPS = torch.tensor([[3, 1, 4], [4, 2, 0]])


class SubpixelConvTranspose(nn.Module):
    """ConvTranspose2d(k=4, s=2, p=1) or (k=s, p=0) computed as conv -> pixel_shuffle; same parameters."""

    def __init__(self, convt: nn.ConvTranspose2d):
        super().__init__()
        (k, _), (s, _), (p, _) = convt.kernel_size, convt.stride, convt.padding
        assert (k, s, p) == (4, 2, 1) or (k == s and p == 0), (k, s, p)
        self.weight, self.bias, self.k, self.s = convt.weight, convt.bias, k, s
        self.register_buffer("taps", _TAPS.clone(), persistent=False)

    def forward(self, x):
        w, s = self.weight, self.s                                     # (Cin, Cout, k, k)
        cin, cout = w.shape[:2]
        if self.k == s:
            wc = w.permute(1, 2, 3, 0).reshape(cout * s * s, cin, 1, 1)
            pad = 0
        else:
            taps = self.taps
            wp = F.pad(w, (0, 1, 0, 1))                                # index 4 is zero
            wc = wp[:, :, taps[:, :, None, None], taps[None, None, :, :]]   # (Cin, Cout, a, u, b, v)
            wc = wc.permute(1, 2, 4, 0, 3, 5).reshape(cout * 4, cin, 3, 3)
            pad = 1
        b = self.bias.repeat_interleave(s * s) if self.bias is not None else None
        return F.pixel_shuffle(F.conv2d(x, wc, b, padding=pad), s)


def subpixel(model: nn.Module) -> nn.Module:
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ConvTranspose2d):
                setattr(module, name, SubpixelConvTranspose(child))
    return model


class TapConv(nn.Module):
    """A 3x3 / stride 1 / pad 1 conv with one input or one output channel as a sum of nine shifted
    products: inductor fuses it into one pointwise (or reduction) kernel; same parameters."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
        assert conv.in_channels == 1 or conv.out_channels == 1
        self.weight, self.bias = conv.weight, conv.bias

    def forward(self, x):
        h, w_ = x.shape[-2:]
        xp = F.pad(x.float(), (1, 1, 1, 1))
        wt = self.weight.float()
        if wt.shape[1] == 1:                                   # one input channel: (B,1,H,W) -> (B,O,H,W)
            out = sum(xp[:, :, u:u + h, v:v + w_] * wt[:, 0, u, v].view(1, -1, 1, 1)
                      for u in range(3) for v in range(3))
        else:                                                  # one output channel: sum over C
            out = sum(xp[:, :, u:u + h, v:v + w_] * wt[0, :, u, v].view(1, -1, 1, 1)
                      for u in range(3) for v in range(3)).sum(1, keepdim=True)
        return (out + self.bias.float().view(1, -1, 1, 1)).to(x.dtype)


def taps(model: nn.Module) -> nn.Module:
    inner = model.m if isinstance(model, SplitCatUNet) else model
    inner.encode1.body[0][0] = TapConv(inner.encode1.body[0][0])
    inner.head = TapConv(inner.head)
    return model


class SplitCatUNet(nn.Module):
    """Inference forward of a (BN-folded) class-conditioned UNet for CFG batches (k conditionings of the
    same x) that never builds the skip concatenations: the first layer of each decoder block is linear
    in its input, so layer(cat[u, e]) = layer_u(u) + layer_e(e), and layer_e(e) runs once per image
    (not k times) and is broadcast over the k conditionings."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.m = unet
        d = unet.cfg.hidden
        self.split = {}
        for name, cin_u in (("decode1", 2 * d), ("decode2", d), ("decode3", d)):
            block = getattr(unet, name)
            first = block[0][0] if name != "decode3" else block.body[0][0]
            w = first.weight
            if isinstance(first, nn.ConvTranspose2d):          # (Cin, Cout, k, k)
                wu, we = w[:cin_u], w[cin_u:]
            else:                                              # (Cout, Cin, k, k)
                wu, we = w[:, :cin_u], w[:, cin_u:]
            self.register_buffer(f"{name}_wu", wu.detach().clone())
            self.register_buffer(f"{name}_we", we.detach().clone())

    def _first(self, name, u, e, k):
        block = getattr(self.m, name)
        layer = block[0] if name != "decode3" else block.body[0]
        first, act = layer[0], layer[2]
        wu, we = getattr(self, f"{name}_wu"), getattr(self, f"{name}_we")
        if isinstance(first, nn.ConvTranspose2d):
            f = lambda x, w, b: F.conv_transpose2d(x, w, b, first.stride, first.padding)
        else:
            f = lambda x, w, b: F.conv2d(x, w, b, first.stride, first.padding)
        yu = f(u, wu, first.bias)                                # (kB, C, H, W)
        ye = f(e, we, None)                                      # (B, C, H, W)
        y = (yu.unflatten(0, (k, -1)) + ye.unsqueeze(0)).flatten(0, 1)
        return act(y)

    def forward(self, x, t, c):
        m = self.m
        e1 = m.encode1(x)
        e2 = m.encode2(e1)
        e3 = m.encode3(e2)
        u0 = m.unflatten(m.flatten(e3))
        k = len(c) // len(x)
        t = t.reshape(-1, 1).to(x.dtype)
        c = c.to(x.dtype)
        t1 = m.time1(t)[:, :, None, None]
        t2 = m.time2(t)[:, :, None, None]
        u0 = (m.class1(c)[:, :, None, None] * u0.repeat(k, 1, 1, 1) + t1)
        h = self._first("decode1", u0, e3, k)
        u1 = m.decode1[1](h)
        u1 = m.class2(c)[:, :, None, None] * u1 + t2
        h = self._first("decode2", u1, e2, k)
        u2 = m.decode2[1](h)
        h = self._first("decode3", u2, e1, k)
        h = m.decode3.body[1](h)
        return m.head(h)


def check_equal():
    torch.manual_seed(0)
    for k, s, p, hw in ((4, 2, 1, 7), (7, 7, 0, 1)):
        ct = nn.ConvTranspose2d(6, 5, k, s, p)
        x = torch.randn(3, 6, hw, hw)
        d = (ct(x) - SubpixelConvTranspose(ct)(x)).abs().max().item()
        print(f"subpixel k={k} s={s}: max diff {d:.2e}")
        assert d < 1e-5
    m = UNet(UNetConfig(hidden=64, conditioning="class")).eval()
    x, t = torch.randn(3, 1, 28, 28), torch.rand(6)
    c = torch.cat([torch.eye(10)[:3], torch.zeros(3, 10)])
    d = (m(x, t, c) - SplitCatUNet(m)(x, t, c)).abs().max().item()
    print(f"split-cat: max diff {d:.2e}")
    assert d < 1e-5
    import copy
    d = (m(x, t, c) - taps(SplitCatUNet(copy.deepcopy(m)))(x, t, c)).abs().max().item()
    print(f"split-cat+taps: max diff {d:.2e}")
    assert d < 1e-5


def table(prof, n, rows=22):
    ev = prof.key_averages()
    total = sum(e.device_time_total for e in ev) / n
    print(f"  kernel time per call {total / 1000:.3f} ms, kernels per call "
          f"{sum(e.count for e in ev if e.device_time_total > 0) / n:.0f}")
    print(ev.table(sort_by="device_time_total", row_limit=rows, max_name_column_width=90))


def train_probe(dev, variant: str):
    torch.manual_seed(0)
    model = UNet(UNetConfig(hidden=64, conditioning="class"))
    if variant == "subpixel":
        model = subpixel(model)
    if "taps" in variant:
        model = taps(model)
    images = torch.rand(10000, 1, 28, 28, device=dev)
    labels = torch.randint(0, 10, (10000,), device=dev)
    sched = make_schedule(300, device=dev)
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(model, diffusion_objective(sched, DiffusionConfig(), True), Split(images, labels),
                     TrainConfig(epochs=20), dev, Path(tmp), compile=True, show_progress=False,
                     channels_last=True)
        if "objective" in variant:        # compile the whole loss (noise, t, one-hot, mse), not the model alone
            tr.step_model = tr.model
            tr.objective = torch.compile(tr.objective, dynamic=False)
        tr._begin_epoch(1)
        t0 = time.perf_counter()
        for _ in range(20):
            tr._eager_step()
        torch.cuda.synchronize()
        print(f"[train {variant}] compile + 20 eager steps {time.perf_counter() - t0:.1f} s")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                tr._eager_step()
            torch.cuda.synchronize()
        table(prof, 10)
        tr.batch_in_epoch.zero_()
        tr._capture()
        speeds = []
        for _ in range(4):
            tr.batch_in_epoch.zero_()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(400):
                tr._graph.replay()
            torch.cuda.synchronize()
            speeds.append(400 * 128 / (time.perf_counter() - t0))
        print(f"[train {variant}] graph img/s {[round(s) for s in speeds]} best {max(speeds):.0f}", flush=True)


@torch.no_grad()
def time_compiled_body(net, dev, n=1000, T=300, reps=3):
    from experiments.diffusion.sampling import ddpm_step_fn, guided_estimate
    sched = make_schedule(T, device=dev)
    labels = torch.arange(n, device=dev) % 10
    estimate, step = guided_estimate(net, sched, labels, 5.0), ddpm_step_fn(sched)

    def body(x, t, tp, noise):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            eps = estimate(x, t).float()
        keep = (tp >= 0).to(x.dtype).view(-1, 1, 1, 1)
        return step(x, eps, t, tp, noise * keep)

    cbody = torch.compile(body, dynamic=False)
    x = torch.randn(n, 1, 28, 28, device=dev)
    t_buf = torch.full((n,), T - 1, device=dev)
    tp_buf = torch.full((n,), T - 2, device=dev)
    noise = torch.empty_like(x)
    t0 = time.perf_counter()
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):
        for _ in range(3):
            x.copy_(cbody(x, t_buf, tp_buf, noise))
    torch.cuda.current_stream(dev).wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        noise.normal_()
        x.copy_(cbody(x, t_buf, tp_buf, noise))
    torch.cuda.synchronize()
    print(f"  compile + capture {time.perf_counter() - t0:.1f} s")
    best = float("inf")
    for _ in range(reps):
        x.normal_()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for step_t in range(T - 1, -1, -1):
            t_buf.fill_(step_t)
            tp_buf.fill_(step_t - 1)
            g.replay()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def sample_probe(dev, variant: str, mode: str | None = None):
    torch.manual_seed(0)
    model = UNet(UNetConfig(hidden=64, conditioning="class")).eval()
    ref = fast_inference_model(model, dev, compile=False)
    fast = fast_inference_model(model, dev, compile=False)      # BN folded first
    if variant == "subpixel":
        fast = subpixel(fast).to(dev)
    if "splitcat" in variant:
        fast = SplitCatUNet(fast).to(dev)
    if "taps" in variant:
        fast = taps(fast).to(dev)
    if "body" in variant:
        s = time_compiled_body(fast, dev)
        print(f"[sample {variant}] 1,000 CFG digits x 300 steps, body compiled: {s:.3f} s", flush=True)
        return
    net = torch.compile(fast, dynamic=False, mode=mode)
    x = torch.randn(1000, 1, 28, 28, device=dev, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    t = torch.rand(2000, device=dev, dtype=torch.bfloat16)
    c = F.one_hot(torch.arange(2000, device=dev) % 10, 10).to(torch.bfloat16)
    c[1000:] = 0
    with torch.no_grad():
        t0 = time.perf_counter()
        out = net(x, t, c)
        torch.cuda.synchronize()
        print(f"[sample {variant} {mode}] compile {time.perf_counter() - t0:.1f} s; "
              f"max |diff| vs eager reference {(out.float() - ref(x, t, c).float()).abs().max().item():.3f}")
        for _ in range(5):
            net(x, t, c)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                net(x, t, c)
            torch.cuda.synchronize()
        table(prof, 10, rows=16)
    s = time_cfg_sampling(net, dev, 1000, 300, graphed=True, reps=3)
    print(f"[sample {variant} {mode}] 1,000 CFG digits x 300 steps: {s:.3f} s", flush=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "subpixel"
    if what not in ("subpixel", "splitcat", "more"):
        sys.exit(f"unknown mode {what!r}: subpixel, splitcat or more")
    check_equal()
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    print(torch.cuda.get_device_name(), torch.__version__)
    if what == "subpixel":
        for v in ("baseline", "subpixel"):
            sample_probe(dev, v)
        for v in ("baseline", "subpixel"):
            train_probe(dev, v)
    elif what == "splitcat":
        sample_probe(dev, "baseline")
        sample_probe(dev, "splitcat")
        sample_probe(dev, "splitcat", "max-autotune-no-cudagraphs")
        sample_probe(dev, "baseline", "max-autotune-no-cudagraphs")
    elif what == "more":
        for v in ("splitcat", "splitcat+taps", "splitcat+body", "splitcat+taps+body"):
            sample_probe(dev, v)
        for v in ("baseline", "objective", "taps", "taps+objective"):
            train_probe(dev, v)
