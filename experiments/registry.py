"""Sections as declarative units: name, part, configs per profile, dependencies and a run function.

A section computes and records results through its `Context`; it knows nothing about HTML.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from experiments.errors import UserError

PARTS = {
    "part1": "Part 1: a single-step denoiser",
    "part2": "Part 2: diffusion models",
    "evaluation": "Evaluation",
    "part3": "Part 3: sampling loops",
    "beyond": "Beyond the reference: peer and ablations",
}
PROFILES = ("full", "quick")


@dataclass(frozen=True)
class Section:
    name: str                              # CLI and folder name, e.g. "class-conditioned"
    title: str                             # page title
    part: str                              # a key of PARTS
    summary: str                           # one sentence for the index
    profiles: dict[str, Any]               # profile name -> frozen config dataclass
    run: Callable[[Any], None]             # run(ctx): computes and records everything
    depends_on: tuple[str, ...] = ()       # sections whose outputs (checkpoints, metrics) it reads
    module_file: str = field(default="", compare=False)


_REGISTRY: dict[str, Section] = {}
_LOADED = False


def register(section: Section) -> Section:
    frame = inspect.stack()[1]
    section = Section(**{**section.__dict__, "module_file": section.module_file or frame.filename})
    if section.part not in PARTS:
        raise ValueError(f"unknown part {section.part!r} for {section.name}")
    _REGISTRY[section.name] = section
    return section


def _load() -> None:
    global _LOADED
    if not _LOADED:
        importlib.import_module("experiments.sections")
        _LOADED = True


def all_sections() -> list[Section]:
    """Every section in dependency order (stable: the order of registration within a level)."""
    _load()
    return topological(list(_REGISTRY))


def get(name: str) -> Section:
    _load()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if "/" in name or ".." in name or "\\" in name:
        raise UserError(f"invalid section name {name!r}: section names contain no '/' or '..'")
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else "; see --list"
    raise UserError(f"unknown section {name!r}{hint}")


def resolve(names: list[str]) -> list[Section]:
    """Names (or 'all') -> sections in dependency order."""
    _load()
    if not names or "all" in names:
        return all_sections()
    chosen = [get(n).name for n in names]
    return [s for s in all_sections() if s.name in chosen]


def config_for(section: Section, profile: str) -> Any:
    if profile not in section.profiles:
        close = difflib.get_close_matches(profile, list(section.profiles), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown profile {profile!r} (choose from {', '.join(section.profiles)}){hint}")
    return section.profiles[profile]


def topological(names: list[str]) -> list[Section]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(n: str) -> None:
        if n in order:
            return
        if n in visiting:
            raise ValueError(f"dependency cycle at {n}")
        visiting.add(n)
        for dep in _REGISTRY[n].depends_on:
            visit(dep)
        visiting.discard(n)
        order.append(n)

    for n in names:
        visit(n)
    return [_REGISTRY[n] for n in order]


def dependants(name: str) -> list[str]:
    """Sections that read `name` directly or through others."""
    _load()
    out: list[str] = []
    for s in all_sections():
        if name in s.depends_on or any(d in out for d in s.depends_on):
            out.append(s.name)
    return out
