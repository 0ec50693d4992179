"""Bybit v5 REST bodies: the open interest of a linear (USDT-settled) perpetual.

``GET /v5/market/open-interest?category=linear&symbol=BTCUSDT&intervalTime=5min&limit=1`` answers
``{"retCode": 0, "retMsg": "OK", "result": {"symbol": "BTCUSDT", "category": "linear", "list":
[{"openInterest": "62129.455", "timestamp": "1739725200000"}], ...}, "time": ...}``. Each list
entry becomes an ``open_interest`` row: ``ts`` = its ``timestamp`` (the start of the venue's
5-minute interval, UTC ns), ``oi`` = ``openInterest``, which for a linear contract is in the base
coin (BTC), ``oi_value`` null: the body carries no value. This is what backfill stores for the
same entry (ccxt's ``parse_open_interest`` gives ``openInterestAmount`` = ``openInterest`` for a
linear market, contract size 1, and no ``openInterestValue``), so a polled row equals a
backfilled one.

The body is read here rather than through ccxt's parser: ccxt parses only after loading its
market table (one more request to the venue, and a dependency on ccxt's unified structures in the
live path), while the two fields needed are read directly; tests/test_live_venue_oi.py checks
that the row equals ccxt's ``parse_open_interest`` + backfill's ``to_rows`` of the same body.
A non-zero ``retCode`` (Bybit answers errors with HTTP 200) is a MessageError carrying ``retMsg``.
"""

from __future__ import annotations

from typing import Any

from tapewatch.sources.messages import (
    Context, Key, MessageError, Rows, amount, answer_entries, epoch_ns, field, symbol_of,
)

EXCHANGE = "bybit"
OI_PATH = "/v5/market/open-interest"
OI_PARAMS = {"category": "linear", "intervalTime": "5min", "limit": "1"}  # beyond ``symbol``: the latest 5-min value
SYMBOL_PARAM = "symbol"


def native_symbol(base: str, quote: str) -> str:
    """Bybit's symbol of a linear perpetual: ``BTC``, ``USDT`` -> ``BTCUSDT``."""
    return f"{base}{quote}".upper()


def parse_rest(body: Any, kind: str, ctx: Context, rows: Rows) -> None:
    """One ``open-interest`` body (``kind`` ``openInterest``) into ``open_interest`` rows."""
    if kind != "openInterest":
        raise MessageError(f"no Bybit parser for {kind} bodies")
    entries = answer_entries(body, "Bybit", "retCode", "retMsg", "result", "list")
    key = Key(EXCHANGE, ctx.market or "perp", symbol_of(field(body["result"], "symbol")))
    for e in entries:
        rows.add("open_interest", key, epoch_ns(field(e, "timestamp"), "timestamp"),
                 oi=amount(field(e, "openInterest"), "openInterest"), oi_value=None)


def body_symbol(body: Any) -> str | None:
    """The native symbol of a Bybit open-interest body (``BTCUSDT``), None when ``body`` is not one."""
    result = body.get("result") if isinstance(body, dict) and "retCode" in body else None
    if isinstance(result, dict) and isinstance(result.get("list"), list) and isinstance(result.get("symbol"), str):
        return result["symbol"].upper()
    return None
