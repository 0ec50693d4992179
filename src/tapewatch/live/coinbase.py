"""Coinbase Exchange live feed: subscribe to products and channels, parse as the importer does.

Messages go through :func:`coinbase.parse_feed_message`, the parser of ``tapewatch import``, so
a live row equals an imported row (``local_ts`` = the local receive time). The ``level2``
channel carries no sequence numbers: the book is the snapshot the venue sends on each
subscription plus the updates after it, so a reconnect needs no REST resync (the new
subscription brings a new snapshot). A snapshot is stamped with its receive time, or just
before its product's first update when that is earlier (:class:`coinbase.FeedState`).
"""

from __future__ import annotations

import json

import aiohttp

from tapewatch.live.connection import FeedLog
from tapewatch.live.endpoints import Endpoint
from tapewatch.sources import coinbase
from tapewatch.sources.messages import Context, MessageError, Rows


class CoinbaseFeed:
    """One Coinbase Exchange connection: ``products`` (``BTC-USD``…) on ``channels`` (``matches``, ``level2``…)."""

    def __init__(self, products: list[str], channels: list[str], endpoint: Endpoint, rows: Rows) -> None:
        self.products = products
        self.channels = channels
        self.endpoint = endpoint
        self.rows = rows
        self.state = coinbase.FeedState()
        self.log = FeedLog()

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
