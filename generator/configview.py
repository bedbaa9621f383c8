"""A run's configuration as readers see it in the provenance block: YAML, with the values whose meaning
is not their face value explained in a comment (`train_images: 0` means the whole split)."""
from __future__ import annotations

import re

from markupsafe import Markup

from generator.render import to_yaml

SPLITS = {"train_images": "training", "test_images": "test"}
_ZERO = re.compile(r"\b(train_images|test_images): 0(?=[,}\s]|$)")   # block or flow style


def annotated_yaml(config: dict, split_sizes: dict[str, int | None] | None = None) -> Markup:
    """The config as YAML; `train_images: 0` and `test_images: 0` say that they take every digit of
    their split (and how many that is, when `split_sizes` knows). Markup, because it goes into a fenced
    code block, which shows text as it is (escaping it here too would print `&gt;` for `>`)."""
    sizes = split_sizes or {}
    lines = []
    for line in to_yaml(config).splitlines():
        notes = []
        for key in _ZERO.findall(line):
            size = sizes.get(key)
            notes.append(f"{key} 0 = every digit of the {SPLITS[key]} split" + (f" ({size:,})" if size else ""))
        lines.append(line + (f"   # {'; '.join(notes)}" if notes else ""))
    return Markup("\n".join(lines))
