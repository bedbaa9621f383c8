"""Command line: `python -m experiments run SECTION... --profile quick|full --device cpu|cuda`."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from experiments.pipeline import destination, registry
from experiments.cli_options import (OUT_HELP, PATH, confirm_full_on_cpu, data_root_option, dataset_option,
                                     device_option, profile_option, replace_option, take_dataset, version_option,
                                     work_dir_option, yes_option)
from experiments.core.config import load_yaml, parse_assignments
from experiments.core.data import DATASETS, data_fingerprint, default_data_root, download, source_folder
from experiments.errors import UserError
from experiments.pipeline.runner import DEFAULT_SEED, RunOptions, run, section_config


# click turns Ctrl-C into Abort; either way nothing half-written was swapped in (results.py)
INTERRUPTED = "interrupted; sections that did not finish keep their previous results"


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def print_list() -> None:
    current = None
    for s in registry.all_sections():
        if s.part != current:
            current = s.part
            click.echo(registry.PARTS[s.part])
        deps = f"  (needs {', '.join(s.depends_on)})" if s.depends_on else ""
        click.echo(f"  {s.name:<26} {s.summary}{deps}")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--list", "list_", is_flag=True, help="List the sections and exit.")
@version_option
@click.pass_context
def cli(ctx: click.Context, list_: bool) -> None:
    """Run the experiments of the writeup "Fun with Diffusion Models" and dump their results."""
    if list_:
        print_list()
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@cli.command("list")
def list_cmd() -> None:
    """List the sections, by part, with their dependencies."""
    print_list()


@cli.command("run")
@click.argument("sections", nargs=-1, required=True)
@profile_option
@dataset_option
@device_option
@click.option("--out", "out", default=None, type=PATH, help=OUT_HELP)
@work_dir_option
@data_root_option
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int, help="Seed of every random draw.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. train.epochs=3 (data.dataset=fashion-mnist: the dataset).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None, help="YAML file of config overrides.")
@click.option("--resume", is_flag=True, help="Continue from the last epoch checkpoint of an interrupted run.")
@click.option("--run-missing", is_flag=True, help="Also run dependencies whose results are missing.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--allow-outside", is_flag=True,
              help="Allow --out / --work-dir outside the project folder (also: FUNDIFF_ALLOW_OUTSIDE=1).")
@replace_option
@yes_option
def run_cmd(sections, profile, dataset, device, out, work_dir, data_root, seed, assignments, config_file, resume,
            run_missing, no_progress, allow_outside, replace, yes) -> None:
    """Run SECTIONS (names from --list, or `all`) and write their results under --out."""
    overrides = load_yaml(str(config_file)) if config_file else {}
    dataset, overrides = take_dataset(dataset, _merge(overrides, parse_assignments(assignments)))
    target = destination.resolve(out, dataset, profile)
    paths = run(list(sections), RunOptions(
        profile=target.profile, dataset=target.dataset, device=device, results_root=target.results,
        work_root=work_dir, data_root=data_root, seed=seed, overrides=overrides or None, resume=resume,
        run_missing=run_missing, show_progress=not no_progress, allow_outside=allow_outside, replace=replace,
        confirm=functools.partial(confirm_full_on_cpu, yes=yes)))
    for path in paths:
        click.echo(f"wrote {path}")


@cli.command("config")
@click.argument("section")
@click.option("--profile", default=destination.DEFAULT_PROFILE, show_default=True, metavar="full|quick",
              help="The profile whose config to print.")
def config_cmd(section: str, profile: str) -> None:
    """Print a section's config for a profile as YAML."""
    import dataclasses

    import yaml

    cfg = section_config(registry.get(section), profile, None)
    click.echo(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


@cli.command("redraw")
@click.argument("sections", nargs=-1, required=True)
@click.option("--out", "out", default="docs/results", show_default=True, type=click.Path(path_type=Path),
              help="Results folder holding the sections.")
def redraw_cmd(sections: tuple[str, ...], out: Path) -> None:
    """Redraw SECTIONS' figures from the data kept beside them (after a change to the drawing code only;
    `all` for every section with results). Runs on the CPU in seconds; numbers are not recomputed."""
    from experiments.pipeline.redraw import redraw_section
    from experiments.pipeline.results import load_manifest

    names = [s.name for s in registry.resolve(list(sections))]
    if "all" in sections:
        names = [n for n in names if load_manifest(out, n) is not None]
    for name in names:
        click.echo(f"redrew {redraw_section(out, name)} figure(s) of {name}")


def run_click(group: click.Group, args: list[str] | None, prog_name: str, interrupted: str) -> None:
    """Run a click group so that every failure is one `error:` line and a non-zero exit.

    Exit codes: 2 for user errors (bad input, usage), 130 for Ctrl-C, 1 for a bug (FUNDIFF_DEBUG=1
    shows its traceback). Shared by `python -m experiments` and `build-site`.
    """
    try:
        group.main(args=args, prog_name=prog_name, standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(f"error: {interrupted}", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line, like every other bad input
        command = exc.ctx.command_path if exc.ctx else prog_name
        click.echo(f"error: {exc.format_message()} (see `{command} --help`)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug, not a user error: one line unless asked for the traceback
        if os.environ.get("FUNDIFF_DEBUG"):
            raise
        click.echo(f"error: internal {type(exc).__name__}: {exc} (set FUNDIFF_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    run_click(cli, argv, "python -m experiments", INTERRUPTED)


@cli.command("writeup")
@click.argument("sections", nargs=-1)
@profile_option
@dataset_option
@device_option
@click.option("--out", default=None, type=PATH, help=OUT_HELP)
@work_dir_option
@data_root_option
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int, help="Seed of every random draw.")
@click.option("--pack", "pack_to", type=click.Path(path_type=Path), default=None,
              help="Also write a .tar.gz of the results (for `build-site unpack` on another machine).")
@click.option("--keep-going", is_flag=True, help="On a failure, go on with the sections that do not depend on it.")
@click.option("--gpus", type=click.IntRange(1, 64), default=None,
              help="GPUs to use (default: all visible); sections are placed on them by expected time.")
@click.option("--per-gpu", type=click.IntRange(1, 16), default=None,
              help="Sections sharing one GPU at a time (default 4; on the CPU 1, one after another).")
@click.option("--benchmark", "with_benchmark", is_flag=True,
              help="Then run the speed benchmark on the first GPU, into the results' benchmark.json (about 5 min).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@replace_option
@yes_option
def writeup_cmd(sections, profile, dataset, device, out, work_dir, data_root, seed, pack_to, keep_going, gpus,
                per_gpu, with_benchmark, no_progress, replace, yes) -> None:
    """Run every section (or SECTIONS, whose dependencies must have results) on every GPU, time it, pack it."""
    from experiments.pipeline.runner import resolve_device
    from experiments.pipeline.writeup import pack, run_writeup

    target = destination.resolve(out, dataset, profile)
    if with_benchmark and resolve_device(device).type != "cuda":
        raise UserError("--benchmark times the training and sampling loops on a GPU: it needs --device cuda")
    confirm_full_on_cpu(list(sections) or ["all"], target.profile, device, yes)
    out = target.results
    record = run_writeup(RunOptions(profile=target.profile, dataset=target.dataset, device=device,
                                    results_root=out, work_root=work_dir, data_root=data_root, seed=seed,
                                    show_progress=not no_progress, replace=replace),
                         names=list(sections) or None, gpus=gpus, per_gpu=per_gpu, keep_going=keep_going)
    for name, why in record["failed"].items():
        click.echo(f"failed: {name}: {why}", err=True)
    where = (f"{record['writeup_gpus']} GPU(s), up to {record['writeup_per_gpu']} sections each"
             if record["writeup_gpus"] else f"{record['writeup_per_gpu']} at a time")
    click.echo(f"writeup: {record['writeup_wall_s']:.1f} s on {record['writeup_device']} ({where})")
    if with_benchmark:                    # after the sections: its timings must not share the GPUs with them
        from experiments.benchmark import measure

        bench = measure(device, data_root, out / "benchmark.json", dataset=target.dataset)
        click.echo(f"benchmark: training {bench['train_speedup']:.2f}x the plain loop, 1,000 guided samples in "
                   f"{bench['sample_1000_cfg_s']:.2f} s ({out / 'benchmark.json'})")
    if pack_to:
        only = None if record["writeup_sections"] == "all" else record["writeup_sections"]
        click.echo(f"packed {pack(out, pack_to, only)}")
    if record["failed"]:
        sys.exit(1)                       # the sections that finished are packed; the run as a whole is not


@cli.group("data")
def data_cmd() -> None:
    """The datasets: fetch them (torchvision's downloader), or see where a run reads them from."""


@data_cmd.command("download")
@click.option("--dataset", "dataset", default="mnist", show_default=True, type=click.Choice([*DATASETS, "all"]),
              help="The dataset to fetch, or all of them.")
@data_root_option
def data_download_cmd(dataset: str, data_root: Path | None) -> None:
    """Fetch a dataset's four IDX files into <data root>/<MNIST|FashionMNIST>/raw (files already there are kept)."""
    for name in (list(DATASETS) if dataset == "all" else [dataset]):
        folder, fetched = download(data_root, name)
        click.echo(f"{'downloaded' if fetched else 'already there'}: {DATASETS[name].title} in {folder}")


@data_cmd.command("show")
@data_root_option
def data_show_cmd(data_root: Path | None) -> None:
    """Say, for every dataset, which files a run would read and their fingerprint (or what is missing)."""
    for name, data in DATASETS.items():
        try:
            folders = {source_folder(Path(data_root or default_data_root()), data, train) for train in (True, False)}
            click.echo(f"{data.title}: {', '.join(sorted(map(str, folders)))} (fingerprint "
                       f"{data_fingerprint(data_root, name)})")
        except UserError as exc:
            click.echo(f"{data.title}: {exc}")
