"""Coverage: the time spans of a stream that the store holds completely.

A ``coverage`` record says that the store holds every trade (``source = "trade"``) or every bar
of one interval (``source = "bar:<interval>"``) of one market in ``[ts, end)`` (UTC ns, end
exclusive), and which imported file proved it (``origin``, the file's name). The importer writes them next to
the rows, through the same atomic partition write; a span is split at UTC midnights so that
each record lies in its date partition. What a file proves:

- trades: ``[first ts, last ts]`` of the file per market (``end`` = last ts + 1 ns), or its whole
  UTC day for a Binance daily archive (``BTCUSDT-trades-2024-01-01.zip``, ``…-aggTrades-…``),
  whose trades all lie in that day;
- bars: each bar its own interval ``[ts, ts + interval)``, consecutive bars merged into one span.

Bars are built from trades only where trade coverage holds the whole bar (tapewatch.bars), and
``tapewatch status`` lists the covered spans and the holes between them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from tapewatch.schemas import conform
from tapewatch.timeutil import NS_PER, interval_ns

if TYPE_CHECKING:
    from tapewatch.store import Store

TRADES = "trade"
DAY = NS_PER["d"]
KEYS = ["exchange", "market", "symbol"]
# a Binance daily trade archive: the whole UTC day of trades (monthly files are not whole-day proofs)
ARCHIVE_TRADE_FORMATS = ("binance-trades", "binance-aggtrades")
_ARCHIVE_DAY = re.compile(r"^[A-Z0-9]+-(?:aggTrades|trades)-(\d{4})-(\d{2})-(\d{2})\.(?:zip|csv)$")


def archive_day(fmt: str | None, path: Path) -> int | None:
    """Start (UTC ns) of the day a Binance daily trades archive (format ``binance-trades`` or
    ``binance-aggtrades``, named ``<SYMBOL>-<trades|aggTrades>-<YYYY-MM-DD>.zip``) holds, else None."""
    m = _ARCHIVE_DAY.match(path.name) if fmt in ARCHIVE_TRADE_FORMATS else None
    if not m:
        return None
    y, mo, d = (int(g) for g in m.groups())
    return (date(y, mo, d) - date(1970, 1, 1)).days * DAY


def of_rows(kind_name: str, rows: pl.DataFrame, origin: str, whole_day: int | None = None) -> pl.DataFrame:
    """Coverage records proved by normalized ``rows`` of one kind read from the file ``origin``.

    ``whole_day``: start (UTC ns) of a UTC day the file is known to hold completely (trades only);
    it is used when every trade lies inside it. Kinds other than trade and bar prove nothing
    (an empty frame).
    """
    if rows.is_empty() or kind_name not in ("trade", "bar"):
        return conform("coverage", pl.DataFrame())
    ts = pl.col("ts").dt.epoch("ns") if isinstance(rows.schema["ts"], pl.Datetime) else pl.col("ts").cast(pl.Int64)
    if kind_name == "trade":
        spans = rows.group_by(KEYS).agg(ts.min().alias("start"), (ts.max() + 1).alias("end"))
        if whole_day is not None:
            inside = (pl.col("start") >= whole_day) & (pl.col("end") <= whole_day + DAY)
            spans = spans.with_columns(
                pl.when(inside).then(pl.lit(whole_day)).otherwise(pl.col("start")).alias("start"),
                pl.when(inside).then(pl.lit(whole_day + DAY)).otherwise(pl.col("end")).alias("end"),
            )
        spans = spans.with_columns(pl.lit(TRADES).alias("source"))
    else:
        ivs = {iv: interval_ns(iv) for iv in rows.get_column("interval").drop_nulls().unique().to_list()}
        group = [*KEYS, "interval"]
        spans = (
            rows.select(*group, ts.alias("start"))
            .drop_nulls()
            .unique()
            .sort([*group, "start"])
            .with_columns(
                (pl.col("start") + pl.col("interval").replace_strict(ivs, return_dtype=pl.Int64)).alias("end")
            )
            .with_columns(
                (pl.col("start") != pl.col("end").shift(1).over(group)).fill_null(True).cum_sum().alias("__run")
            )
            .group_by([*group, "__run"])
            .agg(pl.col("start").min(), pl.col("end").max())
            .with_columns(pl.concat_str(pl.lit("bar:"), pl.col("interval")).alias("source"))
        )
    return _split_days(spans.select(*KEYS, "source", "start", "end").with_columns(pl.lit(origin).alias("origin")))


def trade_spans(spans: list[tuple[str, str, str, int, int]], origin: str) -> pl.DataFrame:
    """Trade coverage records of ``spans`` = (exchange, market, symbol, start, end) in UTC ns
    (end exclusive), proved by ``origin`` (e.g. ``live``), cut at UTC midnights."""
    if not spans:
        return conform("coverage", pl.DataFrame())
    frame = pl.DataFrame(spans, schema={**dict.fromkeys(KEYS, pl.String), "start": pl.Int64, "end": pl.Int64}, orient="row")
    return _split_days(frame.with_columns(pl.lit(TRADES).alias("source"), pl.lit(origin).alias("origin")))


def _split_days(spans: pl.DataFrame) -> pl.DataFrame:
    """Spans cut at UTC midnights, as coverage records (``ts`` = start)."""
    return conform(
        "coverage",
        spans.with_columns(pl.int_ranges(pl.col("start") - pl.col("start") % DAY, pl.col("end"), DAY).alias("__day"))
        .explode("__day")
        .select(
            *KEYS, "source", "origin",
            pl.max_horizontal("start", "__day").alias("ts"),
            pl.min_horizontal("end", pl.col("__day") + DAY).cast(pl.Datetime("ns", "UTC")).alias("end"),
        ),
    )


def union(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping or touching spans ``[start, end)`` merged: sorted, disjoint (int64 ns)."""
    if len(starts) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts, np.int64)[order], np.asarray(ends, np.int64)[order]
    reach = np.maximum.accumulate(e)
    new = np.concatenate([[True], s[1:] > reach[:-1]])
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:], [len(s)]]) - 1
    return s[first], reach[last]


def read(
    store: Store, exchange: str, market: str, symbol: str, source: str, lo: int | None = None, hi: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Merged covered spans ``(starts, ends)`` (UTC ns) of one stream that meet ``[lo, hi)``."""
    day0 = None if lo is None else lo - lo % DAY
    rec = store.read("coverage", exchange, market, symbol, day0, hi).filter(pl.col("source") == source)
    if lo is not None:
        rec = rec.filter(pl.col("end").dt.epoch("ns") > lo)
    return union(rec.get_column("ts").dt.epoch("ns").to_numpy(), rec.get_column("end").dt.epoch("ns").to_numpy())


def covered(bar_opens: np.ndarray, step: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each bar ``[t, t + step)`` (``t`` UTC ns): does one merged span hold all of it?"""
    t = np.asarray(bar_opens, np.int64)
    if len(starts) == 0:
        return np.zeros(len(t), dtype=np.bool_)
    i = np.searchsorted(starts, t, side="right") - 1
    return (i >= 0) & (ends[np.maximum(i, 0)] >= t + step)


def in_hole(bar_opens: np.ndarray, step: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each bar ``[t, t + step)``: does it meet a hole between two merged spans (data known
    to be missing there, as opposed to before the first span or after the last)?"""
    t = np.asarray(bar_opens, np.int64)
    if len(starts) < 2:
        return np.zeros(len(t), dtype=np.bool_)
    hole_starts, hole_ends = ends[:-1], starts[1:]
    j = np.searchsorted(hole_ends, t, side="right")  # the first hole that ends after t
    return (j < len(hole_ends)) & (hole_starts[np.minimum(j, len(hole_ends) - 1)] < t + step)


@dataclass(frozen=True)
class StreamCoverage:
    """What the store holds completely of one stream: merged spans and the holes between them."""

    exchange: str
    market: str
    symbol: str
    source: str
    starts: np.ndarray
    ends: np.ndarray

    @property
    def covered_ns(self) -> int:
        return int((self.ends - self.starts).sum())

    @property
    def holes(self) -> list[tuple[int, int]]:
        """``[end of one span, start of the next)`` for every gap between covered spans (UTC ns)."""
        return [(int(a), int(b)) for a, b in zip(self.ends[:-1], self.starts[1:], strict=True)]


def summary(store: Store) -> list[StreamCoverage]:
    """Every stream with coverage records, sorted by exchange, market, symbol, source."""
    rec = store.read("coverage")
    out = []
    for (ex, mkt, sym, src), g in rec.group_by([*KEYS, "source"], maintain_order=True):
        s, e = union(g.get_column("ts").dt.epoch("ns").to_numpy(), g.get_column("end").dt.epoch("ns").to_numpy())
        out.append(StreamCoverage(str(ex), str(mkt), str(sym), str(src), s, e))
    return sorted(out, key=lambda c: (c.exchange, c.market, c.symbol, c.source))
