"""Tardis.dev downloadable CSV datasets (``https://docs.tardis.dev/downloadable-csv-files``).

Every Tardis CSV starts with the columns ``exchange,symbol,timestamp,local_timestamp``; the rest of
the header tells the data type, and that is how a file is recognised (never by its name, except
to tell ``liquidations`` from ``trades``, whose columns are identical):

=====================================  ==========================================================
Tardis data type                       tapewatch record kind
=====================================  ==========================================================
``trades``                             ``trade``: ``side`` is the TAKER (aggressor) side;
                                       ``unknown`` becomes a null ``taker_side``
``incremental_book_L2``                ``book_delta``: ``side`` bid/ask, ``amount`` the new level
                                       size (0 removes it), ``is_snapshot`` as given, ``seq`` null
``book_snapshot_5`` / ``_25`` (any N)  ``book_delta`` rows with ``is_snapshot = true``; all levels
                                       of one CSV row share ``seq`` = that row's line number in the
                                       file; empty levels (thin book) are left out
``quotes`` / ``book_ticker``           ``quote`` (an empty side gives null price and amount)
``derivative_ticker``                  ``funding`` (rows with a funding rate) and
                                       ``open_interest`` (rows with open interest)
``liquidations`` (file name says so)   ``liquidation``: ``side`` is the liquidation order's side
                                       (``buy`` = a short was liquidated)
=====================================  ==========================================================

Timestamps: ``timestamp`` is the exchange's time in microseconds since the epoch (UTC); it
becomes ``ts`` in nanoseconds. Tardis orders rows by ``local_timestamp`` (arrival time), and
exchange times may step back slightly between messages, so the order check is made on
``local_timestamp``, not on ``ts``.

Venue mapping (Tardis exchange id → ``exchange`` / ``market``), see :func:`contract`:
``binance`` → binance spot; ``binance-futures`` → binance perp (``BTCUSDT_230331`` → future);
``binance-delivery`` → binance COIN-M perp / future; ``bitmex`` → bitmex perp (``XBT`` → ``BTC``;
``XBTZ20``-style → future); ``deribit`` → deribit perp (``BTC-PERPETUAL`` → ``BTC/USD``,
``BTC-25SEP20`` → future, ``BTC_USDC-PERPETUAL`` → ``BTC/USDC``); ``huobi-dm-swap`` → huobi perp
(``BTC-USD`` → ``BTC/USD``); ``huobi-dm`` → huobi future (``BTC_CQ`` …); ``okex-swap`` /
``okex-futures`` → okx perp / future; ``bybit`` → bybit perp (``BTCUSDT`` linear, ``BTCUSD``
inverse) or future (``BTCUSDZ22``); spot venues ``coinbase``, ``okex`` (→ okx), ``huobi``,
``bybit-spot`` (→ bybit), ``kraken``, ``bitstamp``, ``gemini``, ``bitfinex``, ``kucoin``,
``binance-us`` (→ binanceus). ``--exchange/--market/--symbol`` hints override the names only;
the amount conversion always follows the file's own exchange id and symbol.

Amounts are stored in BASE units. Tardis gives amounts "as provided by the exchange", which for
inverse (coin-margined) contracts is a number of USD-denominated contracts, and for some linear
contracts a number of contracts of a fixed base size. The documented contract sizes used:

* inverse, ``amount_base = amount × usd_per_contract / price`` (price of that trade, level or
  quote; for open interest the mark price, else last price, else index price):
  bitmex ``XBTUSD`` and XBT futures 1 USD; deribit ``BTC-PERPETUAL``, ``ETH-PERPETUAL`` and their
  futures: the amount *is* USD (1 USD); huobi-dm-swap / huobi-dm ``BTC`` 100 USD, other coins
  10 USD; binance-delivery ``BTCUSD_PERP`` 100 USD, other coins 10 USD; okex-swap / okex-futures
  ``BTC-USD-*`` 100 USD, other coins 10 USD; bybit inverse (``BTCUSD``) 1 USD.
* linear with a contract multiplier, ``amount_base = amount × base_per_contract``: okex-swap /
  okex-futures ``BTC-USDT-*`` 0.01 BTC, ``ETH-USDT-*`` 0.1 ETH.
* everything else listed above is already in base units.

A contract whose size tapewatch does not know (BitMEX quanto ``ETHUSD``, options, OKX linear
contracts of other coins …) is an error rather than a guess. An exchange id not listed is an
error too, unless ``--exchange`` and ``--market`` are given, in which case the symbol is unified
as written and the amounts are taken as base units.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

import polars as pl

from tapewatch.errors import ImportFormatError, TapewatchError
from tapewatch.sources.base import (
    Batch,
    Format,
    Hints,
    RawFile,
    read_csv_strings,
    row_of,
    check_nonnegative,
    check_ordered,
    to_bool,
    to_float,
    to_int,
)
from tapewatch.symbols import check_market, unify

KEY = ["exchange", "symbol", "timestamp", "local_timestamp"]
TRADE_COLUMNS = [*KEY, "id", "side", "price", "amount"]
BOOK_L2_COLUMNS = [*KEY, "is_snapshot", "side", "price", "amount"]
QUOTE_COLUMNS = [*KEY, "ask_amount", "ask_price", "bid_price", "bid_amount"]
TICKER_COLUMNS = [
    *KEY, "funding_timestamp", "funding_rate", "predicted_funding_rate", "open_interest",
    "last_price", "index_price", "mark_price",
]
_LEVEL = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")
US_TO_NS = 1_000


# -- venue and contract mapping ----------------------------------------------------------------
@dataclass(frozen=True)
class Contract:
    """What a Tardis (exchange id, symbol) pair is, and how to turn its amounts into base units.

    ``usd_per_contract`` set: inverse contract, ``base = amount × usd_per_contract / price``.
    Otherwise ``base = amount × base_per_contract`` (1 for spot and ordinary linear contracts).
    """

    exchange: str
    market: str
    symbol: str
    usd_per_contract: float | None = None
    base_per_contract: float = 1.0


class UnknownContract(TapewatchError):
    """A Tardis exchange id or symbol whose meaning or contract size tapewatch does not know."""


_SPOT_VENUES = {
    "binance": "binance", "binance-us": "binanceus", "coinbase": "coinbase", "okex": "okx",
    "okcoin": "okcoin", "huobi": "huobi", "bybit-spot": "bybit", "kraken": "kraken",
    "bitstamp": "bitstamp", "gemini": "gemini", "bitfinex": "bitfinex", "kucoin": "kucoin",
}
_BASE_ALIASES = {"XBT": "BTC"}
_OKX_LINEAR_SIZE = {"BTC": 0.01, "ETH": 0.1}


def _unified(native: str) -> str:
    """``unify`` plus venue aliases for the base asset (``XBT`` → ``BTC``)."""
    base, _, quote = unify(native).partition("/")
    return f"{_BASE_ALIASES.get(base, base)}/{_BASE_ALIASES.get(quote, quote)}"


def _usd_size(base: str, btc: float, other: float) -> float:
    return btc if base == "BTC" else other


def _binance_futures(s: str) -> Contract:
    if m := re.fullmatch(r"([A-Z0-9]+)_\d{6}", s):
        return Contract("binance", "future", _unified(m.group(1)))
    return Contract("binance", "perp", _unified(s))


def _binance_delivery(s: str) -> Contract:
    m = re.fullmatch(r"([A-Z0-9]+)USD_(PERP|\d{6})", s)
    if not m:
        raise UnknownContract(f"binance-delivery symbol {s!r} is not BASEUSD_PERP or BASEUSD_YYMMDD")
    base = _BASE_ALIASES.get(m.group(1), m.group(1))
    market = "perp" if m.group(2) == "PERP" else "future"
    return Contract("binance", market, f"{base}/USD", _usd_size(base, 100.0, 10.0))


def _bitmex(s: str) -> Contract:
    if s == "XBTUSD":
        return Contract("bitmex", "perp", "BTC/USD", 1.0)
    if re.fullmatch(r"XBT[FGHJKMNQUVXZ]\d{2}", s):
        return Contract("bitmex", "future", "BTC/USD", 1.0)
    raise UnknownContract(
        f"bitmex {s}: contract size not known to tapewatch (quanto or linear contract), "
        "cannot convert its amounts to base units"
    )


def _deribit(s: str) -> Contract:
    if m := re.fullmatch(r"(BTC|ETH)-PERPETUAL", s):
        return Contract("deribit", "perp", f"{m.group(1)}/USD", 1.0)
    if m := re.fullmatch(r"(BTC|ETH)-\d{1,2}[A-Z]{3}\d{2}", s):
        return Contract("deribit", "future", f"{m.group(1)}/USD", 1.0)
    if m := re.fullmatch(r"([A-Z0-9]+)_(USDC|USDT)-PERPETUAL", s):
        return Contract("deribit", "perp", f"{m.group(1)}/{m.group(2)}")
    raise UnknownContract(f"deribit {s}: options and other instruments are not supported")


def _huobi_swap(s: str) -> Contract:
    m = re.fullmatch(r"([A-Z0-9]+)-USD", s)
    if not m:
        raise UnknownContract(f"huobi-dm-swap symbol {s!r} is not BASE-USD")
    return Contract("huobi", "perp", f"{m.group(1)}/USD", _usd_size(m.group(1), 100.0, 10.0))


def _huobi_futures(s: str) -> Contract:
    m = re.fullmatch(r"([A-Z0-9]+)_(CW|NW|CQ|NQ)", s)
    if not m:
        raise UnknownContract(f"huobi-dm symbol {s!r} is not BASE_CW/NW/CQ/NQ")
    return Contract("huobi", "future", f"{m.group(1)}/USD", _usd_size(m.group(1), 100.0, 10.0))


def _okx_derivative(s: str) -> Contract:
    m = re.fullmatch(r"([A-Z0-9]+)-(USD|USDT|USDC)-(SWAP|\d{6})", s)
    if not m:
        raise UnknownContract(f"okex symbol {s!r} is not BASE-QUOTE-SWAP or BASE-QUOTE-YYMMDD")
    base, quote, tail = m.groups()
    market = "perp" if tail == "SWAP" else "future"
    if quote == "USD":
        return Contract("okx", market, f"{base}/USD", _usd_size(base, 100.0, 10.0))
    if base not in _OKX_LINEAR_SIZE:
        raise UnknownContract(f"okex {s}: contract size not known to tapewatch, cannot convert to base units")
    return Contract("okx", market, f"{base}/{quote}", base_per_contract=_OKX_LINEAR_SIZE[base])


def _bybit(s: str) -> Contract:
    if m := re.fullmatch(r"([A-Z0-9]+)USD([FGHJKMNQUVXZ]\d{2})?", s):
        return Contract("bybit", "future" if m.group(2) else "perp", f"{m.group(1)}/USD", 1.0)
    return Contract("bybit", "perp", _unified(s))


_DERIVATIVE_VENUES: dict[str, Callable[[str], Contract]] = {
    "binance-futures": _binance_futures,
    "binance-delivery": _binance_delivery,
    "bitmex": _bitmex,
    "deribit": _deribit,
    "huobi-dm-swap": _huobi_swap,
    "huobi-dm": _huobi_futures,
    "okex-swap": _okx_derivative,
    "okex-futures": _okx_derivative,
    "bybit": _bybit,
}


def contract(tardis_exchange: str, native_symbol: str, hints: Hints | None = None) -> Contract:
    """The contract behind a Tardis exchange id and symbol, with ``hints`` overriding the names.

    Raises :class:`UnknownContract` when the venue or contract size is not known (see module doc).
    """
    hints = hints or Hints()
    ex, sym = tardis_exchange.strip().lower(), native_symbol.strip().upper()
    if ex in _DERIVATIVE_VENUES:
        c = _DERIVATIVE_VENUES[ex](sym)
    elif ex in _SPOT_VENUES:
        c = Contract(_SPOT_VENUES[ex], "spot", _unified(sym))
    elif hints.exchange and hints.market:
        c = Contract(hints.exchange, hints.market, hints.symbol or _unified(sym))
    else:
        raise UnknownContract(
            f"unknown Tardis exchange id {tardis_exchange!r}; pass --exchange and --market "
            "(amounts are then taken as base units)"
        )
    return Contract(
        hints.exchange or c.exchange,
        check_market(hints.market) if hints.market else c.market,
        unify(hints.symbol) if hints.symbol else c.symbol,
        c.usd_per_contract,
        c.base_per_contract,
    )


# -- reading -----------------------------------------------------------------------------------
def header(raw: RawFile) -> list[str]:
    """Column names of the first line (BOM and blanks stripped); empty for a parquet file."""
    if raw.is_parquet or not raw.first_lines:
        return []
    return [c.strip() for c in raw.first_lines[0].lstrip("\ufeff").split(",")]


def _keyed(raw: RawFile, hints: Hints, columns: list[str], optional: Collection[str] = ()) -> pl.DataFrame:
    """Read a Tardis CSV and add the normalized key and contract columns.

    Adds ``ts`` (exchange time, UTC ns), ``__local`` (arrival time, UTC ns; checked to be in
    order), ``exchange``/``market``/``symbol`` (normalized) and ``__usd``/``__mult`` (contract
    size, see :class:`Contract`). The Tardis ``exchange``/``symbol`` stay as ``__tx``/``__tsym``.
    """
    df = read_csv_strings(raw, columns, has_header=True, optional=optional)
    df = df.with_columns(pl.col(c).str.strip_chars() for c in columns)
    df = to_int(df, ["timestamp", "local_timestamp"], raw)
    df = df.with_columns(
        (pl.col("timestamp") * US_TO_NS).alias("ts"),
        (pl.col("local_timestamp") * US_TO_NS).alias("__local"),
    ).rename({"exchange": "__tx", "symbol": "__tsym"})
    check_ordered(df.select("__row", pl.col("__local").alias("ts")), raw)
    pairs = df.group_by("__tx", "__tsym").agg(pl.col("__row").min()).sort("__row")
    info = []
    for tx, tsym, row in pairs.iter_rows():
        try:
            c = contract(tx, tsym, hints)
        except TapewatchError as exc:
            raise ImportFormatError(raw.path, str(exc), row) from exc
        info.append((tx, tsym, c.exchange, c.market, c.symbol, c.usd_per_contract, c.base_per_contract))
    table = pl.DataFrame(
        info,
        schema={"__tx": pl.String, "__tsym": pl.String, "exchange": pl.String, "market": pl.String,
                "symbol": pl.String, "__usd": pl.Float64, "__mult": pl.Float64},
        orient="row",
    )
    return df.join(table, on=["__tx", "__tsym"], how="left", maintain_order="left")


def to_base(amount: str, price: str) -> pl.Expr:
    """Amount in base units from a Tardis amount column and the price it traded or rests at.

    Inverse contracts: ``amount × usd_per_contract / price``; others ``amount × base_per_contract``.
    """
    return (
        pl.when(pl.col("__usd").is_not_null())
        .then(pl.col(amount) * pl.col("__usd") / pl.col(price))
        .otherwise(pl.col(amount) * pl.col("__mult"))
    )


def _check_inverse_prices(df: pl.DataFrame, raw: RawFile, pairs: list[tuple[str, str]]) -> None:
    """Inverse amounts are divided by the price: a positive amount needs a positive price."""
    for amount, price in pairs:
        bad = df.filter(pl.col("__usd").is_not_null() & (pl.col(amount) > 0) & ~(pl.col(price) > 0))
        if not bad.is_empty():
            raise ImportFormatError(
                raw.path, f"{price} {bad[price][0]} cannot convert a contract amount to base units", row_of(bad)
            )


def _check_sides(df: pl.DataFrame, col: str, allowed: list[str], raw: RawFile) -> pl.DataFrame:
    low = pl.col(col).str.to_lowercase()
    bad = df.filter(~low.is_in(allowed))
    if not bad.is_empty():
        raise ImportFormatError(raw.path, f"{col} must be one of {', '.join(allowed)}, got {bad[col][0]!r}", row_of(bad))
    return df.with_columns(low.alias(col))


def _has(raw: RawFile, columns: list[str]) -> bool:
    return header(raw) == columns


# -- formats -----------------------------------------------------------------------------------
class TardisTrades:
    """Tardis ``trades`` (and ``liquidations``, told apart by the file name) → trade / liquidation."""

    name = "tardis-trades"

    def sniff(self, raw: RawFile) -> bool:
        return _has(raw, TRADE_COLUMNS)

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        liquidations = "liquidation" in raw.name.lower() or "liquidation" in str(raw.path).lower()
        df = _keyed(raw, hints, TRADE_COLUMNS, optional=["id"])
        df = to_float(df, ["price", "amount"], raw)
        check_nonnegative(df, ["price", "amount"], raw)
        _check_inverse_prices(df, raw, [("amount", "price")])
        df = _check_sides(df, "side", ["buy", "sell"] if liquidations else ["buy", "sell", "unknown"], raw)
        df = df.with_columns(to_base("amount", "price").alias("amount"))
        if liquidations:
            return [Batch("liquidation", df.select("exchange", "market", "symbol", "ts", "side", "price", "amount"))]
        rows = df.select(
            "exchange", "market", "symbol", "ts", "price", "amount",
            pl.when(pl.col("side") == "unknown").then(None).otherwise(pl.col("side")).alias("taker_side"),
            pl.col("id").alias("trade_id"),
        )
        return [Batch("trade", rows)]


class TardisBookL2:
    """Tardis ``incremental_book_L2`` → book_delta (``seq`` null; rows kept as the file has them)."""

    name = "tardis-incremental-book-l2"

    def sniff(self, raw: RawFile) -> bool:
        return _has(raw, BOOK_L2_COLUMNS)

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        df = _keyed(raw, hints, BOOK_L2_COLUMNS)
        df = to_bool(df, "is_snapshot", raw)
        df = to_float(df, ["price", "amount"], raw)
        check_nonnegative(df, ["price", "amount"], raw)
        _check_inverse_prices(df, raw, [("amount", "price")])
        df = _check_sides(df, "side", ["bid", "ask"], raw)
        rows = df.select(
            "exchange", "market", "symbol", "ts", pl.lit(None, dtype=pl.Int64).alias("seq"), "side", "price",
            to_base("amount", "price").alias("amount"), "is_snapshot",
        )
        return [Batch("book_delta", rows)]


def _levels(cols: list[str]) -> list[tuple[str, int]] | None:
    """``[(side, level)…]`` of a book_snapshot header after the key, or None when it is not one."""
    seen: dict[tuple[str, int], set[str]] = {}
    for c in cols:
        m = _LEVEL.match(c)
        if not m:
            return None
        seen.setdefault((m.group(1), int(m.group(2))), set()).add(m.group(3))
    if not seen or any(v != {"price", "amount"} for v in seen.values()) or len(cols) != 2 * len(seen):
        return None
    return sorted(seen, key=lambda k: (k[0] != "asks", k[1]))


class TardisBookSnapshot:
    """Tardis ``book_snapshot_N`` → book_delta rows with ``is_snapshot = true``, ``seq`` = line number."""

    name = "tardis-book-snapshot"

    def sniff(self, raw: RawFile) -> bool:
        cols = header(raw)
        return cols[:4] == KEY and _levels(cols[4:]) is not None

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        cols = header(raw)
        levels = _levels(cols[4:]) or []
        df = _keyed(raw, hints, cols, optional=cols[4:])
        df = to_float(df, cols[4:], raw)
        check_nonnegative(df, cols[4:], raw)
        parts = []
        for side, i in levels:
            p, a = f"{side}[{i}].price", f"{side}[{i}].amount"
            half = df.filter(pl.col(p).is_not_null() | pl.col(a).is_not_null())
            lonely = half.filter(pl.col(p).is_null() | pl.col(a).is_null())
            if not lonely.is_empty():
                raise ImportFormatError(raw.path, f"{p} and {a} must both be given or both be empty", row_of(lonely))
            _check_inverse_prices(half, raw, [(a, p)])
            parts.append(
                half.select(
                    "__row", "exchange", "market", "symbol", "ts", pl.col("__row").alias("seq"),
                    pl.lit("ask" if side == "asks" else "bid").alias("side"), pl.col(p).alias("price"),
                    to_base(a, p).alias("amount"), pl.lit(i).alias("__level"),
                )
            )
        rows = (
            pl.concat(parts)
            .sort(["__row", pl.col("side") == "bid", "__level"])
            .select(
                "exchange", "market", "symbol", "ts", "seq", "side", "price", "amount",
                pl.lit(True).alias("is_snapshot"),
            )
        )
        return [Batch("book_delta", rows)]


class TardisQuotes:
    """Tardis ``quotes`` and ``book_ticker`` → quote (best bid / ask; amounts in base units)."""

    name = "tardis-quotes"

    def sniff(self, raw: RawFile) -> bool:
        return _has(raw, QUOTE_COLUMNS)

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        values = ["ask_amount", "ask_price", "bid_price", "bid_amount"]
        df = _keyed(raw, hints, QUOTE_COLUMNS, optional=values)
        df = to_float(df, values, raw)
        check_nonnegative(df, values, raw)
        _check_inverse_prices(df, raw, [("bid_amount", "bid_price"), ("ask_amount", "ask_price")])
        rows = df.select(
            "exchange", "market", "symbol", "ts", "bid_price", to_base("bid_amount", "bid_price").alias("bid_amount"),
            "ask_price", to_base("ask_amount", "ask_price").alias("ask_amount"),
        )
        return [Batch("quote", rows)]


class TardisDerivativeTicker:
    """Tardis ``derivative_ticker`` → funding (rate, mark, index) and open_interest (base, quote value)."""

    name = "tardis-derivative-ticker"

    def sniff(self, raw: RawFile) -> bool:
        return _has(raw, TICKER_COLUMNS)

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        values = TICKER_COLUMNS[4:]
        df = _keyed(raw, hints, TICKER_COLUMNS, optional=values)
        df = to_float(df, [c for c in values if c != "funding_timestamp"], raw)
        check_nonnegative(df, ["open_interest", "last_price", "index_price", "mark_price"], raw)
        funding = df.filter(pl.col("funding_rate").is_not_null()).select(
            "exchange", "market", "symbol", "ts", pl.col("funding_rate").alias("rate"), "mark_price", "index_price"
        )
        ref = pl.coalesce(
            pl.when(pl.col(c) > 0).then(pl.col(c)) for c in ("mark_price", "last_price", "index_price")
        ).alias("__ref")
        oi = (
            df.filter(pl.col("open_interest").is_not_null())
            .with_columns(ref)
            .with_columns(to_base("open_interest", "__ref").alias("oi"))
            .filter(pl.col("oi").is_not_null())
            .select("exchange", "market", "symbol", "ts", "oi", (pl.col("oi") * pl.col("__ref")).alias("oi_value"))
        )
        return [Batch(k, rows) for k, rows in (("funding", funding), ("open_interest", oi)) if not rows.is_empty()]


FORMATS: list[Format] = [TardisTrades(), TardisBookL2(), TardisBookSnapshot(), TardisQuotes(), TardisDerivativeTicker()]
