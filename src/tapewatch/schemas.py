"""Arrow schemas of the normalized record kinds (DESIGN.md, "Record kinds").

Every record carries the key ``exchange``, ``market`` (spot | perp | future) and a unified
``symbol`` (``BTC/USDT``), then ``ts``: UTC, nanoseconds (Arrow ``timestamp[ns, UTC]``).
Amounts are in base units, notionals and ``quote_volume`` in quote units.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

TS = pa.timestamp("ns", tz="UTC")
# local receive time of a captured message (UTC ns), beside the exchange's own ``ts``; null when
# the source has none. Not part of a row's identity.
LOCAL_TS = pa.field("local_ts", TS)
KEY_FIELDS = [pa.field("exchange", pa.string()), pa.field("market", pa.string()), pa.field("symbol", pa.string())]


@dataclass(frozen=True)
class Kind:
    """A record kind: its schema, the columns that identify a row (for idempotent imports).

    ``fallback_by``: the columns that identify a row whose ``unique_by`` columns are all null
    (a trade without a venue id); empty when every row carries its ``unique_by`` columns.
    """

    name: str
    schema: pa.Schema
    unique_by: tuple[str, ...]
    fallback_by: tuple[str, ...] = ()

    @property
    def fields(self) -> list[str]:
        return self.schema.names


def _kind(
    name: str, fields: list[pa.Field], unique_by: tuple[str, ...] | None = None, fallback_by: tuple[str, ...] = ()
) -> Kind:
    schema = pa.schema([*KEY_FIELDS, pa.field("ts", TS), *fields])
    return Kind(name, schema, unique_by or tuple(schema.names), fallback_by)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        _kind(
            "trade",
            [
                pa.field("price", pa.float64()),
                pa.field("amount", pa.float64()),
                pa.field("taker_side", pa.string()),  # "buy" | "sell": the aggressor
                pa.field("trade_id", pa.string()),
                LOCAL_TS,
            ],
            # one row per venue trade id (within exchange, market, symbol: the partition): a
            # corrected re-publication replaces the earlier row; a trade without an id is told
            # apart by all its fields (an exact re-import of it changes nothing)
            ("trade_id",),
            ("ts", "price", "amount", "taker_side"),
        ),
        _kind(
            "bar",
            [
                pa.field("interval", pa.string()),
                pa.field("open", pa.float64()),
                pa.field("high", pa.float64()),
                pa.field("low", pa.float64()),
                pa.field("close", pa.float64()),
                pa.field("volume", pa.float64()),  # base units; null when the venue gives only quote volume
                pa.field("taker_buy_volume", pa.float64()),  # base units; null when unknown
                pa.field("quote_volume", pa.float64()),
                pa.field("trades", pa.int64()),
            ],
            ("ts", "interval"),
        ),
        _kind(
            "book_delta",
            [
                pa.field("seq", pa.int64()),  # venue sequence / last update id of the message (null if none)
                pa.field("first_seq", pa.int64()),  # Binance first update id U of a diff (null otherwise)
                pa.field("prev_seq", pa.int64()),  # Binance USD-M pu: last update id of the previous diff
                pa.field("side", pa.string()),  # "bid" | "ask"
                pa.field("price", pa.float64()),
                pa.field("amount", pa.float64()),  # new level size; 0 removes the level
                pa.field("is_snapshot", pa.bool_()),
                LOCAL_TS,
            ],
            ("ts", "seq", "first_seq", "prev_seq", "side", "price", "amount", "is_snapshot"),
        ),
        _kind(
            "book_depth",
            [
                pa.field("band_pct", pa.float64()),  # 1 = within 1 % of the reference price
                pa.field("reference", pa.string()),  # "mid" (Hyblock, Binance bookDepth) | "touch" (Kaiko)
                pa.field("bid_amount", pa.float64()),  # base units
                pa.field("ask_amount", pa.float64()),
                pa.field("bid_notional", pa.float64()),  # quote units
                pa.field("ask_notional", pa.float64()),
                # how far from the reference price the book is known (%; inf: the whole side; null:
                # not recorded). A band wider than this has NaN amounts on that side, never a smaller sum.
                pa.field("bid_known_pct", pa.float64()),
                pa.field("ask_known_pct", pa.float64()),
            ],
            ("ts", "band_pct", "reference"),
        ),
        _kind(
            "open_interest",
            [pa.field("oi", pa.float64()), pa.field("oi_value", pa.float64())],
            ("ts",),
        ),
        _kind(
            "funding",
            [
                pa.field("rate", pa.float64()),
                pa.field("mark_price", pa.float64()),
                pa.field("index_price", pa.float64()),
            ],
            ("ts",),
        ),
        _kind(
            "liquidation",
            [pa.field("side", pa.string()), pa.field("price", pa.float64()), pa.field("amount", pa.float64())],
        ),
        _kind(
            "quote",
            [
                pa.field("bid_price", pa.float64()),
                pa.field("bid_amount", pa.float64()),
                pa.field("ask_price", pa.float64()),
                pa.field("ask_amount", pa.float64()),
                LOCAL_TS,
            ],
            ("ts", "bid_price", "bid_amount", "ask_price", "ask_amount"),
        ),
        _kind(
            "mark_price",  # mark-price klines of a perpetual (not trades: no volume)
            [
                pa.field("interval", pa.string()),
                pa.field("open", pa.float64()),
                pa.field("high", pa.float64()),
                pa.field("low", pa.float64()),
                pa.field("close", pa.float64()),
            ],
            ("ts", "interval"),
        ),
        _kind(
            "series",  # a named statistic a venue or a third party publishes (ratios, derived means)
            [
                pa.field("name", pa.string()),  # e.g. "oi_mean", "taker_buy_volume", "long_short_ratio_top"
                pa.field("interval", pa.string()),  # the period the value covers, ts = its start (null: a point)
                pa.field("value", pa.float64()),
                pa.field("unit", pa.string()),  # "BTC", "USDT", "ratio", "fraction"…
                pa.field("source", pa.string()),  # where it comes from and how it was made
            ],
            ("ts", "name", "interval", "source"),
        ),
        _kind(
            "coverage",  # a span [ts, end) of a stream the store holds completely (tapewatch.coverage)
            [
                pa.field("end", TS),  # exclusive
                pa.field("source", pa.string()),  # "trade" | "bar:<interval>"
                pa.field("origin", pa.string()),  # the imported file that proved it
            ],
            ("ts", "end", "source"),
        ),
        _kind(
            "instrument",
            [
                pa.field("native_symbol", pa.string()),
                pa.field("base", pa.string()),
                pa.field("quote", pa.string()),
                pa.field("tick_size", pa.float64()),
                pa.field("step_size", pa.float64()),
                pa.field("status", pa.string()),
            ],
            ("symbol", "ts"),
        ),
    ]
}


# the kinds of market records (every kind but the store's own bookkeeping)
RECORD_KINDS = tuple(k for k in KINDS if k != "coverage")


def kind(name: str) -> Kind:
    """The record kind called ``name`` (KeyError with the known names otherwise)."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown record kind {name!r}; known: {', '.join(KINDS)}") from None


def polars_schema(name: str) -> dict[str, pl.DataType]:
    """The kind's schema as a Polars schema dict."""
    return dict(pl.from_arrow(kind(name).schema.empty_table()).schema)


def conform(name: str, df: pl.DataFrame) -> pl.DataFrame:
    """Select and cast ``df`` to the kind's columns, filling absent optional columns with nulls.

    ``ts`` may be given as int64 nanoseconds or as a datetime; it becomes Datetime(ns, UTC).
    """
    target = polars_schema(name)
    if df.width == 0:
        return pl.DataFrame(schema=target)
    cols = []
    for col, dtype in target.items():
        if col not in df.columns:
            cols.append(pl.lit(None, dtype=dtype).alias(col))
        elif col == "ts" and df.schema[col].is_integer():
            cols.append(pl.col(col).cast(pl.Int64).cast(pl.Datetime("ns", "UTC")).alias(col))
        else:
            cols.append(pl.col(col).cast(dtype).alias(col))
    return df.select(cols)
