"""The README's headline numbers: written from summary.json by `build-site readme`, never typed, so
they cannot drift from the committed results (a test compares the two)."""
from __future__ import annotations

import os
from pathlib import Path

from experiments.errors import UserError
from experiments.pipeline.results import load_results_json
from generator.reader import Summary
from generator.render import Renderer

START = "<!-- headline numbers: written by `build-site readme` from docs/results/summary.json -->"
END = "<!-- end of headline numbers -->"
TEMPLATE = "readme.md.j2"


def headline_block(summary: dict, templates_dir: Path) -> str:
    """The block between the markers (markers included) for these headline numbers."""
    body = Renderer(templates_dir).render(TEMPLATE, summary=Summary(summary)).strip()
    return f"{START}\n{body}\n{END}"


def _split(text: str, readme: Path) -> tuple[str, str]:
    """The README's text before the block and after it (markers excluded)."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise UserError(f"{readme} has no headline block: put the lines {START!r} and {END!r} where it goes")
    before, rest = text.split(START)
    return before, rest.split(END, 1)[1]


def _block_for(results: Path, templates_dir: Path) -> str:
    summary = load_results_json(Path(results) / "summary.json")
    if summary is None:
        raise UserError(f"no summary.json in {results}: run the sections first")
    return headline_block(summary, templates_dir)


def _read(readme: Path) -> str:
    if not readme.is_file():
        raise UserError(f"no README at {readme}")
    return readme.read_text(encoding="utf-8")


def is_current(readme: Path, results: Path, templates_dir: Path) -> bool:
    """Whether the README's headline block says what results/summary.json says."""
    text = _read(readme)
    before, after = _split(text, readme)
    return text[len(before):len(text) - len(after)] == _block_for(results, templates_dir)


def update(readme: Path, results: Path, templates_dir: Path) -> bool:
    """Rewrite the README's headline block from results/summary.json; False when it was up to date.
    Only the text between the markers changes."""
    text = _read(readme)
    before, after = _split(text, readme)
    new = before + _block_for(results, templates_dir) + after
    if new == text:
        return False
    temporary = readme.with_name(f".{readme.name}.tmp-{os.getpid()}")
    temporary.write_text(new, encoding="utf-8")
    os.replace(temporary, readme)
    return True
