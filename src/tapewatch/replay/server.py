"""The replay exchange's aiohttp server: captured feeds over the venues' own protocols.

Each feed is served under its own path prefix on one host and port (base URLs are what an
``[endpoints]`` entry points at; the venue's paths follow them as on the real venue):

* Binance spot ``/binance-spot``, USD-M ``/binance-usdm``: websocket
  ``{base}/stream?streams=btcusdt@depth@100ms/btcusdt@trade`` sends the captured combined-stream
  messages ``{"stream": ..., "data": ...}`` of the streams asked for, exactly as captured
  (``{base}/ws`` serves raw streams after a SUBSCRIBE, see :mod:`~tapewatch.replay.raw_streams`); REST
  ``GET {base}/api/v3/depth?symbol=BTCUSDT&limit=N`` (spot) and ``{base}/fapi/v1/depth`` (USD-M)
  answer with the book as it stands at the replay point, ``limit`` levels a side (the captured
  snapshot and the diffs pumped since: see :mod:`tapewatch.replay.book`); USD-M
  ``{base}/fapi/v1/openInterest`` and ``{base}/fapi/v1/fundingRate`` answer with recorded bodies
  (:mod:`tapewatch.replay.rest_bodies`);
* Bybit ``/bybit`` and OKX ``/okx`` (perpetuals, REST only): ``{base}/v5/market/open-interest``
  and ``{base}/api/v5/public/open-interest`` answer with recorded bodies
  (:mod:`tapewatch.replay.rest_bodies`);
* Coinbase Exchange ``/coinbase``: websocket ``{base}`` takes a ``{"type": "subscribe",
  "product_ids": [...], "channels": [...]}`` message and sends the recorded messages of those
  products and channels (messages of no product, such as ``subscriptions`` replies, to all);
* REST trades (Binance historicalTrades, Coinbase ``/products/{id}/trades``) built from the
  captured trade messages: see :mod:`tapewatch.replay.trades`.

Errors are answered as the venues do: Binance ``{"code": ..., "msg": ...}`` with 400 for a bad
symbol or limit; faults (see :mod:`tapewatch.replay.faults`) add 429 / 418 with
``Retry-After``, slow snapshots, dropped messages, sequence gaps and stale streams. With
``ping_interval`` the server pings every websocket as the venues do and closes one whose
client does not answer with a pong in time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from tapewatch.replay.book import ReplayBooks
from tapewatch.replay.faults import REST_ERRORS, Faults
from tapewatch.replay.pump import Client, FeedPump
from tapewatch.replay.raw_streams import raw_stream_handler
from tapewatch.replay.rest_bodies import BODY_ANSWERS, rest_body_handler
from tapewatch.replay.timeline import BODY_PATHS, Feed, Message, Timeline
from tapewatch.replay.trades import TRADES_PATHS, binance_trades, coinbase_trades, trade_book

PREFIXES = {Feed("binance", "spot"): "/binance-spot", Feed("binance", "perp"): "/binance-usdm", Feed("coinbase", "spot"): "/coinbase",
            Feed("bybit", "perp"): "/bybit", Feed("okx", "perp"): "/okx"}
DEPTH_PATHS = {"spot": "/api/v3/depth", "perp": "/fapi/v1/depth"}
MAX_DEPTH_LIMIT = {"spot": 5000, "perp": 1000}


class ReplayExchange:
    """Serves a :class:`Timeline` on ``host:port``; ``start`` returns the port bound (0 = any free)."""

    def __init__(self, timeline: Timeline, faults: Faults | None = None, speed: float = 1.0,
                 ping_interval: float | None = None) -> None:
        if speed < 0:
            raise ValueError(f"speed must be 0 or more, not {speed}")
        if ping_interval is not None and ping_interval <= 0:
            raise ValueError(f"ping interval must be more than 0 seconds, not {ping_interval}")
        self.timeline = timeline
        self.faults = faults or Faults()
        self.speed = speed
        self.ping_interval = ping_interval  # seconds between server pings (None: none); no pong in time closes
        self.pumps: dict[Feed, FeedPump] = {}
        self.books = ReplayBooks(timeline)
        self.trades = trade_book(timeline)
        self.rest_requests = 0
        self.asked: list[str] = []  # what clients subscribed to: Binance stream paths, Coinbase subscribe messages
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None

    def base_url(self, feed: Feed, scheme: str = "http") -> str:
        """Base URL of a feed (``ws`` scheme for its websocket), e.g. ``http://127.0.0.1:8765/binance-spot``."""
        return f"{scheme}://{self.host}:{self.port}{PREFIXES[feed]}"

    def app(self) -> web.Application:
        """The aiohttp application: one websocket route (and a depth route for Binance) per feed;
        the recorded-body route of a Bybit / OKX feed."""
        app = web.Application()
        for feed in self.timeline.feeds:
            prefix = PREFIXES[feed]
            if feed.exchange == "binance":
                app.router.add_get(prefix + "/stream", self._binance_ws(feed))
                app.router.add_get(prefix + "/ws{tail:(/.*)?}", raw_stream_handler(lambda f=feed: self.pumps[f], self.ping_interval))
                app.router.add_get(prefix + DEPTH_PATHS[feed.market], self._binance_depth(feed))
                app.router.add_get(prefix + TRADES_PATHS[feed.market], binance_trades(self, feed))
            elif feed.exchange == "coinbase":
                app.router.add_get(prefix, self._coinbase_ws(feed))
                app.router.add_get(prefix + "/products/{product}/trades", coinbase_trades(self, feed))
            for path in BODY_PATHS.get(feed, ()):
                param, error = BODY_ANSWERS[feed.exchange]
                bodies = self.timeline.bodies.get((feed, path), {})
                app.router.add_get(prefix + path, rest_body_handler(bodies, self.refusal, param, error))
        app.on_shutdown.append(self._shutdown)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start serving; the pumps live in the running event loop."""
        self.pumps = {f: FeedPump(self.timeline.messages.get(f, []), self.faults, self.speed) for f in self.timeline.feeds}
        self.books = ReplayBooks(self.timeline)  # the replay starts again from the first message
        self._runner = web.AppRunner(self.app(), handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host = host
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        """Close every websocket (1001 going away), stop the pumps and free the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def finished(self) -> None:
        """Wait until every feed has replayed its last message."""
        await asyncio.gather(*(p.finished.wait() for p in self.pumps.values()))

    async def _shutdown(self, _app: web.Application) -> None:
        for pump in self.pumps.values():
            await pump.stop()
            for client in list(pump.clients):
                await client.ws.close(code=1001, message=b"server shutdown")

    async def _serve(self, request: web.Request, feed: Feed, wants: Callable[[Message], bool] | None) -> web.WebSocketResponse:
        """Run one websocket: join the feed now (``wants`` given) or at the client's subscribe."""
        ws = web.WebSocketResponse(autoping=True, heartbeat=self.ping_interval)
        await ws.prepare(request)
        pump = self.pumps[feed]
        client: Client | None = None
        if wants is not None:
            client = Client(ws, wants)
            pump.join(client)
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT or wants is not None:
                    continue
                self.asked.append(frame.data)
                reply = _coinbase_subscribe(frame.data)
                if isinstance(reply, str):
                    await ws.send_str(json.dumps({"type": "error", "message": "Failed to subscribe", "reason": reply}))
                elif client is None:
                    client = Client(ws, reply)
                    pump.join(client)
        finally:
            if client is not None:
                pump.leave(client)
        return ws

    def refusal(self) -> web.Response | None:
        """Count a REST request; the 429 / 418 answer when the ``rest_error`` fault refuses it."""
        self.rest_requests += 1
        f = self.faults
        if f.rest_error is not None and self.rest_requests <= f.rest_errors:
            return _binance_error(f.rest_error, -1003, REST_ERRORS[f.rest_error], {"Retry-After": str(f.retry_after)})
        return None

    def _binance_ws(self, feed: Feed) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.asked.append(request.path_qs)
            streams = set(filter(None, request.query.get("streams", "").split("/")))
            if not streams:
                return _binance_error(400, -1100, "Missing or empty parameter 'streams'.")
            return await self._serve(request, feed, lambda m: m.channel in streams)

        return handler

    def _coinbase_ws(self, feed: Feed) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, feed, None)

        return handler

    def _binance_depth(self, feed: Feed) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            refused = self.refusal()
            if refused is not None:
                return refused
            f = self.faults
            symbol = request.query.get("symbol", "").upper()
            if not symbol:
                return _binance_error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            limit_text = request.query.get("limit", "100")
            if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_DEPTH_LIMIT[feed.market]:
                return _binance_error(400, -1100, f"Illegal characters found in parameter 'limit'; legal range is 1 to {MAX_DEPTH_LIMIT[feed.market]}.")
            body = self.books.depth(feed, symbol, self.pumps[feed].position, int(limit_text))
            if body is None:
                return _binance_error(400, -1121, "Invalid symbol.")
            if f.snapshot_delay:
                await asyncio.sleep(f.snapshot_delay)
            return web.Response(text=body, content_type="application/json")

        return handler


def _binance_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


def _coinbase_subscribe(text: str) -> Callable[[Message], bool] | str:
    """The filter a Coinbase subscribe message asks for, or the reason it is refused."""
    try:
        msg = json.loads(text)
    except ValueError:
        return "malformed JSON"
    if not isinstance(msg, dict) or msg.get("type") != "subscribe":
        return "expected a subscribe message"
    products = set(msg.get("product_ids") or [])
    channels: set[str] = set()
    for ch in msg.get("channels") or []:
        if isinstance(ch, dict):  # {"name": "ticker", "product_ids": [...]}
            channels.add(str(ch.get("name")))
            products |= set(ch.get("product_ids") or [])
        else:
            channels.add(str(ch))
    if not products or not channels:
        return "subscribe needs product_ids and channels"
    return lambda m: not m.product or (m.product in products and m.channel in channels)
