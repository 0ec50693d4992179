"""Bars on one time grid, from trades or by resampling finer bars: one function, whatever the source.

A bar stamped ``ts`` covers ``[ts, ts + interval)`` (epoch-aligned, UTC; ``1d`` starts at 00:00 UTC)
and uses only data inside it. Intervals without data produce no row (a gap, never a zero bar).
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from tapewatch import coverage
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

    Trades take one compiled pass (numba) when they come in key-then-time order, as Store.read
    returns them; other input is sorted once (stable: trades sharing a
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
    side = data.get_column("taker_side")
    buy = data.select((pl.col("taker_side") == "buy").fill_null(False)).to_series().to_numpy()
    unknown = side.is_null().to_numpy() if side.null_count() else np.zeros(0, dtype=np.bool_)
    price = data.get_column("price").cast(pl.Float64).to_numpy()
    amount = data.get_column("amount").cast(pl.Float64).to_numpy()
    kc = kchange if kchange is not None else np.zeros(0, dtype=np.bool_)
    m = _count_bars(ts, kc, step)
    starts, opens, o, h, lo, c, vol, tbv, qv, cnt, unk = _fill_bars(ts, price, amount, buy, unknown, kc, step, m)
    taker_buy = pl.Series("taker_buy_volume", tbv)
    if len(unknown):
        taker_buy = taker_buy.scatter(np.flatnonzero(unk), None)
    out = pl.DataFrame(
        {
            "ts": pl.Series(opens).cast(pl.Datetime("ns", "UTC")),
            "open": o, "high": h, "low": lo, "close": c, "volume": vol,
            "taker_buy_volume": taker_buy, "quote_volume": qv, "trades": cnt,
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


@numba.njit(cache=True, nogil=True)
def _count_bars(ts: np.ndarray, kchange: np.ndarray, step: int) -> int:  # pragma: no cover - compiled
    """Number of bars: a new bar where the bucket of ``ts`` (UTC ns) or the market changes."""
    has_k = len(kchange) > 0
    count = 1
    edge = ts[0] - ts[0] % step + step  # end of the current bar; ts is ordered within a market
    for i in range(1, len(ts)):
        if ts[i] >= edge or (has_k and kchange[i]):
            count += 1
            edge = ts[i] - ts[i] % step + step
    return count


@numba.njit(cache=True, nogil=True)
def _fill_bars(ts, price, amount, buy, unknown, kchange, step, m):  # type: ignore[no-untyped-def]  # pragma: no cover
    """One pass over time-ordered trades: per bar its first row, open time (UTC ns), OHLC, volume,
    taker buy volume, quote volume, trade count and whether any trade lacked its side."""
    has_k = len(kchange) > 0
    has_u = len(unknown) > 0
    starts = np.empty(m, np.int64)
    opens = np.empty(m, np.int64)
    o = np.empty(m)
    h = np.empty(m)
    lo = np.empty(m)
    c = np.empty(m)
    vol = np.empty(m)
    tbv = np.empty(m)
    qv = np.empty(m)
    cnt = np.empty(m, np.int64)
    unk = np.empty(m, np.bool_)
    j = -1
    edge = 0  # end of the current bar; ts is ordered within a market
    hh = ll = cc = vv = tb = qq = 0.0  # the current bar, kept in registers, stored when it ends
    nn = 0
    uu = False
    for i in range(len(ts)):
        p = price[i]
        a = amount[i]
        if i == 0 or ts[i] >= edge or (has_k and kchange[i]):
            if j >= 0:
                h[j], lo[j], c[j], vol[j], tbv[j], qv[j], cnt[j], unk[j] = hh, ll, cc, vv, tb, qq, nn, uu
            b = ts[i] - ts[i] % step
            j += 1
            starts[j] = i
            opens[j] = b
            o[j] = p
            hh = ll = p
            vv = tb = qq = 0.0
            nn = 0
            uu = False
            edge = b + step
        hh = max(hh, p)
        ll = min(ll, p)
        cc = p
        vv += a
        qq += p * a
        nn += 1
        if buy[i]:
            tb += a
        if has_u and unknown[i]:
            uu = True
    h[j], lo[j], c[j], vol[j], tbv[j], qv[j], cnt[j], unk[j] = hh, ll, cc, vv, tb, qq, nn, uu
    return starts, opens, o, h, lo, c, vol, tbv, qv, cnt, unk


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
    """Bars for one market from the store, the source chosen bar by bar.

    Candidates for a bar [t, t + interval): the stored trades, and the stored bars of every
    interval that divides ``interval``. A candidate is *complete* when it holds the whole bar:
    trades where the store's trade coverage (tapewatch.coverage) holds [t, t + interval), bars
    of interval i when all interval / i of them are stored. The bar comes from, in order: a
    complete candidate before an incomplete one; then the one that carries more of the columns
    the factors need (``volume``, ``taker_buy_volume``); then trades before bars, finer bars
    before coarser. So a few seconds of trades never replace a day of klines, 4h klines with a
    taker split win over 5m bars without one where they cover, and importing data changes only
    the bars that overlap it. Where no candidate is complete, the most informative partial one
    is used (as built, e.g. the first bar of a recording), except trades over a hole in their
    coverage (trades known to be missing, e.g. a live gap REST could not fill): such a bar comes
    from another source or is absent (a gap, never a bar of the trades that happened to arrive).

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
    candidates = []
    if not trades.is_empty():
        built = build_bars(trades, interval)
        # every span, not only those in range: a hole is only known as the space between two
        spans = coverage.read(store, exchange, market, symbol, coverage.TRADES, None, hi)
        opens = built.get_column("ts").dt.epoch("ns").to_numpy()
        whole = coverage.covered(opens, step, *spans)
        holed = coverage.in_hole(opens, step, *spans) & ~whole
        candidates.append(built.with_columns(pl.Series("__complete", whole), pl.lit(0, pl.Int64).alias("__rank"))
                          .filter(~pl.Series(holed)))
    if not stored.is_empty():
        intervals = stored.get_column("interval").unique().to_list()
        usable = {iv: interval_ns(iv) for iv in intervals if step % interval_ns(iv) == 0}
        if not usable and trades.is_empty():
            have = ", ".join(sorted(intervals))
            raise TapewatchError(f"cannot build {interval} bars: stored bars are {have}, none divides {interval}")
        for iv, iv_ns in usable.items():
            rows = stored.filter(pl.col("interval") == iv) if len(intervals) > 1 else stored
            built = build_bars(conform("bar", rows), interval)
            # Store.read gives one row per (ts, interval), in time order: the bars of a bucket are
            # one run, and the buckets come in the order build_bars returns them
            ts = rows.get_column("ts").dt.epoch("ns").to_numpy()
            bucket = ts - ts % step
            counts = np.diff(np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1], [True]])))
            complete = pl.Series("__complete", counts == step // iv_ns)
            candidates.append(built.with_columns(complete, pl.lit(iv_ns, pl.Int64).alias("__rank")))
    if len(candidates) == 1:
        return candidates[0].select(BAR_COLUMNS)
    score = pl.col("volume").is_not_null().cast(pl.Int8) + pl.col("taker_buy_volume").is_not_null().cast(pl.Int8)
    return (
        pl.concat(candidates)
        .with_columns(score.alias("__score"))
        .sort(["ts", "__complete", "__score", "__rank"], descending=[False, True, True, False])
        .unique("ts", keep="first", maintain_order=True)
        .select(BAR_COLUMNS)
    )
