"""Real bars for the event-study tests: the BTC perpetual month in tests/data, parsed with the
standard library (csv, gzip) so that expected numbers never go through tapewatch code."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime, timezone
from functools import lru_cache

import numpy as np

from tapewatch.study import PriceBars

from conftest import SHARED as DATA

PERP = DATA / "nautilus-samples" / "btc-perp-20211231-20220201_1m.csv.gz"
MIN = 60_000_000_000
HOUR = 60 * MIN


def ns(text: str) -> int:
    """``2022-01-10 00:00`` (UTC) → epoch ns."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000


@lru_cache(maxsize=1)
def raw_rows() -> tuple[tuple[int, float, float, float, float], ...]:
    """``(open ns, open, high, low, close)`` of every 1-minute bar, straight from the gzip CSV."""
    with gzip.open(PERP, "rt", newline="") as fh:
        return tuple(
            (ns(r["timestamp"][:16]), float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]))
            for r in csv.DictReader(fh)
        )


def window(first: str, last: str) -> list[tuple[int, float, float, float, float]]:
    """Raw rows with open time in [first, last)."""
    a, b = ns(first), ns(last)
    return [r for r in raw_rows() if a <= r[0] < b]


def to_bars(rows: list[tuple[int, float, float, float, float]] | tuple, step_ns: int = MIN) -> PriceBars:
    """The tool's bar container over raw rows (no computation)."""
    arr = np.array(rows, dtype=np.float64)
    return PriceBars(np.array([r[0] for r in rows], dtype=np.int64), arr[:, 4].copy(), arr[:, 2].copy(),
                     arr[:, 3].copy(), step_ns)


def month_bars() -> PriceBars:
    return to_bars(raw_rows())


def plain_counted(rows: list | tuple, starts: list[int], gap_ns: int) -> list[int]:
    """Episode starts that count (plain Python): the first, then each at least ``gap_ns`` after the
    last counted one, so no two share an outcome bar when ``gap_ns`` is the longest outcome window."""
    counted: list[int] = []
    for k in starts:
        if not counted or rows[k][0] - rows[counted[-1]][0] >= gap_ns:
            counted.append(k)
    return counted
