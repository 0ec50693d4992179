"""Binance spot and USD-M REST bodies and websocket messages.

Used by :mod:`tapewatch.sources.recordings` (cryptofeed recordings: market from the URL) and as
a standalone format: a saved REST body (one JSON document) or websocket messages (JSON Lines).
A standalone file that does not say its market or symbol needs ``--market`` / ``--symbol``;
``--exchange`` stores it under another venue speaking Binance's protocol (``binanceus``).

What becomes what (``ts`` always UTC ns):

===========================  ==================================================================
websocket ``aggTrade``        trade: ``a`` id, ``p``, ``q``, ts = ``T`` (trade time); ``m`` = the
 / ``trade``                  buyer was the maker, so ``m=true`` means the taker SOLD
websocket ``depthUpdate``     book_delta per level: seq = ``u``, first_seq = ``U``, prev_seq =
                              ``pu`` (USD-M only), ts = ``E`` (event time); qty 0 removes a level
websocket ``kline``           bar, only when closed (``x=true``): ts = open time ``t``, ``v`` base
                              volume, ``V`` taker-buy base volume, ``q`` quote volume, ``n`` trades
websocket ``bookTicker``      quote; ts = ``E`` (USD-M), else the recording time (spot has none)
REST depth snapshot           book_delta, is_snapshot, seq = ``lastUpdateId``; ts = ``E`` (USD-M)
                              else the recording time
REST exchangeInfo             instrument per symbol (tick_size = PRICE_FILTER tickSize,
                              step_size = LOT_SIZE stepSize), ts = ``serverTime``; USD-M: only
                              PERPETUAL contracts (dated futures have no unified symbol here)
REST klines                   bar per ``[openTime, o, h, l, c, v, closeTime, q, n, V, Q, _]``;
                              interval from closeTime - openTime; a kline still open at the
                              recording time is dropped
REST aggTrades / trades       trade (as above; ``isBuyerMaker`` for trades)
REST openInterestHist         open_interest: oi = ``sumOpenInterest`` (base), oi_value =
                              ``sumOpenInterestValue`` (quote), ts = ``timestamp``
REST openInterest             open_interest: oi = ``openInterest``, ts = ``time``
REST fundingRate              funding: rate = ``fundingRate``, mark_price = ``markPrice``,
                              ts = ``fundingTime``
===========================  ==================================================================

Ignored: subscription replies, partial-depth streams (``@depth5`` etc.: top-N, not diffs),
events of other kinds (markPrice, forceOrder, ticker…), REST endpoints not listed, error bodies.
COIN-M (dapi / dstream) is not supported: a clear error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tapewatch.errors import TapewatchError
from tapewatch.sources.base import Batch, Format, Hints, RawFile, with_exchange
from tapewatch.sources.messages import (
    Context,
    Key,
    MessageError,
    Rows,
    amount,
    each,
    epoch_ns,
    field,
    flag,
    integer,
    interval_text,
    json_documents,
    levels,
    located,
    number,
    obj,
    opt_number,
    price,
    sniff_json,
    symbol_of,
)
from tapewatch.timeutil import epoch_unit_factor, interval_ns

EXCHANGE = "binance"
# Binance kline intervals (seconds); 1M (a calendar month) has no fixed length and is refused.
KLINE_SECONDS = {1, 60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 28800, 43200, 86400, 259200, 604800}

# REST endpoint (last path segment) -> body kind
_ENDPOINTS = {
    "depth": "depth",
    "exchangeInfo": "exchangeInfo",
    "klines": "klines",
    "uiKlines": "klines",
    "aggTrades": "aggTrades",
    "trades": "trades",
    "historicalTrades": "trades",
    "openInterestHist": "openInterestHist",
    "openInterest": "openInterest",
    "fundingRate": "fundingRate",
}
_PARTIAL_DEPTH = re.compile(r"@depth\d")
_BOOK_TICKER_KEYS = {"u", "s", "b", "B", "a", "A"}
_WS_EVENTS = {"aggTrade", "trade", "depthUpdate", "kline", "bookTicker"}
_SNIFF_WHOLE_BYTES = 8 * 1024 * 1024


# -- where a URL points ------------------------------------------------------------------------
def market_of_url(url: str) -> str | None:
    """``spot`` for api.binance.com / stream.binance.com (and their mirrors), ``perp`` for
    fapi / fstream; None when the URL is not Binance's. COIN-M is refused (MessageError)."""
    host = (urlsplit(url).hostname or "").lower()
    if not host.endswith(("binance.com", "binance.vision")):  # not binance.us: another exchange
        return None
    first = host.split(".")[0]
    if first.startswith(("fapi", "fstream")):
        return "perp"
    if first.startswith(("dapi", "dstream")):
        raise MessageError(f"Binance COIN-M ({host}) is not supported: only spot and USD-M")
    return "spot"


def endpoint_kind(url: str) -> str | None:
    """The body kind a REST URL returns (``depth``, ``klines``…), None for endpoints not read.

    Mark-price, index-price and premium klines share the klines layout but are not trade bars:
    they are not read.
    """
    path = urlsplit(url).path.rstrip("/")
    return _ENDPOINTS.get(path.rsplit("/", 1)[-1])


# -- websocket -------------------------------------------------------------------------------
def parse_ws_message(msg: Any, ctx: Context, rows: Rows) -> None:
    """One websocket message: a combined-stream ``{"stream", "data"}`` envelope or a raw event.

    ``ctx.market`` must be set (from the connect URL or ``--market``); ``ctx.recv_ns`` is the
    recording time, used only where the event has no time of its own (spot bookTicker).
    """
    msg = obj(msg, "message")
    stream = msg.get("stream")
    data = msg.get("data") if "data" in msg and isinstance(stream, str) else msg
    if isinstance(stream, str) and _PARTIAL_DEPTH.search(stream):
        return
    if not isinstance(data, dict):
        return
    event = data.get("e")
    if event in ("aggTrade", "trade"):
        _trade(data, _key(ctx, field(data, "s"), "a Binance trade"), rows, id_field="a" if event == "aggTrade" else "t")
    elif event == "depthUpdate":
        _depth_update(data, ctx, rows)
    elif event == "kline":
        _kline_event(data, ctx, rows)
    elif event == "bookTicker" or (
        event is None and (_BOOK_TICKER_KEYS <= data.keys() or (isinstance(stream, str) and stream.endswith("@bookTicker")))
    ):
        _book_ticker(data, ctx, rows)


def _key(ctx: Context, native: Any, what: str) -> Key:
    return Key(EXCHANGE, ctx.need_market(what), symbol_of(native))


def _trade(d: dict[str, Any], key: Key, rows: Rows, *, id_field: str = "a", maker_field: str = "m",
           price_field: str = "p", qty_field: str = "q", time_field: str = "T") -> None:
    """A trade; ``maker_field`` true = the buyer was the maker = the taker SOLD."""
    buyer_maker = flag(field(d, maker_field), maker_field)
    rows.add(
        "trade", key, epoch_ns(field(d, time_field), time_field),
        price=price(field(d, price_field), price_field),
        amount=amount(field(d, qty_field), qty_field),
        taker_side="sell" if buyer_maker else "buy",
        trade_id=str(integer(field(d, id_field), id_field)),
    )


def _depth_update(d: dict[str, Any], ctx: Context, rows: Rows) -> None:
    key = _key(ctx, field(d, "s"), "a Binance depth update")
    ts = epoch_ns(field(d, "E"), "E")
    last, first = integer(field(d, "u"), "u"), integer(field(d, "U"), "U")
    prev = integer(d["pu"], "pu") if d.get("pu") is not None else None
    if first > last:
        raise MessageError(f"first update id U {first} is after last update id u {last}")
    for side, name in (("bid", "b"), ("ask", "a")):
        for px, qty in levels(field(d, name), name):
            rows.add("book_delta", key, ts, seq=last, first_seq=first, prev_seq=prev,
                     side=side, price=px, amount=qty, is_snapshot=False)


def _stated_seconds(stated: Any) -> int:
    """Length in seconds of a Binance interval name (``1m``, ``4h``, ``1w``); ``1M`` is refused."""
    text = str(stated)
    if text.endswith("M"):
        raise MessageError("monthly (1M) klines are not supported")
    if re.fullmatch(r"\d+w", text):
        return int(text[:-1]) * 604_800
    try:
        return interval_ns(text) // 1_000_000_000
    except TapewatchError:
        raise MessageError(f"unknown kline interval {stated!r}") from None


def _kline_interval(open_raw: Any, close_raw: Any, stated: Any | None) -> tuple[int, str]:
    """(open time ns, interval) of a kline from its open and close times (close = next open - 1
    unit); checked against the interval the stream or request states, if any."""
    open_ns, close_ns = epoch_ns(open_raw, "open time"), epoch_ns(close_raw, "close time")
    unit_ns = epoch_unit_factor(integer(open_raw, "open time"))
    seconds, rest = divmod(close_ns + unit_ns - open_ns, 1_000_000_000)
    if rest or seconds not in KLINE_SECONDS:
        raise MessageError(
            f"kline from {open_raw} to {close_raw} is not one Binance interval (monthly klines are not supported)"
        )
    if stated is not None and _stated_seconds(stated) != seconds:
        raise MessageError(f"kline spans {interval_text(seconds)} but its interval says {stated}")
    return open_ns, interval_text(seconds)


def _bar(o: Any, h: Any, lo: Any, c: Any, v: Any, taker_buy: Any, quote_v: Any, n: Any) -> dict[str, Any]:
    """Bar fields of a kline, checked: OHLC consistent (low <= open, close <= high), sizes >= 0,
    taker buy volume <= volume."""
    op, hi, low, cl = price(o, "open"), price(h, "high"), price(lo, "low"), price(c, "close")
    if not (low <= min(op, cl) and max(op, cl) <= hi):
        raise MessageError(f"inconsistent OHLC: open {o} high {h} low {lo} close {c}")
    vol, tbv = amount(v, "volume"), amount(taker_buy, "taker buy volume")
    if tbv > vol * (1 + 1e-9):
        raise MessageError(f"taker buy volume {taker_buy} exceeds volume {v}")
    return {"open": op, "high": hi, "low": low, "close": cl, "volume": vol, "taker_buy_volume": tbv,
            "quote_volume": amount(quote_v, "quote volume"), "trades": integer(n, "trade count")}


def _kline_event(d: dict[str, Any], ctx: Context, rows: Rows) -> None:
    k = obj(field(d, "k"), "k")
    if not flag(field(k, "x"), "x"):
        return  # still open: its values will change
    key = _key(ctx, k.get("s") or field(d, "s"), "a Binance kline")
    open_ns, interval = _kline_interval(field(k, "t"), field(k, "T"), field(k, "i"))
    values = _bar(*(field(k, f) for f in ("o", "h", "l", "c", "v", "V", "q", "n")))
    rows.add("bar", key, open_ns, interval=interval, **values)


def _side_quote(px: Any, qty: Any, name: str) -> tuple[float | None, float | None]:
    """Best price and size of one side; Binance sends 0 / 0 for an empty side: null."""
    p, q = amount(px, f"{name} price"), amount(qty, f"{name} size")
    return (None, None) if p == 0 else (p, q)


def _book_ticker(d: dict[str, Any], ctx: Context, rows: Rows) -> None:
    key = _key(ctx, field(d, "s"), "a Binance bookTicker")
    ts = epoch_ns(d["E"], "E") if d.get("E") is not None else ctx.need_time("a Binance spot bookTicker")
    bid, bid_qty = _side_quote(field(d, "b"), field(d, "B"), "bid")
    ask, ask_qty = _side_quote(field(d, "a"), field(d, "A"), "ask")
    rows.add("quote", key, ts, bid_price=bid, bid_amount=bid_qty, ask_price=ask, ask_amount=ask_qty)


# -- REST ------------------------------------------------------------------------------------
def body_kind(body: Any) -> str | None:
    """The kind of a REST body or websocket message told from its shape (standalone files)."""
    if isinstance(body, dict):
        if "lastUpdateId" in body and "bids" in body and "asks" in body:
            return "depth"
        if isinstance(body.get("symbols"), list) and ("serverTime" in body or "timezone" in body):
            return "exchangeInfo"
        if {"openInterest", "symbol", "time"} <= body.keys():
            return "openInterest"
        data = body.get("data") if isinstance(body.get("stream"), str) else body
        if isinstance(data, dict) and (data.get("e") in _WS_EVENTS or _BOOK_TICKER_KEYS <= data.keys()):
            return "ws"
        return None
    if isinstance(body, list) and body:
        first = body[0]
        if isinstance(first, list) and len(first) >= 11 and isinstance(first[0], (int, str)):
            return "klines"
        if isinstance(first, dict):
            keys = first.keys()
            if {"a", "p", "q", "f", "l", "T", "m"} <= keys:
                return "aggTrades"
            if {"id", "price", "qty", "time", "isBuyerMaker"} <= keys:
                return "trades"
            if {"symbol", "sumOpenInterest", "sumOpenInterestValue", "timestamp"} <= keys:
                return "openInterestHist"
            if {"symbol", "fundingTime", "fundingRate"} <= keys:
                return "fundingRate"
    return None


def _is_ws_envelope(doc: Any) -> bool:
    """A websocket message of any event, or a subscription reply (``{"result": null, "id": 1}``)."""
    return isinstance(doc, dict) and (
        isinstance(doc.get("stream"), str) or isinstance(doc.get("e"), str) or {"result", "id"} == doc.keys()
    )


def is_error_body(body: Any) -> bool:
    """A REST error reply (``{"code": -1121, "msg": "Invalid symbol."}``): nothing to import."""
    return isinstance(body, dict) and {"code", "msg"} >= body.keys() and "msg" in body


def parse_rest(body: Any, kind: str, ctx: Context, rows: Rows) -> None:
    """One REST body of ``kind`` (see :data:`_ENDPOINTS`); ``ctx`` gives what the body lacks."""
    if kind == "depth":
        _depth_snapshot(obj(body, "depth body"), ctx, rows)
    elif kind == "exchangeInfo":
        _exchange_info(obj(body, "exchangeInfo body"), ctx, rows)
    elif kind == "openInterest":
        d = obj(body, "openInterest body")
        key = Key(EXCHANGE, ctx.market or "perp", symbol_of(field(d, "symbol")))
        rows.add("open_interest", key, epoch_ns(field(d, "time"), "time"),
                 oi=amount(field(d, "openInterest"), "openInterest"), oi_value=None)
    else:
        if not isinstance(body, list):
            raise MessageError(f"a {kind} body must be a JSON array")
        each(body, _LIST_PARSERS[kind](ctx, rows))


def _depth_snapshot(d: dict[str, Any], ctx: Context, rows: Rows) -> None:
    what = "a Binance depth snapshot"
    key = Key(EXCHANGE, ctx.need_market(what), ctx.need_symbol(what))
    ts = epoch_ns(d["E"], "E") if d.get("E") is not None else ctx.need_time("a Binance spot depth snapshot")
    seq = integer(field(d, "lastUpdateId"), "lastUpdateId")
    for side, name in (("bid", "bids"), ("ask", "asks")):
        for px, qty in levels(field(d, name), name):
            rows.add("book_delta", key, ts, seq=seq, first_seq=None, prev_seq=None,
                     side=side, price=px, amount=qty, is_snapshot=True)


def _exchange_info(d: dict[str, Any], ctx: Context, rows: Rows) -> None:
    symbols = field(d, "symbols")
    if not isinstance(symbols, list):
        raise MessageError("exchangeInfo symbols is not a list")
    futures = "futuresType" in d or any(isinstance(s, dict) and "contractType" in s for s in symbols[:1])
    market = ctx.market or ("perp" if futures else "spot")
    ts = epoch_ns(d["serverTime"], "serverTime") if d.get("serverTime") is not None else ctx.need_time(
        "a Binance exchangeInfo body"
    )

    def one(_n: int, s: Any) -> None:
        s = obj(s, "symbol entry")
        if market == "perp" and s.get("contractType") != "PERPETUAL":
            return  # dated futures: no unified symbol for them in tapewatch
        base, quote = str(field(s, "baseAsset")).upper(), str(field(s, "quoteAsset")).upper()
        filters = {f.get("filterType"): f for f in s.get("filters") or [] if isinstance(f, dict)}
        tick = filters.get("PRICE_FILTER", {}).get("tickSize")
        step = filters.get("LOT_SIZE", {}).get("stepSize")
        rows.add("instrument", Key(EXCHANGE, market, f"{base}/{quote}"), ts,
                 native_symbol=str(field(s, "symbol")), base=base, quote=quote,
                 tick_size=opt_number(tick, "tickSize", amount), step_size=opt_number(step, "stepSize", amount),
                 status=str(field(s, "status")))

    each(symbols, one)


ItemParser = Callable[[int, Any], None]


def _klines(ctx: Context, rows: Rows) -> ItemParser:
    what = "a Binance klines body"
    key = Key(EXCHANGE, ctx.need_market(what), ctx.need_symbol(what))

    def one(_n: int, k: Any) -> None:
        if not isinstance(k, list) or len(k) < 11:
            raise MessageError(f"a kline must be a list of 12 values, got {str(k)[:80]}")
        open_ns, interval = _kline_interval(k[0], k[6], ctx.interval)
        values = _bar(k[1], k[2], k[3], k[4], k[5], k[9], k[7], k[8])
        if ctx.recv_ns is not None and epoch_ns(k[6], "close time") >= ctx.recv_ns:
            return  # still open when the body was received: its values would change
        rows.add("bar", key, open_ns, interval=interval, **values)

    return one


def _agg_trades(ctx: Context, rows: Rows) -> ItemParser:
    what = "a Binance aggTrades body"
    key = Key(EXCHANGE, ctx.need_market(what), ctx.need_symbol(what))
    return lambda _n, t: _trade(obj(t, "trade"), key, rows)


def _trades(ctx: Context, rows: Rows) -> ItemParser:
    what = "a Binance trades body"
    key = Key(EXCHANGE, ctx.need_market(what), ctx.need_symbol(what))
    return lambda _n, t: _trade(obj(t, "trade"), key, rows, id_field="id", maker_field="isBuyerMaker",
                                price_field="price", qty_field="qty", time_field="time")


def _oi_hist(ctx: Context, rows: Rows) -> ItemParser:
    market = ctx.market or "perp"  # open interest exists for futures only

    def one(_n: int, r: Any) -> None:
        r = obj(r, "row")
        rows.add("open_interest", Key(EXCHANGE, market, symbol_of(field(r, "symbol"))),
                 epoch_ns(field(r, "timestamp"), "timestamp"),
                 oi=amount(field(r, "sumOpenInterest"), "sumOpenInterest"),
                 oi_value=amount(field(r, "sumOpenInterestValue"), "sumOpenInterestValue"))

    return one


def _funding(ctx: Context, rows: Rows) -> ItemParser:
    market = ctx.market or "perp"

    def one(_n: int, r: Any) -> None:
        r = obj(r, "row")
        rows.add("funding", Key(EXCHANGE, market, symbol_of(field(r, "symbol"))),
                 epoch_ns(field(r, "fundingTime"), "fundingTime"),
                 rate=number(field(r, "fundingRate"), "fundingRate"),
                 mark_price=opt_number(r.get("markPrice"), "markPrice", price), index_price=None)

    return one


_LIST_PARSERS = {
    "klines": _klines,
    "aggTrades": _agg_trades,
    "trades": _trades,
    "openInterestHist": _oi_hist,
    "fundingRate": _funding,
}


# -- standalone files --------------------------------------------------------------------------
def _sniff_object_file(raw: RawFile, doc: Any) -> bool:
    """Whether a file starting with ``{`` is Binance's (``doc``: its first line decoded, or None)."""
    if doc is not None:  # one document on one line, or JSON Lines (maybe after subscription replies)
        for line in raw.first_lines:
            try:
                doc = json.loads(line)
            except ValueError:
                return False
            if not (isinstance(doc, dict) and {"result", "id"} == doc.keys()):
                return body_kind(doc) is not None
        return False
    if len(raw.data) <= _SNIFF_WHOLE_BYTES:  # pretty-printed: read it whole
        try:
            return body_kind(json.loads(raw.data)) is not None
        except ValueError:
            pass
    head = raw.head
    return ('"lastUpdateId"' in head and '"bids"' in head) or (
        '"symbols"' in head and '"serverTime"' in head and '"rateLimits"' in head
    )


class BinanceJSON:
    """A saved Binance REST body (one JSON document) or websocket messages (one per line)."""

    name = "binance-json"

    def sniff(self, raw: RawFile) -> bool:
        return sniff_json(raw, body_kind, _sniff_object_file)

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        rows = Rows()
        ctx = Context.of_file(raw, hints)
        for line, doc in json_documents(raw):
            try:
                kind = body_kind(doc)
                if kind == "ws" or (kind is None and _is_ws_envelope(doc)):
                    parse_ws_message(doc, ctx, rows)  # events of no interest are skipped there
                elif kind is not None:
                    parse_rest(doc, kind, ctx, rows)
                elif not is_error_body(doc) and not (isinstance(doc, list) and not doc):
                    raise MessageError("not a Binance REST body or websocket message tapewatch reads")
            except MessageError as exc:
                raise located(raw.path, exc, line) from None
        # Binance.US and other venues speaking Binance's protocol: stored under the venue named
        return with_exchange(rows.batches(), hints.exchange.lower()) if hints.exchange else rows.batches()


FORMATS: list[Format] = [BinanceJSON()]
