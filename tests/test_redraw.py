"""Figures keep the arrays they are drawn from; a change to the drawing code alone is redrawn on the CPU."""
from __future__ import annotations

import json
import shutil

import imageio.v3 as iio
import numpy as np
import torch

from experiments import figures
from experiments.pipeline import registry, staleness
from experiments.pipeline.redraw import redraw_section
from experiments.pipeline.results import load_manifest


def test_a_grid_redraws_identically_from_its_data(tmp_path):
    images = torch.rand(12, 1, 28, 28) * 1.4 - 0.2                 # outside [0, 1]: shown clipped
    path = tmp_path / "grid.png"
    figures.save_grid(path, images, nrow=4)
    first = iio.imread(path)
    assert figures.data_path(path).is_file()
    path.unlink()
    figures.redraw(path)
    assert np.array_equal(iio.imread(path), first)


def test_figure_data_keeps_every_kind_of_argument(tmp_path):
    rows = [torch.rand(5, 1, 28, 28), torch.rand(3, 1, 28, 28)]
    figures.save_labelled_grid(tmp_path / "rows.png", rows, ["a", "b"], ["0", "1", "2", "3", "4"])
    figures.save_line_plot(tmp_path / "plot.png", [0, 1, 5], {"FID": [3.0, 2.0, 9.5]}, "γ", "FID", "sweep",
                           hline=(1.5, "floor"), second={"ylabel": "acc", "series": {"acc": [0.5, 0.9, 1.0]}})
    figures.save_histograms(tmp_path / "hist.png", {"test": np.random.rand(50)}, "distance", "nearest")
    frames = [torch.rand(6, 1, 28, 28) for _ in range(3)]
    figures.save_gif(tmp_path / "anim.gif", frames, nrow=3)
    with np.load(figures.data_path(tmp_path / "rows.png"), allow_pickle=False) as data:
        call = json.loads(str(data["__call__"]))
        kept = figures._decode(call["args"], data)
    assert call["draw"] == "save_labelled_grid" and kept["row_labels"] == ["a", "b"]
    assert torch.allclose(kept["rows"][1], rows[1], atol=0.5 / 255)          # uint8, as displayed
    for name in ("rows.png", "plot.png", "hist.png", "anim.gif"):
        before = (tmp_path / name).stat().st_size
        (tmp_path / name).unlink()
        figures.redraw(tmp_path / name)
        assert abs((tmp_path / name).stat().st_size - before) <= 0.02 * before, name


def test_a_section_is_redrawn_in_place_and_its_status_says_why(quick_run, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(quick_run.results, results)
    manifests = {name: load_manifest(results, name) for name in ("noising", "time-conditioned")}
    manifest = manifests["time-conditioned"]
    assert manifest["figures"] and all(f["data"] in manifest["files"] for f in manifest["figures"])

    # a drawing fingerprint from other drawing code: the figures, not the numbers, are out of date
    manifest["drawing"] = {**manifest["drawing"], "experiments/figures.py": "0" * 16}
    (results / "time-conditioned" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    section = registry.get("time-conditioned")
    status = staleness.section_status(section, {"time-conditioned": manifest}, None)
    assert status.state == staleness.REDRAW and status.reasons == ("experiments/figures.py changed",)

    (results / "time-conditioned" / "samples_epoch01.png").write_bytes(b"damaged")
    assert redraw_section(results, "time-conditioned") == len(manifest["figures"])
    after = load_manifest(results, "time-conditioned")
    assert after["run_id"] == manifest["run_id"] and after["metrics"] == manifest["metrics"]
    assert staleness.section_status(section, {"time-conditioned": after}, None).state == staleness.FRESH
    assert iio.imread(results / "time-conditioned" / "samples_epoch01.png").ndim == 2

    # figures that kept no data cannot be redrawn: only a rerun helps
    for figure in manifest["figures"]:
        figure["data"] = None
    assert staleness.section_status(section, {"time-conditioned": manifest}, None).state == staleness.STALE


def test_the_loss_curve_average_is_centred_and_follows_an_exponential_fall():
    losses = np.exp(-np.arange(200) / 20.0)                  # a clean exponential fall
    steps, arithmetic = figures.smooth(losses, 21)
    _, geometric = figures.smooth(losses, 21, geometric=True)
    assert steps[0] == 11 and len(steps) == len(arithmetic) == 180  # centred: step 11 is the middle of 1..21
    np.testing.assert_allclose(geometric, losses[steps - 1], rtol=1e-9)   # on a log axis it lies on the curve
    assert np.all(arithmetic > losses[steps - 1])            # an arithmetic mean would sit above it
