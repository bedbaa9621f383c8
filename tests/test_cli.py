"""The command line: --list/--help, and every bad input -> one line on stderr, non-zero exit, results kept.

Most bad inputs go through `experiments.cli.main` in-process (the same code path as `python -m
experiments`, minus the interpreter start); a few run in a real subprocess to pin the exit codes.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import cli
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PART12 = ["noising", "single-step-denoiser", "out-of-distribution", "pure-noise", "time-conditioned",
          "class-conditioned"]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones included), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def previous(quick_run, tmp_path) -> Path:
    """A results folder holding earlier results (copied from the quick run) that no failure may touch."""
    results = tmp_path / "results"
    for name in ("noising", "single-step-denoiser"):
        shutil.copytree(quick_run.results / name, results / name)
    return results


def call(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
        raise SystemExit(0)      # main returns normally on success
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_one_line_error(code: int, err: str, expected: str) -> None:
    lines = err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("error: "), lines[0]
    assert expected in lines[0], f"{expected!r} not in {lines[0]!r}"
    assert "Traceback" not in err and "internal" not in lines[0]


def subprocess_cli(args: list[str], env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=PROJECT_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# ---- help and listing ----------------------------------------------------------------------------

def test_list_and_help_in_a_subprocess():
    listing = subprocess_cli(["--list"])
    assert listing.returncode == 0, listing.stderr
    for name in PART12:
        assert name in listing.stdout
    assert "Part 1" in listing.stdout and "Part 2" in listing.stdout
    assert "(needs single-step-denoiser)" in listing.stdout
    helped = subprocess_cli(["--help"])
    assert helped.returncode == 0 and "run" in helped.stdout and "--list" in helped.stdout


def test_run_help(capsys):
    code, out, _ = call(["run", "--help"], capsys)
    assert code == 0
    for option in ("--profile", "--device", "--out", "--work-dir", "--data-root", "--seed", "--set", "--config",
                   "--resume", "--allow-outside"):
        assert option in out, option


def test_unknown_section_in_a_subprocess(previous):
    before = snapshot(previous)
    proc = subprocess_cli(["run", "class-conditoned", "--out", str(previous), "--work-dir", str(previous.parent / "w")])
    assert proc.returncode == 2
    assert_one_line_error(proc.returncode, proc.stderr, "did you mean 'class-conditioned'?")
    assert proc.stdout == ""
    assert snapshot(previous) == before


def test_output_outside_the_project_is_refused_in_a_subprocess(tmp_path):
    out = tmp_path / "results"
    proc = subprocess_cli(["run", "noising", "--out", str(out), "--work-dir", str(tmp_path / "w")],
                          env={"FUNDIFF_ALLOW_OUTSIDE": None})
    assert_one_line_error(proc.returncode, proc.stderr, "outside the project")
    assert "--allow-outside" in proc.stderr
    assert not out.exists()


def test_cuda_requested_without_a_gpu_in_a_subprocess(tmp_path):
    proc = subprocess_cli(["run", "noising", "--device", "cuda", "--out", str(tmp_path / "r"),
                           "--work-dir", str(tmp_path / "w")], env={"CUDA_VISIBLE_DEVICES": ""})
    assert_one_line_error(proc.returncode, proc.stderr, "no CUDA GPU")
    assert not (tmp_path / "r").exists()


# ---- bad inputs (in-process) -------------------------------------------------------------------

BAD_ARGS = {
    "unknown section": (["run", "nosuch-section"], "unknown section 'nosuch-section'"),
    "misspelt section": (["run", "noisng"], "did you mean 'noising'?"),
    "section with slash": (["run", "noising/../x"], "invalid section name"),
    "section with dots": (["run", "../noising"], "invalid section name"),
    "unknown profile": (["run", "noising", "--profile", "fast"], "unknown profile 'fast'"),
    "misspelt profile": (["run", "noising", "--profile", "quik"], "did you mean 'quick'?"),
    "epochs zero": (["run", "single-step-denoiser", "--set", "train.epochs=0"], "train.epochs must be > 0"),
    "epochs negative": (["run", "time-conditioned", "--set", "train.epochs=-3"], "train.epochs must be > 0"),
    "sigma negative": (["run", "single-step-denoiser", "--set", "sigma=-0.1"], "sigma must be >= 0"),
    "noising sigma negative": (["run", "noising", "--set", "sigmas=0,-0.5"], "sigmas must be >= 0"),
    "D zero": (["run", "time-conditioned", "--set", "unet.hidden=0"], "unet.hidden (D) must be >= 1"),
    "unknown key": (["run", "single-step-denoiser", "--set", "train.epoch=3"],
                    "unknown config key 'train.epoch' (did you mean train.epochs?)"),
    "unknown top key": (["run", "noising", "--set", "colour=red"], "unknown config key 'colour'"),
    "wrong type": (["run", "single-step-denoiser", "--set", "train.epochs=three"], "expected an integer"),
    "set without =": (["run", "noising", "--set", "train.epochs"], "--set expects key=value"),
    "unknown device": (["run", "noising", "--device", "tpu"], "unknown device 'tpu'"),
    "unknown option": (["run", "noising", "--epochs", "3"], "No such option"),
    "missing section": (["run"], "Missing argument"),
    "bad seed": (["run", "noising", "--seed", "x"], "'--seed'"),
    "missing dependency": (["run", "out-of-distribution", "--profile", "full"], "missing results for"),
    "bad guidance": (["run", "better-recipe", "--set", "headline.guidance=3@x"],
                     "guidance '3@x' must look like"),
    "interval past T": (["run", "better-recipe", "--set", "headline.guidance=3@5-90"],
                        "the interval must end below T"),
    "bad start": (["run", "better-recipe", "--set", "headline.start=warm"], "sampler start must be one of"),
    "no headline draw": (["run", "better-recipe", "--set", "headline_draws=0"], "headline_draws must be in 1..10"),
    "bad sweep": (["run", "evaluation", "--set", "sweep=0,x"], "guidance 'x' must look like"),
    "bad DDIM start": (["run", "fast-sampling", "--set", "starts=noise,typo"], "starts must begin with 'noise'"),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments(case, previous, capsys):
    argv, expected = BAD_ARGS[case]
    before = snapshot(previous)
    if argv[1:]:
        argv = argv + ["--out", str(previous), "--work-dir", str(previous.parent / "work")]
    code, out, err = call(argv, capsys)
    assert_one_line_error(code, err, expected)
    assert code == 2
    assert snapshot(previous) == before


YAML_CASES = {
    "not yaml": ("train: [epochs: 3\n", "is not valid YAML (line"),
    "wrong type": ("train:\n  epochs: three\n", "config train.epochs: expected an integer"),
    "float for int": ("train:\n  epochs: 2.5\n", "config train.epochs: expected an integer"),
    "scalar for block": ("train: 5\n", "config train.: expected a mapping"),
    "list at top": ("- 1\n- 2\n", "must hold a mapping"),
    "unknown key": ("trian:\n  epochs: 2\n", "unknown config key 'trian' (did you mean train?)"),
    "bad value": ("sigma: -1\n", "sigma must be >= 0"),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_bad_config_files(case, previous, tmp_path, capsys):
    text, expected = YAML_CASES[case]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    before = snapshot(previous)
    code, _, err = call(["run", "single-step-denoiser", "--config", str(config), "--out", str(previous),
                         "--work-dir", str(tmp_path / "work")], capsys)
    assert_one_line_error(code, err, expected)
    assert snapshot(previous) == before


def test_missing_config_file(previous, tmp_path, capsys):
    code, _, err = call(["run", "noising", "--config", str(tmp_path / "nope.yaml"), "--out", str(previous)], capsys)
    assert_one_line_error(code, err, "config file not found")


# ---- data -------------------------------------------------------------------------------------

def _fake_root(tmp_path: Path, data_root: Path, images: bytes | None = None, images_gz: bytes | None = None) -> Path:
    """A data root holding the test split, with the images file replaced as asked."""
    raw = tmp_path / "fake" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    real = data_root / "MNIST" / "raw"
    labels = real / "t10k-labels-idx1-ubyte"
    shutil.copyfile(labels if labels.exists() else real / "t10k-labels-idx1-ubyte.gz",
                    raw / ("t10k-labels-idx1-ubyte" if labels.exists() else "t10k-labels-idx1-ubyte.gz"))
    if images is not None:
        (raw / "t10k-images-idx3-ubyte").write_bytes(images)
    if images_gz is not None:
        (raw / "t10k-images-idx3-ubyte.gz").write_bytes(images_gz)
    return tmp_path / "fake"


def _real_images(data_root: Path) -> bytes:
    raw = data_root / "MNIST" / "raw"
    plain = raw / "t10k-images-idx3-ubyte"
    return plain.read_bytes() if plain.exists() else gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())


def _data_cases(tmp_path: Path, data_root: Path) -> dict[str, tuple[Path, str]]:
    real = _real_images(data_root)
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "data.txt"
    a_file.write_text("not a folder")
    labels = (data_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte")
    return {
        "no MNIST": (empty, "MNIST not found: expected t10k-images-idx3-ubyte[.gz]"),
        "root is a file": (a_file, "is a file"),
        "truncated IDX": (lambda: _fake_root(tmp_path, data_root, images=real[: 16 + 784 * 10 + 5]),
                          "truncated or corrupt"),
        "header only": (lambda: _fake_root(tmp_path, data_root, images=real[:6]), "too short"),
        "wrong IDX": (lambda: _fake_root(tmp_path, data_root, images=labels.read_bytes() if labels.exists()
                                         else real[:8]), "is not an MNIST images IDX file"),
        "not 28x28": (lambda: _fake_root(tmp_path, data_root, images=real[:8] + (14).to_bytes(4, "big") * 2),
                      "expected 28x28"),
        "truncated gz": (lambda: _fake_root(tmp_path, data_root, images_gz=gzip.compress(real)[:5000]),
                         "cannot extract"),
        "gz not gzip": (lambda: _fake_root(tmp_path, data_root, images_gz=b"hello, not gzip"), "cannot extract"),
    }


DATA_CASES = ["no MNIST", "root is a file", "truncated IDX", "header only", "wrong IDX", "not 28x28",
              "truncated gz", "gz not gzip"]


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_root(case, previous, tmp_path, data_root, capsys):
    root, expected = _data_cases(tmp_path, data_root)[case]
    root = root() if callable(root) else root
    before = snapshot(previous)
    code, _, err = call(["run", "noising", "--data-root", str(root), "--out", str(previous),
                         "--work-dir", str(tmp_path / "work"), "--no-progress"], capsys)
    assert_one_line_error(code, err, expected)
    assert snapshot(previous) == before


# ---- output folders -----------------------------------------------------------------------------

def test_output_folder_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("precious")
    code, _, err = call(["run", "noising", "--out", str(target), "--work-dir", str(tmp_path / "w")], capsys)
    assert_one_line_error(code, err, "is a file")
    assert target.read_text() == "precious"


def test_output_folder_inside_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = call(["run", "noising", "--out", str(tmp_path / "f" / "results"),
                         "--work-dir", str(tmp_path / "w")], capsys)
    assert_one_line_error(code, err, "cannot create output folder")


def test_work_folder_that_is_a_file(previous, tmp_path, capsys):
    (tmp_path / "work").write_text("x")
    before = snapshot(previous)
    code, _, err = call(["run", "noising", "--out", str(previous), "--work-dir", str(tmp_path / "work")], capsys)
    assert_one_line_error(code, err, "work folder")
    assert snapshot(previous) == before


@pytest.mark.parametrize("flag", ["--out", "--work-dir"])
def test_paths_outside_the_project(flag, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FUNDIFF_ALLOW_OUTSIDE", raising=False)
    outside = PROJECT_ROOT / ".." / f"fundiff-outside-{os.getpid()}"     # escapes with '..'
    other = "--work-dir" if flag == "--out" else "--out"
    code, _, err = call(["run", "noising", flag, str(outside), other, str(PROJECT_ROOT / ".work-test-unused")], capsys)
    assert_one_line_error(code, err, "outside the project")
    assert not outside.exists() and not (PROJECT_ROOT / ".work-test-unused").exists()


def test_allow_outside_flag_lets_a_run_write_there(tmp_path, monkeypatch, data_root, capsys):
    monkeypatch.delenv("FUNDIFF_ALLOW_OUTSIDE", raising=False)
    code, out, err = call(["run", "noising", "--out", str(tmp_path / "r"), "--work-dir", str(tmp_path / "w"),
                           "--data-root", str(data_root), "--allow-outside", "--no-progress"], capsys)
    assert code == 0, err
    assert (tmp_path / "r" / "noising" / "manifest.json").is_file()
    assert "wrote" in out


def test_cuda_requested_without_a_gpu(previous, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = snapshot(previous)
    code, _, err = call(["run", "noising", "--device", "cuda", "--out", str(previous)], capsys)
    assert_one_line_error(code, err, "--device cuda requested but no CUDA GPU is visible")
    assert snapshot(previous) == before
