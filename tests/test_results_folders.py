"""One results folder per dataset and profile: a quick run never replaces the writeup's results, a
replacement is explicit and archived first, and the three commands share one rule for their defaults."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import click
import pytest

from experiments import cli, cli_options
from experiments.pipeline import cpu, destination, estimate
from experiments.pipeline.archive import load_archive
from generator import cli as site_cli


def call(main, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def project(quick_run, tmp_path, monkeypatch) -> Path:
    """A project folder whose docs/results holds full-profile MNIST results of noising (relabelled quick ones)."""
    monkeypatch.chdir(tmp_path)
    writeup = tmp_path / "docs" / "results"
    shutil.copytree(quick_run.results / "noising", writeup / "noising")
    manifest = writeup / "noising" / "manifest.json"
    old = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**old, "profile": "full", "run_id": old["run_id"] + "-full"}))
    return tmp_path


def test_the_rule_for_folder_profile_and_dataset(quick_run):
    assert destination.resolve(None, None, None) == destination.Target(Path("docs/results"), "mnist", "full")
    assert destination.resolve(None, None, "quick").results == Path("results/mnist-quick")
    assert destination.resolve(None, "fashion-mnist", None).results == Path("results/fashion-mnist-full")
    assert destination.resolve(quick_run.results, None, None) == destination.Target(quick_run.results, "mnist", "quick")
    assert destination.resolve(quick_run.results, None, "full").profile == "full"     # given beats recorded
    assert destination.work_folder(Path(".work"), "mnist", "quick") == Path(".work/quick")
    assert destination.work_folder(Path(".work"), "fashion-mnist", "quick") == Path(".work/fashion-mnist-quick")


def test_a_quick_run_never_replaces_the_writeup(project, capsys):
    writeup = project / "docs" / "results"
    before = snapshot(writeup)
    code, out, _ = call(cli.main, ["run", "noising", "--profile", "quick", "--device", "cpu", "--no-progress"], capsys)
    assert code == 0 and out.strip() == "wrote results/mnist-quick/noising"
    assert snapshot(writeup) == before

    code, _, err = call(cli.main, ["run", "noising", "--profile", "quick", "--out", "docs/results"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "docs/results holds MNIST full-profile results, not MNIST quick-profile ones" in err
    assert "results/mnist-quick" in err and "--replace" in err
    assert snapshot(writeup) == before

    old = (writeup / "noising" / "manifest.json").read_bytes()
    code, _, _ = call(cli.main, ["run", "noising", "--profile", "quick", "--out", "docs/results", "--replace",
                                 "--device", "cpu", "--no-progress"], capsys)
    assert code == 0
    archived = list((writeup / "archive").glob("noising-*.json"))
    assert len(archived) == 1 and archived[0].read_bytes() == old       # archived before it was replaced
    assert json.loads((writeup / "noising" / "manifest.json").read_text())["profile"] == "quick"


def test_unpack_refuses_results_of_another_profile(project, quick_run, tmp_path, capsys):
    from experiments.pipeline.writeup import pack
    from generator.unpack import unpack

    writeup = project / "docs" / "results"
    before = snapshot(writeup)
    shutil.copytree(quick_run.results / "noising", tmp_path / "packed" / "noising")
    tarball = pack(tmp_path / "packed", tmp_path / "quick.tar.gz")
    code, _, err = call(site_cli.main, ["unpack", str(tarball), "--results", str(writeup),
                                        "--site-dir", str(project / "site")], capsys)
    assert code == 2 and "holds MNIST full-profile results, not MNIST quick-profile ones" in err
    assert snapshot(writeup) == before
    unpack(tarball, writeup, replace=True)
    assert len(load_archive(writeup)["noising"]) == 1


def test_every_replaced_manifest_is_archived(quick_run, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(quick_run.results / "noising", results / "noising")
    first = json.loads((results / "noising" / "manifest.json").read_text())
    code, _, _ = call(cli.main, ["run", "noising", "--out", str(results), "--device", "cpu", "--no-progress",
                                 "--set", "digits=2"], capsys)
    assert code == 0
    assert [m["run_id"] for m in load_archive(results)["noising"]] == [first["run_id"]]


def test_results_of_another_dataset_are_not_a_dependency(quick_run, tmp_path, capsys):
    """The evaluation judges with a classifier of its own dataset: MNIST results do not stand in."""
    results = tmp_path / "results"
    for name in ("classifier", "time-conditioned", "class-conditioned"):
        shutil.copytree(quick_run.results / name, results / name)
    code, _, err = call(cli.main, ["run", "evaluation", "--dataset", "fashion-mnist", "--out", str(results),
                                   "--work-dir", str(quick_run.work), "--replace"], capsys)
    assert code == 2
    assert "missing results for classifier, time-conditioned, class-conditioned (Fashion-MNIST, profile quick)" in err
    assert "--dataset fashion-mnist" in err


def test_weights_missing_names_the_section_to_rerun(quick_run, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(quick_run.results / "single-step-denoiser", results / "single-step-denoiser")
    code, _, err = call(cli.main, ["run", "out-of-distribution", "--out", str(results),
                                   "--work-dir", str(tmp_path / "empty")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: weights missing: rerun single-step-denoiser first (")
    assert err.rstrip().endswith("or add --run-missing")


def test_a_section_without_a_network_is_not_scaled_by_training_speed(tmp_path):
    """The noising figures take seconds anywhere: a slow GPU start-up recorded for them must not read
    as an hour of CPU work; a section that trains does count."""
    for name, trains, wall in (("noising", False, 10.4), ("time-conditioned", True, 131.9)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps(
            {"schema": 1, "section": name, "profile": "full", "wall_s": wall, "trains_model": trains,
             "loaded_weights": {}}))
    assert estimate.gpu_seconds(["noising"], tmp_path) == 0.0
    assert estimate.gpu_seconds(["time-conditioned"], tmp_path) == pytest.approx(131.9 - estimate.FIXED_S)


def test_a_full_profile_run_on_the_cpu_asks_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(estimate, "cpu_images_per_s", lambda steps=2: 10.0)
    expected = estimate.gpu_seconds(["time-conditioned"]) * estimate.gpu_images_per_s() / 10.0
    argv = ["run", "time-conditioned", "--device", "cpu", "--out", str(tmp_path / "r"), "--work-dir", str(tmp_path / "w")]
    code, _, err = call(cli.main, argv, capsys)                 # stdin is not a terminal here
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"takes roughly {expected / 3600:.0f} h here" in err and "pass --yes" in err and "--profile quick" in err
    monkeypatch.setattr(cli_options, "_interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, _, err = call(cli.main, argv, capsys)
    assert code == 2 and "Start it? [y/N]" in err and err.strip().endswith("error: not started; --profile quick "
                                                                            "runs the same sections in minutes on a CPU")
    assert not (tmp_path / "r" / "time-conditioned").exists()
    monkeypatch.setattr(estimate, "cpu_images_per_s", lambda steps=2: pytest.fail("--yes still measured"))
    cli_options.confirm_full_on_cpu(["time-conditioned"], "full", "cpu", yes=True)
    cli_options.confirm_full_on_cpu(["time-conditioned"], "quick", "cpu")                 # quick: no question


def test_cpu_threads_follow_the_usable_cpus(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cpus, threads in ((1, 1), (2, 1), (8, 4), (64, 8)):
        monkeypatch.setattr(cpu, "available_cpus", lambda n=cpus: n)
        assert cpu.cpu_threads() == threads
    monkeypatch.setattr(cpu, "available_cpus", lambda: 16)
    assert cpu.cpu_threads(jobs=4) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu.cpu_threads() == 3


def _commands():
    yield "python -m experiments", cli.cli
    yield "build-site", site_cli.cli


def _all(group: click.Group, path: str):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _all(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def test_every_option_has_help():
    for program, group in _commands():
        for path, command in [(program, group), *_all(group, program)]:
            for param in command.params:
                if isinstance(param, click.Option) and not param.hidden:
                    assert param.help, f"{path} {param.opts[0]} has no help"


def test_run_writeup_and_build_site_share_their_defaults():
    def option(command: click.Command, name: str) -> click.Option:
        return next(p for p in command.params if isinstance(p, click.Option) and name in p.opts)
    commands = [cli.cli.commands["run"], cli.cli.commands["writeup"], site_cli.cli.commands["build"]]
    for name in ("--profile", "--dataset", "--device", "--data-root", "--yes"):
        first = option(commands[0], name)
        for command in commands[1:]:
            other = option(command, name)
            assert (other.default, other.help) == (first.default, first.help), (command.name, name)


def test_version_and_one_program_name(capsys):
    code, out, _ = call(cli.main, ["--version"], capsys)
    assert code == 0 and out.strip() == f"python -m experiments {cli_options.package_version()}"
    code, out, _ = call(cli.main, ["run", "--help"], capsys)    # `fundiff` is this same main()
    assert out.startswith("Usage: python -m experiments run ")
    code, out, _ = call(site_cli.main, ["--version"], capsys)
    assert code == 0 and out.strip() == f"build-site {cli_options.package_version()}"
    code, out, _ = call(site_cli.main, ["--help"], capsys)
    usage = out.splitlines()[:2]
    assert usage[0] == "Usage: build-site [build] [OPTIONS]"
    for sub in ("archive", "unpack", "check", "screenshot"):
        assert sub in usage[1]
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert 'fundiff = "experiments.cli:main"' in pyproject
