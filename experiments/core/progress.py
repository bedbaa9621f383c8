"""Progress bars (tqdm): loss and ETA for long work; silent when FUNDIFF_NO_PROGRESS is set."""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress_bar(**kwargs):
    if os.environ.get("FUNDIFF_NO_PROGRESS"):
        kwargs["disable"] = True
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(**kwargs)
