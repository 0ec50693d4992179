"""Published statistics as CSV: Binance USD-M ``/futures/data`` responses and daily series derived
from Binance data. Each is stored as what it is, never as a finer record kind it was made from.

=====================================================  =========================================
header                                                 becomes
=====================================================  =========================================
``symbol,sumOpenInterest,sumOpenInterestValue[,        open_interest (the REST openInterestHist
CMCCirculatingSupply],timestamp``                      parser of binance_api): oi in base units,
                                                       oi_value in quote, ts = ``timestamp``
``symbol,longAccount,longShortRatio,shortAccount,      series ``long_short_account_ratio_top``
timestamp``                                            or ``_global`` (the file name says which:
                                                       ``top`` / ``global``) and
                                                       ``long_account_share_…``; points (no interval)
``buySellRatio,sellVol,buyVol,timestamp``,             series ``taker_buy_volume``,
``timestamp,buy_vol,sell_vol,buy_sell_ratio``          ``taker_sell_volume`` (base units) and
                                                       ``taker_buy_sell_ratio``; interval = the
                                                       spacing of the rows; ts as Binance labels it
``date,oi,oi_value,toptrader_acc_ls,                   series ``<column>_mean``, interval ``1d``,
toptrader_pos_ls,global_acc_ls,taker_ls``              ts = the UTC day; DERIVED: daily means of
                                                       the 5-minute ``metrics`` rows, never stored
                                                       as open_interest; empty cells are skipped
``date,funding_sum,funding_mean,n``                    series ``funding_sum``, ``funding_mean``
                                                       (fractions), ``funding_events``; interval
                                                       ``1d``; DERIVED from the funding events
=====================================================  =========================================

A ``series`` row's ``ts`` is the start of the period it covers (``interval``), as for bars: the
value is known only at ``ts + interval``. Times are epoch ms or ``YYYY-MM-DD`` (UTC).

Key: exchange ``--exchange``, else the venue the path names, else ``binance``; market
``--market``, else ``perp`` (these are USD-M statistics); symbol ``--symbol``, else the
``symbol`` column, else the path (``btcusdt_futures_taker.csv``). A file that does not say its
symbol, or a long/short file that does not say top or global, is skipped in a directory walk
with the reason (an error when named). Flags that contradict the file are errors naming both.

A ``Date,Data`` file (two columns, e.g. exported aggregate series) says neither its venue, what
it measures nor its unit: it is recognised and skipped with that reason, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tapewatch.errors import ImportFormatError, SkipFileError, TapewatchError
from tapewatch.schemas import polars_schema
from tapewatch.sources import binance_api
from tapewatch.sources.base import (
    Batch,
    Format,
    Hints,
    RawFile,
    agree,
    check_ordered,
    read_csv_strings,
    time_column,
    to_float,
    with_exchange,
)
from tapewatch.sources.messages import Context, MessageError, Rows
from tapewatch.sources.tables import NameInfo, infer_interval, raw_name_info
from tapewatch.symbols import check_market, unify

MARKET = "perp"
_METRICS_SOURCE = "daily mean of the Binance USD-M metrics 5-minute rows (derived)"
_FUNDING_SOURCE = "per UTC day, from the Binance funding-rate events (derived)"
_TAKER_SOURCE = "binance /futures/data/takerlongshortRatio"


def _header(raw: RawFile) -> tuple[str, ...]:
    if raw.is_parquet or raw.is_arrow or not raw.first_lines:
        return ()
    return tuple(c.strip() for c in raw.first_lines[0].lstrip("\ufeff").split(","))


@dataclass(frozen=True)
class Value:
    """One value column: the series it becomes, its unit."""

    column: str
    name: str
    unit: str


@dataclass(frozen=True)
class SeriesLayout:
    """A CSV layout of named series: its header, time column, value columns and where they come from.

    ``interval``: the period each value covers (``None`` = a point in time, ``"spacing"`` = the
    most common spacing of the rows). ``population``: for long/short files, the file-name words
    that say whose ratio it is, and the suffix each gives the series names.
    """

    header: tuple[str, ...]
    time: str
    values: tuple[Value, ...]
    source: str
    interval: str | None
    population: dict[str, str] | None = None


def _taker(header: tuple[str, ...], source: str) -> SeriesLayout:
    """A taker buy / sell volume layout: ``header`` names (buy, sell, ratio) as Binance's API does
    (``buyVol``, ``sellVol``, ``buySellRatio``) or as an export does (``buy_vol``…)."""
    buy, sell, ratio = (next(c for c in header if c.lower().replace("_", "").startswith(w)) for w in ("buyv", "sellv", "buys"))
    return SeriesLayout(
        header, "timestamp",
        (Value(buy, "taker_buy_volume", "base"), Value(sell, "taker_sell_volume", "base"),
         Value(ratio, "taker_buy_sell_ratio", "ratio")),
        source, "spacing",
    )


LAYOUTS = (
    SeriesLayout(
        ("symbol", "longAccount", "longShortRatio", "shortAccount", "timestamp"), "timestamp",
        (Value("longShortRatio", "long_short_account_ratio", "ratio"),
         Value("longAccount", "long_account_share", "fraction")),
        "binance /futures/data/{population}LongShortAccountRatio", None, {"top": "top", "global": "global"},
    ),
    _taker(("buySellRatio", "sellVol", "buyVol", "timestamp"), _TAKER_SOURCE),
    _taker(("timestamp", "buy_vol", "sell_vol", "buy_sell_ratio"), _TAKER_SOURCE + " (export)"),
    SeriesLayout(
        ("date", "oi", "oi_value", "toptrader_acc_ls", "toptrader_pos_ls", "global_acc_ls", "taker_ls"), "date",
        (Value("oi", "oi_mean", "base"), Value("oi_value", "oi_value_mean", "quote"),
         Value("toptrader_acc_ls", "long_short_account_ratio_top_mean", "ratio"),
         Value("toptrader_pos_ls", "long_short_position_ratio_top_mean", "ratio"),
         Value("global_acc_ls", "long_short_account_ratio_global_mean", "ratio"),
         Value("taker_ls", "taker_buy_sell_ratio_mean", "ratio")),
        _METRICS_SOURCE, "1d",
    ),
    SeriesLayout(
        ("date", "funding_sum", "funding_mean", "n"), "date",
        (Value("funding_sum", "funding_sum", "fraction"), Value("funding_mean", "funding_mean", "fraction"),
         Value("n", "funding_events", "count")),
        _FUNDING_SOURCE, "1d",
    ),
)
OI_HIST_HEADERS = (
    ("symbol", "sumOpenInterest", "sumOpenInterestValue", "CMCCirculatingSupply", "timestamp"),
    ("symbol", "sumOpenInterest", "sumOpenInterestValue", "timestamp"),
)


def _exchange(raw: RawFile, hints: Hints, info: NameInfo) -> str:
    return (agree(raw, "exchange", hints.exchange, info.exchange) or binance_api.EXCHANGE).lower()


def _market(raw: RawFile, hints: Hints) -> str:
    try:
        return check_market(hints.market) if hints.market else MARKET
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, str(exc)) from exc


def _symbol(raw: RawFile, hints: Hints, info: NameInfo, df: pl.DataFrame) -> str:
    """The one symbol of the file: flag, ``symbol`` column, path; a disagreement is an error."""
    try:
        flag = unify(hints.symbol) if hints.symbol else None
        column = sorted({unify(s) for s in df.get_column("symbol").unique().to_list()}) if "symbol" in df.columns else []
    except TapewatchError as exc:
        raise ImportFormatError(raw.path, str(exc)) from exc
    if len(column) > 1:
        raise ImportFormatError(raw.path, f"the symbol column holds {', '.join(column)}; one symbol per file")
    said = column[0] if column else info.symbol
    if column and info.symbol and info.symbol != column[0]:
        raise ImportFormatError(raw.path, f"the symbol column says {column[0]} but the file name says {info.symbol}")
    symbol = agree(raw, "symbol", flag, said)
    if symbol is None:
        raise SkipFileError(raw.path, f"the file does not say its symbol ({info.said()}); pass --symbol to import it")
    return symbol


class SeriesCsv:
    """Named statistics in CSV (see module doc) → ``series``."""

    name = "series-csv"

    def sniff(self, raw: RawFile) -> bool:
        return self._layout(raw) is not None

    @staticmethod
    def _layout(raw: RawFile) -> SeriesLayout | None:
        header = _header(raw)
        return next((lay for lay in LAYOUTS if lay.header == header), None)

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        lay = self._layout(raw)
        if lay is None:
            raise ImportFormatError(raw.path, "not a series CSV")
        info = raw_name_info(raw)
        names = {v.column: v.name for v in lay.values}
        source = lay.source
        if lay.population is not None:
            words = set(raw.name.lower().replace("-", "_").replace(".", "_").split("_"))
            found = [p for w, p in lay.population.items() if w in words]
            if len(found) != 1:
                raise SkipFileError(
                    raw.path, "a long/short ratio file whose name does not say top or global traders: not imported"
                )
            names = {c: f"{n}_{found[0]}" for c, n in names.items()}
            source = source.format(population=found[0])
        df = read_csv_strings(raw, list(lay.header), has_header=True, optional=[v.column for v in lay.values])
        df = to_float(time_column(df, lay.time, raw), [v.column for v in lay.values], raw)
        check_ordered(df, raw)
        interval = infer_interval(df.get_column("ts")) if lay.interval == "spacing" else lay.interval
        key = (_exchange(raw, hints, info), _market(raw, hints), _symbol(raw, hints, info, df))
        frames = [
            df.filter(pl.col(v.column).is_not_null()).select(
                "ts", pl.lit(names[v.column]).alias("name"), pl.lit(interval, dtype=pl.String).alias("interval"),
                pl.col(v.column).alias("value"), pl.lit(v.unit).alias("unit"),
            )
            for v in lay.values
        ]
        rows = pl.concat(frames).sort("ts", maintain_order=True).with_columns(
            pl.lit(key[0]).alias("exchange"), pl.lit(key[1]).alias("market"), pl.lit(key[2]).alias("symbol"),
            pl.lit(source).alias("source"),
        )
        return [Batch("series", rows.select(list(polars_schema("series"))))]


class OpenInterestHistCsv:
    """Binance ``/futures/data/openInterestHist`` written as CSV → ``open_interest``."""

    name = "binance-oi-hist-csv"

    def sniff(self, raw: RawFile) -> bool:
        return _header(raw) in OI_HIST_HEADERS

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        header = list(_header(raw))
        df = read_csv_strings(raw, header, has_header=True)
        info = raw_name_info(raw)
        key = (_exchange(raw, hints, info), _market(raw, hints), _symbol(raw, hints, info, df))
        rows = Rows()
        ctx = Context(market=key[1])
        try:
            binance_api.parse_rest(df.drop("__row").to_dicts(), "openInterestHist", ctx, rows)
        except MessageError as exc:
            raise ImportFormatError(raw.path, exc.reason, None if exc.row is None else exc.row + 1) from None
        return with_exchange([Batch(b.kind, b.rows.with_columns(pl.lit(key[2]).alias("symbol"))) for b in rows.batches()],
                             key[0])


class UnlabelledSeries:
    """A two-column ``Date,Data`` file: recognised, and skipped with the reason (see module doc)."""

    name = "unlabelled-series"

    def sniff(self, raw: RawFile) -> bool:
        return [c.lower() for c in _header(raw)] == ["date", "data"]

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        raise SkipFileError(
            raw.path,
            "a Date,Data series that says neither its venue, what it measures nor its unit: not imported "
            "(tapewatch does not guess what a series is)",
        )


FORMATS: list[Format] = [OpenInterestHistCsv(), SeriesCsv(), UnlabelledSeries()]
