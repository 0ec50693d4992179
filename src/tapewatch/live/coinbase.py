"""Coinbase Exchange live feed: subscribe to products and channels, parse as the importer does.

Messages go through :func:`coinbase.parse_feed_message`, the parser of ``tapewatch import``, so
a live row equals an imported row (``local_ts`` = the local receive time). The ``level2``
channel carries no sequence numbers: the book is the snapshot the venue sends on each
subscription plus the updates after it, so a reconnect needs no REST resync (the new
subscription brings a new snapshot). A snapshot is stamped with its receive time, or just
before its product's first update when that is earlier (:class:`coinbase.FeedState`).

Trades missed on the stream (a gap in a product's ``match`` trade_ids, see
:mod:`tapewatch.live.trades`) are fetched from ``GET /products/{id}/trades?after=<cursor>``
(no key needed): newest first, ``after`` returning trades older than the cursor and the
``CB-AFTER`` header giving the next one, paged back from the first id after the gap to its
first missing id. The REST ``side`` is the maker's side, as in ``match`` messages (Coinbase's
documentation of both), so :func:`coinbase.parse_rest` stores the same taker side.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp

from tapewatch.live.connection import Backoff, FeedLog
from tapewatch.live.endpoints import Endpoint
from tapewatch.live.trades import Gap, Recovery, TradeLedger
from tapewatch.sources import coinbase
from tapewatch.sources.messages import Context, MessageError, Rows

TRADES_LIMIT = 1000  # the most trades a Coinbase trades page holds


class CoinbaseFeed:
    """One Coinbase Exchange connection: ``products`` (``BTC-USD``…) on ``channels`` (``matches``, ``level2``…)."""

    def __init__(self, products: list[str], channels: list[str], endpoint: Endpoint, rows: Rows,
                 session: aiohttp.ClientSession | None = None, ledger: TradeLedger | None = None,
                 rest_backoff: Backoff | None = None) -> None:
        self.products = products
        self.channels = channels
        self.endpoint = endpoint
        self.rows = rows
        self.state = coinbase.FeedState()
        self.log = FeedLog()
        self.recovery = Recovery(ledger or TradeLedger(), rows, self.log, self._trade_pages, session, rest_backoff or Backoff())

    def url(self) -> str:
        return self.endpoint.websocket

    async def opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Subscribe: the venue answers with a ``subscriptions`` message, then the data."""
        await ws.send_str(json.dumps({"type": "subscribe", "product_ids": self.products, "channels": self.channels}))

    def closed(self) -> None:
        """A new connection brings new level2 snapshots: forget the pending ones."""
        self.state = coinbase.FeedState()

    def handle(self, text: str, recv_ns: int) -> None:
        """One message, parsed whole before any row is kept; a malformed one is counted and skipped."""
        parsed = Rows()
        parsed.local_ts = recv_ns
        try:
            coinbase.parse_feed_message(json.loads(text), Context(market=coinbase.MARKET, recv_ns=recv_ns), parsed, self.state)
        except ValueError as exc:
            self.log.skip("coinbase", text, f"bad JSON ({exc})")
            return
        except MessageError as exc:
            self.log.skip("coinbase", text, exc.reason)
            return
        self.rows.extend(parsed)
        self.recovery.check(parsed)

    async def _trade_pages(self, recovery: Recovery, gap: Gap) -> AsyncIterator[Rows]:
        """Trades pages older than the cursor (first: the id after the gap) until past the gap's
        first id or the venue serves nothing older; RecoveryError when a page cannot be had."""
        product = gap.key.symbol.replace("/", "-")
        cursor = gap.hi + 1
        while cursor > gap.lo:
            page, reply = await recovery.page(f"{self.endpoint.rest}/products/{product}/trades",
                                              {"after": str(cursor), "limit": str(TRADES_LIMIT)}, coinbase.parse_rest,
                                              Context(market=coinbase.MARKET, symbol=gap.key.symbol))
            oldest = min((int(r["trade_id"]) for r in page.of("trade")), default=cursor)
            if oldest >= cursor:
                return
            yield page
            header = reply.headers.get("CB-AFTER", "")
            cursor = int(header) if header.isdigit() and int(header) < cursor else oldest
