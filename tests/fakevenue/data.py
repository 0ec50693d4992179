"""Rows in the exchanges' documented layouts, and the normalized records they must become.

Archive layouts follow the binance-public-data README (klines: 12 columns, spot without a
header, USD-M with ``open_time,…,ignore``; metrics, bookDepth and fundingRate with their
headers). Values are deterministic pseudo-random numbers, rounded so that the text written and
the float read back are the same number.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl

MIN_MS = 60_000
DAY_MS = 86_400_000
KLINE_HEADER = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
                "taker_buy_volume", "taker_buy_quote_volume", "ignore")
METRICS_HEADER = ("create_time", "symbol", "sum_open_interest", "sum_open_interest_value",
                  "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio", "count_long_short_ratio",
                  "sum_taker_long_short_vol_ratio")


def ms(d: date | datetime) -> int:
    """UTC epoch ms of a date (midnight) or datetime."""
    if not isinstance(d, datetime):
        d = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    return int(d.timestamp() * 1000)


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng([abs(int(s)) for s in seed])


def kline_frame(start_ms: int, n: int, step_ms: int = MIN_MS, seed: int = 1) -> pl.DataFrame:
    """``n`` klines from ``start_ms`` in the archive's 12 columns (numbers, not text)."""
    r = _rng(seed, start_ms, n)
    close = np.round(40_000 + np.cumsum(r.normal(0, 15, n)), 2)
    opn = np.round(np.concatenate([[close[0]], close[:-1]]), 2)
    high = np.round(np.maximum(opn, close) + r.uniform(0, 20, n), 2)
    low = np.round(np.minimum(opn, close) - r.uniform(0, 20, n), 2)
    vol = np.round(r.uniform(0.5, 50, n), 5)
    buy = np.round(vol * r.uniform(0, 1, n), 5)
    t = start_ms + step_ms * np.arange(n, dtype=np.int64)
    return pl.DataFrame({
        "open_time": t, "open": opn, "high": high, "low": low, "close": close, "volume": vol,
        "close_time": t + step_ms - 1, "quote_volume": np.round(vol * close, 4), "count": r.integers(1, 900, n),
        "taker_buy_volume": buy, "taker_buy_quote_volume": np.round(buy * close, 4), "ignore": np.zeros(n, dtype=np.int64),
    })


def kline_csv(frame: pl.DataFrame, market: str) -> str:
    """The CSV text of an archive klines file: spot has no header, USD-M (perp) has one."""
    return frame.write_csv(include_header=market == "perp", float_precision=8)


def expected_bars(frame: pl.DataFrame, market: str, symbol: str, interval: str) -> pl.DataFrame:
    """The ``bar`` records the importer must make of ``frame``."""
    return frame.select(
        pl.lit("binance").alias("exchange"), pl.lit(market).alias("market"), pl.lit(symbol).alias("symbol"),
        (pl.col("open_time") * 1_000_000).cast(pl.Datetime("ns", "UTC")).alias("ts"), pl.lit(interval).alias("interval"),
        "open", "high", "low", "close", "volume", "taker_buy_volume", "quote_volume", pl.col("count").alias("trades"),
    )


def _text_time(ms_values: np.ndarray) -> list[str]:
    return [datetime.fromtimestamp(v / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for v in ms_values]


def metrics_frame(day: date, seed: int = 2) -> pl.DataFrame:
    """One day of 5-minute USD-M ``metrics`` rows (numbers; ``create_time`` in epoch ms)."""
    t = ms(day) + 5 * MIN_MS * np.arange(288, dtype=np.int64)
    r = _rng(seed, t[0])
    oi = np.round(80_000 + np.cumsum(r.normal(0, 50, 288)), 3)
    return pl.DataFrame({"create_time": t, "oi": oi, "oi_value": np.round(oi * 42_000.5, 2),
                         "ratio": np.round(r.uniform(0.5, 3, 288), 4)})


def metrics_csv(frame: pl.DataFrame, native: str) -> str:
    out = frame.select(
        pl.Series("create_time", _text_time(frame["create_time"].to_numpy())), pl.lit(native).alias("symbol"),
        pl.col("oi").alias("sum_open_interest"), pl.col("oi_value").alias("sum_open_interest_value"),
        pl.col("ratio").alias("count_toptrader_long_short_ratio"), pl.col("ratio").alias("sum_toptrader_long_short_ratio"),
        pl.col("ratio").alias("count_long_short_ratio"), pl.col("ratio").alias("sum_taker_long_short_vol_ratio"),
    )
    return out.write_csv(float_precision=8)


def book_depth_frame(day: date, every_s: int = 3600, seed: int = 3) -> pl.DataFrame:
    """USD-M ``bookDepth`` snapshots: per timestamp, percentage -5…-1 (bids) and 1…5 (asks)."""
    stamps = ms(day) + 1000 * (8 + every_s * np.arange(86400 // every_s, dtype=np.int64))
    pct = np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], dtype=np.int64)
    t = np.repeat(stamps, len(pct))
    p = np.tile(pct, len(stamps))
    r = _rng(seed, stamps[0])
    depth = np.round(np.abs(p) * 100 + r.uniform(0, 50, len(t)), 3)
    return pl.DataFrame({"timestamp": t, "percentage": p, "depth": depth, "notional": np.round(depth * 42_000, 2)})


def book_depth_csv(frame: pl.DataFrame) -> str:
    return frame.with_columns(pl.Series("timestamp", _text_time(frame["timestamp"].to_numpy()))).write_csv(float_precision=8)


def funding_frame(month: date, seed: int = 4) -> pl.DataFrame:
    """A month of 8-hourly USD-M ``fundingRate`` rows."""
    nxt = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    n = (nxt - month).days * 3
    t = ms(month) + 8 * 3600_000 * np.arange(n, dtype=np.int64)
    rate = np.round(_rng(seed, t[0]).normal(0.0001, 0.00005, n), 8)
    return pl.DataFrame({"calc_time": t, "funding_interval_hours": np.full(n, 8), "last_funding_rate": rate})


def funding_csv(frame: pl.DataFrame) -> str:
    return frame.write_csv(float_precision=8)


def days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


# -- REST truths -----------------------------------------------------------------------------
def candles_with_gaps(start_ms: int, n: int, step_ms: int = MIN_MS, seed: int = 5, empty_every: int = 17) -> pl.DataFrame:
    """Coinbase-like 1m candles: every ``empty_every``-th interval had no trades and has NO row."""
    f = kline_frame(start_ms, n, step_ms, seed).select("open_time", "open", "high", "low", "close", "volume")
    keep = (np.arange(n) % empty_every) != 3
    return f.filter(pl.Series(keep))


def series(start_ms: int, n: int, step_ms: int, seed: int, level: float = 1000.0, noise: float = 5.0,
           decimals: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``n`` timestamps from ``start_ms`` every ``step_ms`` and a random walk around ``level``."""
    t = start_ms + step_ms * np.arange(n, dtype=np.int64)
    v = np.round(level + np.cumsum(_rng(seed, start_ms).normal(0, noise, n)), decimals)
    return t, v
