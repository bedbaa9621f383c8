"""The datasets: the committed sample covers the quick profile, both layouts read the same images, the
fingerprint follows the images, and fetching data is explicit (never a side effect) with one clear
line when there is no network."""
from __future__ import annotations

import dataclasses
import gzip
import shutil

import pytest
import torch

from experiments import cli
from experiments.core import data
from experiments.core.data import DATASETS, data_fingerprint, load_split
from experiments.pipeline import registry

FIXTURE_SIZES = {("mnist", True): 1500, ("mnist", False): 1000, ("fashion-mnist", True): 1000,
                 ("fashion-mnist", False): 500}


def call(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def limits(cfg, prefix: str = "") -> dict[str, int]:
    """Every train_images / test_images limit in a (nested) config."""
    found = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            found.update(limits(value, f"{prefix}{f.name}."))
        elif f.name in ("train_images", "test_images"):
            found[prefix + f.name] = value
    return found


def test_the_committed_sample_holds_what_the_quick_profile_reads(data_root):
    for (name, train), size in FIXTURE_SIZES.items():
        assert len(load_split(data_root, train=train, dataset=name)) == size
    for section in registry.all_sections():
        for key, limit in limits(section.profiles["quick"]).items():
            split = key.endswith("train_images")
            assert 0 < limit <= FIXTURE_SIZES[("fashion-mnist", split)], (section.name, key, limit)
    total = sum(p.stat().st_size for p in data_root.rglob("*.gz"))
    assert total < 1.5e6, f"the committed sample grew to {total:,} bytes"


def test_a_folder_of_four_idx_files_reads_like_torchvisions_layout(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    flat = tmp_path / "fashion"                       # as Debian's dataset-fashion-mnist installs it
    flat.mkdir()
    for path in (data_root / "FashionMNIST" / "raw").glob("*.gz"):
        shutil.copy(path, flat / path.name)
    ours = load_split(flat, train=False, dataset="fashion-mnist")  # extracted into the cache, not beside them
    reference = load_split(data_root, train=False, dataset="fashion-mnist")
    assert torch.equal(ours.images, reference.images) and torch.equal(ours.labels, reference.labels)
    assert sorted(p.name for p in flat.iterdir()) == sorted(p.name for p in (data_root / "FashionMNIST" / "raw").glob("*.gz"))
    assert data_fingerprint(flat, "fashion-mnist") == data_fingerprint(data_root, "fashion-mnist")


def test_the_fingerprint_follows_the_images(data_root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(data_root / "MNIST", copy / "MNIST", ignore=shutil.ignore_patterns("*-ubyte", ".*"))
    assert data_fingerprint(copy) == data_fingerprint(data_root)              # .gz only vs extracted
    assert data_fingerprint(data_root) != data_fingerprint(data_root, "fashion-mnist")
    packed = copy / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    pixels = bytearray(gzip.decompress(packed.read_bytes()))
    pixels[1000] ^= 0xFF                                                      # one pixel of one digit
    packed.write_bytes(gzip.compress(bytes(pixels)))
    assert data_fingerprint(copy) != data_fingerprint(data_root)


def test_missing_data_says_how_to_fetch_it(tmp_path, capsys):
    code, _, err = call(["run", "noising", "--profile", "quick", "--device", "cpu", "--data-root", str(tmp_path / "none"),
                         "--out", str(tmp_path / "r"), "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: MNIST not found") and "python -m experiments data download" in err
    assert not (tmp_path / "r" / "noising").exists()


def test_download_offline_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_reachable", lambda url, timeout=5.0: False)
    for loader in ("MNIST", "FashionMNIST"):   # the tests never reach torchvision's downloader
        monkeypatch.setattr(f"torchvision.datasets.{loader}.download", lambda self: pytest.fail("downloaded"))
    code, _, err = call(["data", "download", "--dataset", "all", "--data-root", str(tmp_path / "root")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot download MNIST: no network connection" in err
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", str(tmp_path / "root" / "MNIST" / "raw")):
        assert name in err
    assert not (tmp_path / "root").exists()


def test_download_keeps_what_is_there(data_root, monkeypatch, capsys):
    monkeypatch.setattr(data, "_reachable", lambda url, timeout=5.0: pytest.fail("went to the network"))
    code, out, _ = call(["data", "download", "--dataset", "all", "--data-root", str(data_root)], capsys)
    assert code == 0
    assert out.splitlines() == [f"already there: {d.title} in {data_root / d.folder / 'raw'}" for d in DATASETS.values()]


@pytest.mark.parametrize("argv, expected", [
    (["--set", "data.dataset=fashion"], "unknown dataset 'fashion' (choose from mnist, fashion-mnist); did you mean"),
    (["--dataset", "mnist", "--set", "data.dataset=fashion-mnist"], "--dataset mnist and data.dataset=fashion-mnist"),
    (["--dataset", "kmnist"], "Invalid value for '--dataset'"),
])
def test_a_bad_dataset_is_one_line(argv, expected, tmp_path, capsys):
    code, _, err = call(["run", "noising", "--profile", "quick", "--out", str(tmp_path / "r"), *argv], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "r").exists()

