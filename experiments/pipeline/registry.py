"""The sections of the writeup: found by module name, listed in writeup order and in dependency order."""
from __future__ import annotations

import difflib
import importlib
import dataclasses
from typing import Any

from experiments.core.section import Section
from experiments.errors import UserError

PARTS = {
    "model": "The model",
    "part1": "Part 1: a single-step denoiser",
    "part2": "Part 2: diffusion models",
    "evaluation": "Evaluation",
    "part3": "Part 3: sampling loops",
    "beyond": "Beyond the reference: peer and ablations",
}
PROFILES = ("full", "quick")


# Every section module, in writeup order.
ORDER = (
    # Part 1
    "noising", "single_step_denoiser", "out_of_distribution", "pure_noise",
    # Part 2, and the networks of Parts 1 and 2 traced block by block
    "time_conditioned", "class_conditioned", "model",
    # Evaluation
    "classifier", "evaluation", "better_recipe",
    # Part 3
    "forward_process", "classical_vs_learned", "iterative_denoising", "cfg", "sdedit", "inpainting",
    "visual_anagrams", "hybrid_images",
    # Beyond the reference
    "peer", "ablations", "fast_sampling",
)

_REGISTRY: dict[str, Section] = {}


def _load() -> None:
    """Import every section module once and register its SECTION (with the module's file)."""
    if _REGISTRY:
        return
    for module_name in ORDER:
        module = importlib.import_module(f"experiments.sections.{module_name}")
        section = module.SECTION
        if section.part not in PARTS:
            raise ValueError(f"unknown part {section.part!r} for {section.name}")
        _REGISTRY[section.name] = dataclasses.replace(section, module_file=module.__file__)


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
