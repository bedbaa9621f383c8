"""Sentences that state a comparison or a trend, computed from the numbers they describe.

A caption may never claim more than its own numbers show. Two values differ only when they are further
apart than a tolerance (relative, or absolute where the caller passes one: shares near 100 % want an
absolute one). A curve "rises" when no value lies below an earlier one by more than the tolerance, "peaks"
when it rises to its maximum and falls after it (both ends clearly below the maximum), "dips" for the
mirror image, "stays at about" when every value is within the tolerance of every other, and is described
only by its range otherwise. Templates call these (as Jinja globals) instead of writing "falls as t grows"
by hand.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from generator.render import fmt_value

LEVEL, RISES, FALLS, PEAKS, DIPS, MIXED = "level", "rises", "falls", "peaks", "dips", "mixed"


def _close(a: float, b: float, rel_tol: float, abs_tol: float) -> bool:
    return abs(a - b) <= max(abs_tol, rel_tol * max(abs(a), abs(b)))


def _never_falls(vals: Sequence[float], rel_tol: float, abs_tol: float) -> bool:
    """No value lies below an earlier one by more than the tolerance (small steps cannot add up)."""
    return not any(b < a and not _close(a, b, rel_tol, abs_tol)
                   for i, a in enumerate(vals) for b in vals[i + 1:])


def _never_rises(vals: Sequence[float], rel_tol: float, abs_tol: float) -> bool:
    return _never_falls([-v for v in vals], rel_tol, abs_tol)


def direction(values: Sequence[float], rel_tol: float = 0.02, abs_tol: float = 0.0) -> str:
    """The shape of a curve: 'level' when all values are within the tolerance of each other; 'rises' /
    'falls' when no value is beyond the tolerance below (above) an earlier one; 'peaks' / 'dips' when it
    rises (falls) to its extreme and falls (rises) after it, both ends beyond the tolerance from the
    extreme; else 'mixed'."""
    vals = [float(v) for v in values]
    if len(vals) < 2 or _close(min(vals), max(vals), rel_tol, abs_tol):
        return LEVEL
    if _never_falls(vals, rel_tol, abs_tol):
        return RISES
    if _never_rises(vals, rel_tol, abs_tol):
        return FALLS
    hi, lo = vals.index(max(vals)), vals.index(min(vals))
    if (_never_falls(vals[:hi + 1], rel_tol, abs_tol) and _never_rises(vals[hi:], rel_tol, abs_tol)
            and not _close(vals[0], vals[hi], rel_tol, abs_tol) and not _close(vals[-1], vals[hi], rel_tol, abs_tol)):
        return PEAKS
    if (_never_rises(vals[:lo + 1], rel_tol, abs_tol) and _never_falls(vals[lo:], rel_tol, abs_tol)
            and not _close(vals[0], vals[lo], rel_tol, abs_tol) and not _close(vals[-1], vals[lo], rel_tol, abs_tol)):
        return DIPS
    return MIXED


@dataclass(frozen=True)
class Trend:
    direction: str
    xs: tuple
    ys: tuple[float, ...]
    fmt: str
    x_name: str
    unit: str = ""

    def _value(self, y: float) -> str:
        """A value with its unit: '10.4 dB' (the unit follows the value, never the x)."""
        return fmt_value(y, self.fmt) + (f" {self.unit}" if self.unit else "")

    def _x(self, i: int) -> str:
        x = self.xs[i]
        return fmt_value(x, "g") if isinstance(x, float) else str(x)

    def _at(self, i: int) -> str:
        return f"{self._value(self.ys[i])} at {self.x_name}{self._x(i)}"

    def _at_extreme(self, i: int) -> str:
        """The value at i and where the curve holds exactly that value around i: '100.0 % at γ = 3–5'."""
        first = last = i
        while first > 0 and self.ys[first - 1] == self.ys[i]:
            first -= 1
        while last < len(self.ys) - 1 and self.ys[last + 1] == self.ys[i]:
            last += 1
        where = self._x(first) if first == last else f"{self._x(first)}–{self._x(last)}"
        return f"{self._value(self.ys[i])} at {self.x_name}{where}"

    @property
    def phrase(self) -> str:
        """'falls from 98.0 % at t = 75 to 41.0 % at t = 225', 'stays at about 2.0 %',
        'rises from 9.6 at σ = 0.2 to a peak of 32.3 at σ = 0.6, then falls to 26.4 at σ = 1', ..."""
        ys = self.ys
        if self.direction == LEVEL:
            mean = sum(ys) / len(ys)
            return f"stays at about {self._value(mean)}" + (" throughout" if len(ys) > 2 else "")
        hi, lo = ys.index(max(ys)), ys.index(min(ys))
        if self.direction in (RISES, FALLS):
            end = hi if self.direction == RISES else lo
            # the extreme comes before the end and the end reads differently: say where it was reached
            if end < len(ys) - 1 and fmt_value(ys[end], self.fmt) != fmt_value(ys[-1], self.fmt):
                return (f"{self.direction} from {self._at(0)} to {self._at_extreme(end)} and stays near that "
                        f"({self._at(-1)})")
            return f"{self.direction} from {self._at(0)} to {self._at(-1)}"
        if self.direction == PEAKS:
            return f"rises from {self._at(0)} to a peak of {self._at_extreme(hi)}, then falls to {self._at(-1)}"
        if self.direction == DIPS:
            return f"falls from {self._at(0)} to a low of {self._at_extreme(lo)}, then rises to {self._at(-1)}"
        return f"moves without a steady trend, between {self._at(lo)} and {self._at(hi)}"

    def __str__(self) -> str:
        return self.phrase


def trend(xs: Sequence, ys: Sequence[float], fmt: str = ".3g", x_name: str = "", rel_tol: float = 0.02,
          abs_tol: float = 0.0, unit: str = "") -> Trend:
    """The trend of ys along xs, to be printed (`{{ trend(...) }}`) or inspected (`.direction`). For a
    share near 100 % pass `rel_tol=0, abs_tol=0.001` (0.1 points) so that a fall from 100 % counts;
    `unit` follows every value ('falls from 10.4 dB at t = 75 to ...')."""
    pairs = [(x, float(y)) for x, y in zip(xs, ys) if y is not None]
    return Trend(direction([y for _, y in pairs], rel_tol, abs_tol), tuple(x for x, _ in pairs),
                 tuple(y for _, y in pairs), fmt, x_name, unit)


def compare(a: float, b: float, rel_tol: float = 0.02, abs_tol: float = 0.0,
            words: tuple[str, str, str] = ("higher than", "lower than", "about the same as")) -> str:
    """'higher than' / 'lower than' / 'about the same as': a against b, equal within the tolerance."""
    if _close(float(a), float(b), rel_tol, abs_tol):
        return words[2]
    return words[0] if float(a) > float(b) else words[1]


def times(a: float, b: float) -> str:
    """How many times a is b, for a sentence: '3.2×', '30.5×', '623×' (None or zero b: '—'). One decimal
    below 100, as tables print ratios, so a ratio reads the same in a sentence and in a table."""
    if not b:
        return "—"
    ratio = float(a) / float(b)
    return f"{ratio:.0f}×" if ratio >= 100 else f"{ratio:.1f}×"


def listed(items: Sequence, last: str = "and") -> str:
    """'1', '1 and 50', '2, 3 and 4': items in a sentence (`last` joins the final two: 'and', 'or')."""
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}" if words else ""


def apart_fmt(a: float, b: float, fmt: str = ".1f") -> str:
    """`fmt`, or one more decimal where `fmt` would print a and b alike (2.96 beside a goal of 3:
    '.2f', not '3.0' beside '3.0')."""
    return fmt if fmt_value(a, fmt) != fmt_value(b, fmt) else f".{int(fmt[1:-1]) + 1}f"


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


def column_fmt(table, key: str, default: str = ".3g") -> str:
    """The format a recorded table prints column `key` in, so that a sentence quotes its numbers with as
    many decimals as the table beside it (`default` for a column printed as given)."""
    from generator.reader import column_format

    if table is None:
        return default
    return column_format(key, list(table.column(key))) or default


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


def reaching(rows: Sequence, key: str, goal: float) -> list:
    """The rows whose share in `key` (a fraction or text such as '99.2%') is at least `goal`."""
    return [row for row in rows if percent(row[key]) is not None and percent(row[key]) >= goal]


GLOBALS = {"alignments": alignments, "reaching": reaching, "column_fmt": column_fmt, "groups_in_order": groups_in_order,
           "first_of": first_of, "last_of": last_of, "trend": trend, "compare": compare, "times": times,
           "listed": listed, "apart_fmt": apart_fmt, "best": best, "percent": percent, "zip": lambda *columns: list(zip(*columns))}
