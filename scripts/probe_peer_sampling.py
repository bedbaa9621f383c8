"""Diagnostic: seconds per sampler step of the diffusers peer (untrained weights, full-profile config).

The peer's 1,000-step FID set is the writeup's long pole; this times one network call at the
sampling batch in the variants worth considering: eager fp32 under bf16 autocast, eager bf16
weights (NCHW, NHWC), torch.compile of the bf16 NHWC model, and a bigger batch.
Run on a GPU: python scripts/probe_peer_sampling.py
"""
from __future__ import annotations

import time

import torch

from experiments.models.peer import PeerConfig, PeerUNet


def per_step(fn, x, t, reps: int = 10) -> float:
    for _ in range(3):
        fn(x, t)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(x, t)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


@torch.no_grad()
def main() -> None:
    dev = torch.device("cuda")
    print(torch.cuda.get_device_name(dev), torch.__version__, flush=True)
    base = PeerUNet(PeerConfig()).to(dev).eval()
    for batch in (2000, 5000):
        x = torch.randn(batch, 1, 32, 32, device=dev)
        t = torch.full((batch,), 500, device=dev, dtype=torch.long)
        if batch == 2000:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                print(f"batch {batch} fp32 weights + autocast: {per_step(base, x, t):.4f} s", flush=True)
        bf16 = PeerUNet(PeerConfig()).to(dev).eval().to(torch.bfloat16)
        xb = x.to(torch.bfloat16)
        print(f"batch {batch} bf16 NCHW: {per_step(bf16, xb, t):.4f} s", flush=True)
        nhwc = bf16.to(memory_format=torch.channels_last)
        xc = xb.contiguous(memory_format=torch.channels_last)
        print(f"batch {batch} bf16 NHWC: {per_step(nhwc, xc, t):.4f} s", flush=True)
        if batch == 2000:
            t0 = time.perf_counter()
            compiled = torch.compile(nhwc)
            compiled(xc, t)
            torch.cuda.synchronize()
            print(f"compile took {time.perf_counter() - t0:.1f} s", flush=True)
            print(f"batch {batch} bf16 NHWC compiled: {per_step(compiled, xc, t):.4f} s", flush=True)


if __name__ == "__main__":
    main()
