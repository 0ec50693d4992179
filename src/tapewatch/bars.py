"""Bars on one time grid, from trades or by resampling finer bars: one function, whatever the source.

A bar stamped ``ts`` covers ``[ts, ts + interval)`` (epoch-aligned, UTC; ``1d`` starts at 00:00 UTC)
and uses only data inside it. Intervals without data produce no row (a gap, never a zero bar).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tapewatch.errors import TapewatchError
from tapewatch.schemas import conform
from tapewatch.timeutil import interval_ns

KEYS = ("exchange", "market", "symbol")
BAR_COLUMNS = [
    "exchange", "market", "symbol", "ts", "interval", "open", "high", "low", "close",
    "volume", "taker_buy_volume", "taker_sell_volume", "quote_volume", "trades",
]


_BAR_DTYPES: dict[str, pl.DataType] = {
    "exchange": pl.String(), "market": pl.String(), "symbol": pl.String(), "ts": pl.Datetime("ns", "UTC"),
    "interval": pl.String(), "open": pl.Float64(), "high": pl.Float64(), "low": pl.Float64(), "close": pl.Float64(),
    "volume": pl.Float64(), "taker_buy_volume": pl.Float64(), "taker_sell_volume": pl.Float64(),
    "quote_volume": pl.Float64(), "trades": pl.Int64(),
}


def build_bars(data: pl.DataFrame, interval: str) -> pl.DataFrame:
    """Aggregate trades or finer bars into bars of ``interval``.

    ``data`` is either trade records (``price``, ``amount``, ``taker_side``) or bar records
    (``open``…``trades`` with an ``interval`` that divides the target). Timestamps are UTC ns.
    Output columns: :data:`BAR_COLUMNS`; ``taker_sell_volume = volume - taker_buy_volume``;
    taker volumes are null for a bar where any input lacks the aggressor side.

    Trades take one pass over contiguous runs (numpy ``reduceat``) when they come in key-then-time
    order, as Store.read returns them; other input is sorted once (stable: trades sharing a
    timestamp keep their input order, which decides open and close).
    """
    step = interval_ns(interval)
    if "price" in data.columns:
        if data.is_empty():
            return pl.DataFrame(schema={c: _BAR_DTYPES[c] for c in BAR_COLUMNS})
        for col in ("ts", "price", "amount"):
            if data.get_column(col).null_count():
                raise TapewatchError(f"trades with a missing {col} cannot make bars")
        return _trade_bars(data, interval, step)
    if "open" not in data.columns:
        raise TapewatchError("build_bars needs trade rows (price, amount, taker_side) or bar rows (open..close)")
    _check_divides(data, step, interval)
    keys = [c for c in KEYS if c in data.columns]
    if not data.get_column("ts").is_sorted():
        data = data.sort([*keys, "ts"], maintain_order=True)
    ts_int = pl.col("ts").cast(pl.Int64) if data.schema["ts"] != pl.Int64 else pl.col("ts")
    out = (
        data.lazy()
        .with_columns((ts_int - ts_int % step).alias("__bucket"))
        .group_by([*keys, "__bucket"])
        .agg(_bar_aggs())
        .sort([*keys, "__bucket"])
        .with_columns(
            pl.col("__bucket").cast(pl.Datetime("ns", "UTC")).alias("ts"),
            pl.lit(interval).alias("interval"),
            (pl.col("volume") - pl.col("taker_buy_volume")).alias("taker_sell_volume"),
        )
        .collect()
    )
    for k in KEYS:
        if k not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.String).alias(k))
    return out.select(BAR_COLUMNS)


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


def _ordered(data: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, np.ndarray, np.ndarray | None]:
    """``(data in key-then-time order, ts as int64 ns, key-change mask or None when one market)``.

    Data already in that order (Store.read's ORDER BY, or one market sorted by ts) is not copied;
    anything else is sorted once (stable, so trades sharing a timestamp keep their input order).
    """
    ts_expr = pl.col("ts").dt.epoch("ns") if isinstance(data.schema["ts"], pl.Datetime) else pl.col("ts").cast(pl.Int64)
    differs = data.select(pl.col(k).ne_missing(pl.col(k).first()).any() for k in keys).row(0) if keys else ()
    varying = [k for k, d in zip(keys, differs) if d]

    def runs(d: pl.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        ts = d.select(ts_expr).to_series().to_numpy()
        if not varying:
            return ts, None
        change = pl.any_horizontal(pl.col(k).ne_missing(pl.col(k).shift(1)) for k in varying).fill_null(True)
        return ts, d.select(change).to_series().to_numpy()

    ts, kchange = runs(data)
    rising = ts[1:] >= ts[:-1]
    if kchange is None:
        in_order = bool(rising.all())
    else:
        in_order = bool((rising | kchange[1:]).all()) and int(kchange.sum()) == data.select(pl.struct(varying).n_unique()).item()
    if not in_order:
        data = data.sort([*keys, "ts"], maintain_order=True)
        ts, kchange = runs(data)
    return data, ts, kchange


def _trade_bars(data: pl.DataFrame, interval: str, step: int) -> pl.DataFrame:
    keys = [k for k in KEYS if k in data.columns]
    data, ts, kchange = _ordered(data, keys)
    n = len(ts)
    first, last = int(ts[0]) - int(ts[0]) % step, int(ts[-1])
    if kchange is None and (last - first) // step < n // 4:
        # one market, time-ordered: bar starts by binary search on the grid (no per-row bucket)
        edges = np.arange(first, last + 1, step, dtype=np.int64)
        cut = np.searchsorted(ts, edges, side="left")
        keep = np.append(cut[1:], n) > cut
        starts, opens = cut[keep], edges[keep]
    else:
        bucket = ts // step * step
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(bucket[1:], bucket[:-1], out=change[1:])
        if kchange is not None:
            change |= kchange
        starts = np.flatnonzero(change)
        opens = bucket[starts]
    ends = np.append(starts[1:], n) - 1
    side_null = data.get_column("taker_side").null_count() > 0
    cols = data.select(
        pl.col("price").cast(pl.Float64),
        pl.col("amount").cast(pl.Float64),
        pl.when(pl.col("taker_side") == "buy").then(pl.col("amount")).otherwise(0.0).cast(pl.Float64).alias("buy"),
        (pl.col("price") * pl.col("amount")).cast(pl.Float64).alias("quote"),
        *([pl.col("taker_side").is_null().alias("unknown")] if side_null else []),
    )
    price = cols.get_column("price").to_numpy()
    taker_buy = pl.Series("taker_buy_volume", np.add.reduceat(cols.get_column("buy").to_numpy(), starts))
    if side_null:
        unknown = np.logical_or.reduceat(cols.get_column("unknown").to_numpy(), starts)
        taker_buy = taker_buy.scatter(np.flatnonzero(unknown), None)
    out = pl.DataFrame(
        {
            "ts": pl.Series(opens).cast(pl.Datetime("ns", "UTC")),
            "open": price[starts],
            "high": np.maximum.reduceat(price, starts),
            "low": np.minimum.reduceat(price, starts),
            "close": price[ends],
            "volume": np.add.reduceat(cols.get_column("amount").to_numpy(), starts),
            "taker_buy_volume": taker_buy,
            "quote_volume": np.add.reduceat(cols.get_column("quote").to_numpy(), starts),
            "trades": np.diff(np.append(starts, n)).astype(np.int64),
        }
    )
    if keys:
        out = pl.concat([data.select(keys)[starts], out], how="horizontal")
    out = out.with_columns(
        pl.lit(interval).alias("interval"), (pl.col("volume") - pl.col("taker_buy_volume")).alias("taker_sell_volume")
    )
    for k in KEYS:
        if k not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.String).alias(k))
    if kchange is not None:  # several markets: bars ordered by key, then time
        out = out.sort([*keys, "ts"], maintain_order=True)
    return out.select(BAR_COLUMNS)


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
    """Bars for one market from the store, the source chosen per UTC day: days for which the
    store holds trades are built from the trades; other days by resampling, per day, the finest
    stored bars whose interval divides ``interval``. Choosing per day means data added for a
    later day never changes how an earlier bar is built.

    Raises TapewatchError naming what the store holds when neither source covers the request.
    """
    step = interval_ns(interval)
    # widen to whole bars so that the first and last bar are complete
    lo = None if start is None else start - start % step
    hi = None if end is None else end + (-end) % step
    trades = store.read("trade", exchange, market, symbol, lo, hi)
    stored = store.read("bar", exchange, market, symbol, lo, hi)
    if trades.is_empty() and stored.is_empty():
        raise TapewatchError(
            f"no trades or bars for {exchange} {market} {symbol} in the requested range; "
            "run `tapewatch status` to see what the store holds"
        )
    parts = []
    if not trades.is_empty():
        parts.append(build_bars(trades, interval))
    if not stored.is_empty():
        intervals = stored.get_column("interval").unique().to_list()
        usable = {iv: interval_ns(iv) for iv in intervals if step % interval_ns(iv) == 0}
        if not usable and trades.is_empty():
            have = ", ".join(sorted(intervals))
            raise TapewatchError(f"cannot build {interval} bars: stored bars are {have}, none divides {interval}")
        day = pl.col("ts").dt.date()
        trade_days = trades.select(day.unique()).to_series()
        finer = (
            stored.filter(pl.col("interval").is_in(list(usable)) & ~day.is_in(trade_days.implode()))
            .with_columns(pl.col("interval").replace_strict(usable, return_dtype=pl.Int64).alias("__iv"))
            .filter(pl.col("__iv") == pl.col("__iv").min().over(day))
            .drop("__iv")
        )
        if not finer.is_empty():
            parts.append(build_bars(conform("bar", finer), interval))
    return pl.concat(parts).sort("ts", maintain_order=True) if len(parts) > 1 else parts[0]
