"""OHLCV files without a venue layout: CSV with a header, and Parquet / Feather (Arrow IPC) tables.

* **OHLCV CSV** — a header naming a time column (``timestamp``, ``time``, ``datetime``,
  ``date`` or ``open_time``) and ``open, high, low, close, volume`` in any order; a second time
  column (``datetime`` text or ``unix_timestamp`` epoch) may ride along and must then state
  the same instant on every row. The time is the bar's OPEN time, as UTC date-time text
  (``2021-12-31 23:01:00.000000``) or epoch s/ms/µs/ns.
* **OHLCV table** — a Parquet or Feather / Arrow IPC file with columns ``date, open, high,
  low, close, volume`` (freqtrade's layout; ``date`` = bar open time, an Arrow timestamp, zone
  or none = UTC, or epoch numbers). freqtrade file names ``BTC_USDT-5m.feather`` (spot),
  ``BTC_USDT_USDT-5m-futures.feather`` (USD-M perpetual: the pair has a settle currency) say the
  symbol, market and interval; their other candle types are what they are:
  ``…-funding_rate.feather`` holds funding events (the rate in ``open``, the other columns 0)
  → ``funding``; ``…-mark.feather`` holds mark-price klines → ``mark_price`` (not trades, so
  never bars); index and premium-index klines are skipped.

``volume`` (``--volume-unit``): base units by default (exchange OHLCV: ccxt, freqtrade and
Binance dumps count the base asset) → ``volume``; ``quote`` → ``quote_volume``. An OHLCV CSV
whose venue is not known counts in quote (the BTC perpetual sample in ``shared/data``) unless
told otherwise. Taker split and trade counts stay null: these files do not say them.

Key: ``--exchange``, ``--market``, ``--symbol``, ``--interval`` when given, else what the path
states (tables.name_info; freqtrade names first); a flag that contradicts the path is an error
naming both. Exchange unknown → ``unknown`` (CSV; a table needs ``--exchange``); a path naming
two venues (``coinbase-bitstamp-…``) says no venue: such a file is skipped in a directory walk
until ``--exchange`` says which. Market unknown → ``spot`` for a freqtrade name without a
settle currency, else an error saying what the path stated. The interval, when not stated, is
the most common spacing; every bar must lie on its UTC grid. Two rows for the same bar are an
error naming both rows; nothing of the file is written then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import polars as pl

from tapewatch.errors import ImportFormatError, SkipFileError, TapewatchError
from tapewatch.sources.base import (
    Batch,
    Format,
    Hints,
    RawFile,
    agree,
    check_nonnegative,
    check_ordered,
    datetime_column,
    epoch_column,
    looks_numeric,
    read_csv_strings,
    row_of,
    to_float,
)
from tapewatch.sources.tables import (
    NameInfo,
    check_ohlc,
    infer_interval,
    interval_label,
    raw_name_info,
    read_fields,
    resolve_columns,
    table_columns,
    to_floats,
)
from tapewatch.symbols import check_market, unify
from tapewatch.timeutil import interval_ns, ns_to_iso

TIME_COLUMNS = ("timestamp", "time", "datetime", "date", "open_time")
EXTRA_TIME_COLUMNS = ("datetime", "unix_timestamp")
PRICES = ["open", "high", "low", "close"]
VALUES = [*PRICES, "volume"]


# -- shared: checks and key --------------------------------------------------------------------
def check_unique_bars(df: pl.DataFrame, raw: RawFile) -> None:
    """Two rows for the same bar (same ``ts``) are an error naming both rows."""
    dup = df.filter(pl.col("ts").is_duplicated())
    if dup.is_empty():
        return
    first = dup.filter(pl.col("ts") == dup.get_column("ts")[0]).head(2)
    rows = first.get_column("__row").to_list() if "__row" in first.columns else [None, None]
    same = first.select(VALUES if "volume" in first.columns else PRICES).n_unique() == 1
    raise ImportFormatError(
        raw.path,
        f"duplicate bar timestamp: rows {rows[0]} and {rows[1]} are both the bar opened at "
        f"{ns_to_iso(int(first.get_column('ts')[0]))} UTC ({'same' if same else 'different'} values)",
        rows[1],
    )


def _interval(raw: RawFile, hints: Hints, said: str | None, ts: pl.Series) -> str:
    """The bar interval: the flag, else the path's, else the most common spacing; checked."""
    try:
        flag = interval_label(interval_ns(hints.interval)) if hints.interval else None
        stated = interval_label(interval_ns(said)) if said else None
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, str(exc)) from exc
    interval = agree(raw, "interval", flag, stated) or infer_interval(ts)
    if interval is None:
        raise ImportFormatError(raw.path, "cannot tell the bar interval (one bar only); pass --interval")
    return interval


def resolve_key(raw: RawFile, hints: Hints, said: NameInfo, default_exchange: str | None = None,
                default_market: str | None = None) -> tuple[str, str, str]:
    """``(exchange, market, unified symbol)`` from the flags and what the path ``said``.

    A flag contradicting the path is an error naming both; a path naming two venues and no
    ``--exchange`` is a SkipFileError; anything still unknown is an error saying what was read.
    """
    if not hints.exchange and len(said.venues) > 1:
        raise SkipFileError(raw.path, f"{said.said()}: which one is not stated; pass --exchange to import it")
    try:
        flag_symbol = unify(hints.symbol) if hints.symbol else None
        flag_market = check_market(hints.market) if hints.market else None
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, str(exc)) from exc
    exchange = agree(raw, "exchange", hints.exchange, said.exchange) or default_exchange
    market = agree(raw, "market", flag_market, said.market) or default_market
    stated = said.symbol
    if said.guessed_quote and flag_symbol and stated and flag_symbol.split("/")[0] == stated.split("/")[0]:
        stated = flag_symbol  # only the base was stated, and the flag agrees with it
    symbol = agree(raw, "symbol", flag_symbol, stated)
    missing = [w for w, v in (("exchange", exchange), ("market", market), ("symbol", symbol)) if v is None]
    if missing:
        flags = " and ".join(f"--{w}" for w in missing)
        raise ImportFormatError(raw.path, f"cannot tell the {' and '.join(missing)} ({said.said()}); pass {flags}")
    return str(exchange).lower(), str(market), str(symbol)


def ohlcv_bars(df: pl.DataFrame, raw: RawFile, hints: Hints, said: NameInfo, *,
               default_exchange: str | None, default_market: str | None) -> Batch:
    """OHLCV rows (``ts`` UTC ns = open time, ``__row``) → checked ``bar`` rows (see module doc)."""
    check_nonnegative(df, VALUES, raw)
    check_ohlc(df, raw)
    check_ordered(df, raw)
    check_unique_bars(df, raw)
    exchange, market, symbol = resolve_key(raw, hints, said, default_exchange, default_market)
    interval = _interval(raw, hints, said.interval, df.get_column("ts"))
    off = df.filter(pl.col("ts") % interval_ns(interval) != 0)
    if not off.is_empty():
        raise ImportFormatError(raw.path, f"bar time is not on the {interval} grid (UTC)", row_of(off))
    unit = hints.volume_unit or ("quote" if exchange == "unknown" else "base")
    return Batch("bar", df.select(
        pl.lit(exchange).alias("exchange"), pl.lit(market).alias("market"), pl.lit(symbol).alias("symbol"),
        "ts", pl.lit(interval).alias("interval"), *PRICES,
        pl.col("volume").alias("volume") if unit == "base" else pl.lit(None, dtype=pl.Float64).alias("volume"),
        pl.col("volume").alias("quote_volume") if unit == "quote" else pl.lit(None, dtype=pl.Float64).alias("quote_volume"),
    ))


# -- CSV ---------------------------------------------------------------------------------------
def _header(raw: RawFile) -> list[str]:
    if raw.is_parquet or raw.is_arrow or not raw.first_lines:
        return []
    return [c.strip().lower() for c in raw.first_lines[0].lstrip("\ufeff").split(",")]


def _csv_layout(cols: list[str]) -> tuple[str, str | None] | None:
    """``(time column, second time column or None)`` when ``cols`` is an OHLCV header, else None."""
    if len(set(cols)) != len(cols) or not cols or cols[0] not in TIME_COLUMNS:
        return None
    rest = [c for c in cols[1:] if c not in VALUES]
    if set(VALUES) - set(cols) or len(rest) > 1 or (rest and rest[0] not in EXTRA_TIME_COLUMNS):
        return None
    return cols[0], rest[0] if rest else None


def _time(df: pl.DataFrame, col: str, raw: RawFile) -> pl.DataFrame:
    """``col`` (epoch numbers or UTC date-time text) as ``ts`` in UTC ns."""
    numeric = all(looks_numeric(v) for v in df.get_column(col).head(100).to_list())
    return epoch_column(df, col, raw) if numeric else datetime_column(df, col, raw)


class OhlcvCsv:
    """An OHLCV CSV with a header (see module doc) → bar."""

    name = "ohlcv-csv"

    def sniff(self, raw: RawFile) -> bool:
        return _csv_layout(_header(raw)) is not None

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        cols = _header(raw)
        layout = _csv_layout(cols)
        if layout is None:
            raise ImportFormatError(raw.path, "not an OHLCV CSV")
        first, second = layout
        df = read_csv_strings(raw, cols, has_header=True)
        if second is not None:
            other = _time(df, second, raw).get_column("ts")
            df = _time(df, first, raw)
            bad = df.filter(other != pl.col("ts"))
            if not bad.is_empty():
                raise ImportFormatError(
                    raw.path, f"{first} and {second} state different instants ({bad.get_column(first)[0]!r}, "
                    f"{bad.get_column(second)[0]!r})", row_of(bad),
                )
        else:
            df = _time(df, first, raw)
        df = to_float(df, VALUES, raw)
        return [ohlcv_bars(df, raw, hints, raw_name_info(raw), default_exchange="unknown", default_market=None)]


# -- Parquet / Feather tables (freqtrade) -----------------------------------------------------
TABLE_ALIASES = {"ts": ("date",), **{c: (c,) for c in VALUES}}
_FREQTRADE = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?-(?P<tf>\d+[smhdwM])"
    r"(?:-(?P<type>spot|futures|mark|index|premiumIndex|funding_rate))?\.(?:feather|parquet|arrow)$"
)


@dataclass(frozen=True)
class FreqtradeName:
    """What a freqtrade data file name says: the pair's market and symbol, timeframe, candle type."""

    info: NameInfo
    candle_type: str


def freqtrade_name(raw: RawFile) -> FreqtradeName | None:
    """The freqtrade reading of the file name (``BTC_USDT_USDT-1h-mark.feather``), or None."""
    m = _FREQTRADE.match(raw.name)
    if m is None:
        return None
    kind = m["type"] or "spot"
    market = "perp" if m["settle"] or kind != "spot" else "spot"
    tf = f"{int(m['tf'][:-1]) * 7}d" if m["tf"].endswith("w") else m["tf"]
    path_info = raw_name_info(raw)
    info = replace(path_info, market=market, symbol=f"{m['base'].upper()}/{m['quote'].upper()}", interval=tf)
    return FreqtradeName(info, kind)


def _zero_columns(df: pl.DataFrame, cols: list[str], raw: RawFile, what: str) -> None:
    """``cols`` must be 0 on every row (freqtrade writes 0 where a candle type has no value)."""
    for c in cols:
        bad = df.filter(pl.col(c) != 0)
        if not bad.is_empty():
            raise ImportFormatError(raw.path, f"{what}: {c} should be 0, got {bad.get_column(c)[0]}", row_of(bad))


class OhlcvTable:
    """A Parquet or Feather (Arrow IPC) OHLCV table, freqtrade's layout (see module doc)."""

    name = "ohlcv-table"

    def sniff(self, raw: RawFile) -> bool:
        cols = table_columns(raw)
        return len(cols) == len(TABLE_ALIASES) and resolve_columns(cols, TABLE_ALIASES) is not None

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        df = to_floats(read_fields(raw, TABLE_ALIASES), VALUES, raw)
        ft = freqtrade_name(raw)
        said = ft.info if ft else raw_name_info(raw)
        kind = ft.candle_type if ft else "spot"
        if kind in ("index", "premiumIndex"):
            raise SkipFileError(raw.path, f"{kind} price klines are not trades or funding: not imported")
        if kind == "funding_rate":
            return [self._funding(df, raw, hints, said)]
        if kind == "mark":
            return [self._mark(df, raw, hints, said)]
        return [ohlcv_bars(df, raw, hints, said, default_exchange=None, default_market=None)]

    @staticmethod
    def _funding(df: pl.DataFrame, raw: RawFile, hints: Hints, said: NameInfo) -> Batch:
        """freqtrade funding_rate → ``funding``: ts = date (the funding time), rate = open (a
        fraction per funding interval); mark and index price are not in the file."""
        _zero_columns(df, ["high", "low", "close", "volume"], raw, "a funding-rate file holds the rate in open")
        check_ordered(df, raw)
        dup = df.filter(pl.col("ts").is_duplicated())
        if not dup.is_empty():
            raise ImportFormatError(raw.path, "two funding events at the same time", row_of(dup.tail(1)))
        exchange, market, symbol = resolve_key(raw, replace(hints, interval=None), said)
        return Batch("funding", df.select(
            pl.lit(exchange).alias("exchange"), pl.lit(market).alias("market"), pl.lit(symbol).alias("symbol"),
            "ts", pl.col("open").alias("rate"),
            pl.lit(None, dtype=pl.Float64).alias("mark_price"), pl.lit(None, dtype=pl.Float64).alias("index_price"),
        ))

    @staticmethod
    def _mark(df: pl.DataFrame, raw: RawFile, hints: Hints, said: NameInfo) -> Batch:
        """freqtrade mark klines → ``mark_price`` bars (ts = open time; OHLC of the mark price)."""
        _zero_columns(df, ["volume"], raw, "mark-price klines have no volume")
        bars = ohlcv_bars(df, raw, hints, said, default_exchange=None, default_market=None).rows
        return Batch("mark_price", bars.select("exchange", "market", "symbol", "ts", "interval", *PRICES))


FORMATS: list[Format] = [OhlcvCsv(), OhlcvTable()]
