"""The replay exchange's REST trade endpoints: the captured websocket trades re-shaped into the
venues' REST answers.

The captures hold no REST trade answers, so these bodies are built from the captured trade
messages: Binance ``@trade`` (``t`` id, ``p``, ``q``, ``T`` trade time, ``m`` buyer is maker)
and Coinbase ``match`` / ``last_match`` (the fields are the REST ones, copied as captured). As
the venue would answer at the replay point, only trades among the feed's messages already past
(sent, withheld or cut) are served. Endpoints (under the feed's prefix, as on the venue):

* Binance spot ``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=N&limit=L`` (default 500,
  at most 1,000) and USD-M ``GET /fapi/v1/historicalTrades`` (default 100, at most 500; it needs
  an ``X-MBX-APIKEY`` header, any non-empty value, else 401 with code -2014): trades with
  ``id >= fromId`` (without it the latest ones), oldest first, as
  ``{"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}`` (USD-M: without
  ``isBestMatch``); ``quoteQty`` = price × qty, exact in decimal;
* Coinbase ``GET /products/{product}/trades?after=C`` (or ``before=C``; ``limit`` default and at
  most 1,000): trades with ``trade_id < C`` (``> C``), newest first, as
  ``[{"time", "trade_id", "price", "size", "side"}]`` (``side`` the maker's, as in ``match``),
  with ``CB-BEFORE`` / ``CB-AFTER`` headers = the newest / oldest trade_id of the page.

Errors as the venues answer them: Binance ``{"code", "msg"}`` with 400 (bad symbol, limit or
fromId), Coinbase ``{"message"}`` with 400 / 404; the ``trades_error`` fault answers every
trades request with its status.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tapewatch.replay.faults import REST_ERRORS
from tapewatch.replay.timeline import Feed, Timeline

if TYPE_CHECKING:
    from tapewatch.replay.server import ReplayExchange

TRADES_PATHS = {"spot": "/api/v3/historicalTrades", "perp": "/fapi/v1/historicalTrades"}
LIMITS = {"spot": (500, 1000), "perp": (100, 500), "coinbase": (1000, 1000)}  # (default, most)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Trade:
    """One captured trade: its position among the feed's messages, its id and its REST object."""

    position: int
    trade_id: int
    body: dict[str, Any]


def trade_book(timeline: Timeline) -> dict[tuple[Feed, str], list[Trade]]:
    """Per (feed, native product) the captured trades, in id order (each id once)."""
    book: dict[tuple[Feed, str], dict[int, Trade]] = {}
    for feed, messages in timeline.messages.items():
        for position, m in enumerate(messages):
            if feed.exchange == "binance" and m.channel.endswith("@trade"):
                d = json.loads(m.raw)["data"]
                body = {"id": d["t"], "price": d["p"], "qty": d["q"],
                        "quoteQty": format(Decimal(d["p"]) * Decimal(d["q"]), "f"), "time": d["T"],
                        "isBuyerMaker": d["m"], **({"isBestMatch": True} if feed.market == "spot" else {})}
                trade = Trade(position, int(d["t"]), body)
            elif feed.exchange == "coinbase" and m.channel == "matches":
                d = json.loads(m.raw)
                body = {k: d[k] for k in ("time", "trade_id", "price", "size", "side")}
                trade = Trade(position, int(d["trade_id"]), body)
            else:
                continue
            book.setdefault((feed, m.product), {}).setdefault(trade.trade_id, trade)
    return {k: [v[i] for i in sorted(v)] for k, v in book.items()}


def _limit(text: str | None, market: str) -> int | None:
    default, most = LIMITS[market]
    if text is None:
        return default
    return int(text) if text.isdigit() and 1 <= int(text) <= most else None


def _binance_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


def _fault(exchange: ReplayExchange, binance: bool) -> web.Response | None:
    """The answer a ``trades_error`` fault gives, if one is set."""
    status = exchange.faults.trades_error
    if status is None:
        return None
    headers = {"Retry-After": str(exchange.faults.retry_after)} if status in REST_ERRORS else None
    msg = REST_ERRORS.get(status, "An unknown error occurred while processing the request.")
    if binance:
        return _binance_error(status, -1003 if status in REST_ERRORS else -1000, msg, headers)
    return web.json_response({"message": msg}, status=status, headers=headers)


def binance_trades(exchange: ReplayExchange, feed: Feed) -> Handler:
    """The historicalTrades handler of one Binance feed (see the module docstring)."""

    async def handler(request: web.Request) -> web.Response:
        refused = exchange.refusal() or _fault(exchange, True)
        if refused is not None:
            return refused
        if feed.market == "perp" and not request.headers.get("X-MBX-APIKEY"):
            return _binance_error(401, -2014, "API-key format invalid.")
        symbol = request.query.get("symbol", "").upper()
        if not symbol:
            return _binance_error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        limit = _limit(request.query.get("limit"), feed.market)
        if limit is None:
            return _binance_error(400, -1100, f"Illegal characters found in parameter 'limit'; legal range is 1 to {LIMITS[feed.market][1]}.")
        from_text = request.query.get("fromId")
        if from_text is not None and not from_text.isdigit():
            return _binance_error(400, -1100, "Illegal characters found in parameter 'fromId'; legal range is '^[0-9]{1,20}$'.")
        trades = exchange.trades.get((feed, symbol))
        if trades is None:
            return _binance_error(400, -1121, "Invalid symbol.")
        past = [t for t in trades if t.position < exchange.pumps[feed].position]
        page = past[-limit:] if from_text is None else [t for t in past if t.trade_id >= int(from_text)][:limit]
        return web.json_response([t.body for t in page])

    return handler


def coinbase_trades(exchange: ReplayExchange, feed: Feed) -> Handler:
    """The ``/products/{product}/trades`` handler of the Coinbase feed (see the module docstring)."""

    async def handler(request: web.Request) -> web.Response:
        refused = exchange.refusal() or _fault(exchange, False)
        if refused is not None:
            return refused
        trades = exchange.trades.get((feed, request.match_info["product"].upper()))
        if trades is None:
            return web.json_response({"message": "NotFound"}, status=404)
        limit = _limit(request.query.get("limit"), "coinbase")
        after, before = request.query.get("after"), request.query.get("before")
        if limit is None or any(c is not None and not c.isdigit() for c in (after, before)):
            return web.json_response({"message": "Invalid limit, after or before"}, status=400)
        past = [t for t in trades if t.position < exchange.pumps[feed].position]
        if after is not None:
            page = [t for t in past if t.trade_id < int(after)][-limit:]
        elif before is not None:
            page = [t for t in past if t.trade_id > int(before)][:limit]
        else:
            page = past[-limit:]
        page.reverse()  # newest first
        headers = {"CB-BEFORE": str(page[0].trade_id), "CB-AFTER": str(page[-1].trade_id)} if page else {}
        return web.json_response([t.body for t in page], headers=headers)

    return handler
