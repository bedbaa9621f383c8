"""MNIST through torchvision, loaded once into one tensor (on the training device).

The data root is chosen by `--data-root`, else the FUNDIFF_DATA_ROOT environment variable, else a
cache folder. torchvision's layout is expected: `<root>/MNIST/raw/*-ubyte[.gz]`. Compressed files
are extracted on first use (the offline mirror ships only the .gz). Nothing here downloads unless
the caller asks for it explicitly.
"""
from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments.errors import UserError

ENV_VAR = "FUNDIFF_DATA_ROOT"
RAW_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_MAGIC = {"images": 2051, "labels": 2049}
NUM_CLASSES = 10


def default_data_root() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fundiff" / "data"


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
        raise UserError(f"{path} holds class label {int(labels[i])} at index {i}; MNIST labels are 0-9")


def _writable(folder: Path) -> bool:
    """Try to create a file: os.access says yes to root even on a read-only mount."""
    probe = folder / f".probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def _prepare_raw(root: Path, train: bool) -> Path:
    """Make sure the extracted IDX files exist; return the root torchvision should read."""
    raw = root / "MNIST" / "raw"
    names = RAW_FILES[train]
    every = RAW_FILES[True] + RAW_FILES[False]   # torchvision checks all four files exist
    missing = [n for n in names if not (raw / n).exists() and not (raw / f"{n}.gz").exists()]
    if missing:
        expected = ", ".join(f"{n}[.gz]" for n in names)
        raise UserError(f"MNIST not found: expected {expected} in {raw} "
                        f"(use --data-root or {ENV_VAR}; the offline mirror is ../shared/data)")
    target_root = root
    if any(not (raw / n).exists() for n in every) and not _writable(raw):
        # A read-only mirror: extract into the cache instead of failing.
        import hashlib

        digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        target_root = cache / "fundiff" / "extracted" / digest
    target_raw = target_root / "MNIST" / "raw"
    target_raw.mkdir(parents=True, exist_ok=True)
    for name in every:
        out = target_raw / name
        if out.exists():
            continue
        src = raw / name if (raw / name).exists() else raw / f"{name}.gz"
        if not src.exists():
            # the other split is absent: torchvision still wants a file there, so leave an empty IDX
            kind_magic = _IDX_MAGIC["images" if "images" in name else "labels"]
            header = kind_magic.to_bytes(4, "big") + (0).to_bytes(4, "big")
            tmp = out.with_name(f"{name}.{os.getpid()}.partial")
            tmp.write_bytes(header + ((28).to_bytes(4, "big") * 2 if "images" in name else b""))
            os.replace(tmp, out)
            continue
        # one temporary file per process: sections running side by side may extract at the same time,
        # and each then renames a complete copy into place (the last rename wins, same bytes)
        tmp = out.with_name(f"{name}.{os.getpid()}.partial")
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
    for name, kind in zip(names, ("images", "labels")):
        _check_idx(target_raw / name, kind)
    return target_root


def load_split(root: str | Path | None, train: bool, limit: int = 0,
               device: torch.device | str = "cpu") -> Split:
    """Load the MNIST train or test split as one tensor pair on `device` (first `limit` digits)."""
    from torchvision.datasets import MNIST

    root = Path(root).expanduser() if root else default_data_root()
    if root.exists() and not root.is_dir():
        raise UserError(f"data root {root} is a file, not a folder")
    torchvision_root = _prepare_raw(root, train)
    try:
        dataset = MNIST(str(torchvision_root), train=train, download=False)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"cannot read MNIST under {torchvision_root}: {str(exc).splitlines()[0]}") from None
    images = dataset.data.unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28) in [0, 1]
    labels = dataset.targets.long()
    _check_labels(labels, torchvision_root / "MNIST" / "raw" / RAW_FILES[train][1])
    split = Split(images, labels).head(limit)
    return split.to(device)
