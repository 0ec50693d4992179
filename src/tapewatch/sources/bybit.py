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

The body is read here rather than through ccxt's parser: ccxt needs its loaded market table (a
network call) to parse, and its unified structure drops nothing we need. A non-zero ``retCode``
(Bybit answers errors with HTTP 200) is a MessageError carrying ``retMsg``.
"""

from __future__ import annotations

from typing import Any

from tapewatch.sources.messages import Context, Key, MessageError, Rows, amount, epoch_ns, field, obj, symbol_of

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
    d = obj(body, "Bybit open-interest body")
    if d.get("retCode") not in (0, "0"):
        raise MessageError(f"Bybit retCode {d.get('retCode')!r}: {d.get('retMsg')!r}")
    result = obj(field(d, "result"), "Bybit result")
    entries = field(result, "list")
    if not isinstance(entries, list):
        raise MessageError("Bybit result.list is not a list")
    key = Key(EXCHANGE, ctx.market or "perp", symbol_of(field(result, "symbol")))
    for entry in entries:
        e = obj(entry, "Bybit open-interest entry")
        rows.add("open_interest", key, epoch_ns(field(e, "timestamp"), "timestamp"),
                 oi=amount(field(e, "openInterest"), "openInterest"), oi_value=None)


def body_symbol(body: Any) -> str | None:
    """The native symbol of a Bybit open-interest body (``BTCUSDT``), None when ``body`` is not one."""
    result = body.get("result") if isinstance(body, dict) and "retCode" in body else None
    if isinstance(result, dict) and isinstance(result.get("list"), list) and isinstance(result.get("symbol"), str):
        return result["symbol"].upper()
    return None
