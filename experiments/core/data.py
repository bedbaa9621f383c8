"""The datasets (MNIST, Fashion-MNIST) through torchvision, each split loaded once into one tensor.

The data root is chosen by `--data-root`, else the FUNDIFF_DATA_ROOT environment variable, else a
cache folder. A dataset's four IDX files (`.gz` or extracted) are read from torchvision's layout
(`<root>/MNIST/raw`, `<root>/FashionMNIST/raw`), from the data root itself when it holds them (as
Debian's `dataset-fashion-mnist` installs them), or from the folder an OS package puts them in.
Compressed files are extracted on first use. Nothing here downloads, except `download()`, which
only `python -m experiments data download` calls.
"""
from __future__ import annotations

import contextlib
import difflib
import gzip
import hashlib
import io
import os
import shutil
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import torch

from experiments.errors import UserError

ENV_VAR = "FUNDIFF_DATA_ROOT"
RAW_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EVERY_FILE = RAW_FILES[True] + RAW_FILES[False]     # torchvision checks that all four exist
_IDX_MAGIC = {"images": 2051, "labels": 2049}
NUM_CLASSES = 10


@dataclass(frozen=True)
class Dataset:
    """One 28x28 grey-level, ten-class dataset in MNIST's IDX format."""

    name: str                      # the config value: --dataset / data.dataset
    title: str                     # how pages and messages name it
    folder: str                    # torchvision's class and folder name under the data root
    classes: tuple[str, ...]       # class names by label
    item: str                      # what one image is, in captions ("digit")
    source: str                    # where the files come from
    system_folder: str | None = None   # where an OS package installs the four files

    def class_name(self, label: int) -> str:
        """'7' on MNIST, 'sneaker' on Fashion-MNIST."""
        return self.classes[int(label)]

    @property
    def items(self) -> str:
        """The plural of `item`, for captions ("digits")."""
        return f"{self.item}s"


DATASETS = {
    "mnist": Dataset("mnist", "MNIST", "MNIST", tuple(str(d) for d in range(10)), "digit",
                     "MNIST (LeCun, Cortes and Burges), through torchvision"),
    "fashion-mnist": Dataset(
        "fashion-mnist", "Fashion-MNIST", "FashionMNIST",
        ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
        "item", "Fashion-MNIST (Zalando Research, MIT licence), through torchvision",
        system_folder="/usr/share/datasets/fashion-mnist"),
}
DEFAULT_DATASET = "mnist"


def get_dataset(name: str) -> Dataset:
    """The dataset called `name`; an unknown name is a one-line error with the closest match."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(str(name), list(DATASETS), n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UserError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)}){hint}")


def dataset_of(manifest: dict) -> str:
    """The dataset a manifest's results were made on (results recorded before datasets were: MNIST)."""
    recorded = manifest.get("dataset")
    return recorded.get("name", DEFAULT_DATASET) if isinstance(recorded, dict) else DEFAULT_DATASET


def dataset_flag(dataset: str) -> str:
    """' --dataset fashion-mnist' for command hints ('' for the default dataset)."""
    return "" if dataset == DEFAULT_DATASET else f" --dataset {dataset}"


def default_data_root() -> Path:
    """$FUNDIFF_DATA_ROOT, else ~/.cache/fundiff/data (where `data download` puts the files)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return _cache() / "data"


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fundiff"


def _root(root: str | Path | None) -> Path:
    root = Path(root).expanduser() if root else default_data_root()
    if root.exists() and not root.is_dir():
        raise UserError(f"data root {root} is a file, not a folder")
    return root


@dataclass(frozen=True)
class Split:
    """A whole split as tensors: images (N, 1, 28, 28) float in [0, 1], labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def head(self, n: int) -> "Split":
        return self if n <= 0 or n >= len(self) else Split(self.images[:n], self.labels[:n])


def _check_idx(path: Path, kind: str) -> None:
    """Reject a truncated or foreign IDX file with one line instead of a numpy traceback."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(16 if kind == "images" else 8)
    if len(header) < 8:
        raise UserError(f"{path} is not an MNIST IDX file (too short)")
    magic = int.from_bytes(header[0:4], "big")
    count = int.from_bytes(header[4:8], "big")
    if magic != _IDX_MAGIC[kind]:
        raise UserError(f"{path} is not an MNIST {kind} IDX file (magic number {magic})")
    if kind == "images":
        if len(header) < 16:
            raise UserError(f"{path} is truncated")
        rows, cols = int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")
        expected = 16 + count * rows * cols
        if (rows, cols) != (28, 28):
            raise UserError(f"{path} holds {rows}x{cols} images, expected 28x28")
    else:
        expected = 8 + count
    if size != expected:
        raise UserError(f"{path} is truncated or corrupt: {size} bytes, expected {expected}")


def _check_labels(labels: torch.Tensor, path: Path) -> None:
    """Digits are classes 0-9: any other label would index past the class embedding later."""
    bad = ((labels < 0) | (labels >= NUM_CLASSES)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise UserError(f"{path} holds class label {int(labels[i])} at index {i}; labels are 0-9")


def _writable(folder: Path) -> bool:
    """Try to create a file: os.access says yes to root even on a read-only mount."""
    probe = folder / f".probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def _has(folder: Path, names: tuple[str, ...]) -> bool:
    return all((folder / n).exists() or (folder / f"{n}.gz").exists() for n in names)


def _candidates(root: Path, dataset: Dataset) -> list[Path]:
    """Where a dataset's files may be, in order: torchvision's layout, the root itself, the OS package."""
    return [root / dataset.folder / "raw", root] + ([Path(dataset.system_folder)] if dataset.system_folder else [])


def source_folder(root: Path, dataset: Dataset, train: bool) -> Path:
    """The folder holding the split's IDX files: torchvision's layout under the root, the root itself,
    or the dataset's OS package folder; a one-line error says what to put where when none has them."""
    names = RAW_FILES[train]
    layout = root / dataset.folder / "raw"
    for folder in _candidates(root, dataset):
        if _has(folder, names):
            return folder
    expected = ", ".join(f"{n}[.gz]" for n in names)
    raise UserError(f"{dataset.title} not found: expected {expected} in {layout} (fetch it with "
                    f"`python -m experiments data download --dataset {dataset.name}`, or point --data-root "
                    f"or {ENV_VAR} at a folder holding the files)")


def _extract(src: Path, out: Path) -> None:
    # one temporary file per process: sections running side by side may extract at the same time,
    # and each then renames a complete copy into place (the last rename wins, same bytes)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")
    try:
        if src.suffix == ".gz":
            with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copyfile(src, tmp)
    except (OSError, EOFError) as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot extract {src}: {exc}") from None
    os.replace(tmp, out)


def _placeholder(out: Path) -> None:
    """An empty IDX file for an absent split: torchvision wants all four files to exist."""
    images = "images" in out.name
    header = _IDX_MAGIC["images" if images else "labels"].to_bytes(4, "big") + (0).to_bytes(4, "big")
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")
    tmp.write_bytes(header + ((28).to_bytes(4, "big") * 2 if images else b""))
    os.replace(tmp, out)


def prepare(root: str | Path | None, dataset: Dataset, train: bool) -> Path:
    """Make sure the extracted IDX files exist; return the root torchvision should read.

    Files in torchvision's layout are extracted in place when the folder is writable; any other
    folder (a read-only mirror, a flat folder of four files) is extracted into the cache."""
    root = _root(root)
    raw = source_folder(root, dataset, train)
    target_root = root
    in_layout = raw == root / dataset.folder / "raw"
    if not in_layout or (any(not (raw / n).exists() for n in EVERY_FILE) and not _writable(raw)):
        digest = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:10]
        target_root = _cache() / "extracted" / digest
    target_raw = target_root / dataset.folder / "raw"
    target_raw.mkdir(parents=True, exist_ok=True)
    for name in EVERY_FILE:
        out = target_raw / name
        if out.exists():
            continue
        src = raw / name if (raw / name).exists() else raw / f"{name}.gz"
        _extract(src, out) if src.exists() else _placeholder(out)
    for name, kind in zip(RAW_FILES[train], ("images", "labels")):
        _check_idx(target_raw / name, kind)
    return target_root


def load_split(root: str | Path | None, train: bool, limit: int = 0, device: torch.device | str = "cpu",
               dataset: str = DEFAULT_DATASET) -> Split:
    """Load a dataset's train or test split as one tensor pair on `device` (its first `limit` images)."""
    import torchvision.datasets

    data = get_dataset(dataset)
    torchvision_root = prepare(root, data, train)
    try:
        loaded = getattr(torchvision.datasets, data.folder)(str(torchvision_root), train=train, download=False)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"cannot read {data.title} under {torchvision_root}: {str(exc).splitlines()[0]}") from None
    images = loaded.data.unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28) in [0, 1]
    labels = loaded.targets.long()
    _check_labels(labels, torchvision_root / data.folder / "raw" / RAW_FILES[train][1])
    return Split(images, labels).head(limit).to(device)


def data_fingerprint(root: str | Path | None, dataset: str = DEFAULT_DATASET) -> str:
    """sha256 (16 hex digits) of the dataset's IDX files where a run reads them, the compressed ones
    where they exist (a first run's extraction changes nothing), in a fixed order; 'absent' when no
    split is there. Another subset (the offline mirror's 10,000 training digits) or dataset gives
    another fingerprint. Reads only: nothing is extracted."""
    data = get_dataset(dataset)
    stats = []
    for train in (True, False):
        try:
            folder = source_folder(_root(root), data, train)
        except UserError:
            continue                       # a test split alone is enough for some sections
        for name in RAW_FILES[train]:
            path = next(p for p in (folder / f"{name}.gz", folder / name) if p.is_file())
            st = path.stat()
            stats.append((str(path.resolve()), st.st_size, st.st_mtime_ns))
    return _hash_files(tuple(stats)) if stats else "absent"


@lru_cache(maxsize=8)
def _hash_files(stats: tuple) -> str:
    """Hash of the files named in `stats` ((path, size, mtime) each: a changed file is hashed again)."""
    digest = hashlib.sha256()
    for path, _size, _mtime in stats:
        digest.update(Path(path).name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _reachable(url: str, timeout: float = 5.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def download(root: str | Path | None, dataset: str = DEFAULT_DATASET) -> tuple[Path, bool]:
    """Fetch a dataset's four files with torchvision's downloader into `<root>/<folder>/raw`.

    Returns (that folder, whether anything was downloaded); files already there are kept. Offline,
    one line says which files to put where."""
    import torchvision.datasets

    data = get_dataset(dataset)
    root = _root(root)
    raw = root / data.folder / "raw"
    for folder in _candidates(root, data):
        if _has(folder, EVERY_FILE):
            return folder, False
    loader = getattr(torchvision.datasets, data.folder)
    offline = (f"cannot download {data.title}: {{why}}; put {', '.join(f'{n}.gz' for n in EVERY_FILE)} "
               f"in {raw} by hand (or point --data-root at a folder holding them)")
    if not any(_reachable(mirror) for mirror in loader.mirrors):
        raise UserError(offline.format(why=f"no network connection to {urlparse(loader.mirrors[0]).hostname}"))
    try:
        # torchvision prints each URL on stdout; its progress bars (stderr) stay visible
        with contextlib.redirect_stdout(io.StringIO()):
            for train in (True, False):
                loader(str(root), train=train, download=True)
    except (RuntimeError, OSError) as exc:
        raise UserError(offline.format(why=" ".join(str(exc).split())[:160])) from None
    return raw, True
