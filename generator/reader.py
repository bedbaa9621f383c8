"""The one typed view of section results that pages read: metrics, tables and figures by name.

`generator.inputs` checks what the experiments left on disk; this module turns each manifest (current
or archived) into a `SectionRun` whose metrics are looked up by name and whose table rows are mappings
from column key to value, so no page unpacks a row by position or rebuilds a metric name from pieces.

Tables record their column keys beside their labels (`keys`); results written before keys existed get
keys made from the labels ('PSNR mean (dB)' -> 'psnr_mean_db'), and a column can always be found by its
label too.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from generator.render import fmt_value


def column_key(label: str) -> str:
    """A column label as a key: 'PSNR mean (dB)' -> 'psnr_mean_db', 'FID / floor' -> 'fid_floor'."""
    text = label.lower().replace("√", "sqrt_").replace("ᾱ", "abar").replace("σ", "sigma").replace("γ", "gamma")
    text = text.replace("→", "_to_").replace("≤", "le").replace("×", "x")
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_") or "label"


SHARE_WORDS = ("read", "accuracy", "both", "share", "success", "baseline", "control", "asked")


def is_share(key: str, values: list[Any]) -> bool:
    """A column of fractions that readers expect as percentages ('read as its digit': 0.43 -> 43.0 %)."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return (any(word in key for word in SHARE_WORDS) and bool(numbers) and all(0 <= v <= 1 for v in numbers))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def column_format(key: str, values: list[Any]) -> str | None:
    """How a table column prints: 'pct' for shares, fixed decimals for measurements (three significant
    digits at the column's smallest value: 154.04 / 8.30, not 154.04 / 8.299), None for settings and
    counts, which print as given (γ = 1.5, 300 steps)."""
    if is_share(key, values):
        return "pct"
    numbers = [float(v) for v in values if _is_number(v)]
    if not numbers or not all(isinstance(v, float) for v in values if _is_number(v)):
        return None
    if all(abs(v * 20 - round(v * 20)) < 1e-9 for v in numbers):   # settings (σ = 0.25, γ = 1.5), not measurements
        return None
    smallest = min((abs(v) for v in numbers if v), default=1.0)
    recorded = max(-Decimal(repr(v)).as_tuple().exponent for v in numbers)     # no more decimals than were kept
    decimals = max(0, min(2 - math.floor(math.log10(smallest)), recorded))
    return f".{decimals}f" if decimals <= 5 else ".3g"       # 6.65e-05, not 0.00007


@dataclass(frozen=True)
class Metric:
    """A recorded number (or string) with its label and display format; prints formatted."""

    name: str
    value: Any
    label: str
    fmt: str = ".4g"

    def __str__(self) -> str:
        fixed = re.fullmatch(r"\.(\d+)f", self.fmt)
        if fixed and isinstance(self.value, float) and 0 < abs(self.value) < 10 ** (1 - int(fixed[1])):
            return f"{self.value:.3g}"          # 6.65e-05, not a lone digit (0.00007)
        return fmt_value(self.value, ",d" if self.fmt == "d" else self.fmt)     # counts with separators


@dataclass(frozen=True)
class Column:
    key: str
    label: str


class Row(Mapping):
    """One table row: values by column key (`row["fid"]`, `row.fid` in templates) and by label."""

    def __init__(self, columns: tuple[Column, ...], values: list[Any]):
        self._values = {c.key: v for c, v in zip(columns, values)}
        self._labels = {c.label: c.key for c in columns}

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        return self._values[self._labels[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self) -> str:
        return f"Row({self._values})"


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]

    def has(self, key: str) -> bool:
        return any(key in (c.key, c.label) for c in self.columns)

    def find(self, prefix: str) -> str | None:
        """The key of the first column whose key starts with `prefix` (labels may name a setting)."""
        return next((c.key for c in self.columns if c.key.startswith(prefix)), None)

    def column(self, key: str) -> list[Any]:
        """Every row's value in the column with this key (or label)."""
        return [row[key] for row in self.rows]

    def where(self, **match: Any) -> list[Row]:
        """The rows whose columns equal the given values."""
        return [row for row in self.rows if all(row.get(k) == v for k, v in match.items())]

    def first(self, **match: Any) -> Row | None:
        found = self.where(**match)
        return found[0] if found else None

    def cells(self) -> list[list[Any]]:
        """Rows as lists in column order (for drawing the table): shares print as percentages, and the
        measurements of one column with the same number of decimals."""
        formats = {c.key: column_format(c.key, [row[c.key] for row in self.rows]) for c in self.columns}
        return [[fmt_value(row[c.key], formats[c.key]) if formats[c.key] and _is_number(row[c.key]) else row[c.key]
                 for c in self.columns] for row in self.rows]

    def select(self, keys: list[str]) -> "Table":
        """The same table with only these columns (by key or label), in this order."""
        wanted = [next(c for c in self.columns if k in (c.key, c.label)) for k in keys]
        return Table(self.key, self.title, tuple(wanted),
                     tuple(Row(tuple(wanted), [r[c.key] for c in wanted]) for r in self.rows))


@dataclass(frozen=True)
class Figure:
    file: str
    kind: str           # image | gif | plot
    title: str
    alt: str
    group: str | None = None


@dataclass(frozen=True)
class SectionRun:
    """One run of a section, as recorded in its manifest."""

    section: str
    title: str
    part: str
    summary: str
    run_id: str
    profile: str
    seed: int | None
    device: str
    git_commit: str
    started_at: str
    wall_s: float
    config: dict
    config_hash: str
    inputs: dict
    versions: dict
    code: dict
    loaded_weights: dict
    figures: tuple[Figure, ...]
    tables: dict[str, Table]
    metrics: dict[str, Metric]
    series: tuple[dict, ...]
    files: tuple[str, ...] = field(default=())

    def metric(self, name: str) -> Metric | None:
        return self.metrics.get(name)

    def value(self, name: str, default: Any = None) -> Any:
        """A metric's value, `default` when the run did not record it."""
        metric = self.metrics.get(name)
        return default if metric is None or metric.value is None else metric.value

    def table(self, key: str) -> Table | None:
        return self.tables.get(key)

    def figure(self, file: str) -> Figure | None:
        return next((f for f in self.figures if f.file == file), None)

    def has_figure(self, file: str) -> bool:
        return self.figure(file) is not None

    @property
    def date(self) -> str:
        return self.started_at[:10]


def run_labels(runs: list[SectionRun]) -> list[str]:
    """Each run's date; two runs of one day told apart by the time they started."""
    days = Counter(r.date for r in runs)
    return [r.date + (f", {r.started_at[11:16]} UTC" if days[r.date] > 1 else "") for r in runs]


def read_table(raw: dict) -> Table:
    labels = [str(c) for c in raw["columns"]]
    keys = raw.get("keys") or [column_key(label) if label else f"column{i}" for i, label in enumerate(labels)]
    columns = tuple(Column(str(k), label) for k, label in zip(keys, labels))
    return Table(str(raw.get("key") or column_key(raw["title"])), str(raw["title"]), columns,
                 tuple(Row(columns, list(r)) for r in raw["rows"]))


def read_run(manifest: dict) -> SectionRun:
    """A manifest (current or archived) as a typed run."""
    m = manifest
    metrics = {name: Metric(name, v.get("value"), str(v.get("label", name)), str(v.get("fmt", ".4g")))
               for name, v in (m.get("metrics") or {}).items()}
    figures = tuple(Figure(f["file"], f.get("kind", "image"), str(f.get("title", "")), str(f.get("alt") or f.get("title", "")),
                           f.get("group")) for f in m.get("figures") or [])
    tables = {t.key: t for t in (read_table(raw) for raw in m.get("tables") or [])}
    return SectionRun(
        section=m.get("section", ""), title=m.get("title", m.get("section", "")), part=m.get("part", ""), summary=m.get("summary", ""),
        run_id=m.get("run_id", ""), profile=m.get("profile", ""), seed=m.get("seed"), device=m.get("device", ""),
        git_commit=m.get("git_commit", ""), started_at=m.get("started_at", ""), wall_s=float(m.get("wall_s") or 0),
        config=m.get("config") or {}, config_hash=m.get("config_hash", ""), inputs=m.get("inputs") or {},
        versions=m.get("versions") or {}, code=m.get("code") or {}, loaded_weights=m.get("loaded_weights") or {},
        figures=figures, tables=tables, metrics=metrics, series=tuple(m.get("series") or []),
        files=tuple(m.get("files") or []))


class Summary(Mapping):
    """summary.json (and the run.json keys merged into it) by key; an absent key reads as None."""

    def __init__(self, data: dict | None):
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def value(self, key: str, default: Any = None) -> Any:
        value = self._data.get(key)
        return default if value is None else value

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self._data.get(key)
