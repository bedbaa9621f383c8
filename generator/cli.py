"""Command line: `build-site [options]` (= `python -m generator build [options]`)."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from experiments.cli import run_click
from experiments.cli_options import (confirm_full_on_cpu, data_root_option, dataset_option, device_option,
                                     profile_option, version_option, work_dir_option, yes_option)
from experiments.errors import UserError
from experiments.pipeline import destination
from experiments.pipeline.runner import check_output_folder
from generator import build as pipeline
from experiments.pipeline import archive
from generator import TEMPLATES_DIR, checks, lock, preview, readme, site, unpack

PATH = click.Path(path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_option
def cli() -> None:
    """Build the writeup website from the section results."""


class BuildCommand(click.Command):
    """`build` is what `build-site` runs without a subcommand: its usage names the others too."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        program = ctx.find_root().info_name
        others = "|".join(name for name in cli.commands if name != self.name)
        formatter.write_usage(program, f"[{self.name}] [OPTIONS]")
        formatter.write_usage(program, f"{{{others}}} [ARGS]...", prefix="       ")


@cli.command("build", cls=BuildCommand)
@click.option("--results", default=None, type=PATH,
              help="Results folder to build from (one subfolder per section). Default: docs/results for MNIST "
                   "in the full profile, results/<dataset>-<profile> when --dataset or --profile names another.")
@click.option("--site-dir", default=Path("site"), show_default=True, type=PATH, help="Where the site goes.")
@profile_option
@dataset_option
@device_option
@data_root_option
@work_dir_option
@click.option("--status", "status_only", is_flag=True, help="List every section as fresh, stale (why) or missing.")
@click.option("--rerun", multiple=True, metavar="SECTION",
              help="Rerun SECTION, then rebuild (repeatable; `all`, or `stale` for everything out of date).")
@click.option("--dry-run", is_flag=True, help="Say what would run and be built, change nothing.")
@click.option("--run-missing", is_flag=True, help="Run sections whose results are missing instead of failing.")
@click.option("--serve", is_flag=True, help="After building, preview with `mkdocs serve`.")
@click.option("--dev-addr", default="127.0.0.1:8000", show_default=True, help="Address for --serve.")
@click.option("--publish", is_flag=True, help="After building, deploy with `mkdocs gh-deploy`.")
@click.option("--templates", default=TEMPLATES_DIR, type=PATH, hidden=True, help="Jinja templates folder.")
@click.option("--allow-outside", is_flag=True,
              help="Allow a --site-dir outside the project folder (also: FUNDIFF_ALLOW_OUTSIDE=1).")
@yes_option
@version_option
def build_cmd(results: Path | None, site_dir: Path, profile: str | None, dataset: str | None, device: str,
              data_root: Path | None, work_dir: Path, status_only: bool, rerun: tuple[str, ...], dry_run: bool,
              run_missing: bool, serve: bool, dev_addr: str, publish: bool, templates: Path, allow_outside: bool,
              yes: bool) -> None:
    """Render a page per section from its results and build the MkDocs site into --site-dir.

    Also: `build-site check [SITE]` (links, images, alt text of a built site),
    `build-site screenshot [SITE]` (the README's picture of the index page),
    `build-site readme` (the README's headline numbers, from summary.json),
    `build-site archive SECTION` (keep a run's manifest before a rerun replaces it) and
    `build-site unpack TARBALL` (results packed on a GPU machine, swapped in with the old runs archived).
    """
    if serve:
        site.check_dev_addr(dev_addr)            # before anything runs
    target = destination.resolve(results, dataset, profile)
    opts = pipeline.BuildOptions(results=target.results, site_dir=site_dir, profile=profile, device=device,
                                 data_root=data_root, work_dir=work_dir, rerun=rerun, run_missing=run_missing,
                                 dry_run=dry_run, templates=templates, allow_outside=allow_outside,
                                 dataset=target.dataset, confirm=functools.partial(confirm_full_on_cpu, yes=yes))
    if status_only:
        for line in pipeline.status_lines(opts):
            click.echo(line)
        return
    if serve and publish:
        raise UserError("--serve and --publish do not go together: preview first, then publish")
    staging = pipeline.build(opts, click.echo)
    if staging is None:
        return
    try:
        if publish:
            click.echo("publishing with mkdocs gh-deploy")
            site.publish(staging)
        elif serve:
            site.serve(staging, dev_addr)
    finally:
        site.discard(staging)


@cli.command("archive")
@click.argument("sources", nargs=-1, required=True, metavar="SECTION|MANIFEST...")
@click.option("--results", default=Path("docs/results"), show_default=True, type=PATH,
              help="Results folder; the archive is its archive/ subfolder.")
@click.option("--allow-outside", is_flag=True, help="Allow a --results folder outside the project folder.")
def archive_cmd(sources: tuple[str, ...], results: Path, allow_outside: bool) -> None:
    """Keep a run's manifest before its results are replaced: a SECTION's current manifest, or a
    MANIFEST file from elsewhere (e.g. an exploratory run with --set). Pages compare against them."""
    check_output_folder(results, "results folder", allow_outside)
    for source in sources:
        path, new = archive.archive(results, source)
        click.echo(f"{'archived' if new else 'already archived'}: {path}")


@cli.command("unpack")
@click.argument("tarball", type=PATH)
@click.option("--results", default=Path("docs/results"), show_default=True, type=PATH, help="Results folder.")
@click.option("--only", multiple=True, metavar="SECTION", help="Take only this section from the tarball (repeatable).")
@click.option("--site-dir", default=Path("site"), show_default=True, type=PATH,
              help="The site of this tree: a build-site running on it holds the same lock.")
@click.option("--allow-outside", is_flag=True, help="Allow a --site-dir outside the project folder.")
@click.option("--replace", is_flag=True,
              help="Take results of another dataset or profile than those in --results (theirs are archived first).")
def unpack_cmd(tarball: Path, results: Path, only: tuple[str, ...], site_dir: Path, allow_outside: bool,
               replace: bool) -> None:
    """Swap in the section results of a TARBALL packed on another machine (e.g. a GPU job): every
    member and manifest is checked first, the replaced runs' manifests are archived, summary.json is
    rewritten."""
    check_output_folder(results, "results folder", allow_outside)
    site.check_site_dir(site_dir, allow_outside)  # its lock file goes beside it
    with lock.acquire(site_dir):                 # not while a build reads these results
        done = unpack.unpack(tarball, results, only, replace)
    for item in done:
        kept = f"; the previous run's manifest is in {item.archived}" if item.archived else ""
        click.echo(f"unpacked {item.section} ({item.run_id}){kept}")
    click.echo(f"rewrote {results / 'summary.json'}; `build-site --status` says what is fresh")


@cli.command("check")
@click.argument("site_dir", type=PATH, default=Path("site"))
def check_cmd(site_dir: Path) -> None:
    """Check a built site: images and internal links resolve, every image has alt text."""
    problems = checks.check_site(site_dir)
    for line in problems:
        click.echo(line)
    if problems:
        raise UserError(f"{len(problems)} problem(s) in {site_dir}")
    click.echo(f"{site_dir}: every image and internal link resolves; every image has alt text")


@cli.command("screenshot")
@click.argument("site_dir", type=PATH, default=Path("site"))
@click.option("--out", default=Path("docs/assets/screenshot.png"), show_default=True, type=PATH,
              help="Where the PNG goes.")
def screenshot_cmd(site_dir: Path, out: Path) -> None:
    """Take a PNG of the built site's index page with headless chromium (for the README)."""
    path = preview.screenshot(site_dir, out)
    click.echo(f"wrote {path} ({path.stat().st_size // 1024} KB)")


@cli.command("readme")
@click.option("--results", default=Path("docs/results"), show_default=True, type=PATH,
              help="Results folder whose summary.json gives the numbers.")
@click.option("--readme", "readme_path", default=Path("README.md"), show_default=True, type=PATH,
              help="The README holding the headline block.")
@click.option("--check", is_flag=True, help="Change nothing; fail when the block is out of date.")
def readme_cmd(results: Path, readme_path: Path, check: bool) -> None:
    """Rewrite the README's headline numbers from summary.json (only the text between its markers)."""
    if check:
        if not readme.is_current(readme_path, results, TEMPLATES_DIR):
            raise UserError(f"{readme_path}'s headline numbers differ from {results / 'summary.json'}; "
                            "run `build-site readme`")
        click.echo(f"{readme_path}: the headline numbers match {results / 'summary.json'}")
        return
    changed = readme.update(readme_path, results, TEMPLATES_DIR)
    click.echo(f"{'rewrote' if changed else 'already up to date:'} the headline numbers in {readme_path}")


def main(argv: list[str] | None = None) -> None:
    """Entry point; anything that is not a subcommand means `build` (so `build-site --status` works)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in cli.commands:
        args = ["build", *args]
    run_click(cli, args, "build-site", "interrupted; the previous site is unchanged")
