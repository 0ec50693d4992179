"""Binance public-data archives (data.binance.vision): klines, aggTrades, trades, USD-M metrics,
bookDepth and fundingRate files, plus the Binance futures order-book CSV (snap / set rows).

Every file is recognised from its content: an exact header line, or — for the headerless spot
files — the number of columns and the shape of the first row (epoch integers, numbers,
``true``/``false``). Column layouts follow the binance-public-data README:

==============  ==========================================================  ===================
dataset         columns                                                     venue / header
==============  ==========================================================  ===================
klines          open_time, open, high, low, close, volume, close_time,      spot: no header;
                quote_volume, count, taker_buy_volume,                      USD-M: header
                taker_buy_quote_volume, ignore
aggTrades       agg_trade_id, price, quantity, first_trade_id,              spot: 8 columns, no
                last_trade_id, transact_time, is_buyer_maker                header, + is_best_match;
                                                                            USD-M: 7, header
trades          id, price, qty, quote_qty, time, is_buyer_maker             spot: 7 columns, no
                                                                            header, + is_best_match;
                                                                            USD-M: 6, header
metrics         create_time, symbol, sum_open_interest,                     USD-M, header
                sum_open_interest_value, … (ratios, ignored)
bookDepth       timestamp, percentage, depth, notional                      USD-M, header
fundingRate     calc_time, funding_interval_hours, last_funding_rate        USD-M, header
order book      symbol, timestamp, first_update_id, last_update_id, side,   USD-M, header
                update_type, price, qty, pu
==============  ==========================================================  ===================

Epoch times are milliseconds, except spot files from 2025-01-01 on, which are microseconds;
the unit is judged per value (``tapewatch.timeutil.epoch_to_ns``). All ``ts`` come out as
int64 UTC nanoseconds.

Key of the records: exchange ``binance``; symbol from ``--symbol``, else the Binance file name
(``BTCUSDT-1m-2024-01-01.zip``, ``BTCUSDT-aggTrades-2024-01-01.csv`` …), else a ``symbol``
column; market from ``--market``, else the path (``…/spot/…`` → spot, ``…/futures/um/…`` →
perp), else the layout: a headerless 12-column kline file is spot and a headered one USD-M
(perp); the 8-column aggTrades and 7-column trades layouts (with ``is_best_match``) exist
only on spot, the 7-column aggTrades and 6-column trades layouts only on USD-M (perp), with or
without their header; metrics, bookDepth, fundingRate and the order-book CSV are USD-M (perp).
COIN-M archives (``futures/cm``, contract-denominated volumes) and delivery contracts
(``BTCUSDT_240329``) are refused, as are mark/index/premium-index price klines, which share
the kline layout but are not trades.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tapewatch.errors import ImportFormatError, TapewatchError
from tapewatch.schemas import polars_schema
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
    to_bool,
    to_float,
    time_column,
    to_int,
)
from tapewatch.sources.ohlcv import check_unique_bars
from tapewatch.sources.tables import name_info
from tapewatch.symbols import check_market, unify
from tapewatch.timeutil import NS_PER, epoch_to_ns, interval_ns

EXCHANGE = "binance"
_BINANCE_VENUES = ("binance", "binanceus")

# -- column layouts ----------------------------------------------------------------------------
KLINE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
# the Binance API documentation's names, as API dumps (e.g. the Kaggle BTCUSDT files) write them
KLINE_API_HEADER = (
    "open time", "open", "high", "low", "close", "volume", "close time", "quote asset volume", "number of trades",
    "taker buy base asset volume", "taker buy quote asset volume", "ignore",
)
AGG_TRADE_COLUMNS = (
    "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
)
TRADE_COLUMNS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker")
METRICS_COLUMNS = (
    "create_time", "symbol", "sum_open_interest", "sum_open_interest_value", "count_toptrader_long_short_ratio",
    "sum_toptrader_long_short_ratio", "count_long_short_ratio", "sum_taker_long_short_vol_ratio",
)
BOOK_DEPTH_COLUMNS = ("timestamp", "percentage", "depth", "notional")
FUNDING_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")
ORDER_BOOK_COLUMNS = (
    "symbol", "timestamp", "first_update_id", "last_update_id", "side", "update_type", "price", "qty", "pu",
)


@dataclass(frozen=True)
class Layout:
    """One column layout of a dataset.

    ``header``: the first line is exactly ``columns``. Otherwise ``shapes`` gives, per column,
    what the first data row must look like: ``i`` integer, ``n`` number, ``t`` epoch integer
    (ms or µs: 12–17 digits), ``b`` ``true``/``false``. ``market`` is the market this layout
    implies when neither the hints nor the path tell.
    """

    columns: tuple[str, ...]
    header: bool
    market: str
    shapes: str = ""
    header_names: tuple[str, ...] = ()  # the header as written, when it differs from ``columns``

    def matches(self, raw: RawFile) -> bool:
        """True when the file's first line is this layout's header, or a data row of its shape."""
        if not raw.first_lines:
            return False
        fields = [f.strip() for f in raw.first_lines[0].lstrip("\ufeff").split(",")]
        if self.header:
            return [f.lower().strip('"') for f in fields] == list(self.header_names or self.columns)
        return len(fields) == len(self.shapes) and all(map(_shape_ok, self.shapes, fields))


_INTEGER = re.compile(r"^-?\d+$")
_EPOCH = re.compile(r"^\d{12,17}$")


def _shape_ok(shape: str, token: str) -> bool:
    """Whether ``token`` has the shape ``shape`` (see :class:`Layout`)."""
    if shape == "i":
        return bool(_INTEGER.match(token))
    if shape == "t":
        return bool(_EPOCH.match(token))
    if shape == "b":
        return token.lower() in ("true", "false")
    return looks_numeric(token)


Converter = Callable[[pl.DataFrame, RawFile, Hints, Layout], Batch]


@dataclass(frozen=True)
class ArchiveFormat:
    """A Binance archive dataset: its layouts and the function that normalizes its rows.

    ``excluded_dirs``: lower-case path components under which a file of this layout is a
    different dataset that must not be imported as this one. ``optional``: columns the reader
    lets be empty, for the converter to decide on.
    """

    name: str
    layouts: tuple[Layout, ...]
    convert: Converter
    excluded_dirs: frozenset[str] = field(default_factory=frozenset)
    optional: tuple[str, ...] = ()

    def layout(self, raw: RawFile) -> Layout | None:
        """The layout the content matches, or None."""
        if raw.is_parquet or self.excluded_dirs & {p.lower() for p in raw.path.parts}:
            return None
        return next((lay for lay in self.layouts if lay.matches(raw)), None)

    def sniff(self, raw: RawFile) -> bool:
        """True when the content is one of this dataset's layouts."""
        return self.layout(raw) is not None

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        """All rows, normalized; ImportFormatError naming file, row and reason otherwise."""
        lay = self.layout(raw)
        if lay is None:
            raise ImportFormatError(raw.path, f"not a Binance {self.name} file")
        _path_market(raw.path)  # refuses COIN-M archives before anything else
        if lay.header and len(raw.first_lines) < 2:
            raise ImportFormatError(raw.path, "empty file: no data rows after the header")
        df = read_csv_strings(raw, list(lay.columns), lay.header, self.optional)
        return [self.convert(df, raw, hints, lay)]


# -- shared helpers ----------------------------------------------------------------------------
def _numbers(
    df: pl.DataFrame, raw: RawFile, floats: tuple[str, ...] = (), ints: tuple[str, ...] = (),
    nonnegative: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Cast ``floats`` to Float64 and ``ints`` to Int64, then check ``nonnegative`` ones are >= 0."""
    df = to_int(to_float(df, list(floats), raw), list(ints), raw)
    check_nonnegative(df, list(nonnegative), raw)
    return df


def _mapped(df: pl.DataFrame, col: str, mapping: dict[str, str], raw: RawFile) -> pl.Series:
    """``col`` translated through ``mapping``; a value outside it is an error naming its row."""
    s = df.get_column(col).str.strip_chars()
    bad = df.filter(~s.is_in(list(mapping)))
    if not bad.is_empty():
        allowed = " or ".join(mapping)
        raise ImportFormatError(
            raw.path, f"{col} must be {allowed}, got {bad.get_column(col)[0]!r}", int(bad.get_column("__row")[0])
        )
    return s.replace_strict(mapping, return_dtype=pl.String)


_FILE_NAME = re.compile(
    r"^(?P<symbol>[A-Za-z0-9_]+)-(?P<what>[A-Za-z]+|\d+(?:s|m|h|d|w|mo))-\d{4}-\d{2}(?:-\d{2})?(?:\.csv|\.zip)*$"
)


def _name_parts(raw: RawFile) -> tuple[str, str] | None:
    """``(native symbol, dataset or interval)`` from a Binance file name (inner name first), or None."""
    for name in (raw.name, raw.path.name):
        m = _FILE_NAME.match(name)
        if m:
            return m.group("symbol").upper(), m.group("what")
    return None


def _path_market(path: Path) -> str | None:
    """Market implied by the archive's directory layout (``spot/``, ``futures/um/``), or None."""
    parts = [p.lower() for p in path.parts]
    for a, b in zip(parts, parts[1:]):
        if a == "futures" and b == "cm":
            raise ImportFormatError(
                path, "COIN-M (futures/cm) archives are not supported: their volumes are in contracts"
            )
        if a == "futures" and b == "um":
            return "perp"
    return "spot" if "spot" in parts else None


def _unified(native: str, raw: RawFile, row: int | None = None) -> str:
    """Unified ``BASE/QUOTE`` of a Binance symbol; COIN-M and delivery symbols are refused."""
    if "_" in native:
        raise ImportFormatError(
            raw.path,
            f"symbol {native!r} is a COIN-M or delivery contract; only spot and USD-M perpetual archives are "
            "supported (pass --symbol and --market to import it anyway)",
            row,
        )
    try:
        return unify(native)
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, f"{exc} (pass --symbol)", row) from exc


def _with_key(
    df: pl.DataFrame, raw: RawFile, hints: Hints, default_market: str, symbol_col: str | None = None
) -> pl.DataFrame:
    """Add ``exchange``, ``market`` and unified ``symbol``.

    Exchange: ``--exchange`` (e.g. ``binanceus``, whose files share these layouts), else a
    Binance venue the path names (``binance``, ``binanceus``), else ``binance``. Symbol: the
    flag, else the Binance file name, else the path (``…-btcusdt-…``), else ``symbol_col`` (per
    row). Market: the flag, else the path, else ``default_market`` (what the layout implies). A
    flag that contradicts the path or file name is an error naming both.
    """
    info = name_info(raw.path, raw.name)
    said_venue = info.exchange if info.exchange in _BINANCE_VENUES else None
    exchange = agree(raw, "exchange", hints.exchange.lower() if hints.exchange else None, said_venue) or EXCHANGE
    try:
        flag_market = check_market(hints.market) if hints.market else None
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, str(exc)) from exc
    market = agree(raw, "market", flag_market, _path_market(raw.path)) or default_market
    parts = _name_parts(raw)
    flag_symbol = _unified(hints.symbol, raw) if hints.symbol else None
    said_symbol = _unified(parts[0], raw) if parts else (info.symbol if symbol_col is None else None)
    native = agree(raw, "symbol", flag_symbol, said_symbol)
    if native is not None:
        symbol = pl.lit(native, dtype=pl.String)
    elif symbol_col is not None:
        natives = df.get_column(symbol_col).str.strip_chars().str.to_uppercase()
        firsts = df.with_columns(natives.alias("__native")).unique("__native", keep="first", maintain_order=True)
        mapping = {
            n: _unified(n, raw, int(r)) for n, r in zip(firsts.get_column("__native"), firsts.get_column("__row"))
        }
        symbol = natives.replace_strict(mapping, return_dtype=pl.String)
    else:
        raise ImportFormatError(
            raw.path,
            f"cannot tell the symbol ({info.said()}; not a Binance file name such as BTCUSDT-1m-2024-01-01.zip, "
            "no symbol column); pass --symbol",
        )
    return df.with_columns(pl.lit(exchange).alias("exchange"), pl.lit(market).alias("market"), symbol.alias("symbol"))


def _batch(kind_name: str, df: pl.DataFrame) -> Batch:
    """The kind's columns of ``df`` (``ts`` int64 UTC ns; columns the file lacks as typed nulls) as a Batch."""
    schema = polars_schema(kind_name)
    cols = [
        pl.col(c) if c in df.columns else pl.lit(None, dtype=dtype).alias(c) for c, dtype in schema.items()
    ]
    return Batch(kind_name, df.select(cols))


# -- klines ------------------------------------------------------------------------------------
_WEEK_NS = 7 * NS_PER["d"]


def _interval_name(text: str, raw: RawFile) -> str:
    """A Binance interval (``1m``, ``4h``, ``1w`` …) as tapewatch spells it (``1w`` → ``7d``)."""
    m = re.fullmatch(r"(\d+)(w|mo)", text.strip())
    if m and m.group(2) == "mo":
        raise ImportFormatError(raw.path, "monthly (1mo) klines are not supported: bars need a fixed-length interval")
    name = f"{int(m.group(1)) * 7}d" if m else text.strip()
    try:
        interval_ns(name)
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, str(exc)) from exc
    return name


def _span_name(span_ns: int, raw: RawFile, row: int) -> str:
    """Interval name of a bar spanning ``span_ns`` nanoseconds (largest whole unit: d, h, m, s)."""
    if 28 * NS_PER["d"] <= span_ns <= 31 * NS_PER["d"] and span_ns % _WEEK_NS:
        return _interval_name("1mo", raw)
    for unit in ("d", "h", "m", "s"):
        if span_ns > 0 and span_ns % NS_PER[unit] == 0:
            return f"{span_ns // NS_PER[unit]}{unit}"
    raise ImportFormatError(
        raw.path, f"cannot tell the kline interval: close_time - open_time + 1 is {span_ns} ns", row
    )


def _kline_times(df: pl.DataFrame, raw: RawFile) -> tuple[pl.DataFrame, pl.Series]:
    """``ts`` (open time, UTC ns) and the bar's span in ns: close_time plus one time unit of the
    file (ms or µs) minus the open time. Text times (API dumps: ``2018-01-01 00:00:00.000000 UTC``)
    are read as UTC; their span is rounded to the nearest second."""
    if df.get_column("open_time").str.contains(r"^\s*\d+\s*$").all():
        df = to_int(epoch_column(df, "open_time", raw), ["close_time"], raw)
        return df, epoch_to_ns(df.get_column("close_time") + 1) - df.get_column("ts")
    close = datetime_column(df, "close_time", raw).get_column("ts")
    df = datetime_column(df, "open_time", raw)
    second = NS_PER["s"]
    return df, ((close - df.get_column("ts") + second // 2) // second) * second


def _bars(df: pl.DataFrame, raw: RawFile, hints: Hints, lay: Layout) -> Batch:
    """Klines → ``bar`` rows: ``ts`` = open time (UTC ns), volume and taker_buy_volume in base
    units, quote_volume in quote units, trades = count.

    The interval is the hint, else the file name's, else close_time - open_time + 1 of the first
    row. Two rows for the same bar are an error naming both. A bar whose close time ends it
    early (Binance maintenance, 2018–2021) is imported as given, with a counted note; a close
    time before the open or after the bar's end is an error. A last row with neither open nor
    close time (the bar in progress when an API dump was written) is left out with a note; an
    empty time anywhere else is an error.
    """
    df, notes = _without_unfinished_bar(df, raw)
    prices = ("open", "high", "low", "close")
    volumes = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")
    df = _numbers(df, raw, floats=prices + volumes, ints=("count",), nonnegative=(*prices, *volumes, "count"))
    df, span = _kline_times(df, raw)
    check_ordered(df, raw)
    check_unique_bars(df, raw)
    parts = _name_parts(raw)
    if hints.interval:
        interval = _interval_name(hints.interval, raw)
    elif parts and re.fullmatch(r"\d+(s|m|h|d|w|mo)", parts[1]):
        interval = _interval_name(parts[1], raw)
    else:
        interval = _span_name(int(span.max()), raw, int(df.get_column("__row")[0]))
    step = interval_ns(interval)
    bad = df.filter((span <= 0) | (span > step))
    if not bad.is_empty():
        raise ImportFormatError(
            raw.path,
            f"close_time {bad.get_column('close_time')[0]} does not close a {interval} bar opened at "
            f"{bad.get_column('open_time')[0]}",
            int(bad.get_column("__row")[0]),
        )
    short = df.filter(span < step)
    if not short.is_empty():
        notes.append(f"{short.height} bar(s) close before the end of their {interval} (Binance maintenance), "
                     f"first at row {short.get_column('__row')[0]}: imported as given")
    df = df.with_columns(pl.lit(interval).alias("interval"), pl.col("count").alias("trades"))
    batch = _batch("bar", _with_key(df, raw, hints, lay.market))
    batch.notes.extend(notes)
    return batch


def _without_unfinished_bar(df: pl.DataFrame, raw: RawFile) -> tuple[pl.DataFrame, list[str]]:
    """``df`` without a last row that has neither open nor close time, and the note saying so;
    any other row with an empty time is an ImportFormatError naming it."""
    times = ("open_time", "close_time")
    empty = df.filter(pl.any_horizontal(pl.col(times).is_null()))
    if empty.is_empty():
        return df, []
    row = empty.row(0, named=True)
    last = int(df.get_column("__row")[-1])
    if empty.height == 1 and row["__row"] == last and row["open_time"] is None and row["close_time"] is None:
        if df.height == 1:
            raise ImportFormatError(raw.path, "empty file: its only bar has no open time")
        return df.head(-1), [f"row {last} has no open or close time (the bar in progress when the file was "
                             "written): not imported"]
    col = next(c for c in times if row[c] is None)
    raise ImportFormatError(raw.path, f"empty {col}", int(row["__row"]))


# -- aggTrades and trades ----------------------------------------------------------------------
def _trade_converter(id_col: str, amount_col: str, time_col: str, floats: tuple[str, ...] = (),
                     ints: tuple[str, ...] = ()) -> Converter:
    """A converter of Binance trade rows (aggTrades or trades) to ``trade`` records."""

    def convert(df: pl.DataFrame, raw: RawFile, hints: Hints, lay: Layout) -> Batch:
        """Trades → ``trade`` rows: ts (UTC ns), price (quote), amount (base), taker_side
        (``is_buyer_maker`` true → the taker sold → ``sell``), trade_id (Binance id as text)."""
        df = _numbers(df, raw, floats=("price", amount_col, *floats), ints=(id_col, *ints),
                      nonnegative=("price", amount_col, *floats))
        for col in ("is_buyer_maker", "is_best_match"):
            if col in df.columns:
                df = to_bool(df, col, raw)
        df = epoch_column(df, time_col, raw)
        check_ordered(df, raw)
        df = df.with_columns(
            pl.col(amount_col).alias("amount"),
            pl.when(pl.col("is_buyer_maker")).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("taker_side"),
            pl.col(id_col).cast(pl.String).alias("trade_id"),
        )
        return _batch("trade", _with_key(df, raw, hints, lay.market))

    return convert


# -- USD-M metrics, bookDepth, fundingRate, order book ----------------------------------------
def _open_interest(df: pl.DataFrame, raw: RawFile, hints: Hints, lay: Layout) -> Batch:
    """Metrics → ``open_interest`` rows: ts = create_time (UTC ns), oi = sum_open_interest (base
    units), oi_value = sum_open_interest_value (quote). The ratio columns are not imported.

    Rows are sorted by time rather than required in order: published metrics files are not
    always in time order, and each row is an independent 5-minute snapshot.
    """
    oi = ("sum_open_interest", "sum_open_interest_value")
    df = time_column(_numbers(df, raw, floats=oi, nonnegative=oi), "create_time", raw)
    df = df.sort("ts", maintain_order=True).rename({"sum_open_interest": "oi", "sum_open_interest_value": "oi_value"})
    return _batch("open_interest", _with_key(df, raw, hints, lay.market, symbol_col="symbol"))


def _book_depth(df: pl.DataFrame, raw: RawFile, hints: Hints, lay: Layout) -> Batch:
    """bookDepth → ``book_depth`` rows, one per (ts, band_pct), reference ``mid``: the cumulative
    book within band_pct % of the mid price; a negative ``percentage`` is the bid side, a positive one the ask side.
    Amounts (``depth``) in base units, notionals in quote; ts = timestamp (UTC ns)."""
    df = _numbers(df, raw, floats=("percentage", "depth", "notional"), nonnegative=("depth", "notional"))
    df = time_column(df, "timestamp", raw)
    check_ordered(df, raw)
    for bad, reason in (
        (df.filter(pl.col("percentage") == 0), "percentage 0 is neither the bid (-) nor the ask (+) side"),
        (df.filter(pl.struct("ts", "percentage").is_duplicated()), "duplicate percentage for this timestamp"),
    ):
        if not bad.is_empty():
            raise ImportFormatError(raw.path, reason, int(bad.get_column("__row")[0]))
    df = df.with_columns(pl.col("percentage").abs().alias("band_pct"))

    def side(sign: int, name: str) -> pl.DataFrame:
        return df.filter(pl.col("percentage") * sign > 0).select(
            "ts", "band_pct", pl.col("depth").alias(f"{name}_amount"), pl.col("notional").alias(f"{name}_notional"),
        )

    wide = side(-1, "bid").join(side(1, "ask"), on=["ts", "band_pct"], how="full", coalesce=True)
    wide = wide.sort("ts", "band_pct").with_columns(pl.lit("mid").alias("reference"))
    return _batch("book_depth", _with_key(wide, raw, hints, lay.market))


def _funding(df: pl.DataFrame, raw: RawFile, hints: Hints, lay: Layout) -> Batch:
    """fundingRate → ``funding`` rows: ts = calc_time (UTC ns), rate = last_funding_rate (a
    fraction per funding interval, may be negative); mark and index price are not in the file."""
    df = _numbers(df, raw, floats=("last_funding_rate",), ints=("funding_interval_hours",),
                  nonnegative=("funding_interval_hours",))
    df = epoch_column(df, "calc_time", raw)
    check_ordered(df, raw)
    df = df.with_columns(pl.col("last_funding_rate").alias("rate"))
    return _batch("funding", _with_key(df, raw, hints, lay.market))


def _book_delta(df: pl.DataFrame, raw: RawFile, hints: Hints, lay: Layout) -> Batch:
    """Order-book CSV → ``book_delta`` rows: ts = timestamp (UTC ns), seq = last_update_id,
    side ``b``/``a`` → bid/ask, price (quote), amount = qty (base; 0 removes the level),
    is_snapshot = (update_type == ``snap``; ``set`` is a diff). For diffs, first_seq =
    first_update_id (U) and prev_seq = pu; both are null on snapshot rows (pu is -1 there)."""
    df = _numbers(df, raw, floats=("price", "qty"), ints=("first_update_id", "last_update_id", "pu"),
                  nonnegative=("price", "qty"))
    df = epoch_column(df, "timestamp", raw)
    check_ordered(df, raw)
    df = df.with_columns(
        _mapped(df, "side", {"b": "bid", "a": "ask"}, raw).alias("side"),
        (_mapped(df, "update_type", {"snap": "snap", "set": "set"}, raw) == "snap").alias("is_snapshot"),
        pl.col("last_update_id").alias("seq"),
        pl.col("qty").alias("amount"),
    )
    diff = ~pl.col("is_snapshot")
    df = df.with_columns(
        pl.when(diff).then(pl.col("first_update_id")).alias("first_seq"),
        pl.when(diff & (pl.col("pu") >= 0)).then(pl.col("pu")).alias("prev_seq"),
    )
    return _batch("book_delta", _with_key(df, raw, hints, lay.market, symbol_col="symbol"))


# -- the formats -------------------------------------------------------------------------------
FORMATS: list[Format] = [
    ArchiveFormat(
        "binance-klines",
        (
            Layout(KLINE_COLUMNS, header=True, market="perp"),
            Layout(KLINE_COLUMNS, header=False, market="spot", shapes="tnnnnntninnn"),
            Layout(KLINE_COLUMNS, header=True, market="spot", header_names=KLINE_API_HEADER),
        ),
        _bars,
        frozenset({"markpriceklines", "indexpriceklines", "premiumindexklines"}),
        optional=("open_time", "close_time"),
    ),
    ArchiveFormat(
        "binance-aggtrades",
        (
            Layout(AGG_TRADE_COLUMNS, header=True, market="perp"),
            Layout((*AGG_TRADE_COLUMNS, "is_best_match"), header=False, market="spot", shapes="inniitbb"),
            Layout(AGG_TRADE_COLUMNS, header=False, market="perp", shapes="inniitb"),
        ),
        _trade_converter("agg_trade_id", "quantity", "transact_time", ints=("first_trade_id", "last_trade_id")),
    ),
    ArchiveFormat(
        "binance-trades",
        (
            Layout(TRADE_COLUMNS, header=True, market="perp"),
            Layout((*TRADE_COLUMNS, "is_best_match"), header=False, market="spot", shapes="innntbb"),
            Layout(TRADE_COLUMNS, header=False, market="perp", shapes="innntb"),
        ),
        _trade_converter("id", "qty", "time", floats=("quote_qty",)),
    ),
    ArchiveFormat("binance-metrics", (Layout(METRICS_COLUMNS, header=True, market="perp"),), _open_interest),
    ArchiveFormat("binance-bookdepth", (Layout(BOOK_DEPTH_COLUMNS, header=True, market="perp"),), _book_depth),
    ArchiveFormat("binance-fundingrate", (Layout(FUNDING_COLUMNS, header=True, market="perp"),), _funding),
    ArchiveFormat("binance-orderbook", (Layout(ORDER_BOOK_COLUMNS, header=True, market="perp"),), _book_delta),
]
