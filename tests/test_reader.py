"""The typed reader every page reads results through: metrics, tables and figures by name."""
from __future__ import annotations

from generator.configview import annotated_yaml
from generator.labels import recipe_label
from generator.reader import Summary, column_key, read_run


def manifest(**extra) -> dict:
    return {"section": "x", "title": "X", "profile": "full", "seed": 42, "device": "GPU", "started_at": "2026-01-02T03:04:05Z",
            "metrics": {"fid": {"value": 5.4321, "label": "FID", "fmt": ".2f"}, "missing": {"value": None, "label": "m"}},
            "figures": [{"file": "a.png", "kind": "image", "title": "A", "caption": "old words", "alt": "an A"}],
            "tables": [{"key": "levels", "title": "Levels", "columns": ["t", "PSNR mean (dB)", "read as its digit"],
                        "rows": [[75, 20.0, 0.9], [150, 15.0, 0.5]]}], **extra}


def test_metrics_and_columns_by_name():
    run = read_run(manifest())
    assert str(run.metric("fid")) == "5.43" and run.value("fid") == 5.4321
    assert run.value("missing", 0) == 0 and run.value("absent") is None and run.metric("absent") is None
    levels = run.table("levels")
    assert [c.key for c in levels.columns] == ["t", "psnr_mean_db", "read_as_its_digit"]   # keys from labels
    assert levels.column("psnr_mean_db") == [20.0, 15.0] == levels.column("PSNR mean (dB)")  # or by label
    row = levels.first(t=150)
    assert row["read_as_its_digit"] == row.read_as_its_digit == 0.5 and levels.first(t=1) is None
    assert [r.t for r in levels.where(read_as_its_digit=0.9)] == [75]
    assert levels.select(["t", "read_as_its_digit"]).cells() == [[75, "90.0 %"], [150, "50.0 %"]]   # shares as %
    assert levels.find("psnr") == "psnr_mean_db" and levels.find("fid") is None
    assert run.figure("a.png").alt == "an A" and run.figure("b.png") is None and run.date == "2026-01-02"


def test_recorded_keys_win_over_labels():
    raw = manifest(tables=[{"key": "k", "title": "K", "columns": ["σ", "output / input"], "keys": ["sigma", "ratio"],
                            "rows": [[0.5, 30.0]]}])
    row = read_run(raw).table("k").rows[0]
    assert (row.sigma, row["ratio"], row["output / input"]) == (0.5, 30.0, 30.0)
    assert column_key("class accuracy (γ = 5)") == "class_accuracy_gamma_5"
    assert column_key("3→8 read as 8") == "3_to_8_read_as_8"


def test_summary_reads_absent_keys_as_none():
    summary = Summary({"fid_floor": 2.1, "device": "H200"})
    assert summary.fid_floor == 2.1 and summary.train_images is None and summary.value("x", 3) == 3


def test_recipes_read_as_words():
    assert recipe_label("norm=group ema_decay=0.999 epochs=80 predict=x0") == "GroupNorm + EMA, 80 epochs, predicting x₀"
    assert recipe_label("unet.norm=group train.ema_decay=0.9998 unet.dropout=0.1") == "GroupNorm + EMA 0.9998, dropout 0.1"
    assert recipe_label("norm=group epochs=80, γ = 1.5 for t in [0, 80]") == "GroupNorm, 80 epochs, γ = 1.5 for t in [0, 80]"
    assert recipe_label("reference (evaluation)") == "reference recipe"
    assert recipe_label("GroupNorm instead of BatchNorm") == "GroupNorm instead of BatchNorm"   # words stay words


def test_configuration_says_what_zero_means():
    sizes = {"train_images": 10_000, "test_images": 10_000}
    text = annotated_yaml({"data": {"train_images": 0, "test_images": 256}, "samples": 0}, sizes)
    assert text.splitlines()[0].endswith("# train_images 0 = every digit of the training split (10,000)")
    assert text.splitlines()[1] == "samples: 0"                       # other zeros mean zero
    nested = annotated_yaml({"base": {"data": {"train_images": 0, "test_images": 0}, "unet": {"hidden": 8}}}, sizes)
    assert "training split (10,000); test_images 0 = every digit of the test split (10,000)" in nested


def test_a_measured_column_prints_with_one_number_of_decimals():
    raw = manifest(tables=[{"key": "k", "title": "K", "columns": ["γ", "FID", "steps", "MSE"],
                            "rows": [[0.0, 154.037, 300, 0.0379], [1.5, 8.299, 50, 0.00415], [10.0, 46.68, 10, 0.0063]]}])
    cells = read_run(raw).table("k").cells()
    assert [row[1] for row in cells] == ["154.04", "8.30", "46.68"]      # three digits at the smallest value
    assert [row[3] for row in cells] == ["0.03790", "0.00415", "0.00630"]
    assert [row[0] for row in cells] == [0.0, 1.5, 10.0]                 # settings print as given
    assert [row[2] for row in cells] == [300, 50, 10]                    # so do counts
    tiny = manifest(tables=[{"key": "k", "title": "K", "columns": ["MSE"], "rows": [[0.06729], [0.0000665]]}])
    assert [row[0] for row in read_run(tiny).table("k").cells()] == ["0.0673", "6.65e-05"]   # never one digit
    kept = manifest(tables=[{"key": "k", "title": "K", "columns": ["ratio"], "rows": [[2.411], [0.096]]}])
    assert [row[0] for row in read_run(kept).table("k").cells()] == ["2.411", "0.096"]   # no digits it never had
    metrics = read_run(manifest(metrics={"mse": {"value": 0.0000665, "fmt": ".5f"}, "big": {"value": 0.00038, "fmt": ".5f"}}))
    assert str(metrics.metric("mse")) == "6.65e-05" and str(metrics.metric("big")) == "0.00038"


def test_percentages_read_alike_from_metrics_and_tables():
    run = read_run(manifest(metrics={"acc": {"value": 0.9912, "label": "accuracy", "fmt": ".1%"}}))
    assert str(run.metric("acc")) == "99.1 %"
