"""Jinja for Markdown pages: StrictUndefined (a missing value is an error, never an empty string),
filters that format numbers, table cells and captions, and template errors as one line."""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import jinja2
import yaml

from experiments.errors import UserError


class Metric:
    """A manifest metric; `{{ metrics.final_loss }}` prints the value in its recorded format."""

    def __init__(self, value: Any, label: str, fmt: str = ".4g"):
        self.value, self.label, self.fmt = value, label, fmt

    def __str__(self) -> str:
        return fmt_value(self.value, self.fmt)


def fmt_value(value: Any, fmt: str = ".4g") -> str:
    """A number in a format spec ('.4f', ',d', 'pct', 'duration'); None/NaN as an em dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if fmt == "pct":
        pct = 100 * value if abs(value) <= 1 else value
        # one decimal, but never "100.0 %" for a rate that is not 1 (99.99 % of digits right is not all)
        return f"{pct:.2f} %" if f"{pct:.1f}" == "100.0" and pct != 100 else f"{pct:.1f} %"
    if fmt == "duration":
        return fmt_duration(value)
    try:
        if fmt.endswith("d"):
            return format(int(round(value)), fmt)
        return format(value, fmt)
    except (ValueError, TypeError):
        return str(value)


def fmt_duration(seconds: float) -> str:
    """3.2 -> '3.2 s', 184 -> '3 min 04 s', 7300 -> '2 h 01 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def cell(value: Any) -> str:
    """A Markdown table cell: numbers compact, pipes escaped, one line."""
    if isinstance(value, float):
        text = fmt_value(value, ".5g")
    elif isinstance(value, int) and not isinstance(value, bool):
        text = fmt_value(value, ",d")                 # counts in full (37,520 steps, not 3.752e+04)
    else:
        text = fmt_value(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_alt(text: str) -> str:
    """Alt text inside `![...]`: brackets escaped, one line."""
    return " ".join(str(text).split()).replace("[", "\\[").replace("]", "\\]")


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100).rstrip()


def indent_block(text: str, spaces: int = 4) -> str:
    """Indent every non-empty line (content inside admonitions and tabs)."""
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else "" for line in str(text).splitlines())


def make_env(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir)), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt_value, duration=fmt_duration, cell=cell, md_alt=md_alt, yaml=to_yaml,
                       html=lambda s: html.escape(str(s), quote=True), indent_block=indent_block)
    return env


def _template_line(exc: BaseException, templates_dir: Path) -> str:
    """'templates/x.md.j2 line N' from a Jinja error (its traceback carries the template frames)."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        return f"{_rel(exc.filename, templates_dir)} line {exc.lineno}"
    tb, where = exc.__traceback__, ""
    while tb is not None:   # the innermost template frame is the one that failed
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(".j2"):
            where = f"{_rel(name, templates_dir)} line {tb.tb_lineno}"
        tb = tb.tb_next
    return where or "a template"


def _rel(path: str, templates_dir: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(templates_dir.resolve().parent))
    except ValueError:
        return path


class Renderer:
    """Renders named templates with StrictUndefined; every Jinja failure becomes one UserError line."""

    def __init__(self, templates_dir: Path):
        self.templates_dir = Path(templates_dir)
        self.env = make_env(self.templates_dir)

    def exists(self, name: str) -> bool:
        return (self.templates_dir / name).is_file()

    def render(self, name: str, **context: Any) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.TemplateNotFound as exc:
            raise UserError(f"template {exc.name} not found in {self.templates_dir}") from None
        except jinja2.TemplateError as exc:
            where = _template_line(exc, self.templates_dir)
            message = " ".join(str(exc.message or exc).split())
            raise UserError(f"template error in {where}: {message}") from None
        except UserError:
            raise
        except Exception as exc:  # e.g. a filter applied to the wrong type inside a template
            where = _template_line(exc, self.templates_dir)
            raise UserError(f"template error in {where}: {type(exc).__name__}: {exc}") from None

