"""Publish archive datasets on the fake the way data.binance.vision does: a daily file per day
and, for every month wholly inside the span, a monthly file (except where the archive has only
one of the two: metrics and bookDepth are daily only, fundingRate monthly only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import polars as pl

from fakevenue import data
from fakevenue.server import FakeVenue

MARKET_DIR = {"spot": "spot", "perp": "futures/um"}


def _months(first: date, end: date) -> list[date]:
    out, m = [], date(first.year, first.month, 1)
    while m < end:
        nxt = date(m.year + m.month // 12, m.month % 12 + 1, 1)
        if m >= first and nxt <= end:
            out.append(m)
        m = nxt
    return out


def _next_month(m: date) -> date:
    return date(m.year + m.month // 12, m.month % 12 + 1, 1)


def klines(fv: FakeVenue, market: str, symbol: str, first: date, ndays: int, interval: str = "1m",
           monthly: bool = True, seed: int = 1) -> pl.DataFrame:
    """Publish ``ndays`` of klines from ``first``; returns the expected ``bar`` records."""
    native = symbol.replace("/", "")
    step = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}[interval]
    per_day = 86_400_000 // step
    frames = []
    base = f"data/{MARKET_DIR[market]}"
    for d in data.days(first, ndays):
        f = data.kline_frame(data.ms(d), per_day, step, seed)
        frames.append(f)
        fv.add_archive_csv(f"{base}/daily/klines/{native}/{interval}/{native}-{interval}-{d.isoformat()}.zip",
                           data.kline_csv(f, market))
    whole = pl.concat(frames)
    if monthly:
        for m in _months(first, first + timedelta(days=ndays)):
            part = whole.filter((pl.col("open_time") >= data.ms(m)) & (pl.col("open_time") < data.ms(_next_month(m))))
            fv.add_archive_csv(f"{base}/monthly/klines/{native}/{interval}/{native}-{interval}-{m:%Y-%m}.zip",
                               data.kline_csv(part, market))
    return data.expected_bars(whole, market, symbol, interval)


def _daily_um(fv: FakeVenue, dataset: str, native: str, first: date, ndays: int,
              frame: Callable[[date], pl.DataFrame], csv: Callable[[pl.DataFrame], str]) -> pl.DataFrame:
    """Publish a daily-only USD-M ``dataset``: ``frame(day)`` gives a day's rows, ``csv(rows)`` its
    file; returns the rows of every day."""
    frames = []
    for d in data.days(first, ndays):
        f = frame(d)
        frames.append(f)
        fv.add_archive_csv(f"data/futures/um/daily/{dataset}/{native}/{native}-{dataset}-{d.isoformat()}.zip", csv(f))
    return pl.concat(frames)


def metrics(fv: FakeVenue, symbol: str, first: date, ndays: int) -> pl.DataFrame:
    """Publish daily USD-M metrics; returns the expected ``open_interest`` records."""
    native = symbol.replace("/", "")
    rows = _daily_um(fv, "metrics", native, first, ndays, data.metrics_frame, lambda f: data.metrics_csv(f, native))
    return rows.select(
        pl.lit("binance").alias("exchange"), pl.lit("perp").alias("market"), pl.lit(symbol).alias("symbol"),
        (pl.col("create_time") * 1_000_000).cast(pl.Datetime("ns", "UTC")).alias("ts"), "oi", "oi_value")


def book_depth(fv: FakeVenue, symbol: str, first: date, ndays: int) -> pl.DataFrame:
    """Publish daily USD-M bookDepth; returns the expected ``book_depth`` records."""
    native = symbol.replace("/", "")
    rows = _daily_um(fv, "bookDepth", native, first, ndays, data.book_depth_frame, data.book_depth_csv)
    f = rows.with_columns((pl.col("timestamp") * 1_000_000).cast(pl.Datetime("ns", "UTC")).alias("ts"),
                                       pl.col("percentage").abs().cast(pl.Float64).alias("band_pct"))
    bids = f.filter(pl.col("percentage") < 0).select("ts", "band_pct", pl.col("depth").alias("bid_amount"),
                                                     pl.col("notional").alias("bid_notional"))
    asks = f.filter(pl.col("percentage") > 0).select("ts", "band_pct", pl.col("depth").alias("ask_amount"),
                                                     pl.col("notional").alias("ask_notional"))
    return bids.join(asks, on=["ts", "band_pct"]).select(
        pl.lit("binance").alias("exchange"), pl.lit("perp").alias("market"), pl.lit(symbol).alias("symbol"),
        "ts", "band_pct", pl.lit("mid").alias("reference"), "bid_amount", "ask_amount", "bid_notional", "ask_notional",
    ).sort("ts", "band_pct")


def funding(fv: FakeVenue, symbol: str, months: list[date]) -> pl.DataFrame:
    """Publish monthly USD-M fundingRate files; returns the expected ``funding`` records."""
    native = symbol.replace("/", "")
    frames = []
    for m in months:
        f = data.funding_frame(m)
        frames.append(f)
        fv.add_archive_csv(f"data/futures/um/monthly/fundingRate/{native}/{native}-fundingRate-{m:%Y-%m}.zip",
                           data.funding_csv(f))
    return pl.concat(frames).select(
        pl.lit("binance").alias("exchange"), pl.lit("perp").alias("market"), pl.lit(symbol).alias("symbol"),
        (pl.col("calc_time") * 1_000_000).cast(pl.Datetime("ns", "UTC")).alias("ts"),
        pl.col("last_funding_rate").alias("rate"))
