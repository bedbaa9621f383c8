"""Options that `python -m experiments` and `build-site` share, defined once, and the rules behind them.

One rule for `run`, `writeup` and `build-site`: the device is `auto` (a CUDA GPU when one is visible,
else the CPU); the profile and dataset are those given, else those of the results already in the
results folder, else full and MNIST; the results folder is the one given, else that dataset's and
profile's own (experiments/pipeline/destination.py). A full-profile run on the CPU says roughly how
long it takes and asks first (`--yes` skips the question).
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click

from experiments.core.data import DATASETS, ENV_VAR
from experiments.errors import UserError

if TYPE_CHECKING:
    import torch

PATH = click.Path(path_type=Path)
DATASET_KEY = ("data", "dataset")          # --set data.dataset=... names the run's dataset
CONFIRM_ABOVE_S = 600                      # a CPU run expected to take longer than this asks first


def package_version() -> str:
    try:
        return metadata.version("fun-with-diffusion")
    except metadata.PackageNotFoundError:     # a checkout run without installing it
        return "unknown (not installed)"


def version_option(f: Callable) -> Callable:
    return click.version_option(package_version(), "--version", message="%(prog)s %(version)s",
                                help="Show the version and exit.")(f)


profile_option = click.option(
    "--profile", default=None, metavar="full|quick",
    help="full (reference hyperparameters) or quick (tiny, minutes on a CPU). "
         "Default: the profile of the results already in the results folder, else full.")
dataset_option = click.option(
    "--dataset", default=None, type=click.Choice(list(DATASETS)),
    help="Dataset every section trains and measures on (same as --set data.dataset=...). "
         "Default: that of the results already in the results folder, else mnist.")
device_option = click.option(
    "--device", default="auto", show_default=True,
    help="auto (a CUDA GPU when one is visible, else the CPU), cpu, or cuda[:N].")
data_root_option = click.option(
    "--data-root", type=PATH, default=None,
    help=f"Folder holding the dataset: torchvision's layout (MNIST/raw, FashionMNIST/raw) or its four IDX "
         f"files. Default: ${ENV_VAR}, else ~/.cache/fundiff/data.")
yes_option = click.option(
    "--yes", "-y", is_flag=True, help="Start a full-profile run on the CPU without asking (it takes hours).")
replace_option = click.option(
    "--replace", is_flag=True,
    help="Let this run replace results of another dataset or profile in the results folder "
         "(their manifests are archived first).")
work_dir_option = click.option("--work-dir", default=Path(".work"), show_default=True, type=PATH,
                               help="Checkpoints folder (not committed); one subfolder per dataset and profile.")
OUT_HELP = ("Results folder (one subfolder per section). Default: docs/results for MNIST in the full profile, "
            "results/<dataset>-<profile> otherwise.")


def take_dataset(flag: str | None, overrides: dict) -> tuple[str | None, dict]:
    """The run's dataset from --dataset or `data.dataset` in --set/--config (removed from the overrides:
    it is the whole run's, not one section's); both given and different is an error."""
    data = overrides.get(DATASET_KEY[0])
    if not isinstance(data, dict) or DATASET_KEY[1] not in data:
        return flag, overrides
    rest = {k: v for k, v in data.items() if k != DATASET_KEY[1]}
    value = str(data[DATASET_KEY[1]])
    if flag is not None and flag != value:
        raise UserError(f"--dataset {flag} and data.dataset={value} disagree; give one")
    trimmed = {k: v for k, v in overrides.items() if k != DATASET_KEY[0]}
    return value, ({**trimmed, DATASET_KEY[0]: rest} if rest else trimmed)


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.0f} h" if hours >= 2 else f"{seconds / 60:.0f} min"


def _interactive() -> bool:
    return sys.stdin.isatty()


def confirm_full_on_cpu(names: list[str], profile: str, device: "torch.device | str", yes: bool = False) -> None:
    """Before a full-profile run on the CPU: say roughly how long it takes and ask (or need --yes).
    Given to the runner as RunOptions.confirm (with yes bound), so bad input is reported first."""
    from experiments.pipeline import estimate
    from experiments.pipeline.runner import resolve_device

    if yes or profile != "full" or resolve_device(str(device)).type != "cpu":
        return
    seconds = estimate.cpu_seconds(names)
    if seconds < CONFIRM_ABOVE_S:
        return
    what = (f"a full-profile run of {', '.join(names)} on the CPU takes roughly {_duration(seconds)} here "
            f"(the GPU times recorded in docs/results, scaled by this CPU's training speed)")
    if not _interactive():
        raise UserError(f"{what}; pass --yes to start it anyway, or --profile quick for a CPU-sized run")
    if not click.confirm(f"{what}. Start it?", default=False, err=True):
        raise UserError("not started; --profile quick runs the same sections in minutes on a CPU")
