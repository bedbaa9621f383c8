"""Fresh, stale or missing, like a build system: config hash, code hash and the run ids of the inputs.

A section is stale when its config (for its profile) or its code changed since its results were made,
or when a section it depends on was rerun since (its recorded `inputs[dep]` is not the dep's run_id),
or when the weights it loaded from a dependency are not the ones that dependency's recorded run
trained (`loaded_weights[dep]` against the dep's `weights_fingerprint`; older manifests lack both).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from experiments import provenance, registry
from experiments.config import config_hash
from experiments.errors import UserError
from experiments.runner import section_config
from experiments.writeup import with_dependants

FRESH, STALE, MISSING = "fresh", "stale", "missing"


@dataclass(frozen=True)
class Status:
    section: str
    state: str                                   # fresh | stale | missing
    reasons: tuple[str, ...] = field(default=())  # why stale (empty otherwise)
    profile: str | None = None                   # the profile the results were made in


def default_profile(manifests: dict[str, dict]) -> str:
    """The profile most existing results use ('quick' when there are none)."""
    counts = Counter(m["profile"] for m in manifests.values())
    return counts.most_common(1)[0][0] if counts else "quick"


def section_status(section: registry.Section, manifests: dict[str, dict], profile: str | None) -> Status:
    """Compare one section's recorded hashes and inputs with the current code, config and results."""
    m = manifests.get(section.name)
    if m is None:
        return Status(section.name, MISSING)
    reasons = []
    wanted = profile or m["profile"]
    if m["profile"] != wanted:
        reasons.append(f"made in the {m['profile']} profile, {wanted} asked")
    else:
        try:
            current = config_hash(section_config(section, wanted, None))
        except UserError:
            current = None
        if current is None:
            reasons.append(f"profile {wanted} no longer exists")
        elif current != m["config_hash"]:
            reasons.append("config changed")
    if provenance.code_hash(section.module_file) != m["code_hash"]:
        reasons.append("code changed")
    for dep in section.depends_on:
        dep_m = manifests.get(dep)
        if dep_m is None:
            reasons.append(f"input {dep} is missing")
        elif m["inputs"].get(dep) != dep_m["run_id"]:
            reasons.append(f"input {dep} was rerun")
        elif dep in m.get("loaded_weights", {}) and m["loaded_weights"][dep] != dep_m.get("weights_fingerprint"):
            reasons.append(f"loaded weights of {dep} from another run than its results")
    return Status(section.name, STALE if reasons else FRESH, tuple(reasons), m["profile"])


def statuses(manifests: dict[str, dict], profile: str | None = None) -> list[Status]:
    """Every registered section, in dependency order."""
    return [section_status(s, manifests, profile) for s in registry.all_sections()]


def resolve_reruns(names: list[str], current: list[Status]) -> list[str]:
    """--rerun arguments -> section names in dependency order.

    `all` is every section; `stale` is every stale or missing section plus, transitively, whatever
    depends on one of them (rerunning a dependency would stale its dependants anyway).
    """
    order = [s.name for s in registry.all_sections()]
    if "all" in names:
        return order
    chosen: set[str] = set()
    for name in names:
        if name == "stale":
            chosen |= {s.section for s in current if s.state != FRESH}
        else:
            chosen.add(registry.get(name).name)     # unknown names: UserError with the closest match
    if "stale" in names:
        return with_dependants(chosen)
    return [n for n in order if n in chosen]


def describe(status: Status) -> str:
    """One line for --status."""
    why = f" ({'; '.join(status.reasons)})" if status.reasons else ""
    profile = f" [{status.profile}]" if status.profile else ""
    return f"{status.state:<8} {status.section}{profile}{why}"
