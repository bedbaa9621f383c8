"""The layering that keeps improvements cheap: sections are leaves over the core library, the pipeline
and the site generator stay outside every section's code fingerprint, and a fingerprint moves exactly
when code a section uses changes (never for a comment or a docstring)."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from experiments.pipeline import fingerprint, registry

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    """The project modules a file imports at run time (type-checking-only imports aside)."""
    return set(fingerprint.imported_modules(path))


def modules_under(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_sections_are_leaves():
    sections = {p.stem for p in modules_under("experiments/sections") if p.stem != "__init__"}
    assert set(registry.ORDER) == sections
    for path in modules_under("experiments/sections"):
        for module in imports_of(path):
            assert not module.startswith("experiments.sections"), f"{path.name} imports {module}"
            assert not module.startswith("experiments.pipeline"), f"{path.name} imports {module}"


def test_the_core_never_imports_the_layers_above_it():
    for path in modules_under("experiments/core"):
        for module in imports_of(path):
            top = module.split(".")[:2]
            assert top not in (["experiments", "sections"], ["experiments", "pipeline"]), \
                f"{path.relative_to(ROOT)} imports {module}"


def test_no_closure_holds_the_pipeline_the_cli_or_the_generator():
    for section in registry.all_sections():
        files = fingerprint.code_fingerprint(fingerprint.section_module(section.module_file))
        for file in files:
            assert not file.startswith(("experiments/pipeline/", "generator/")), (section.name, file)
            assert file not in ("experiments/cli.py", "experiments/benchmark.py", "experiments/figures.py")
        assert f"experiments/sections/{Path(section.module_file).name}" in files


@pytest.fixture()
def package_copy(tmp_path, monkeypatch):
    """A copy of the experiments package that the fingerprints read instead of the real one."""
    copy = tmp_path / "experiments"
    shutil.copytree(ROOT / "experiments", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "PACKAGE_ROOT", copy)
    return copy


def all_fingerprints() -> dict[str, dict[str, str]]:
    return {s.name: fingerprint.code_fingerprint(fingerprint.section_module(s.module_file))
            for s in registry.all_sections()}


def stale_after(edit) -> set[str]:
    before = all_fingerprints()
    edit()
    after = all_fingerprints()
    return {name for name in before if before[name] != after[name]}


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_comments_docstrings_and_formatting_change_no_fingerprint(package_copy):
    training = package_copy / "core" / "training.py"

    def cosmetic():
        source = training.read_text(encoding="utf-8")
        source = source.replace('"""One training loop', '"""The one training loop', 1)     # module docstring
        source = source.replace("import torch\n", "import torch   # a comment\n\n", 1)
        training.write_text("# a header comment\n" + source + "\n\n# trailing comment\n", encoding="utf-8")

    assert stale_after(cosmetic) == set()


def test_a_newer_python_gives_the_same_fingerprints(monkeypatch):
    """Results made on a GPU machine's Python stay fresh on another: a syntax-tree field that a newer
    version adds (3.12's empty `type_params` on every function and class) changes no fingerprint."""
    before = all_fingerprints()
    for node in ("FunctionDef", "AsyncFunctionDef", "ClassDef"):
        cls = getattr(ast, node)
        monkeypatch.setattr(cls, "_fields", cls._fields + ("future_field",))
        monkeypatch.setattr(cls, "future_field", [], raising=False)
    fingerprint._parse.cache_clear()
    try:
        assert all_fingerprints() == before
        monkeypatch.setattr(ast.FunctionDef, "future_field", ["a value"])   # a field in use does count
        fingerprint._parse.cache_clear()
        assert all_fingerprints() != before
    finally:
        monkeypatch.undo()
        fingerprint._parse.cache_clear()


def test_a_real_edit_stales_exactly_the_sections_that_use_the_module(package_copy):
    users = {name for name, files in all_fingerprints().items() if "experiments/core/training.py" in files}
    assert "noising" not in users and {"single-step-denoiser", "class-conditioned"} <= users
    stale = stale_after(lambda: append(package_copy / "core" / "training.py", "\nBATCH_HINT = 128\n"))
    assert stale == users


def test_shared_training_code_stales_every_section_that_trains_with_it(package_copy):
    # train_denoiser is pure-noise's training too; train_ddpm is class-conditioned's
    stale = stale_after(lambda: append(package_copy / "core" / "denoiser.py", "\nPURE_NOISE_HINT = 1\n"))
    assert {"single-step-denoiser", "pure-noise", "out-of-distribution"} <= stale
    assert "time-conditioned" not in stale and "noising" not in stale
    stale = stale_after(lambda: append(package_copy / "core" / "ddpm.py", "\nDDPM_HINT = 1\n"))
    assert {"time-conditioned", "class-conditioned"} <= stale and "noising" not in stale


def test_the_drawing_code_is_fingerprinted_apart(package_copy):
    assert stale_after(lambda: append(package_copy / "figures.py", "\nDPI_HINT = 100\n")) == set()
    drawing = fingerprint.drawing_fingerprint("experiments.sections.noising")
    append(package_copy / "figures.py", "\nDPI_HINT = 200\n")
    assert fingerprint.changed(drawing, fingerprint.drawing_fingerprint("experiments.sections.noising")) == \
        ["experiments/figures.py"]


def test_status_names_the_module_that_changed(package_copy):
    from experiments.pipeline import staleness

    section = registry.get("time-conditioned")
    manifest = {"code": fingerprint.code_fingerprint("experiments.sections.time_conditioned")}
    assert staleness.code_reasons(section, manifest) == []
    append(package_copy / "core" / "training.py", "\nBATCH_HINT = 128\n")
    assert staleness.code_reasons(section, manifest) == ["experiments/core/training.py changed"]


def generator_imports(path: Path) -> set[str]:
    """The modules a generator file imports (its own text, not what those import in turn)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_site_generator_renders_from_results_only():
    """No module of the site generator imports section code or the core library: everything a page shows
    comes from the recorded results. It may use the pipeline (registry, staleness, results reading,
    runner), the errors and the command-line runner."""
    allowed = ("experiments.pipeline", "experiments.errors", "experiments.cli")
    for path in modules_under("generator"):
        for module in generator_imports(path):
            if module == "experiments" or not module.startswith("experiments"):
                continue
            assert not module.startswith(("experiments.sections", "experiments.core")), \
                f"{path.relative_to(ROOT)} imports {module}"
            assert module.startswith(allowed), f"{path.relative_to(ROOT)} imports {module}"


def test_build_site_reruns_through_the_experiments_entry_point():
    """`build-site --rerun` and `python -m experiments run` start runs through the same function."""
    from experiments import cli as experiments_cli
    from experiments.pipeline import runner
    from generator import build

    assert experiments_cli.run is runner.run
    assert "runner.run(" in (ROOT / "generator" / "build.py").read_text() and build.runner is runner
