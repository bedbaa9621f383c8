"""torch.compile for the sections: one recompile limit, and compiling ahead in a side process.

    ahead = compile_ahead(ctx, warm_sampler)     # starts beside the training, where the section compiles
    train(...)
    ahead.wait()                                 # then the sampler's compile is a cache load

A cold compile is mostly CPU work (tracing, code generation, building Triton kernels) while the GPU
waits. inductor keeps what it compiled in an on-disk cache that every process of the machine shares,
keyed by the graph, its shapes and its device, not by the weights. So a section that trains first and
samples afterwards can have a side process build its sampling network (untrained weights do) and run
it once at the sampling shapes while the training runs; its own compile then loads the result (H100,
cold against from the cache: the peer's sampler 34 s against 6 s, our UNet's 17 s against 3 s).
Nothing else passes between the processes, so the results are the same with or without it.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Callable

import torch

from experiments.core.section import Context
from experiments.errors import one_line

# Every trainer compiles the same `loss` function (a closure over its own model and objective) and every
# sampling network the same forward, and dynamo keeps its graphs per function: the ablations' seven
# variants and a section's several trainers need more than the default of 8, past which the rest would
# run eagerly.
RECOMPILE_LIMIT = 64


def allow_recompiles(limit: int = RECOMPILE_LIMIT) -> None:
    """Raise dynamo's limit of graphs per function to `limit` (never lower it)."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"   # older torch
    setattr(config, name, max(getattr(config, name), limit))


class Ahead:
    """A compile started ahead in a side process (or none)."""

    def __init__(self, process: multiprocessing.Process | None = None):
        self.process = process

    def wait(self) -> bool:
        """Block until the side process ended; whether it compiled everything (if not, the section simply
        compiles what is missing itself)."""
        if self.process is None:
            return False
        self.process.join()
        return self.process.exitcode == 0


def _warm(ctx: Context, fn: Callable, args: tuple) -> None:
    """The side process: fn(ctx, *args) on the section's device, without gradients."""
    torch.set_num_threads(1)                  # its work is compiling; the section keeps the cores it uses
    if hasattr(os, "nice"):
        # Lowest CPU priority, inherited by its compile workers: beside a section that compiles its own
        # training, an even share of the CPU slowed that compile (the peer's training: 162 s -> 180 s, H100).
        os.nice(19)
    if ctx.cuda:
        torch.cuda.set_device(ctx.device)     # CUDA graphs and streams use the current device
        torch.backends.cudnn.benchmark = True     # as the section's own networks run
    allow_recompiles()
    try:
        with torch.no_grad():
            fn(ctx, *args)
    except Exception as exc:  # noqa: BLE001 - one line in the log; the section then compiles for itself
        print(f"{ctx.section.name}: compiling ahead failed ({one_line(exc)})", file=sys.stderr, flush=True)
        sys.exit(1)


def in_side_process(ctx: Context, fn: Callable, *args) -> Ahead:
    """Start fn(ctx, *args) in a fresh process (a module-level fn; arguments that pickle) on ctx's device."""
    process = multiprocessing.get_context("spawn").Process(target=_warm, args=(ctx.on_device(ctx.device), fn, args),
                                                           daemon=True, name=f"{ctx.section.name} compile ahead")
    process.start()
    return Ahead(process)


def compile_ahead(ctx: Context, fn: Callable, *args) -> Ahead:
    """Where this section compiles (a GPU, compiling on), run fn(ctx, *args) in a side process now: fn
    builds the networks the section will compile later and runs each once at the shapes it will use.
    Elsewhere nothing starts (and `wait` returns at once)."""
    return in_side_process(ctx, fn, *args) if ctx.compiled else Ahead()
