"""Independent work of one section spread over several GPUs: one process per extra GPU, results gathered.

    sets = spread(ctx, draw_set, [(sampler, n, seed), ...], cost=[n, ...])

`fn(ctx, *job)` runs for every job; the jobs are dealt over the section's own device and the spare
devices the run grants it now (`ctx.spare_devices()`, none outside a whole-writeup run), the most
costly first, each to the device with the least work so far. The section's own share runs in its own
process meanwhile. Every job must depend only on its arguments (seeds included), never on where it
runs, so the results are the same with one GPU or several; they come back in job order, on the CPU.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

import torch

from experiments.core.section import Context
from experiments.errors import one_line


def deal(costs: Sequence[float], shares: int) -> list[list[int]]:
    """Job indices per share: the most costly job first, each to the share with the least cost so far."""
    load = [0.0] * shares
    out: list[list[int]] = [[] for _ in range(shares)]
    for i in sorted(range(len(costs)), key=lambda j: -costs[j]):
        k = min(range(shares), key=lambda s: load[s])
        out[k].append(i)
        load[k] += costs[i]
    return [sorted(share) for share in out]


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _run_share(ctx: Context, fn: Callable, jobs: list[tuple], threads: int) -> list:
    """A worker process: its share of the jobs on its device (errors come back as one line: torch's
    exceptions do not always pickle)."""
    torch.set_num_threads(threads)
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)         # CUDA graphs and streams use the current device
    try:
        return [_to_cpu(fn(ctx, *job)) for job in jobs]
    except BaseException as exc:  # noqa: BLE001 - sent back to the section, which fails with it
        raise RuntimeError(f"on {ctx.device}: {one_line(exc)}") from None
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def devices_for(ctx: Context, jobs: Sequence[tuple]) -> list[torch.device]:
    """This section's device and the spare devices granted now, no more of them than there are jobs."""
    return [ctx.device, *ctx.spare_devices()][:max(1, len(jobs))]


def spread(ctx: Context, fn: Callable, jobs: Sequence[tuple], cost: Sequence[float] | None = None,
           devices: Sequence[torch.device] | None = None) -> list:
    """[fn(ctx, *job) for job in jobs], the jobs spread over this section's device and its spare devices
    (`devices`: those of `devices_for`, asked beforehand by a section that records how many it used)."""
    devices = list(devices or devices_for(ctx, jobs))
    if len(devices) == 1 or len(jobs) <= 1:
        return [_to_cpu(fn(ctx, *job)) for job in jobs]
    shares = deal(cost or [1.0] * len(jobs), len(devices))
    results: list = [None] * len(jobs)
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    with ProcessPoolExecutor(max_workers=len(devices) - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [(pool.submit(_run_share, ctx.on_device(device), fn, [jobs[i] for i in share], threads), share)
                   for device, share in zip(devices[1:], shares[1:]) if share]
        for i in shares[0]:
            results[i] = _to_cpu(fn(ctx, *jobs[i]))
        for future, share in futures:
            for i, value in zip(share, future.result()):
                results[i] = value
    return results
