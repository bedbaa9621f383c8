"""Jinja for Markdown pages: StrictUndefined (a missing value is an error, never an empty string),
filters that format numbers, table cells and captions, and template errors as one line.

Every value a template prints is HTML-escaped (autoescape): strings from results files (titles,
captions, cells, labels, notes, device, commit ...) can never put markup, let alone script, into
a page, and Markdown sees them as text. What templates write themselves (their HTML, the Markdown
that macros and other templates return) is marked safe as it is made. A built site is checked
again for script, event handlers and script URLs in its pages (generator/checks.py).
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from experiments.errors import UserError


class Metric:
    """A manifest metric; `{{ metrics.final_loss }}` prints the value in its recorded format."""

    def __init__(self, value: Any, label: str, fmt: str = ".4g"):
        self.value, self.label, self.fmt = value, label, fmt

    def __str__(self) -> str:
        return fmt_value(self.value, self.fmt)


def _same_kind(value: Any, text: str) -> str:
    """Keep text made from already-escaped markup marked safe (the edits here add no markup)."""
    return Markup(text) if isinstance(value, Markup) else text


def fmt_value(value: Any, fmt: str = ".4g") -> str:
    """A number in a format spec ('.4f', ',d', 'pct', 'duration'); None/NaN as an em dash."""
    if isinstance(value, Markup):
        return value
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
        if fmt.endswith("%"):                         # the site writes "73.5 %" everywhere
            return format(value, fmt)[:-1] + " %"
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
    text = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return _same_kind(value, text)


def md_alt(text: str) -> str:
    """Alt text inside `![...]`: brackets escaped, one line."""
    return _same_kind(text, " ".join(str(text).split()).replace("[", "\\[").replace("]", "\\]"))


class _ConfigDumper(yaml.SafeDumper):
    """Strings that could end the page's code block (a line break, a backtick or tilde fence) are
    written double-quoted: their line breaks become \\n and a folded line starts with a backslash."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    risky = any(c in value for c in "\n\r`~\u2028\u2029\x85")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if risky else None)


_ConfigDumper.add_representer(str, _represent_str)


def to_yaml(data: Any) -> Markup:
    """A config as YAML for a fenced code block (which shows it as text, so it is not HTML-escaped);
    nothing in it can close the fence."""
    text = yaml.dump(data, Dumper=_ConfigDumper, sort_keys=False, default_flow_style=None, allow_unicode=True,
                     width=100).rstrip()
    if any(line.lstrip().startswith(("```", "~~~")) for line in text.splitlines()):
        raise UserError("corrupt results: a config value would end the page's code block")
    return Markup(text)


def indent_block(text: str, spaces: int = 4) -> str:
    """Indent every non-empty line (content inside admonitions and tabs)."""
    pad = " " * spaces
    return _same_kind(text, "\n".join(pad + line if line.strip() else "" for line in str(text).splitlines()))


def escape_html(value: Any) -> Markup:
    """`&`, `<`, `>` and `"` escaped, marked so autoescape leaves it alone (no double escaping). An
    apostrophe stays as it is: it opens no markup, and MkDocs takes page titles from the Markdown
    headings verbatim (an entity there would show in the navigation)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=False).replace('"', "&quot;"))


def _finalize(value: Any) -> Any:
    """What every `{{ value }}` prints: escaped text, or markup a template made."""
    return value if value is None or isinstance(value, (Markup, jinja2.Undefined)) else escape_html(value)


def make_env(templates_dir: Path) -> jinja2.Environment:
    # autoescape: every {{ value }} is HTML-escaped unless it is markup a template made (Markup)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir)), undefined=jinja2.StrictUndefined,
                             autoescape=True, finalize=_finalize, keep_trailing_newline=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(fmt=fmt_value, duration=fmt_duration, cell=cell, md_alt=md_alt, yaml=to_yaml,
                       html=escape_html, indent_block=indent_block)
    env.tests["startingwith"] = lambda value, prefix: str(value).startswith(prefix)
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

    def render(self, name: str, **context: Any) -> Markup:
        """The rendered template: Markdown made by a template, safe to include in another page."""
        try:
            return Markup(self.env.get_template(name).render(**context))
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

