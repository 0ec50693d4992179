"""Checks for the names that become store paths or reach queries: exchange, market, symbol, interval.

Every name that arrives from outside — a command-line flag, a config file, the content of an
imported file or message, later a dashboard URL — passes one of these functions where it
enters, and :class:`tapewatch.store.Store` checks again before it builds a path (defence in
depth). A name that does not match is a :class:`BadName` whose message is one line naming
where the name came from and what is allowed; the offending value is shown with ``repr`` so
control characters stay visible and on one line.

Rules (strict on purpose: these strings become directory names and glob patterns):

* exchange: lowercase ASCII letters and digits, ``-`` or ``_`` inside, at most 32 characters
  (``binance``, ``binanceus``, ``coinbase``, ``aggregate``). A well-formed venue that is not in
  :data:`KNOWN_VENUES` is accepted: data can come from any venue (``unknown`` when a file does
  not tell); the list is only shown as examples.
* market: one of :data:`tapewatch.symbols.MARKETS`.
* symbol: ``BASE/QUOTE`` (optionally ``:SETTLE``) of uppercase ASCII letters and digits.
* base asset (``--symbol`` of signals, scan, backtest, report): uppercase letters and digits.
* interval: a positive whole number and one of ``s m h d w`` (``10s``, ``1m``, ``4h``, ``1w``).
"""

from __future__ import annotations

import re

import polars as pl

from tapewatch.errors import TapewatchError
from tapewatch.symbols import MARKETS, unify

KNOWN_VENUES = (
    "binance", "binanceus", "coinbase", "bybit", "okx", "kraken", "bitmex", "deribit", "bitstamp", "huobi",
    "bitfinex", "gemini", "kucoin", "okcoin",
)
_EXCHANGE = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?")
_ASSET = r"[A-Z0-9]{1,20}"
_BASE = re.compile(_ASSET)
_SYMBOL = re.compile(rf"{_ASSET}/{_ASSET}(?::{_ASSET})?")
_INTERVAL = re.compile(r"[1-9][0-9]{0,5}[smhdw]")


class BadName(TapewatchError):
    """An exchange, market, symbol or interval name that may not become a path or a query value."""


def _check(value: object, pattern: re.Pattern[str], what: str, where: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadName(f"{where}: {value!r} is not a valid {what} name; {rule}")
    return value


def exchange_name(value: object, where: str = "exchange") -> str:
    """``value`` if it is a valid exchange name, else BadName naming ``where`` it came from."""
    return _check(value, _EXCHANGE, "exchange", where,
                  "use lowercase letters and digits, '-' or '_' inside, at most 32 characters "
                  f"(known venues: {', '.join(KNOWN_VENUES)})")


def market_name(value: object, where: str = "market") -> str:
    """``value`` if it is one of the markets tapewatch stores (spot, perp, future), else BadName."""
    if value not in MARKETS:
        raise BadName(f"{where}: {value!r} is not a valid market name; use one of {', '.join(MARKETS)}")
    return str(value)


def symbol_name(value: object, where: str = "symbol") -> str:
    """``value`` if it is a unified ``BASE/QUOTE`` symbol (``BTC/USDT``, ``BTC/USD:BTC``), else BadName."""
    return _check(value, _SYMBOL, "symbol", where,
                  "use BASE/QUOTE in uppercase letters and digits, e.g. BTC/USDT")


def base_name(value: object, where: str = "--symbol") -> str:
    """``value`` upper-cased if it is a base asset (``BTC``, ``1000SHIB``), else BadName."""
    up = value.upper() if isinstance(value, str) else value
    return _check(up, _BASE, "base asset", where, "use letters and digits only, e.g. BTC or ETH")


def interval_name(value: object, where: str = "interval") -> str:
    """``value`` if it is a bar interval such as ``10s``, ``1m``, ``4h``, ``1d``, ``1w``, else BadName."""
    return _check(value, _INTERVAL, "interval", where,
                  "use a whole number and one of s, m, h, d, w (e.g. 10s, 1m, 4h, 1d)")


def flag_exchange(value: str | None, where: str = "--exchange") -> str | None:
    """A ``--exchange`` flag: lower-cased (``Binance`` → ``binance``) and checked; None stays None."""
    return None if value is None else exchange_name(value.lower(), where)


def flag_symbol(value: str | None, where: str = "--symbol") -> str | None:
    """A ``--symbol`` flag in any venue spelling (``BTCUSDT``, ``btc-usdt``, ``BTC/USDT``): unified and checked."""
    if value is None:
        return None
    unified = unify(value) if value.isprintable() else value  # unify would strip a trailing newline
    if not _SYMBOL.fullmatch(unified):
        return symbol_name(value, where)  # raises, showing the value as typed
    return unified


_COLUMN_CHECKS = (("exchange", exchange_name), ("market", market_name), ("symbol", symbol_name),
                  ("interval", interval_name))


def check_rows(df: pl.DataFrame, where: str) -> None:
    """BadName for the first invalid exchange, market, symbol or (non-empty) interval value in ``df``.

    ``where`` names the source in the message (``""``: just the column).
    """
    for col, check in _COLUMN_CHECKS:
        if col not in df.columns:
            continue
        for value in df.get_column(col).drop_nulls().unique(maintain_order=True).to_list():
            if col == "interval" and value == "":
                continue  # series without an interval (funding, open interest)
            check(value, f"{where}, {col}" if where else col)
