"""The files a manifest names, as the site will publish them: regular files (never links), of a sane
size, and every figure an image that decodes as PNG or GIF. A results folder (or a tarball) cannot
make the site publish a system file, or random bytes under an image's name."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from experiments.errors import UserError
from experiments.pipeline.results import regular_file
from generator.tarsafe import MAX_FILE_BYTES

IMAGE_FORMATS = ("PNG", "GIF")
MAX_PIXELS = 2**25                   # per frame: the largest figure here is about 2,000 x 2,000


def check_image(path: Path) -> None:
    """A PNG or GIF that decodes (header, size and checksums), as one line when it does not."""
    try:
        with Image.open(path) as image:
            kind, (width, height) = image.format, image.size
            if kind not in IMAGE_FORMATS:
                raise UserError(f"corrupt results: {path} is a {kind} image; figures are PNG or GIF")
            if width * height > MAX_PIXELS:
                raise UserError(f"corrupt results: {path} is {width} x {height} pixels, more than a figure has")
            image.verify()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a file that is not an image
        raise UserError(f"corrupt results: {path} is not a PNG or GIF image "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'})") \
            from None


def check_files(manifest_path: Path, manifest: dict) -> None:
    """Every file the manifest lists is a regular file of at most MAX_FILE_BYTES; figures decode."""
    folder = Path(manifest_path).parent
    names = {item["file"] for key in ("figures", "series") for item in manifest.get(key, [])}
    names |= set(manifest.get("files") or [])
    for name in sorted(names):
        path = folder / name
        if not path.exists() and not path.is_symlink():
            continue                                  # a missing file is reported by the caller
        regular_file(path)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"corrupt results: {path} is {path.stat().st_size:,} bytes, more than the "
                            f"{MAX_FILE_BYTES:,} a result file may have")
    for figure in manifest.get("figures", []):
        check_image(folder / figure["file"])
