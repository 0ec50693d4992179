"""What the factor modules share: the computation context, condition states and readings."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import polars as pl

from tapewatch.config import Config, Duration, to_bars

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
Side = Literal["distribution", "accumulation"]
SIDES: tuple[Side, Side] = ("distribution", "accumulation")


class State(str, Enum):
    """A condition at one bar: it holds, it does not, or an input it needs is missing."""

    HOLDS = "holds"
    FAILS = "fails"
    UNAVAILABLE = "unavailable"

    @classmethod
    def of(cls, value: bool | None) -> "State":
        if value is None:
            return cls.UNAVAILABLE
        return cls.HOLDS if value else cls.FAILS


@dataclass(frozen=True)
class Context:
    """Parameters of one computation: config, base asset, bar interval and requested range.

    ``step`` is the bar length in ns; ``start`` the open time (UTC ns) of the first requested
    bar (cumulative sums start there); ``missing`` maps an input key to why it is missing.
    """

    cfg: Config
    base: str
    interval: str
    step: int
    start: int
    missing: dict[str, str] = field(default_factory=dict)

    def bars(self, d: Duration) -> int:
        """A configured duration as a number of bars (at least 1)."""
        return to_bars(d, self.step)

    @staticmethod
    def span(d: Duration) -> str:
        """A configured duration as text: ``"4h"`` → ``4 hours``, ``12`` → ``12 bars``."""
        if isinstance(d, int):
            return f"{d} bar" + ("s" if d != 1 else "")
        m = re.match(r"^(\d+(?:\.\d+)?)([smhd])$", d)
        if not m:
            return d
        unit = {"s": "second", "m": "minute", "h": "hour", "d": "day"}[m.group(2)]
        return f"{m.group(1)} {unit}" + ("s" if m.group(1) != "1" else "")


@dataclass(frozen=True)
class Reading:
    """One factor's condition at one bar, with the numbers behind it.

    ``values``: the numbers the condition looked at, by column name (None = missing);
    ``thresholds``: what they were compared with; ``rule``: the condition in words;
    ``why``: one sentence on why it holds, fails or is unavailable.
    """

    factor: str
    condition: str
    state: State
    values: dict[str, float | None]
    thresholds: dict[str, float]
    rule: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor, "condition": self.condition, "state": self.state.value,
            "values": dict(self.values), "thresholds": dict(self.thresholds), "rule": self.rule, "why": self.why,
        }


def num(v: Any) -> float | None:
    """A row value as a float, None for null / NaN."""
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def ns_of(v: Any) -> int | None:
    """A timestamp value from a row (int ns or datetime) as UTC nanoseconds."""
    if v is None:
        return None
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return (v - EPOCH) // timedelta(microseconds=1) * 1_000
    return int(v)


def signed(x: float) -> str:
    """A threshold with its sign: ``+0.5``, ``-0.1``, ``0``."""
    return "0" if x == 0 else f"{x:+g}"


def fmt_pct(v: float | None, digits: int = 2) -> str:
    """``+0.82%`` (``n/a`` for None)."""
    return "n/a" if v is None else f"{v:+.{digits}f}%"


def fmt_num(v: float | None, digits: int = 2) -> str:
    """``-1,234.57`` (``n/a`` for None)."""
    return "n/a" if v is None else f"{v:+,.{digits}f}"


def safe_div(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """a / b, null where b is 0 or null (never NaN or inf)."""
    return pl.when(b != 0).then(a / b).otherwise(None)


def known(expr: pl.Expr, *cols: str) -> pl.Expr:
    """``expr`` where every column in ``cols`` has a value, else null: a condition with a missing
    input is unavailable, never false."""
    return pl.when(pl.all_horizontal([pl.col(c).is_not_null() for c in cols])).then(expr).otherwise(None)


def pct_change(col: str, bars: int) -> pl.Expr:
    """(x_t / x_{t-bars} - 1) * 100 in %, null when either is missing or x_{t-bars} is 0."""
    prev = pl.col(col).shift(bars)
    return safe_div(pl.col(col) - prev, prev) * 100.0


def missing_note(ctx: Context, *keys: str) -> str:
    """Why inputs are missing, from the loader's notes (empty when it has none)."""
    notes = [ctx.missing[k] for k in keys if k in ctx.missing]
    return "; ".join(notes)
