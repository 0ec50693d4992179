"""Binance spot / USD-M live feed: combined streams, trades, and the depth sync.

Messages go through the same parser as ``tapewatch import`` (:func:`binance_api.parse_ws_message`,
:func:`binance_api.parse_rest`), so a live row equals an imported row (``local_ts`` is the local
receive time of the live message).

Depth, per Binance's "How to manage a local order book correctly" (rules in
:mod:`tapewatch.book.rules`, decided by the same :func:`~tapewatch.book.rules.decide`): diffs are
buffered until a REST snapshot (the venue's deepest limit) arrives; buffered diffs with
``u <= lastUpdateId`` (USD-M: ``u < lastUpdateId``) are dropped; the first one applied must
bridge the snapshot; after that a break in U/u (USD-M: ``pu``) is a gap: the book is discarded
and a new snapshot fetched. REST 429 / 418 answers are retried after their ``Retry-After``; a
snapshot that cannot bridge the buffered diffs (older than them) is fetched again after a backoff.

Stored as ``book_delta``: every well-formed diff as received (as an import of a capture of the
same stream stores it) and every snapshot fetched, so the book engine that derives book_depth
(:mod:`tapewatch.book.derive`) applies the venue rule to the same rows an import gives it, sees
the same gaps and names the same spans without depth. A snapshot is stored when the feed
decides on the first diff past it (the bridging one, or one showing a gap), so that it follows
the diffs it covers whichever of REST and websocket answered first. A USD-M snapshot
has its own time ``E``; a spot snapshot has none: it is stamped with the event time ``E`` of the
newest diff it covers (``u <= lastUpdateId``), or, when the feed received none of them, with the
receive time shifted by the lag of the last depth diff (its event time minus its receive time),
but not past the first diff past it.

Trades missed on the stream (a gap in the ``@trade`` ids, see :mod:`tapewatch.live.trades`) are
fetched from ``historicalTrades`` by ``fromId``, a page of up to 1,000 (spot) / 500 (USD-M)
trades at a time, until the gap is filled or the venue serves no more. Spot's endpoint needs no
key; USD-M's needs one in the ``X-MBX-APIKEY`` header (and serves recent months only): the key is
read from the environment variable ``TAPEWATCH_BINANCE_API_KEY`` and only ever sent in that header.
Without it USD-M gaps are recorded as holes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import aiohttp

from tapewatch.book import rules
from tapewatch.live.connection import Backoff, FeedLog
from tapewatch.live.endpoints import Endpoint
from tapewatch.live.rest import get_json
from tapewatch.live.trades import Gap, Recovery, RecoveryError, TradeLedger
from tapewatch.sources import binance_api
from tapewatch.sources.messages import Context, MessageError, Rows, field, integer, symbol_of
from tapewatch.symbols import native_symbol

DEPTH_PATH = {"spot": "/api/v3/depth", "perp": "/fapi/v1/depth"}
DEPTH_LIMIT = {"spot": 5000, "perp": 1000}  # the deepest snapshot each market serves
TRADES_PATH = {"spot": "/api/v3/historicalTrades", "perp": "/fapi/v1/historicalTrades"}
TRADES_LIMIT = {"spot": 1000, "perp": 500}  # the most trades a historicalTrades page holds
API_KEY_ENV = "TAPEWATCH_BINANCE_API_KEY"  # USD-M historicalTrades needs a key (MARKET_DATA)


@dataclass(frozen=True)
class _Diff:
    """A depth diff: first and last update id (U, u), USD-M's pu (NULL on spot), event time (ns)."""

    first: int
    last: int
    prev: int
    time: int


@dataclass
class _Book:
    """The sync state of one symbol's depth stream."""

    state: int = rules.S_NONE
    last: int = rules.NULL
    buffer: list[_Diff] = dc_field(default_factory=list)
    fetch: asyncio.Task[None] | None = None
    unstamped: tuple[dict[str, Any], int, int] | None = None  # a snapshot not stored yet: body, receive ns, time estimate
    covered: int | None = None  # event time (ns) of the newest diff the unstamped snapshot covers


class BinanceFeed:
    """One Binance market's combined streams (``streams`` such as ``btcusdt@depth@100ms``)."""

    def __init__(self, market: str, streams: list[str], endpoint: Endpoint, session: aiohttp.ClientSession,
                 rows: Rows, rest_backoff: Backoff | None = None, ledger: TradeLedger | None = None,
                 api_key: str | None = None) -> None:
        self.market = market
        self.streams = streams
        self.endpoint = endpoint
        self.session = session
        self.rows = rows
        self.rest_backoff = rest_backoff or Backoff()
        self.code = rules.rule(rules.rule_for(binance_api.EXCHANGE, market)).code
        self.books: dict[str, _Book] = {}
        self.log = FeedLog()
        self._api_key = api_key  # sent in the X-MBX-APIKEY header only, never printed
        self.recovery = Recovery(ledger or TradeLedger(), rows, self.log, self._trade_pages, session, self.rest_backoff)
        self.lag = 0  # event time − receive time of the last depth diff, ns (the venue clock's offset)
        # compile the rule now: a first compile inside the stream would stall it past stale_after
        rules.decide(self.code, rules.S_NONE, rules.NULL, False, False, 0, 0, rules.NULL)

    def url(self) -> str:
        return f"{self.endpoint.websocket}/stream?streams={'/'.join(self.streams)}"

    async def opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Binance streams are named in the URL: nothing to send."""

    def closed(self) -> None:
        """The stream broke: every book must be synced again from a new snapshot."""
        for native, book in self.books.items():
            if book.fetch is not None:
                book.fetch.cancel()
            self._stamp(native, book, None)
        self.books.clear()

    def handle(self, text: str, recv_ns: int) -> None:
        """One message, parsed whole before any row is kept; a malformed one is counted and
        skipped (its reason kept), never fatal."""
        parsed = Rows()
        parsed.local_ts = recv_ns
        try:
            msg = json.loads(text)
            binance_api.parse_ws_message(msg, Context(market=self.market, recv_ns=recv_ns), parsed)
            data = msg.get("data") if isinstance(msg, dict) else None
            if isinstance(data, dict) and data.get("e") == "depthUpdate":
                event = integer(field(data, "E"), "E") * 1_000_000
                self.lag = event - recv_ns
                diff = _Diff(integer(field(data, "U"), "U"), integer(field(data, "u"), "u"),
                             rules.NULL if data.get("pu") is None else integer(data["pu"], "pu"), event)
                self._diff(str(data["s"]), diff)  # first: a snapshot it releases goes before it
            self.rows.extend(parsed)
            self.recovery.check(parsed)
        except ValueError as exc:
            self.log.skip(self.market, text, f"bad JSON ({exc})")
        except MessageError as exc:
            self.log.skip(self.market, text, exc.reason)

    def _diff(self, native: str, diff: _Diff) -> None:
        book = self.books.setdefault(native, _Book())
        if book.state == rules.S_NONE:
            book.buffer.append(diff)
            self._resync(native, book, 0)
        else:
            self._step(native, book, diff)

    def _resync(self, native: str, book: _Book, attempt: int) -> None:
        """Start the snapshot task unless one is running (it loops until the book syncs)."""
        if book.fetch is None or book.fetch.done():
            book.fetch = asyncio.get_running_loop().create_task(self._sync(native, book, attempt))

    def _step(self, native: str, book: _Book, diff: _Diff) -> bool:
        """Decide on one diff with the venue rule; False when it broke the sync (a gap)."""
        action = rules.decide(self.code, book.state, book.last, False, False, diff.last, diff.first, diff.prev)
        if action == rules.STALE and book.unstamped is not None:
            book.covered = diff.time
        elif action != rules.STALE:
            self._stamp(native, book, diff.time)
        if action == rules.APPLY:
            if book.state != rules.S_LIVE:
                self.log.synced += 1
            book.state, book.last = rules.S_LIVE, diff.last
        elif action == rules.GAP:
            self.log.gaps += 1
            book.state, book.last, book.buffer = rules.S_NONE, rules.NULL, [diff]
            self._resync(native, book, 1)
            return False
        return True

    async def _sync(self, native: str, book: _Book, attempt: int) -> None:
        """Fetch snapshots (after a backoff from the second on) until one bridges the buffered diffs."""
        while book.state == rules.S_NONE:
            if attempt:
                await asyncio.sleep(self.rest_backoff.delay(attempt - 1))
            attempt += 1
            fetched = await self._fetch(native)
            if fetched is None:
                continue
            body, recv_ns = fetched
            try:
                self._snapshot_rows(native, body, recv_ns, recv_ns + self.lag)  # checked now, stored later
                last = integer(field(body, "lastUpdateId"), "lastUpdateId")
            except MessageError as exc:
                self.log.skip(f"{self.market} depth snapshot", json.dumps(body), exc.reason)
                continue
            self.log.snapshots += 1
            book.unstamped, book.covered = (body, recv_ns, recv_ns + self.lag), None  # see the module docstring
            book.state, book.last = rules.S_AWAIT, last
            pending, book.buffer = book.buffer, []
            for i, diff in enumerate(pending):
                if not self._step(native, book, diff):
                    book.buffer = pending[i:]
                    break

    def _snapshot_rows(self, native: str, body: dict[str, Any], recv_ns: int, stamp: int) -> Rows:
        """A snapshot's rows (MessageError when malformed); a spot snapshot is stamped ``stamp`` (ns)."""
        rows = Rows()
        rows.local_ts = recv_ns
        binance_api.parse_rest(body, "depth", Context(market=self.market, symbol=symbol_of(native), recv_ns=stamp), rows)
        return rows

    def _stamp(self, native: str, book: _Book, past: int | None) -> None:
        """Store the snapshot not stored yet, if any (a spot one at the event time of the newest diff
        it covers; none received: the receive-time estimate, but not after ``past``, the event time
        of the first diff past it, ns)."""
        if book.unstamped is not None:
            body, recv_ns, estimate = book.unstamped
            book.unstamped = None
            stamp = book.covered if book.covered is not None else min(estimate, past if past is not None else estimate)
            self.rows.extend(self._snapshot_rows(native, body, recv_ns, stamp))

    async def _fetch(self, native: str) -> tuple[dict[str, Any], int] | None:
        """One snapshot request: (body, receive ns), or None on an error (429 / 418: after Retry-After)."""
        params = {"symbol": native, "limit": str(DEPTH_LIMIT[self.market])}
        reply = await get_json(self.session, f"{self.endpoint.rest}{DEPTH_PATH[self.market]}", params, self.log)
        return (reply.body, reply.recv_ns) if reply.ok else None

    async def _trade_pages(self, recovery: Recovery, gap: Gap) -> AsyncIterator[Rows]:
        """historicalTrades pages from ``fromId`` = the gap's first id on, until past its last id
        or the venue serves nothing newer; RecoveryError when a page cannot be had."""
        headers = {}
        if self.market == "perp":
            if not self._api_key:
                raise RecoveryError(f"USD-M historicalTrades needs an API key: set {API_KEY_ENV}")
            headers["X-MBX-APIKEY"] = self._api_key
        start = gap.lo
        while start <= gap.hi:
            params = {"symbol": native_symbol(gap.key.symbol), "fromId": str(start), "limit": str(TRADES_LIMIT[self.market])}
            page, _ = await recovery.page(f"{self.endpoint.rest}{TRADES_PATH[self.market]}", params, binance_api.parse_rest,
                                          Context(market=self.market, symbol=gap.key.symbol), headers)
            newest = max((int(r["trade_id"]) for r in page.of("trade")), default=start - 1)
            if newest < start:
                return
            yield page
            start = newest + 1
