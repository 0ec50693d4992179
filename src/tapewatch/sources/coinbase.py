"""Coinbase Exchange (formerly Coinbase Pro): REST bodies, websocket feed messages, CSV tables.

Used by :mod:`tapewatch.sources.recordings` and as standalone files: a saved REST body or feed
messages (JSON Lines), and CSV with the header ``time,low,high,open,close,volume`` (candles) or
``time,trade_id,price,size,side`` (trades). Exchange ``coinbase``, market ``spot``, symbol from
the product id (``BTC-USD`` -> ``BTC/USD``; ``--symbol`` where the file does not say it).

What becomes what (``ts`` always UTC ns):

========================  =====================================================================
feed ``match`` /          trade: ``side`` is the MAKER's side, so the taker side is the
 ``last_match``           opposite; ts = ``time``
feed ``snapshot``         book_delta, is_snapshot, seq null (the level2 channel has no sequence);
                          stamped at the recording time, or just before the product's first
                          following ``l2update`` when that is earlier (see :class:`FeedState`)
feed ``l2update``         book_delta per change (``buy`` = bid, ``sell`` = ask), seq null,
                          ts = ``time``; size 0 removes the level
feed ``ticker``           quote: ``best_bid`` / ``best_ask`` (sizes when the feed sends them)
REST products             instrument (tick_size = ``quote_increment``, step_size =
                          ``base_increment``), stamped with the recording time
REST book                 level 2 (or 3, aggregated per price): book_delta snapshot, seq =
                          ``sequence``; level 1 (best bid / ask only): quote
REST candles              bar per ``[time, low, high, open, close, volume]`` (time in seconds,
                          newest first; volume in base units; no taker split, no quote volume,
                          no trade count). Intervals without trades have no row and stay absent
REST trades               trade per ``{time, trade_id, price, size, side}`` (maker side)
REST ticker               quote (bid / ask, no sizes)
========================  =====================================================================

Rows the venue sends newest first are sorted by ts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field as dc_field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tapewatch.errors import TapewatchError
from tapewatch.sources.base import Batch, Format, Hints, RawFile, read_csv_strings
from tapewatch.sources.messages import (
    Context,
    Key,
    MessageError,
    Rows,
    amount,
    each,
    epoch_ns,
    field,
    integer,
    interval_text,
    iso_ns,
    json_documents,
    levels,
    located,
    obj,
    opposite,
    opt_number,
    price,
    side_of,
    sniff_json,
    symbol_of,
)
from tapewatch.timeutil import interval_ns

EXCHANGE = "coinbase"
MARKET = "spot"
# candle granularities Coinbase Exchange serves, in seconds, largest first
GRANULARITIES = (86_400, 21_600, 3_600, 900, 300, 60)
CANDLES_HEADER = "time,low,high,open,close,volume"
TRADES_HEADER = "time,trade_id,price,size,side"
_FEED_TYPES = {"match", "last_match", "snapshot", "l2update", "ticker"}
_BOOK_SIDES = {"buy": "bid", "sell": "ask", "bids": "bid", "asks": "ask"}


def _key(product: Any) -> Key:
    return Key(EXCHANGE, MARKET, symbol_of(product))


def _time(value: Any, name: str = "time") -> int:
    """A Coinbase time: ISO-8601 text (``2021-04-17T16:43:37.089723Z``) or epoch (s/ms/µs/ns)."""
    if isinstance(value, str) and not re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        return iso_ns(value, name)
    if isinstance(value, str):
        value = float(value) if "." in value else int(value)
    return epoch_ns(value, name)


# -- where a URL points ------------------------------------------------------------------------
def is_exchange_url(url: str) -> bool:
    """True for Coinbase Exchange hosts (api / ws-feed .pro.coinbase.com or .exchange.coinbase.com).

    Other coinbase.com hosts (Advanced Trade) use another message format: MessageError.
    """
    host = (urlsplit(url).hostname or "").lower()
    if not host.endswith("coinbase.com"):
        return False
    if host.endswith(("pro.coinbase.com", "exchange.coinbase.com")):
        return True
    raise MessageError(f"{host} is not Coinbase Exchange: only Coinbase Exchange (Pro) traffic is supported")


def rest_target(url: str) -> tuple[str, str | None, dict[str, str]] | None:
    """(body kind, product id or None, query) a Coinbase Exchange REST URL returns; None if not read."""
    parts = urlsplit(url)
    segs = [s for s in parts.path.split("/") if s]
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if segs == ["products"]:
        return "products", None, query
    if len(segs) == 3 and segs[0] == "products" and segs[2] in ("book", "candles", "trades", "ticker"):
        return segs[2], segs[1], query
    return None


# -- websocket feed ------------------------------------------------------------------------------
@dataclass
class FeedState:
    """One websocket connection's level2 snapshots that wait for their product's first update.

    A snapshot message has no time; it is stamped with the recording time, but the updates that
    follow it carry the exchange's time, which can be earlier than the recording time (network
    latency). Ordered by ts they would be applied before the snapshot and wiped by it, so a
    snapshot is stamped ``min(recording time, first following update time - 1 ns)``: the book
    state it shows is the state just before that update. Without a recording time (a standalone
    feed file) only the second applies; a snapshot with neither is an error.
    """

    pending: dict[str, list[dict[str, Any]]] = dc_field(default_factory=dict)

    def snapshot(self, product: str, snapshot_rows: list[dict[str, Any]]) -> None:
        if snapshot_rows:
            self.pending[product] = snapshot_rows

    def update(self, product: str, ts: int) -> None:
        for row in self.pending.pop(product, ()):
            row["ts"] = ts - 1 if row["ts"] is None else min(row["ts"], ts - 1)

    def finish(self) -> None:
        """End of the connection: every snapshot must have a time by now."""
        for product, snapshot_rows in self.pending.items():
            if snapshot_rows[0]["ts"] is None:
                raise MessageError(f"level2 snapshot of {product} has no time and no update follows it")
        self.pending.clear()


def parse_feed_message(msg: Any, ctx: Context, rows: Rows, state: FeedState) -> None:
    """One feed message (``match``, ``last_match``, ``snapshot``, ``l2update``, ``ticker``);
    other types (subscriptions, heartbeat, full-channel order messages…) are ignored."""
    msg = obj(msg, "message")
    kind = msg.get("type")
    if kind in ("match", "last_match"):
        _trade(msg, _key(field(msg, "product_id")), rows)
    elif kind == "snapshot":
        product = field(msg, "product_id")
        key = _key(product)
        ts = _time(msg["time"]) if msg.get("time") is not None else ctx.recv_ns
        added = [
            rows.add("book_delta", key, ts, seq=None, side=side, price=px, amount=qty, is_snapshot=True)
            for side, name in (("bid", "bids"), ("ask", "asks"))
            for px, qty in levels(field(msg, name), name)
        ]
        if msg.get("time") is None:
            state.snapshot(product, added)
    elif kind == "l2update":
        product = field(msg, "product_id")
        key = _key(product)
        ts = _time(msg["time"]) if msg.get("time") is not None else ctx.need_time("a Coinbase l2update")
        changes = field(msg, "changes")
        if not isinstance(changes, list):
            raise MessageError("changes is not a list")
        for ch in changes:
            if not isinstance(ch, list) or len(ch) < 3:
                raise MessageError(f"bad change {ch!r}: expected [side, price, size]")
            side = _BOOK_SIDES[side_of(ch[0], "change side")]
            rows.add("book_delta", key, ts, seq=None, side=side, price=price(ch[1]), amount=amount(ch[2]),
                     is_snapshot=False)
        state.update(product, ts)
    elif kind == "ticker":
        key = _key(field(msg, "product_id"))
        ts = _time(msg["time"]) if msg.get("time") is not None else ctx.need_time("a Coinbase ticker")
        rows.add("quote", key, ts,
                 bid_price=price(field(msg, "best_bid"), "best_bid"),
                 bid_amount=opt_number(msg.get("best_bid_size"), "best_bid_size", amount),
                 ask_price=price(field(msg, "best_ask"), "best_ask"),
                 ask_amount=opt_number(msg.get("best_ask_size"), "best_ask_size", amount))


def _trade(d: dict[str, Any], key: Key, rows: Rows) -> None:
    """A match or REST trade: ``side`` is the maker's, the aggressor is the opposite side."""
    ts, trade_id, px, size, taker = _trade_values(d)
    rows.add("trade", key, ts, price=px, amount=size, taker_side=taker, trade_id=str(trade_id))


def _trade_values(d: dict[str, Any]) -> tuple[int, int, float, float, str]:
    """(ts, trade id, price, size, taker side) of a trade object."""
    return (
        _time(field(d, "time")),
        integer(field(d, "trade_id"), "trade_id"),
        price(field(d, "price")),
        amount(field(d, "size")),
        opposite(side_of(field(d, "side"))),
    )


# -- REST ---------------------------------------------------------------------------------------
def parse_rest(body: Any, kind: str, ctx: Context, rows: Rows, level: int | None = None) -> None:
    """One REST body of ``kind`` (``products``, ``book``, ``candles``, ``trades``, ``ticker``).

    ``ctx`` gives the product (as ``symbol``), the candle ``interval`` and the receive time;
    ``level`` is the book level requested, when the URL says it.
    """
    if kind == "products":
        _products(body, ctx, rows)
    elif kind == "book":
        _book(obj(body, "book body"), ctx, rows, level)
    elif kind == "candles":
        if not isinstance(body, list):
            raise MessageError("a candles body must be a JSON array")
        candles: list[_Candle] = []
        each(body, lambda n, item: candles.append(_candle(item, n)))
        add_candles(candles, _ctx_key(ctx, "a Coinbase candles body"), ctx.interval, rows)
    elif kind == "trades":
        if not isinstance(body, list):
            raise MessageError("a trades body must be a JSON array")
        key = _ctx_key(ctx, "a Coinbase trades body")
        found: list[tuple[int, int, float, float, str]] = []
        each(body, lambda n, item: found.append(_trade_values(obj(item, "trade"))))
        add_trades(found, key, rows)
    elif kind == "ticker":
        d = obj(body, "ticker body")
        rows.add("quote", _ctx_key(ctx, "a Coinbase ticker body"), _time(field(d, "time")),
                 bid_price=price(field(d, "bid"), "bid"), bid_amount=None,
                 ask_price=price(field(d, "ask"), "ask"), ask_amount=None)


def _ctx_key(ctx: Context, what: str) -> Key:
    return Key(EXCHANGE, MARKET, ctx.need_symbol(what))


def _products(body: Any, ctx: Context, rows: Rows) -> None:
    if not isinstance(body, list):
        raise MessageError("a products body must be a JSON array")
    ts = ctx.need_time("a Coinbase products body")

    def one(_n: int, p: Any) -> None:
        p = obj(p, "product")
        base, quote = str(field(p, "base_currency")).upper(), str(field(p, "quote_currency")).upper()
        rows.add("instrument", Key(EXCHANGE, MARKET, f"{base}/{quote}"), ts,
                 native_symbol=str(field(p, "id")), base=base, quote=quote,
                 tick_size=opt_number(p.get("quote_increment"), "quote_increment", amount),
                 step_size=opt_number(p.get("base_increment"), "base_increment", amount),
                 status=str(p.get("status")) if p.get("status") is not None else None)

    each(body, one)


def _book(d: dict[str, Any], ctx: Context, rows: Rows, level: int | None) -> None:
    key = _ctx_key(ctx, "a Coinbase book body")
    ts = _time(d["time"]) if d.get("time") is not None else ctx.need_time("a Coinbase book body")
    seq = integer(field(d, "sequence"), "sequence")
    sides = {name: field(d, name) for name in ("bids", "asks")}
    parsed = {name: levels(v, name) for name, v in sides.items()}  # also checks both are lists
    if level is None:  # not stated: level 3 levels carry an order id, level 1 has one level a side
        first = (sides["bids"] or sides["asks"] or [[]])[0]
        if len(first) >= 3 and isinstance(first[2], str):
            level = 3
        elif len(sides["bids"]) <= 1 and len(sides["asks"]) <= 1:
            level = 1
        else:
            level = 2
    if level == 1:
        bid = parsed["bids"][0] if parsed["bids"] else (None, None)
        ask = parsed["asks"][0] if parsed["asks"] else (None, None)
        rows.add("quote", key, ts, bid_price=bid[0], bid_amount=bid[1], ask_price=ask[0], ask_amount=ask[1])
        return
    for name, lv in parsed.items():
        by_price: dict[float, float] = {}
        for px, qty in lv:  # level 3: one entry per order; sum them per price
            by_price[px] = by_price.get(px, 0.0) + qty
        for px, qty in by_price.items():
            rows.add("book_delta", key, ts, seq=seq, side=_BOOK_SIDES[name], price=px, amount=qty, is_snapshot=True)


# -- candles and trades (JSON and CSV share these) ---------------------------------------------
@dataclass
class _Candle:
    ref: int  # item number (JSON) or line (CSV), for errors
    ts: int
    low: float
    high: float
    open: float
    close: float
    volume: float


def _candle(item: Any, ref: int) -> _Candle:
    """``[time, low, high, open, close, volume]`` (time in epoch seconds or ISO text)."""
    if not isinstance(item, (list, tuple)) or len(item) != 6:
        raise MessageError(f"a candle must be [time, low, high, open, close, volume], got {str(item)[:80]}", ref)
    try:
        t, lo, hi, op, cl, vol = item
        c = _Candle(ref, _time(t), price(lo, "low"), price(hi, "high"), price(op, "open"), price(cl, "close"),
                    amount(vol, "volume"))
    except MessageError as exc:
        raise MessageError(exc.reason, ref) from None
    if not (c.low <= min(c.open, c.close) and max(c.open, c.close) <= c.high):
        raise MessageError(f"inconsistent candle: low {lo} high {hi} open {op} close {cl}", ref)
    return c


def add_candles(candles: list[_Candle], key: Key, interval: str | None, rows: Rows) -> None:
    """Candles as bars, oldest first. The interval is ``interval`` (URL granularity or
    ``--interval``), else the largest Coinbase granularity that divides every candle time
    (missing candles only widen gaps). Every candle must sit on that grid."""
    if not candles:
        return
    candles = sorted(candles, key=lambda c: c.ts)
    for a, b in zip(candles, candles[1:]):
        if a.ts == b.ts:
            raise MessageError("two candles for the same time", b.ref)
    if interval is not None:
        try:
            step = interval_ns(interval)
        except TapewatchError as exc:
            raise MessageError(str(exc)) from None
    else:
        if len(candles) < 2:
            raise MessageError("one candle does not tell its interval: pass --interval")
        gaps = 0
        for a, b in zip(candles, candles[1:]):
            gaps = math.gcd(gaps, b.ts - a.ts)
        seconds = next((g for g in GRANULARITIES if gaps % (g * 1_000_000_000) == 0), None)
        if seconds is None:
            raise MessageError("candle times are not on any Coinbase granularity grid: pass --interval")
        step = seconds * 1_000_000_000
    name = interval_text(step // 1_000_000_000)
    for c in candles:
        if c.ts % step:
            raise MessageError(f"candle time is not on the {name} grid", c.ref)
        rows.add("bar", key, c.ts, interval=name, open=c.open, high=c.high, low=c.low, close=c.close,
                 volume=c.volume, taker_buy_volume=None, quote_volume=None, trades=None)


def add_trades(found: list[tuple[int, int, float, float, str]], key: Key, rows: Rows) -> None:
    """Trades (ts, id, price, size, taker side) added oldest first (the venue sends newest first)."""
    for ts, trade_id, px, size, taker in sorted(found, key=lambda t: (t[0], t[1])):
        rows.add("trade", key, ts, price=px, amount=size, taker_side=taker, trade_id=str(trade_id))


# -- standalone files ------------------------------------------------------------------------------
def body_kind(body: Any) -> str | None:
    """The kind of a Coinbase Exchange body or feed message told from its shape."""
    if isinstance(body, dict):
        if body.get("type") in _FEED_TYPES and "product_id" in body:
            return "feed"
        if body.get("type") == "subscriptions" and "channels" in body:
            return "feed"
        if {"bids", "asks", "sequence"} <= body.keys():
            return "book"
        if {"trade_id", "price", "size", "time", "bid", "ask"} <= body.keys():
            return "ticker"
        return None
    if isinstance(body, list) and body:
        first = body[0]
        if isinstance(first, list) and len(first) == 6:
            return "candles"
        if isinstance(first, dict):
            if {"trade_id", "price", "size", "side", "time"} <= first.keys():
                return "trades"
            if {"id", "base_currency", "quote_currency"} <= first.keys():
                return "products"
    return None


def _sniff_object_file(raw: RawFile, doc: Any) -> bool:
    """Whether a file starting with ``{`` is Coinbase's (``doc``: its first line decoded, or None)."""
    if doc is not None:
        return body_kind(doc) is not None
    head = raw.head
    return '"sequence"' in head and '"bids"' in head and '"lastUpdateId"' not in head


class CoinbaseJSON:
    """A saved Coinbase Exchange REST body, or feed messages one per line."""

    name = "coinbase-json"

    def sniff(self, raw: RawFile) -> bool:
        return sniff_json(raw, body_kind, _sniff_object_file)

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        rows, state = Rows(), FeedState()
        ctx = Context.of_file(raw, hints)
        line: int | None = None
        try:
            for line, doc in json_documents(raw):
                kind = body_kind(doc)
                if kind == "feed" or (kind is None and isinstance(doc, dict) and isinstance(doc.get("type"), str)):
                    parse_feed_message(doc, ctx, rows, state)  # other message types are skipped there
                elif kind is not None:
                    parse_rest(doc, kind, ctx, rows)
                elif not (isinstance(doc, list) and not doc):
                    raise MessageError("not a Coinbase Exchange body or feed message tapewatch reads")
            line = None
            state.finish()
        except MessageError as exc:
            raise located(raw.path, exc, line) from None
        return rows.batches()


class _CoinbaseCSV:
    """Shared by the two CSV layouts: exact header, one record per line, ``--symbol`` needed."""

    name = ""
    header = ""

    def sniff(self, raw: RawFile) -> bool:
        return bool(raw.first_lines) and raw.first_lines[0].strip().lstrip("\ufeff").lower() == self.header

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        columns = self.header.split(",")
        df = read_csv_strings(raw, columns, has_header=True)
        rows = Rows()
        ctx = Context.of_file(raw, hints)
        try:
            key = _ctx_key(ctx, f"a Coinbase {self.name.split('-')[1]} CSV")
            self.add(df.iter_rows(named=True), key, ctx, rows)
        except MessageError as exc:
            raise located(raw.path, exc, None, unit="line") from None
        return rows.batches()

    def add(self, records: Any, key: Key, ctx: Context, rows: Rows) -> None:
        raise NotImplementedError


def _per_line(parse: Callable[[dict[str, Any]], Any], rec: dict[str, Any]) -> Any:
    try:
        return parse(rec)
    except MessageError as exc:
        raise MessageError(exc.reason, rec["__row"]) from None


class CoinbaseCandlesCSV(_CoinbaseCSV):
    """Coinbase candles as CSV: ``time,low,high,open,close,volume`` (time in s or ISO)."""

    name = "coinbase-candles-csv"
    header = CANDLES_HEADER

    def add(self, records: Any, key: Key, ctx: Context, rows: Rows) -> None:
        cols = self.header.split(",")
        candles = [_candle([r[c] for c in cols], r["__row"]) for r in records]
        add_candles(candles, key, ctx.interval, rows)


class CoinbaseTradesCSV(_CoinbaseCSV):
    """Coinbase trades as CSV: ``time,trade_id,price,size,side`` (side = maker side)."""

    name = "coinbase-trades-csv"
    header = TRADES_HEADER

    def add(self, records: Any, key: Key, ctx: Context, rows: Rows) -> None:
        add_trades([_per_line(_trade_values, r) for r in records], key, rows)


FORMATS: list[Format] = [CoinbaseJSON(), CoinbaseCandlesCSV(), CoinbaseTradesCSV()]
