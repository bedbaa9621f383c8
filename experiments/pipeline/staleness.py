"""Fresh, stale or missing, like a build system: config hash, code fingerprints and the inputs' run ids.

A section is stale when its config (for its profile) or a module of its import closure changed since
its results were made (`--status` names the module),
or when a section it depends on was rerun since (its recorded `inputs[dep]` is not the dep's run_id),
or when the weights it loaded from a dependency are not the ones that dependency's recorded run
trained (`loaded_weights[dep]` against the dep's `weights_fingerprint`; older manifests lack both).
A change to the drawing code alone makes a section's figures out of date, not its numbers: it is
"redraw", cheap work on the CPU.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from experiments.pipeline import fingerprint, registry
from experiments.core.config import config_hash
from experiments.errors import UserError
from experiments.pipeline.runner import section_config

FRESH, REDRAW, STALE, MISSING = "fresh", "redraw", "stale", "missing"


@dataclass(frozen=True)
class Status:
    section: str
    state: str                                   # fresh | redraw | stale | missing
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
    reasons.extend(code_reasons(section, m))
    for dep in section.depends_on:
        dep_m = manifests.get(dep)
        if dep_m is None:
            reasons.append(f"input {dep} is missing")
        elif m["inputs"].get(dep) != dep_m["run_id"]:
            reasons.append(f"input {dep} was rerun")
        elif dep in m.get("loaded_weights", {}) and m["loaded_weights"][dep] != dep_m.get("weights_fingerprint"):
            reasons.append(f"loaded weights of {dep} from another run than its results")
    if reasons:
        return Status(section.name, STALE, tuple(reasons), m["profile"])
    redraw = drawing_reasons(section, m)
    if redraw and not all(f.get("data") for f in m["figures"]):   # figures kept no data: only a rerun helps
        return Status(section.name, STALE, tuple(redraw) + ("its figures keep no data to redraw from",),
                      m["profile"])
    return Status(section.name, REDRAW if redraw else FRESH, tuple(redraw), m["profile"])


def _changed_lines(recorded: dict | None, current: dict[str, str], what: str) -> list[str]:
    if recorded is None:
        return [f"{what} recorded before per-module fingerprints"]
    changed = fingerprint.changed(recorded, current)
    if not changed:
        return []
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return [f"{shown} changed"]


def code_reasons(section: registry.Section, manifest: dict) -> list[str]:
    """Why a section's numbers are out of date with the code, one entry naming the changed modules."""
    current = fingerprint.code_fingerprint(fingerprint.section_module(section.module_file))
    return _changed_lines(manifest.get("code"), current, "code")


def drawing_reasons(section: registry.Section, manifest: dict) -> list[str]:
    """Why a section's figures are out of date with the drawing code (numbers unaffected)."""
    current = fingerprint.drawing_fingerprint(fingerprint.section_module(section.module_file))
    return _changed_lines(manifest.get("drawing"), current, "drawing code")


def statuses(manifests: dict[str, dict], profile: str | None = None) -> list[Status]:
    """Every registered section, in dependency order; a section whose input is stale is stale too
    (its numbers were computed from results that would change on a rerun)."""
    out: dict[str, Status] = {}
    for section in registry.all_sections():
        status = section_status(section, manifests, profile)
        stale_inputs = [d for d in section.depends_on if out[d].state == STALE]
        if stale_inputs and status.state != MISSING:
            reasons = status.reasons if status.state == STALE else ()
            status = Status(section.name, STALE, reasons + tuple(f"input {d} is stale" for d in stale_inputs),
                            status.profile)
        out[section.name] = status
    return list(out.values())


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
        chosen |= {d for name in list(chosen) for d in registry.dependants(name)}
    return [n for n in order if n in chosen]


def describe(status: Status) -> str:
    """One line for --status."""
    why = f" ({'; '.join(status.reasons)})" if status.reasons else ""
    profile = f" [{status.profile}]" if status.profile else ""
    return f"{status.state:<8} {status.section}{profile}{why}"
