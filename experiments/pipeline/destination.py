"""Where a run's results go: one folder per dataset and profile, never over another's results.

`docs/results` holds the writeup: MNIST in the full profile. A run in another profile or on another
dataset goes by default to `results/<dataset>-<profile>/` (git-ignored). One rule fills in what the
command line leaves out, for `run`, `writeup` and `build-site` alike: the profile and dataset are
those of the results already in the given folder, else full and MNIST; the folder is the one of that
dataset and profile. A run writes into a folder only when the results there are of its own dataset
and profile (or there are none), unless told to replace them (`--replace`); every manifest a run
replaces is archived first (experiments/pipeline/archive.py).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from experiments.core.data import DEFAULT_DATASET, Dataset, dataset_of, get_dataset   # the site reads them here
from experiments.errors import UserError
from experiments.pipeline import registry
from experiments.pipeline.results import load_manifest

__all__ = ["WRITEUP", "OTHERS", "DEFAULT_PROFILE", "DEFAULT_DATASET", "Dataset", "dataset_of", "get_dataset",
           "Kind", "Target", "default_folder", "work_folder", "recorded", "describe", "resolve", "check"]

WRITEUP = Path("docs/results")     # the published writeup: MNIST, full profile
OTHERS = Path("results")           # every other dataset and profile, one subfolder each (git-ignored)
DEFAULT_PROFILE = "full"

Kind = tuple[str, str]             # (dataset, profile)


@dataclass(frozen=True)
class Target:
    results: Path
    dataset: str
    profile: str


def default_folder(dataset: str, profile: str) -> Path:
    """docs/results for the MNIST full-profile writeup, results/<dataset>-<profile> for anything else."""
    return WRITEUP if (dataset, profile) == (DEFAULT_DATASET, DEFAULT_PROFILE) else OTHERS / f"{dataset}-{profile}"


def work_folder(work_root: Path, dataset: str, profile: str) -> Path:
    """Checkpoints of a dataset and profile: .work/<profile> for MNIST, .work/<dataset>-<profile> otherwise."""
    return Path(work_root) / (profile if dataset == DEFAULT_DATASET else f"{dataset}-{profile}")


def recorded(results: Path) -> Counter[Kind]:
    """How many sections in `results` hold results of each (dataset, profile); unreadable ones are skipped
    (the run reports them when it reads them)."""
    kinds: Counter[Kind] = Counter()
    if not Path(results).is_dir():
        return kinds
    for section in registry.all_sections():
        try:
            manifest = load_manifest(results, section.name)
        except UserError:
            continue
        if manifest is not None and isinstance(manifest.get("profile"), str):
            kinds[(dataset_of(manifest), manifest["profile"])] += 1
    return kinds


def describe(kind: Kind) -> str:
    """('fashion-mnist', 'quick') -> 'Fashion-MNIST quick-profile'."""
    return f"{get_dataset(kind[0]).title} {kind[1]}-profile"


def resolve(results: Path | None, dataset: str | None, profile: str | None) -> Target:
    """The results folder, dataset and profile of a command: what was given, the rest by the rule above."""
    if dataset is not None:
        get_dataset(dataset)                       # an unknown name fails here, with the closest match
    if results is not None:
        common = recorded(results).most_common(1)
        dataset = dataset or (common[0][0][0] if common else DEFAULT_DATASET)
        profile = profile or (common[0][0][1] if common else DEFAULT_PROFILE)
        return Target(Path(results), dataset, profile)
    dataset, profile = dataset or DEFAULT_DATASET, profile or DEFAULT_PROFILE
    return Target(default_folder(dataset, profile), dataset, profile)


def check(results: Path, dataset: str, profile: str, replace: bool) -> None:
    """Refuse to write one dataset's or profile's results into a folder holding another's."""
    others = sorted(k for k in recorded(results) if k != (dataset, profile))
    if not others or replace:
        return
    held = " and ".join(describe(k) for k in others)
    own = default_folder(dataset, profile)
    where = f"its own folder is {own}" if Path(results) != own else "move them elsewhere"
    raise UserError(f"{results} holds {held} results, not {describe((dataset, profile))} ones: {where}, "
                    f"or pass --replace to replace them (their manifests are archived first)")
