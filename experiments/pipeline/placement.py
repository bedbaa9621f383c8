"""Where and when the sections of a whole-writeup run start: pure logic, no processes, no GPUs.

A section is ready when its dependencies are done, or, for one that reads them only after work of its
own (`Section.reads_dependencies_late`), as soon as they have started. Ready sections start longest
chain first (a section's expected time plus the longest chain of its dependants: the critical path
sets the wall time on several GPUs), each on the GPU with the least expected work left among those
running fewer than `per_gpu` sections (list scheduling, as LPT does it): a long section never joins
another long one while a GPU is idle, and short ones fill in beside them. Expected times are the
previous run's section times.

A running section may borrow idle GPUs to spread independent work over (`spares`, `lend`): only GPUs
with no section on them and not lent to another; while the loan lasts (until the borrower ends) the
GPU counts as holding the borrower, and new sections go to it only when no other GPU has room.
Lending GPUs that were only expected to be free soon slowed both sides: in a 4-GPU H100 run the peer's
10,000 digits took 197 s on two GPUs (113 s on one, a run before) and fast-sampling, started on the
borrowed GPU, 121 s (42 s).

`simulate` plays a run with given durations (each GPU shared equally by the sections on it), for
tests and for estimating a run before it happens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

UNMEASURED_S = 60.0       # expected time of a section without a previous measurement


@dataclass(frozen=True)
class Job:
    name: str
    depends_on: tuple[str, ...] = ()
    expected_s: float = UNMEASURED_S
    early: bool = False           # may start once its dependencies have started (they are read late)


@dataclass(frozen=True)
class Started:
    gpu: int
    at: float                     # seconds since the run began


def work_left(running: dict[str, tuple[int, float, float]], gpus: int, now: float) -> list[float]:
    """Expected seconds of work left on each GPU from its running sections' (gpu, start, expected seconds);
    a section past its expected time still counts a little."""
    left = [0.0] * gpus
    for gpu, at, expected in running.values():
        left[gpu] += max(expected - (now - at), 0.05 * expected)
    return left


def chain_lengths(jobs: list[Job]) -> dict[str, float]:
    """Expected time of each job plus the longest chain of its dependants (jobs in dependency order)."""
    lengths: dict[str, float] = {}
    for job in reversed(jobs):
        after = [lengths[j.name] for j in jobs if job.name in j.depends_on]
        lengths[job.name] = job.expected_s + max(after, default=0.0)
    return lengths


@dataclass
class Planner:
    jobs: list[Job]                       # in dependency order
    gpus: int
    per_gpu: int
    started: dict[str, Started] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)     # name -> why (failed, or skipped for a failed dependency)
    lent: dict[str, tuple[int, ...]] = field(default_factory=dict)   # borrower -> the GPUs it spreads work over

    def __post_init__(self) -> None:
        if self.gpus < 1 or self.per_gpu < 1:
            raise ValueError("a run needs at least one GPU (or the CPU) and one section per GPU")
        self.by_name = {job.name: job for job in self.jobs}
        self.priority = chain_lengths(self.jobs)

    # ---- state ------------------------------------------------------------------------------------------
    def running(self) -> dict[str, Started]:
        return {n: s for n, s in self.started.items() if n not in self.done and n not in self.failed}

    def finished(self) -> bool:
        return all(job.name in self.done or job.name in self.failed for job in self.jobs)

    def finish(self, name: str, ok: bool = True, why: str = "") -> list[str]:
        """Record a section's end; a failure skips its dependants (returned, in order)."""
        self.lent.pop(name, None)
        if ok:
            self.done.add(name)
            return []
        self.failed[name] = why or "failed"
        skipped = []
        for job in self.jobs:                                  # dependency order: one pass is transitive
            if job.name not in self.failed and job.name not in self.started and any(
                    d in self.failed for d in job.depends_on):
                self.failed[job.name] = f"skipped: {', '.join(d for d in job.depends_on if d in self.failed)} failed"
                skipped.append(job.name)
        return skipped

    def abandon(self, why: str) -> None:
        """Stop starting sections (the first failure, without keep-going): those not started are skipped."""
        for job in self.jobs:
            if job.name not in self.started and job.name not in self.failed:
                self.failed[job.name] = why

    # ---- decisions --------------------------------------------------------------------------------------
    def _ready(self, name: str) -> bool:
        job = self.by_name[name]
        if name in self.started or name in self.failed:
            return False
        if job.early:
            return all(d in self.started or d not in self.by_name for d in job.depends_on)
        return all(d in self.done or d not in self.by_name for d in job.depends_on)

    def lend(self, name: str, gpus: Sequence[int]) -> None:
        """Record that running section `name` spreads work over `gpus` (besides its own) until it ends."""
        if name in self.running():
            self.lent[name] = tuple(sorted(set(gpus)))

    def remaining(self, now: float) -> list[float]:
        """Expected seconds of work left on each GPU."""
        return work_left({name: (s.gpu, s.at, self.by_name[name].expected_s) for name, s in self.running().items()},
                         self.gpus, now)

    def busy(self, but: str = "") -> list[int]:
        """Sections on each GPU (see `occupancy`)."""
        return occupancy(self.gpus, {name: s.gpu for name, s in self.running().items()}, self.lent, but)

    def place(self, now: float) -> list[tuple[str, int]]:
        """The sections to start now and the GPU of each (recorded as started)."""
        left = self.remaining(now)
        count = self.busy()
        lent = set(lent_gpus(self.running(), self.lent))
        out: list[tuple[str, int]] = []
        while True:
            ready = sorted((j.name for j in self.jobs if self._ready(j.name)), key=lambda n: -self.priority[n])
            free = [g for g in range(self.gpus) if count[g] < self.per_gpu]
            if not ready or not free:
                return out
            name = ready[0]
            gpu = min(free, key=lambda g: (g in lent, left[g], g))        # a lent GPU only when no other has room
            self.started[name] = Started(gpu, now)
            left[gpu] += self.by_name[name].expected_s
            count[gpu] += 1
            out.append((name, gpu))

    def spares(self, name: str) -> list[int]:
        """GPUs besides `name`'s own that it could spread work over now (see `spare_gpus`)."""
        return spare_gpus(self.busy(but=name), self.started[name].gpu)


def lent_gpus(running: Mapping[str, object], loans: dict[str, Sequence[int]], but: str = "") -> list[int]:
    """The GPUs lent to running sections, once per loan (the loans of sections that ended and of `but`,
    a section asking again for its own, do not count)."""
    return [gpu for name, lent in loans.items() if name in running and name != but for gpu in lent]


def occupancy(gpus: int, running: dict[str, int], loans: dict[str, Sequence[int]], but: str = "") -> list[int]:
    """Sections on each GPU: those running there (name -> GPU) and those it is lent to (`lent_gpus`)."""
    count = [0] * gpus
    for gpu in [*running.values(), *lent_gpus(running, loans, but)]:
        count[gpu] += 1
    return count


def spare_gpus(busy: Sequence[int], own: int) -> list[int]:
    """The GPUs other than `own` with no section on them (none running there, none lent to another)."""
    return [g for g in range(len(busy)) if g != own and busy[g] == 0]


@dataclass(frozen=True)
class Timeline:
    start: dict[str, float]
    end: dict[str, float]
    gpu: dict[str, int]

    @property
    def wall_s(self) -> float:
        return max(self.end.values(), default=0.0)

    def together(self, a: str, b: str) -> float:
        """Seconds that sections a and b ran at the same time on the same GPU."""
        if self.gpu[a] != self.gpu[b]:
            return 0.0
        return max(0.0, min(self.end[a], self.end[b]) - max(self.start[a], self.start[b]))


def simulate(jobs: list[Job], durations: dict[str, float], gpus: int, per_gpu: int, startup_s: float = 0.0,
             step_s: float = 0.5) -> Timeline:
    """Play a run: each section needs durations[name] seconds of a GPU to itself, and a GPU shared by k
    sections gives each 1/k of it. An early section that has done its own work waits for its
    dependencies without taking a share. Placement follows `Planner` with the jobs' expected times."""
    planner = Planner(jobs, gpus, per_gpu)
    work = dict(durations)
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    now = startup_s
    while not planner.finished():
        placed = planner.place(now)
        for name, _ in placed:
            start[name] = now
        active = [n for n in planner.running() if work[n] > 0]
        waiting = [n for n in planner.running() if work[n] <= 0]
        if not active and not waiting and not placed:
            raise RuntimeError("no section can start: a dependency cycle or a missing section")
        for name in waiting:                              # done with its own work: ends when its inputs are there
            if all(d in planner.done for d in planner.by_name[name].depends_on):
                planner.finish(name)
                end[name] = now
        share = {g: sum(1 for n in active if planner.started[n].gpu == g) for g in range(gpus)}
        for name in active:
            work[name] -= step_s / share[planner.started[name].gpu]
        now += step_s
        for name in active:
            if work[name] <= 0 and all(d in planner.done for d in planner.by_name[name].depends_on):
                planner.finish(name)
                end[name] = now
    return Timeline(start, end, {n: s.gpu for n, s in planner.started.items()})
