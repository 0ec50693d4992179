"""OKX v5 REST bodies: the open interest of a USDT-margined perpetual swap.

``GET /api/v5/public/open-interest?instType=SWAP&instId=BTC-USDT-SWAP`` answers ``{"code": "0",
"msg": "", "data": [{"instId": "BTC-USDT-SWAP", "instType": "SWAP", "oi": "2663107.3", "oiCcy":
"26631.073", "oiUsd": "1676426045.35", "ts": "1728728314766"}]}``: ``oi`` in contracts (0.01 BTC
each for BTC-USDT-SWAP), ``oiCcy`` in the base coin, ``oiUsd`` in USD. Each entry becomes an
``open_interest`` row: ``ts`` = ``ts`` (the venue's clock, UTC ns), ``oi`` = ``oiCcy`` (BTC, so
no contract size is needed), ``oi_value`` = ``oiUsd`` (USD). This is what backfill stores for the
same entry (ccxt's ``parse_open_interest`` gives ``baseVolume`` = ``oiCcy``, which backfill
prefers to ``openInterestAmount`` × contract size, and ``openInterestValue`` = ``oiUsd``), so a
polled row equals a backfilled one.

The body is read here rather than through ccxt's parser: ccxt parses only after loading its
market table (one more request to the venue, and a dependency on ccxt's unified structures in the
live path), while the two fields needed are read directly; tests/test_live_venue_oi.py checks
that the row equals ccxt's ``parse_open_interest`` + backfill's ``to_rows`` of the same body.
A non-zero ``code`` is a MessageError carrying ``msg``.
"""

from __future__ import annotations

from typing import Any

from tapewatch.sources.messages import Context, Key, MessageError, Rows, amount, answer_entries, epoch_ns, field

EXCHANGE = "okx"
OI_PATH = "/api/v5/public/open-interest"
OI_PARAMS = {"instType": "SWAP"}  # beyond ``instId``
SYMBOL_PARAM = "instId"


def native_symbol(base: str, quote: str) -> str:
    """OKX's instrument id of a perpetual swap: ``BTC``, ``USDT`` -> ``BTC-USDT-SWAP``."""
    return f"{base}-{quote}-SWAP".upper()


def unified_symbol(inst_id: Any) -> str:
    """``BTC-USDT-SWAP`` -> ``BTC/USDT``; anything else is a MessageError."""
    parts = inst_id.split("-") if isinstance(inst_id, str) else []
    if len(parts) != 3 or parts[2] != "SWAP" or not all(parts[:2]):
        raise MessageError(f"not an OKX perpetual swap instId: {inst_id!r}")
    return f"{parts[0]}/{parts[1]}".upper()


def parse_rest(body: Any, kind: str, ctx: Context, rows: Rows) -> None:
    """One ``open-interest`` body (``kind`` ``openInterest``) into ``open_interest`` rows."""
    if kind != "openInterest":
        raise MessageError(f"no OKX parser for {kind} bodies")
    for e in answer_entries(body, "OKX", "code", "msg", "data"):
        key = Key(EXCHANGE, ctx.market or "perp", unified_symbol(field(e, "instId")))
        rows.add("open_interest", key, epoch_ns(field(e, "ts"), "ts"),
                 oi=amount(field(e, "oiCcy"), "oiCcy"), oi_value=amount(field(e, "oiUsd"), "oiUsd"))


def body_symbol(body: Any) -> str | None:
    """The instId of an OKX open-interest body (``BTC-USDT-SWAP``), None when ``body`` is not one."""
    data = body.get("data") if isinstance(body, dict) and "code" in body else None
    first = data[0] if isinstance(data, list) and data else None
    if isinstance(first, dict) and isinstance(first.get("instId"), str) and "oiCcy" in first:
        return first["instId"].upper()
    return None
