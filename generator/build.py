"""The build-site pipeline: status -> reruns -> pages -> MkDocs -> checks -> swap into site/."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from experiments.pipeline.destination import DEFAULT_DATASET
from experiments.pipeline import registry, runner
from experiments.errors import UserError
from experiments.pipeline import staleness
from experiments.pipeline.redraw import redraw_section
from generator import TEMPLATES_DIR, checks, lock, site
from generator.inputs import BENCHMARK, SUMMARY, Results, load_results
from generator.pages import Pages
from generator.render import Renderer


@dataclass(frozen=True)
class BuildOptions:
    results: Path = Path("docs/results")
    site_dir: Path = Path("site")
    profile: str | None = None          # None: the profile the results were made in
    device: str = "auto"
    data_root: Path | None = None
    work_dir: Path = Path(".work")
    rerun: tuple[str, ...] = ()
    run_missing: bool = False
    dry_run: bool = False
    templates: Path = field(default=TEMPLATES_DIR)
    allow_outside: bool = False         # a --site-dir outside the project (or FUNDIFF_ALLOW_OUTSIDE=1)
    dataset: str = DEFAULT_DATASET      # the dataset of reruns (that of the results folder)
    confirm: Callable | None = field(default=None, compare=False)   # RunOptions.confirm of reruns


Echo = Callable[[str], None]


def _load(opts: BuildOptions) -> Results:
    return load_results(opts.results, [s.name for s in registry.all_sections()])


def status_lines(opts: BuildOptions) -> list[str]:
    """`--status`: one line per registered section."""
    results = _load(opts)
    return [staleness.describe(s) for s in staleness.statuses(results.manifests, opts.profile)]


def _run_command(names: list[str], profile: str, opts: BuildOptions) -> str:
    """The build-site command line that runs `names` into the same results folder."""
    every = [s.name for s in registry.all_sections()]
    reruns = "--rerun all" if names == every else " ".join(f"--rerun {n}" for n in names)
    where = f" --results {opts.results}" if opts.results != BuildOptions.results else ""
    device = f" --device {opts.device}" if opts.device != "auto" else ""
    return f"build-site {reruns} --profile {profile}{device}{where}"


def _experiments(names: list[str], profile: str, opts: BuildOptions, echo: Echo) -> None:
    echo(f"running {', '.join(names)} (profile {profile}, device {opts.device})")
    t0 = time.perf_counter()
    runner.run(names, runner.RunOptions(profile=profile, device=opts.device, results_root=opts.results,
                                        work_root=opts.work_dir, data_root=opts.data_root,
                                        run_missing=opts.run_missing, dataset=opts.dataset,
                                        confirm=opts.confirm))
    echo(f"ran {len(names)} section(s) in {time.perf_counter() - t0:.1f} s")


@dataclass(frozen=True)
class Plan:
    statuses: list[staleness.Status]
    profile: str                # the profile any run uses
    to_run: list[str]           # sections to run, in dependency order
    missing: list[str]          # sections without results that will not be run


def make_plan(opts: BuildOptions, results: Results) -> Plan:
    current = staleness.statuses(results.manifests, opts.profile)
    profile = opts.profile or staleness.default_profile(results.manifests)
    to_run = staleness.resolve_reruns(list(opts.rerun), current) if opts.rerun else []
    missing = [s.section for s in current if s.state == staleness.MISSING and s.section not in to_run]
    if opts.run_missing and missing:
        to_run = [s.name for s in registry.all_sections() if s.name in {*to_run, *missing}]
        missing = []
    return Plan(current, profile, to_run, missing)


def _missing_error(plan: Plan, opts: BuildOptions) -> str:
    return (f"missing results for {', '.join(plan.missing)} in {opts.results}: make them with "
            f"`{_run_command(plan.missing, plan.profile, opts)}` (or add --run-missing)")


def build(opts: BuildOptions, echo: Echo) -> site.Staging | None:
    """Run what was asked, render and build the site, swap it into place. Returns the staging tree
    (kept for --serve/--publish; the caller discards it), or None for a dry run."""
    for name in opts.rerun:                       # fail fast on typos, before taking the lock
        if name not in ("all", "stale"):
            registry.get(name)
    site.check_site_dir(opts.site_dir, opts.allow_outside)   # never replace what build-site did not make
    if opts.dry_run:
        return _dry_run(opts, echo)
    with lock.acquire(opts.site_dir):
        site.recover(opts.site_dir)
        results = _load(opts)
        plan = make_plan(opts, results)
        if plan.missing:
            raise UserError(_missing_error(plan, opts))
        if plan.to_run:
            _experiments(plan.to_run, plan.profile, opts, echo)
            results = _load(opts)
        current = staleness.statuses(results.manifests, opts.profile)
        redraw = [s.section for s in current if s.state == staleness.REDRAW]
        if redraw:                  # only the drawing code changed: cheap, on the CPU, before rendering
            for name in redraw:
                echo(f"redrawing the figures of {name} (the drawing code changed)")
                redraw_section(opts.results, name)
            results = _load(opts)
            current = staleness.statuses(results.manifests, opts.profile)
        for s in current:
            if s.state == staleness.STALE:
                echo(f"stale: {s.section} ({'; '.join(s.reasons)}); rerun with `build-site --rerun {s.section}`")
        return _render_and_build(opts, results, current, echo)


def _render_and_build(opts: BuildOptions, results: Results, current: list[staleness.Status],
                      echo: Echo) -> site.Staging:
    t0 = time.perf_counter()
    pages = Pages(Renderer(opts.templates), results, current, results_label=str(opts.results))
    rendered = pages.render_all()               # template errors surface here, before any file is written
    staging = site.stage(opts.site_dir, opts.results, list(results.manifests), [SUMMARY, BENCHMARK],
                         rendered, pages.nav(), shown=results.shown)
    try:
        site.build(staging)
        problems = checks.check_site(staging.site)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UserError(f"built site failed its checks: {problems[0]}{more}")
        site.swap_into(staging.site, opts.site_dir)
    except BaseException:
        site.discard(staging)
        raise
    echo(f"built {len(rendered)} pages into {opts.site_dir}/ in {time.perf_counter() - t0:.1f} s")
    return staging


def _dry_run(opts: BuildOptions, echo: Echo) -> None:
    plan = make_plan(opts, _load(opts))
    for s in plan.statuses:
        echo(f"  {staleness.describe(s)}")
    if plan.to_run:
        echo(f"would run: {', '.join(plan.to_run)} (profile {plan.profile}, device {opts.device})")
        ran = set(plan.to_run)
        marked = [s.name for s in registry.all_sections()
                  if s.name not in ran and any(d in ran for d in s.depends_on)]
        if marked:
            echo(f"would mark stale (not rerun): {', '.join(marked)}")
    else:
        echo("would run no experiment")
    redraw = [s.section for s in plan.statuses if s.state == staleness.REDRAW]
    if redraw:
        echo(f"would redraw the figures of: {', '.join(redraw)} (on the CPU, from their data)")
    if plan.missing:
        echo(f"would stop: {_missing_error(plan, opts)}")
    else:
        echo(f"would build the site from {opts.results} into {opts.site_dir}/")
