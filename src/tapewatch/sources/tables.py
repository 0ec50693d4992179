"""Generic tables: an OHLCV CSV, and Parquet trade and quote tables.

* **OHLCV CSV** — header ``timestamp,open,high,low,close,volume`` (first column may also be
  called ``time``, ``datetime``, ``date`` or ``open_time``). ``timestamp`` is the bar's OPEN
  time, as date-time text in UTC (``2021-12-31 23:01:00.000000``) or epoch s/ms/µs/ns.
  ``volume`` is taken as QUOTE-currency volume, as in the real BTC perpetual sample (see
  ``tests/data/PROVENANCE.md``): it is stored as ``quote_volume``; ``volume`` (base),
  ``taker_buy_volume`` and ``trades`` stay null — this file does not say them.
* **Parquet trades** — ``timestamp``, ``trade_id``, ``price``, ``quantity``, ``buyer_maker``
  (aliases: ``time``/``ts``, ``id``/``agg_trade_id``, ``qty``/``amount``/``size``,
  ``is_buyer_maker``). ``buyer_maker = true`` means the buyer was the maker, so the TAKER SOLD.
  ``quantity`` is in base units.
* **Parquet quotes** — ``timestamp``, optional ``symbol``, ``bid``, ``bid_size``, ``ask``,
  ``ask_size`` (aliases: ``bid_price``/``ask_price``, ``bid_qty``/``bid_amount``…) → quote.

Parquet timestamps may be Arrow timestamps (any unit; without zone they are taken as UTC) or
epoch integers (s/ms/µs/ns, judged by magnitude).

Where the key comes from, first match wins:

* ``exchange``: ``--exchange``; else a known venue name in the file's path (``…/binance/…``,
  ``coinbase-btc-usd_1m.csv``); else, for an OHLCV CSV only, ``unknown`` (a file such as
  ``btc-perp-20211231-20220201_1m.csv`` names no venue). A Parquet table without a venue is an
  error asking for ``--exchange``: trades of an unknown venue must not be mixed into the store.
* ``market``: ``--market``; else ``spot``/``perp``/``future`` words in the file name (``perp``,
  ``perpetual``, ``swap`` → perp; ``future``, ``futures`` → future); else ``spot`` for Parquet
  tables (the sample is Binance spot BTCUSDT from 2021-01-08) and an error for an OHLCV CSV.
* ``symbol``: ``--symbol``; else a ``symbol`` column (Parquet); else the file name's first word
  that is not a venue, market, interval or date: ``btcusdt`` → ``BTC/USDT``, ``btc-usd`` →
  ``BTC/USD``; a bare asset name next to a market word (``btc-perp``) is taken as quoted in USD
  (``BTC/USD``) — override with ``--symbol`` when it is not. A symbol column that disagrees
  with the file name is an error.
* ``interval`` (OHLCV): ``--interval``; else an interval word in the file name (``_1m``); else the
  most common spacing of the timestamps. Every bar must then lie on that interval's UTC grid.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tapewatch.errors import ImportFormatError, TapewatchError
from tapewatch.sources.base import (
    Batch,
    Format,
    Hints,
    RawFile,
    row_of,
    check_nonnegative,
    check_ordered,
    datetime_column,
    epoch_column,
    looks_numeric,
    read_csv_strings,
    to_bool,
    to_float,
)
from tapewatch.symbols import QUOTES, check_market, unify
from tapewatch.timeutil import NS_PER, epoch_to_ns, interval_ns

VENUES = {
    "binance": "binance", "binanceus": "binanceus", "coinbase": "coinbase", "coinbasepro": "coinbase",
    "bybit": "bybit", "okx": "okx", "okex": "okx", "kraken": "kraken", "bitmex": "bitmex",
    "deribit": "deribit", "huobi": "huobi", "htx": "huobi", "bitfinex": "bitfinex",
    "bitstamp": "bitstamp", "gemini": "gemini", "kucoin": "kucoin", "gateio": "gateio",
}
MARKET_WORDS = {
    "spot": "spot", "perp": "perp", "perps": "perp", "perpetual": "perp", "swap": "perp",
    "future": "future", "futures": "future",
}
_FILLER = {"trades", "trade", "quotes", "quote", "klines", "kline", "ohlcv", "bars", "bar", "candles", "data", "book"}
_INTERVAL_WORD = re.compile(r"^\d+[smhd]$")
_ASSET_WORD = re.compile(r"^[a-z][a-z0-9]{1,19}$")
OHLCV_FIRST = {"timestamp", "time", "datetime", "date", "open_time"}
OHLCV_REST = ["open", "high", "low", "close", "volume"]


# -- names -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NameInfo:
    """What a file's path says: venue, market, unified symbol and bar interval (None = not said)."""

    exchange: str | None
    market: str | None
    symbol: str | None
    interval: str | None


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def name_info(path: Path, name: str | None = None) -> NameInfo:
    """Venue (from any part of the path), market, symbol and interval (from the file name).

    ``name`` is the inner file name for a zip or the name without ``.gz`` (RawFile.name).
    """
    fname = name or path.name
    stem = re.sub(r"(\.(csv|parquet|pq|txt|gz|zip))+$", "", fname.lower())
    # the nearest mention wins: the file name, then its folder, then the folders above
    parts = [stem, *reversed(path.parent.parts)]
    exchange = next((VENUES[w] for part in parts for w in _words(part) if w in VENUES), None)
    words = _words(stem)
    market = next((MARKET_WORDS[w] for w in words if w in MARKET_WORDS), None)
    interval = next((w for w in words if _INTERVAL_WORD.match(w)), None)
    symbol = None
    tokens = [w for w in words if w not in VENUES and w not in MARKET_WORDS and w not in _FILLER]
    for i, w in enumerate(tokens):
        if _INTERVAL_WORD.match(w) or not _ASSET_WORD.match(w):
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        try:
            symbol = unify(w)  # btcusdt → BTC/USDT
        except TapewatchError:
            if nxt.upper() in QUOTES:  # btc-usd
                symbol = f"{w.upper()}/{nxt.upper()}"
            elif market is not None:  # btc-perp: a bare base beside a market word, quoted in USD
                symbol = f"{w.upper()}/USD"
        break
    return NameInfo(exchange, market, symbol, interval)


def _raw_name_info(raw: RawFile) -> NameInfo:
    return name_info(raw.path, raw.name)


def interval_label(step_ns: int) -> str:
    """The shortest interval text for a length in ns (``60e9`` → ``1m``); ValueError if not whole seconds."""
    for unit in ("d", "h", "m", "s"):
        if step_ns % NS_PER[unit] == 0:
            return f"{step_ns // NS_PER[unit]}{unit}"
    raise ValueError(f"{step_ns} ns is not a whole number of seconds")


def infer_interval(ts: pl.Series) -> str | None:
    """The most common positive spacing of sorted UTC ns timestamps as an interval, None if unknown."""
    diffs = ts.sort().diff().drop_nulls()
    diffs = diffs.filter(diffs > 0)
    if diffs.is_empty():
        return None
    step = int(diffs.mode().min())
    try:
        return interval_label(step)
    except ValueError:
        return None


# -- OHLCV CSV ---------------------------------------------------------------------------------
def _header(raw: RawFile) -> list[str]:
    if raw.is_parquet or not raw.first_lines:
        return []
    return [c.strip().lower() for c in raw.first_lines[0].lstrip("\ufeff").split(",")]


class OhlcvCsv:
    """A plain OHLCV CSV with quote-currency volume → bar (see module doc for key and units)."""

    name = "ohlcv-csv"

    def sniff(self, raw: RawFile) -> bool:
        cols = _header(raw)
        return len(cols) == 6 and cols[0] in OHLCV_FIRST and cols[1:] == OHLCV_REST

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        cols = _header(raw)
        df = read_csv_strings(raw, cols, has_header=True)
        first = cols[0]
        numeric = all(looks_numeric(v) for v in df.get_column(first).head(100).to_list())
        df = epoch_column(df, first, raw) if numeric else datetime_column(df, first, raw)
        df = to_float(df, OHLCV_REST, raw)
        check_nonnegative(df, OHLCV_REST, raw)
        _check_ohlc(df, raw)
        check_ordered(df, raw)
        dup = df.filter(pl.col("ts") == pl.col("ts").shift(1))
        if not dup.is_empty():
            raise ImportFormatError(raw.path, "duplicate bar timestamp", row_of(dup))

        info = _raw_name_info(raw)
        interval = hints.interval or info.interval or infer_interval(df.get_column("ts"))
        if interval is None:
            raise ImportFormatError(raw.path, "cannot tell the bar interval (one bar only); pass --interval")
        try:
            step = interval_ns(interval)
        except TapewatchError as exc:
            raise ImportFormatError(raw.path, str(exc)) from exc
        off = df.filter(pl.col("ts") % step != 0)
        if not off.is_empty():
            raise ImportFormatError(raw.path, f"bar time is not on the {interval} grid (UTC)", row_of(off))
        market = hints.market or info.market
        symbol = hints.symbol or info.symbol
        if market is None or symbol is None:
            what = " and ".join(w for w, v in (("--market", market), ("--symbol", symbol)) if v is None)
            raise ImportFormatError(raw.path, f"the file name does not say the market or symbol; pass {what}")
        exchange, market, symbol = _key(raw, hints.exchange or info.exchange or "unknown", market, symbol)
        rows = df.select(
            pl.lit(exchange).alias("exchange"), pl.lit(market).alias("market"), pl.lit(symbol).alias("symbol"),
            "ts", pl.lit(interval).alias("interval"), "open", "high", "low", "close",
            pl.col("volume").alias("quote_volume"),
        )
        return [Batch("bar", rows)]


def _check_ohlc(df: pl.DataFrame, raw: RawFile) -> None:
    """``low <= open, close <= high`` on every bar."""
    bad = df.filter(
        (pl.col("low") > pl.min_horizontal("open", "close")) | (pl.col("high") < pl.max_horizontal("open", "close"))
    )
    if not bad.is_empty():
        raise ImportFormatError(raw.path, "inconsistent bar: high/low do not contain open and close", row_of(bad))


def _key(raw: RawFile, exchange: str, market: str, symbol: str) -> tuple[str, str, str]:
    """Validated ``(exchange, market, unified symbol)``; a bad value is an ImportFormatError."""
    try:
        return exchange.lower(), check_market(market), unify(symbol)
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, str(exc)) from exc


# -- Parquet tables ----------------------------------------------------------------------------
TRADE_ALIASES: dict[str, Sequence[str]] = {
    "ts": ("timestamp", "time", "ts", "transact_time"),
    "trade_id": ("trade_id", "id", "agg_trade_id"),
    "price": ("price",),
    "amount": ("quantity", "qty", "amount", "size"),
    "buyer_maker": ("buyer_maker", "is_buyer_maker"),
}
QUOTE_ALIASES: dict[str, Sequence[str]] = {
    "ts": ("timestamp", "time", "ts"),
    "bid_price": ("bid", "bid_price"),
    "bid_amount": ("bid_size", "bid_qty", "bid_amount"),
    "ask_price": ("ask", "ask_price"),
    "ask_amount": ("ask_size", "ask_qty", "ask_amount"),
}


def _parquet_columns(raw: RawFile) -> list[str]:
    if not raw.is_parquet:
        return []
    try:
        return pq.ParquetFile(io.BytesIO(raw.data)).schema_arrow.names
    except (pa.ArrowException, OSError):
        return []


def _resolve(names: Sequence[str], aliases: dict[str, Sequence[str]]) -> dict[str, str] | None:
    """``{field: column}`` when every field has a column among ``names`` (case-insensitive), else None."""
    lower = {n.lower(): n for n in names}
    out = {}
    for field, options in aliases.items():
        col = next((lower[o] for o in options if o in lower), None)
        if col is None:
            return None
        out[field] = col
    return out


def _read_parquet(raw: RawFile, aliases: dict[str, Sequence[str]]) -> pl.DataFrame:
    """The table's fields renamed as in ``aliases``, plus ``__row`` (1-based record number) and
    ``symbol_col`` when the table has a symbol column; ``ts`` becomes UTC ns (int64). Nulls are errors."""
    try:
        table = pq.read_table(io.BytesIO(raw.data))
    except (pa.ArrowException, OSError) as exc:
        raise ImportFormatError(raw.path, f"cannot read Parquet ({exc})") from exc
    mapping = _resolve(table.column_names, aliases)
    if mapping is None:
        raise ImportFormatError(raw.path, f"missing columns; expected {', '.join(a[0] for a in aliases.values())}")
    sym_col = next((c for c in table.column_names if c.lower() == "symbol"), None)
    if table.num_rows == 0:
        raise ImportFormatError(raw.path, "empty file: no rows")
    df = pl.from_arrow(pa.table({field: table.column(col) for field, col in mapping.items()}))
    if sym_col is not None:
        df = df.with_columns(pl.from_arrow(table.column(sym_col)).cast(pl.String).alias("symbol_col"))
    df = df.with_row_index("__row", offset=1).with_columns(pl.col("__row").cast(pl.Int64))
    nulls = df.filter(pl.any_horizontal(pl.all().is_null()))
    if not nulls.is_empty():
        row = nulls.row(0, named=True)
        col = next(c for c, v in row.items() if v is None)
        raise ImportFormatError(raw.path, f"empty {mapping.get(col, sym_col)}", int(row["__row"]))
    ts = df.schema["ts"]
    if isinstance(ts, pl.Datetime):
        ns = pl.col("ts").dt.cast_time_unit("ns")
        ns = ns.dt.replace_time_zone("UTC") if ts.time_zone is None else ns.dt.convert_time_zone("UTC")
        df = df.with_columns(ns.dt.epoch("ns").alias("ts"))
    elif ts.is_numeric():
        df = df.with_columns(epoch_to_ns(df.get_column("ts")))
    else:
        raise ImportFormatError(raw.path, f"{mapping['ts']} has type {ts}; expected a timestamp or epoch number")
    return df


def _parquet_key(raw: RawFile, hints: Hints, df: pl.DataFrame) -> pl.DataFrame:
    """Add ``exchange``, ``market`` and ``symbol`` (see module doc for where each comes from)."""
    info = _raw_name_info(raw)
    exchange = hints.exchange or info.exchange
    if exchange is None:
        raise ImportFormatError(raw.path, "cannot tell the exchange from the path; pass --exchange")
    try:
        market = check_market(hints.market or info.market or "spot")
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, str(exc)) from exc
    if hints.symbol:
        return df.with_columns(
            pl.lit(exchange.lower()).alias("exchange"), pl.lit(market).alias("market"),
            pl.lit(_key(raw, exchange, market, hints.symbol)[2]).alias("symbol"),
        )
    if "symbol_col" in df.columns:
        natives = df.group_by("symbol_col").agg(pl.col("__row").min()).sort("__row")
        unified = {}
        for native, row in natives.iter_rows():
            try:
                unified[native] = unify(native)
            except TapewatchError as exc:
                raise ImportFormatError(raw.path, str(exc), row) from exc
        if info.symbol and set(unified.values()) != {info.symbol}:
            raise ImportFormatError(
                raw.path,
                f"symbol column says {', '.join(sorted(set(unified.values())))} but the file name says "
                f"{info.symbol}; pass --symbol",
            )
        sym = pl.col("symbol_col").replace_strict(unified, return_dtype=pl.String)
    elif info.symbol:
        sym = pl.lit(info.symbol)
    else:
        raise ImportFormatError(raw.path, "cannot tell the symbol from the file name or a symbol column; pass --symbol")
    return df.with_columns(
        pl.lit(exchange.lower()).alias("exchange"), pl.lit(market).alias("market"), sym.alias("symbol")
    )


def _floats(df: pl.DataFrame, cols: list[str], raw: RawFile) -> pl.DataFrame:
    """Numeric or numeric-text columns as Float64; text that is not a number, or NaN, is an error."""
    text = [c for c in cols if df.schema[c] == pl.String]
    df = to_float(df, text, raw) if text else df
    try:
        df = df.with_columns(pl.col(cols).cast(pl.Float64))
    except pl.exceptions.PolarsError as exc:
        raise ImportFormatError(raw.path, f"non-numeric {', '.join(cols)} ({exc})") from exc
    for c in cols:
        bad = df.filter(pl.col(c).is_nan())
        if not bad.is_empty():
            raise ImportFormatError(raw.path, f"non-numeric {c} NaN", row_of(bad))
    return df


class ParquetTrades:
    """A Parquet trade table with Binance's ``buyer_maker`` flag → trade (taker side normalized)."""

    name = "parquet-trades"

    def sniff(self, raw: RawFile) -> bool:
        return _resolve(_parquet_columns(raw), TRADE_ALIASES) is not None

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        df = _read_parquet(raw, TRADE_ALIASES)
        df = _floats(df, ["price", "amount"], raw)
        df = to_bool(df, "buyer_maker", raw)
        check_nonnegative(df, ["price", "amount"], raw)
        check_ordered(df, raw)
        df = _parquet_key(raw, hints, df)
        rows = df.select(
            "exchange", "market", "symbol", "ts", "price", "amount",
            pl.when(pl.col("buyer_maker")).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("taker_side"),
            pl.col("trade_id").cast(pl.String),
        )
        return [Batch("trade", rows)]


class ParquetQuotes:
    """A Parquet best bid / ask table → quote (sizes in base units)."""

    name = "parquet-quotes"

    def sniff(self, raw: RawFile) -> bool:
        return _resolve(_parquet_columns(raw), QUOTE_ALIASES) is not None

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        values = list(QUOTE_ALIASES)[1:]
        df = _read_parquet(raw, QUOTE_ALIASES)
        df = _floats(df, values, raw)
        check_nonnegative(df, values, raw)
        check_ordered(df, raw)
        df = _parquet_key(raw, hints, df)
        return [Batch("quote", df.select("exchange", "market", "symbol", "ts", *values))]


FORMATS: list[Format] = [OhlcvCsv(), ParquetTrades(), ParquetQuotes()]
