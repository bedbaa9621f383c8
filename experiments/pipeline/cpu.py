"""How many threads a run on the CPU uses.

The quick profile's models are tiny: on a busy 2-core machine a quick time-conditioned run took 3.5 s
with one thread and 40-48 s with two, and a full-size training step (D = 64, batch 128) was faster
with one thread too, as OpenMP threads wait on cores that other work holds. So a CPU run uses half
the CPUs this process may use (its affinity and cgroup quota, not the host's count), at least 1 and
at most 8; OMP_NUM_THREADS, when set, wins.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

MAX_THREADS = 8
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


def cpu_threads(jobs: int = 1) -> int:
    """Threads for each of `jobs` runs side by side: $OMP_NUM_THREADS when set, else half the usable
    CPUs shared out, at least 1 and at most MAX_THREADS."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(MAX_THREADS, available_cpus() // 2 // max(1, jobs)))


def use_cpu_threads(device: torch.device) -> None:
    """Set torch's thread count for a run on the CPU (a GPU run keeps torch's default)."""
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
