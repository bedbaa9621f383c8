"""Fashion-MNIST end to end on the CPU in the quick profile: one flag, a results folder of its own,
manifests that name the dataset and its classes, and pages that say which dataset they show."""
from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from experiments import cli
from experiments.core.data import data_fingerprint
from experiments.pipeline import staleness
from generator import build
from generator.inputs import load_results

SECTIONS = ["model", "noising", "single-step-denoiser", "classifier"]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory, data_root):
    """Three sections run on Fashion-MNIST by `python -m experiments run ... --dataset fashion-mnist`,
    from a project folder of their own (the default results folder is relative to it)."""
    root = tmp_path_factory.mktemp("fashion")
    cwd = Path.cwd()
    try:
        import os

        os.chdir(root)
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["run", *SECTIONS, "--dataset", "fashion-mnist", "--profile", "quick", "--device", "cpu",
                      "--no-progress"])
            raise SystemExit(0)
    finally:
        os.chdir(cwd)
    assert exit_info.value.code == 0
    return root


def test_results_go_to_their_own_folder_and_name_the_dataset(fashion, data_root):
    results = fashion / "results" / "fashion-mnist-quick"
    assert sorted(p.name for p in results.iterdir() if p.is_dir()) == sorted(SECTIONS)
    assert not (fashion / "docs").exists() and not (fashion / "results" / "mnist-quick").exists()
    assert list((fashion / ".work" / "fashion-mnist-quick" / "classifier").glob("*/model.json"))   # keyed folder
    for name in SECTIONS:
        dataset = json.loads((results / name / "manifest.json").read_text())["dataset"]
        assert dataset["name"] == "fashion-mnist" and dataset["title"] == "Fashion-MNIST"
        assert dataset["classes"][7] == "sneaker"
        assert dataset["fingerprint"] == data_fingerprint(data_root, "fashion-mnist") != data_fingerprint(data_root)
    summary = json.loads((results / "summary.json").read_text())
    assert summary["dataset"] == "fashion-mnist" and summary["classes"][9] == "ankle boot"
    classifier = json.loads((results / "classifier" / "manifest.json").read_text())
    per_class = next(t for t in classifier["tables"] if t["key"] == "per_class")
    assert per_class["columns"][:2] == ["label", "class"] and per_class["rows"][7][:2] == [7, "sneaker"]
    assert classifier["metrics"]["test_images"]["value"] == 500            # the Fashion-MNIST test sample
    assert classifier["metrics"]["test_accuracy"]["value"] > 0.3           # it learned (chance: 10 %)
    for name in SECTIONS:                                                  # alt texts speak of items
        manifest = json.loads((results / name / "manifest.json").read_text())
        words = [f["alt"] for f in manifest["figures"]] + [m["label"] for m in manifest["metrics"].values()]
        assert not [w for w in words if "digit" in w], name


def test_the_site_says_fashion_mnist_on_every_page(fashion, tmp_path):
    """The site of Part 1's two sections (the classifier's page links to the evaluation and the model
    page to Part 2, which this short run leaves out, so `build-site` itself would stop and name them)."""
    results = fashion / "results" / "fashion-mnist-quick"
    opts = build.BuildOptions(results=results, site_dir=tmp_path / "site")
    shown = SECTIONS[1:3]
    loaded = load_results(results, shown)
    assert loaded.shown == "Fashion-MNIST, quick profile"
    staging = build._render_and_build(opts, loaded, staleness.statuses(loaded.manifests), lambda line: None)
    build.site.discard(staging)
    pages = sorted((tmp_path / "site").rglob("index.html"))
    assert {p.parent.name for p in pages} >= {*shown, "site", "performance", "reproduce"}
    for page in pages:
        html = unescape(page.read_text(encoding="utf-8"))
        title = re.search(r"<title>(.*?)</title>", html).group(1)
        assert "Fun with Diffusion Models · Fashion-MNIST, quick profile" in title, (page, title)
        assert "computed from the recorded Fashion-MNIST results" in html
    home = unescape((tmp_path / "site" / "index.html").read_text(encoding="utf-8"))
    assert "These pages show Fashion-MNIST, quick profile" in home and "7 sneaker" in home
    noising = unescape(next(p for p in pages if p.parent.name == "noising").read_text(encoding="utf-8"))
    assert "Grid of Fashion-MNIST test items" in noising
