"""Bars on one time grid, from trades or by resampling finer bars: one function, whatever the source.

A bar stamped ``ts`` covers ``[ts, ts + interval)`` (epoch-aligned, UTC; ``1d`` starts at 00:00 UTC)
and uses only data inside it. Intervals without data produce no row (a gap, never a zero bar).
"""

from __future__ import annotations

import polars as pl

from tapewatch.errors import TapewatchError
from tapewatch.schemas import conform
from tapewatch.timeutil import interval_ns

BAR_COLUMNS = [
    "exchange", "market", "symbol", "ts", "interval", "open", "high", "low", "close",
    "volume", "taker_buy_volume", "taker_sell_volume", "quote_volume", "trades",
]


def build_bars(data: pl.DataFrame, interval: str) -> pl.DataFrame:
    """Aggregate trades or finer bars into bars of ``interval``.

    ``data`` is either trade records (``price``, ``amount``, ``taker_side``) or bar records
    (``open``…``trades`` with an ``interval`` that divides the target). Timestamps are UTC ns.
    Output columns: :data:`BAR_COLUMNS`; ``taker_sell_volume = volume - taker_buy_volume``;
    taker volumes are null for a bar where any input lacks the aggressor side.
    """
    step = interval_ns(interval)
    keys = [c for c in ("exchange", "market", "symbol") if c in data.columns]
    if "price" in data.columns:
        agg = _trade_aggs()
    elif "open" in data.columns:
        _check_divides(data, step, interval)
        agg = _bar_aggs()
    else:
        raise TapewatchError("build_bars needs trade rows (price, amount, taker_side) or bar rows (open..close)")
    if not data.get_column("ts").is_sorted():
        data = data.sort([*keys, "ts"], maintain_order=True)
    ts_int = pl.col("ts").cast(pl.Int64) if data.schema["ts"] != pl.Int64 else pl.col("ts")
    out = (
        data.lazy()
        .with_columns((ts_int - ts_int % step).alias("__bucket"))
        .group_by([*keys, "__bucket"])
        .agg(agg)
        .sort([*keys, "__bucket"])
        .with_columns(
            pl.col("__bucket").cast(pl.Datetime("ns", "UTC")).alias("ts"),
            pl.lit(interval).alias("interval"),
            (pl.col("volume") - pl.col("taker_buy_volume")).alias("taker_sell_volume"),
        )
        .collect()
    )
    for k in ("exchange", "market", "symbol"):
        if k not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.String).alias(k))
    return out.select(BAR_COLUMNS)


def _trade_aggs() -> list[pl.Expr]:
    buy = pl.col("taker_side") == "buy"
    return [
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        pl.col("amount").sum().alias("volume"),
        pl.when(pl.col("taker_side").is_null().any())
        .then(None)
        .otherwise(pl.col("amount").filter(buy).sum())
        .alias("taker_buy_volume"),
        (pl.col("price") * pl.col("amount")).sum().alias("quote_volume"),
        pl.len().cast(pl.Int64).alias("trades"),
    ]


def _bar_aggs() -> list[pl.Expr]:
    def total(col: str) -> pl.Expr:
        return pl.when(pl.col(col).is_null().any()).then(None).otherwise(pl.col(col).sum()).alias(col)

    return [
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        total("volume"),
        total("taker_buy_volume"),
        total("quote_volume"),
        total("trades"),
    ]


def _check_divides(data: pl.DataFrame, step: int, interval: str) -> None:
    for src in data.get_column("interval").unique().to_list():
        if src is None or step % interval_ns(src) != 0:
            raise TapewatchError(f"cannot build {interval} bars from {src} bars: {src} does not divide {interval}")


def bars_from_store(
    store: "Store",  # noqa: F821 - imported lazily to keep data flowing one way
    exchange: str,
    market: str,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
) -> pl.DataFrame:
    """Bars for one market from the store: from trades when it holds any in the range, else by
    resampling the finest stored bars whose interval divides ``interval``.

    Raises TapewatchError naming what the store holds when neither source covers the request.
    """
    step = interval_ns(interval)
    # widen to whole bars so that the first and last bar are complete
    lo = None if start is None else start - start % step
    hi = None if end is None else end + (-end) % step
    trades = store.read("trade", exchange, market, symbol, lo, hi)
    if not trades.is_empty():
        return build_bars(trades, interval)
    stored = store.read("bar", exchange, market, symbol, lo, hi)
    if stored.is_empty():
        raise TapewatchError(
            f"no trades or bars for {exchange} {market} {symbol} in the requested range; "
            "run `tapewatch status` to see what the store holds"
        )
    usable = [
        iv for iv in stored.get_column("interval").unique().to_list() if step % interval_ns(iv) == 0
    ]
    if not usable:
        have = ", ".join(sorted(stored.get_column("interval").unique().to_list()))
        raise TapewatchError(f"cannot build {interval} bars: stored bars are {have}, none divides {interval}")
    finest = min(usable, key=interval_ns)
    return build_bars(conform("bar", stored.filter(pl.col("interval") == finest)), interval)
