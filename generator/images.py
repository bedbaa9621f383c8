"""The pixel size of a result image, so a page can show a GIF stored at one pixel per pixel at least
twice its native size (the CSS keeps it crisp and never wider than the text)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

GIF_SCALE = 2.5      # GIFs are saved at native scale (noisy frames compress badly); pages enlarge them
GIF_MIN_WIDTH = 360  # ... and a small one (a row of four digits) to at least this many pixels


@lru_cache(maxsize=512)
def size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file, None when it is missing or not an image."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError):
        return None


def display_width(path: Path, kind: str) -> int | None:
    """The width to show an image at: GIFs enlarged by GIF_SCALE, others at their own size (None)."""
    native = size(Path(path))
    if kind != "gif" or native is None:
        return None
    return max(round(native[0] * GIF_SCALE), GIF_MIN_WIDTH)
