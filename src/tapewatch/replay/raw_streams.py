"""Binance raw streams on the replay exchange: ``{base}/ws`` with SUBSCRIBE / UNSUBSCRIBE.

As Binance documents its websocket streams (spot ``wss://stream.binance.com:9443/ws``, USD-M
``wss://fstream.binance.com/ws``): a client connects to ``/ws`` (or ``/ws/<stream>[/<stream>…]``
to start with those streams; the feed's replay counts the client from its first stream on) and sends ``{"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"],
"id": 1}``; the answer is ``{"result": null, "id": 1}``, then every message of those streams comes
as its raw payload (the captured combined message's ``data``, byte for byte, without the
``{"stream": ..., "data": ...}`` wrapper). ``UNSUBSCRIBE`` stops streams, ``LIST_SUBSCRIPTIONS``
answers ``{"result": [names], "id": N}``; malformed requests get Binance's error objects
(``{"code": 3, "msg": "Invalid JSON: ..."}``, ``{"code": 2, "msg": "Invalid request: ..."}``).
No compression is negotiated (Binance offers none), so every client gets the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from tapewatch.replay.pump import Client, FeedPump

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS")


class RawStreamSocket(web.WebSocketResponse):
    """A websocket that sends each captured combined-stream message as its raw payload."""

    async def send_str(self, data: str, compress: int | None = None) -> None:
        await super().send_str(raw_payload(data), compress)


def raw_payload(text: str) -> str:
    """The ``data`` of a combined-stream message ``{"stream":"…","data":…}``, sliced from the text
    (byte for byte as captured); any other text unchanged (replies to requests)."""
    if not text.startswith('{"stream":"'):
        return text
    head = text.find('","data":', 11)
    if head < 0 or not text.endswith("}"):
        return text
    return text[head + 9:-1]


def answer(text: str, streams: set[str]) -> dict[str, Any]:
    """Apply one client request to ``streams`` (the names subscribed) and return Binance's reply."""
    try:
        req = json.loads(text)
    except ValueError as exc:
        return {"code": 3, "msg": f"Invalid JSON: {exc}"}
    if not isinstance(req, dict):
        return {"code": 3, "msg": "Invalid JSON: expected an object"}
    rid = req.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
        return {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer", "id": rid}
    method = req.get("method")
    if method not in METHODS:
        return {"code": 2, "msg": f"Invalid request: unknown variant {method!r}, expected one of {', '.join(METHODS)}", "id": rid}
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": sorted(streams), "id": rid}
    params = req.get("params")
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        return {"code": 2, "msg": "Invalid request: params must be a list of stream names", "id": rid}
    if method == "SUBSCRIBE":
        streams.update(params)
    else:
        streams.difference_update(params)
    return {"result": None, "id": rid}


def raw_stream_handler(pump: Callable[[], FeedPump], ping_interval: float | None) -> Callable[[web.Request], Any]:
    """The aiohttp handler of ``{base}/ws{/streams}`` for the feed whose pump ``pump()`` returns."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = RawStreamSocket(autoping=True, heartbeat=ping_interval, compress=False)
        await ws.prepare(request)
        streams = set(filter(None, request.match_info.get("tail", "").split("/")))
        client = Client(ws, lambda m: m.channel in streams)
        feed = pump()
        try:
            if streams:
                feed.join(client)
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await ws.send_str(json.dumps(answer(frame.data, streams), separators=(",", ":")))
                    if streams and client not in feed.clients:
                        feed.join(client)  # the replay moves once the client wants something
        finally:
            feed.leave(client)
        return ws

    return handler
