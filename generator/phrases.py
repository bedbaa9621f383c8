"""Sentences that state a comparison or a trend, computed from the numbers they describe.

A caption may never claim more than its own numbers show: a direction is named only when every step
goes that way by more than a tolerance, "about the same" when the difference is inside it. Templates
call these (as Jinja globals) instead of writing "falls as t grows" by hand.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from generator.render import fmt_value

LEVEL, RISES, FALLS, MIXED = "level", "rises", "falls", "mixed"


def _close(a: float, b: float, rel_tol: float, abs_tol: float) -> bool:
    return abs(a - b) <= max(abs_tol, rel_tol * max(abs(a), abs(b)))


def direction(values: Sequence[float], rel_tol: float = 0.02, abs_tol: float = 0.0) -> str:
    """'rises' / 'falls' when every step moves that way (steps inside the tolerance allowed, but not
    all of them), 'level' when all values are within the tolerance of each other, else 'mixed'."""
    vals = [float(v) for v in values]
    if len(vals) < 2 or _close(min(vals), max(vals), rel_tol, abs_tol):
        return LEVEL
    steps = [b - a for a, b in zip(vals, vals[1:])]
    flat = [_close(a, b, rel_tol, abs_tol) for a, b in zip(vals, vals[1:])]
    if all(s > 0 or f for s, f in zip(steps, flat)):
        return RISES
    if all(s < 0 or f for s, f in zip(steps, flat)):
        return FALLS
    return MIXED


@dataclass(frozen=True)
class Trend:
    direction: str
    xs: tuple
    ys: tuple[float, ...]
    fmt: str
    x_name: str

    def _at(self, i: int) -> str:
        x = self.xs[i]
        return f"{fmt_value(self.ys[i], self.fmt)} at {self.x_name}{fmt_value(x, 'g') if isinstance(x, float) else x}"

    @property
    def phrase(self) -> str:
        """'falls from 98.0 % at t = 75 to 41.0 % at t = 225', 'stays at about 2.0 %', ..."""
        if self.direction == LEVEL:
            mean = sum(self.ys) / len(self.ys)
            return f"stays at about {fmt_value(mean, self.fmt)}" + (" throughout" if len(self.ys) > 2 else "")
        if self.direction in (RISES, FALLS):
            return f"{self.direction} from {self._at(0)} to {self._at(-1)}"
        lo = min(range(len(self.ys)), key=self.ys.__getitem__)
        hi = max(range(len(self.ys)), key=self.ys.__getitem__)
        return f"moves without a steady trend, between {self._at(lo)} and {self._at(hi)}"

    def __str__(self) -> str:
        return self.phrase


def trend(xs: Sequence, ys: Sequence[float], fmt: str = ".3g", x_name: str = "", rel_tol: float = 0.02,
          abs_tol: float = 0.0) -> Trend:
    """The trend of ys along xs, to be printed (`{{ trend(...) }}`) or inspected (`.direction`)."""
    pairs = [(x, float(y)) for x, y in zip(xs, ys) if y is not None]
    return Trend(direction([y for _, y in pairs], rel_tol, abs_tol), tuple(x for x, _ in pairs),
                 tuple(y for _, y in pairs), fmt, x_name)


def compare(a: float, b: float, rel_tol: float = 0.02, abs_tol: float = 0.0,
            words: tuple[str, str, str] = ("higher than", "lower than", "about the same as")) -> str:
    """'higher than' / 'lower than' / 'about the same as': a against b, equal within the tolerance."""
    if _close(float(a), float(b), rel_tol, abs_tol):
        return words[2]
    return words[0] if float(a) > float(b) else words[1]


def times(a: float, b: float) -> str:
    """How many times a is b, for a sentence: '3.2×', '30×' (None or zero b: '—')."""
    if not b:
        return "—"
    ratio = float(a) / float(b)
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×"


def best(rows: Sequence, key: str, lowest: bool = True):
    """The row with the lowest (or highest) value in column `key`, ignoring rows without one."""
    usable = [r for r in rows if r[key] is not None]
    if not usable:
        return None
    return (min if lowest else max)(usable, key=lambda r: float(r[key]))


def percent(value) -> float | None:
    """A share recorded as a fraction (0.9476) or as text ('94.76%') as a fraction."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        try:
            return float(text) / 100
        except ValueError:
            return None
    return float(value)


def alignments(rows: Sequence[Sequence]) -> list[str]:
    """Markdown column alignments: numbers right, text left (a column is numeric when every value is)."""
    columns = list(zip(*rows)) if rows else []
    def number(v) -> bool:
        if isinstance(v, str):              # '94.5 %', '99.99%', '1,000': numbers written out
            return re.fullmatch(r"[+-]?[\d.,]+\s?%?", v.strip()) is not None
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def numeric(values) -> bool:
        present = [v for v in values if v is not None and v not in ("", "—")]
        return bool(present) and all(number(v) for v in present)
    return [" ---: " if numeric(col) else " :--- " for col in columns]


def first_of(items) -> object:
    """The first item, None for an empty sequence (Jinja's `first` is an error there)."""
    items = list(items or [])
    return items[0] if items else None


def last_of(items) -> object:
    """The last item, None for an empty sequence."""
    items = list(items or [])
    return items[-1] if items else None


def groups_in_order(items, attribute: str = "group") -> list[tuple[str, list]]:
    """(group, members) in the order groups first appear (Jinja's groupby sorts them)."""
    out: dict[str, list] = {}
    for item in items:
        out.setdefault(getattr(item, attribute), []).append(item)
    return list(out.items())


GLOBALS = {"alignments": alignments, "groups_in_order": groups_in_order, "first_of": first_of, "last_of": last_of, "trend": trend, "compare": compare, "times": times, "best": best, "percent": percent,
           "zip": lambda *columns: list(zip(*columns))}
