"""Time helpers: integer epoch values of any unit to UTC nanoseconds, and bar intervals."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import polars as pl

from tapewatch.errors import TapewatchError

NS_PER = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_INTERVAL = re.compile(r"^(\d+)([smhd])$")


def interval_ns(interval: str) -> int:
    """Length in nanoseconds of an interval such as ``1m``, ``5m``, ``1h`` or ``1d``."""
    m = _INTERVAL.match(interval.strip())
    if not m or int(m.group(1)) == 0:
        raise TapewatchError(f"bad interval {interval!r}: use a number and one of s, m, h, d (e.g. 1m, 5m, 4h, 1d)")
    return int(m.group(1)) * NS_PER[m.group(2)]


def bar_opens(first: int, last: int, step: int) -> np.ndarray:
    """Open times (UTC ns, int64) of the bars ``first, first + step, …`` up to ``last`` inclusive.

    Integer arithmetic only: ``np.arange(first, last + 1, step)`` sizes its output in floating
    point and loses the last bar on long nanosecond ranges (15m bars over a year and more).
    """
    if last < first:
        return np.empty(0, dtype=np.int64)
    return first + step * np.arange((last - first) // step + 1, dtype=np.int64)


# (magnitude below which an epoch value is in this unit, ns per unit): s, ms, µs; else ns
EPOCH_UNITS = ((1e11, 1_000_000_000), (1e14, 1_000_000), (1e17, 1_000))


def epoch_unit_factor(sample: int | float) -> int:
    """Multiplier that turns an epoch value into nanoseconds, judged by its magnitude.

    Seconds (< 1e11), milliseconds (< 1e14), microseconds (< 1e17), otherwise nanoseconds.
    Binance spot archives switched from ms to µs on 2025-01-01; this tells them apart.
    """
    a = abs(sample)
    return next((factor for limit, factor in EPOCH_UNITS if a < limit), 1)


def epoch_to_ns(values: pl.Series) -> pl.Series:
    """Integer or float epoch values (s, ms, µs or ns, decided per value) to int64 nanoseconds."""
    v = values.cast(pl.Float64)
    arr = v.to_numpy()
    a = np.abs(arr)
    factor = np.select([a < limit for limit, _ in EPOCH_UNITS], [float(f) for _, f in EPOCH_UNITS], 1.0)
    if values.dtype.is_integer():
        ints = values.cast(pl.Int64).to_numpy()
        out = ints * factor.astype(np.int64)
    else:
        out = np.round(arr * factor).astype(np.int64)
    return pl.Series(values.name, out, dtype=pl.Int64)


def parse_time(text: str) -> int:
    """A user-given time (``2024-01-01``, ``2024-01-01T12:00``, ISO with zone) to UTC nanoseconds."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise TapewatchError(f"bad time {text!r}: use ISO-8601, e.g. 2024-01-01 or 2024-01-01T12:00") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1_000_000) * 1_000


def ns_to_iso(ns: int | None) -> str:
    """UTC ISO-8601 text of a nanosecond timestamp, to the second (truncated, never rounded up
    to the next second), ``-`` for None."""
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
