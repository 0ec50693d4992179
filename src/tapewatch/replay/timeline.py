"""Captures read into a replay timeline: per feed, the messages the venue sent, in order.

Two capture layouts are read (the same ones ``tapewatch import`` reads):

* raw Binance websocket captures (hftbacktest's collectors): ``<local receive ns> <raw JSON>``
  per line, combined-stream messages ``{"stream", "data"}`` plus the REST depth snapshot
  (``{"lastUpdateId", ...}``) the collector fetched;
* cryptofeed recordings: ``URL <-> TS`` opens a websocket connection whose ``TS: MSG`` lines
  follow, ``URL -> TS: BODY`` is a REST response; Binance spot / USD-M and Coinbase Exchange.

A feed is one venue and market (``binance``/``spot``, ``binance``/``perp``,
``coinbase``/``spot``). Every message keeps its raw JSON text exactly as captured (it is sent
byte for byte), its capture time (ns since the epoch, the recording machine's clock), its
channel (the Binance stream name, or the Coinbase channel of its ``type``) and its product
(the native symbol: ``BTCUSDT``, ``BTC-USD``; empty for messages of no product). Binance depth
snapshots are kept per symbol with their position in the feed (how many of the feed's messages
came before them), so the server can anchor the book it answers on the snapshot current at the
replay point (:mod:`tapewatch.replay.book`).

Saved REST bodies (one JSON document a line, kept as written) are served as recorded, each
told apart by its content and kept under its feed and route (:attr:`Timeline.bodies`,
:data:`BODY_PATHS`): Binance USD-M ``openInterest`` / ``fundingRate`` bodies, and Bybit
(``bybit``/``perp``) and OKX (``okx``/``perp``) open-interest bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tapewatch.errors import ImportFormatError
from tapewatch.sources import binance_api, bybit, okx
from tapewatch.sources.base import RawFile
from tapewatch.sources.messages import MessageError, json_message, symbol_of
from tapewatch.sources.recordings import CryptofeedRecording, recording_lines, venue_of
from tapewatch.sources.ws_capture import BinanceWsCapture, _content_market, _depth_symbol, _path_market, capture_lines
from tapewatch.sources.tables import name_info
from tapewatch.symbols import native_symbol

# Coinbase Exchange message type -> the channel a client subscribes to for it
_COINBASE_CHANNELS = {
    "snapshot": "level2", "l2update": "level2", "ticker": "ticker", "match": "matches",
    "last_match": "matches", "heartbeat": "heartbeat", "status": "status",
}


@dataclass(frozen=True)
class Feed:
    """One venue and market: ``exchange`` (binance, coinbase) and ``market`` (spot, perp)."""

    exchange: str
    market: str

    @property
    def label(self) -> str:
        """Human name: ``binance spot``, ``binance perp``, ``coinbase spot``."""
        return f"{self.exchange} {self.market}"


BINANCE_BODY_PATHS = {"openInterest": "/fapi/v1/openInterest", "fundingRate": "/fapi/v1/fundingRate"}  # body kind -> path
BODY_PATHS: dict[Feed, tuple[str, ...]] = {  # the routes whose recorded bodies each feed serves
    Feed(binance_api.EXCHANGE, "perp"): tuple(BINANCE_BODY_PATHS.values()),
    Feed(bybit.EXCHANGE, "perp"): (bybit.OI_PATH,),
    Feed(okx.EXCHANGE, "perp"): (okx.OI_PATH,),
}


@dataclass(frozen=True)
class Message:
    """One captured websocket message: ``ts`` in ns (capture clock), ``raw`` the JSON as sent."""

    ts: int
    channel: str
    product: str
    raw: str
    source: int  # index of the file it came from: pacing never waits across files
    is_depth: bool  # a sequenced book update (Binance depth diff, Coinbase l2update)


@dataclass(frozen=True)
class Snapshot:
    """A captured Binance REST depth snapshot: ``after`` = feed messages captured before it."""

    product: str
    raw: str
    after: int


@dataclass
class Timeline:
    """The captures: per feed, its messages in capture order and its depth snapshots."""

    messages: dict[Feed, list[Message]] = field(default_factory=dict)
    snapshots: dict[Feed, list[Snapshot]] = field(default_factory=dict)
    bodies: dict[tuple[Feed, str], dict[str, list[str]]] = field(default_factory=dict)  # (feed, path) -> symbol -> bodies

    def add_body(self, feed: Feed, path: str, product: str, raw: str) -> None:
        """A recorded REST body of ``feed``'s route ``path`` (one of :data:`BODY_PATHS`) for
        ``product``, its native symbol (``BTCUSDT``, ``BTC-USDT-SWAP``)."""
        self.bodies.setdefault((feed, path), {}).setdefault(product, []).append(raw)

    def add_message(self, feed: Feed, msg: Message) -> None:
        self.messages.setdefault(feed, []).append(msg)

    def add_snapshot(self, feed: Feed, product: str, raw: str) -> None:
        after = len(self.messages.get(feed, []))
        self.snapshots.setdefault(feed, []).append(Snapshot(product, raw, after))

    def snapshot(self, feed: Feed, product: str, position: int) -> Snapshot | None:
        """The last snapshot of ``product`` captured at or before ``position`` (feed messages
        sent so far), else its first one; None when the captures hold none."""
        mine = [s for s in self.snapshots.get(feed, []) if s.product == product]
        if not mine:
            return None
        before = [s for s in mine if s.after <= position]
        return before[-1] if before else mine[0]

    @property
    def feeds(self) -> list[Feed]:
        """Every feed with messages or snapshots, in a stable order."""
        feeds = set(self.messages) | set(self.snapshots) | {feed for feed, _ in self.bodies}
        return sorted(feeds, key=lambda f: (f.exchange, f.market))


def read_timeline(paths: Iterable[Path]) -> Timeline:
    """Read capture files (raw Binance websocket captures, cryptofeed recordings) in order.

    A file of another layout, or a malformed line, is an ImportFormatError naming file and line.
    """
    timeline = Timeline()
    capture, recording = BinanceWsCapture(), CryptofeedRecording()
    for source, path in enumerate(paths):
        raw = RawFile(Path(path))
        if capture.sniff(raw):
            _read_ws_capture(raw, source, timeline)
        elif recording.sniff(raw):
            _read_recording(raw, source, timeline)
        elif not _read_rest_bodies(raw, timeline):
            raise ImportFormatError(raw.path, "not a capture the replay exchange serves (raw Binance websocket "
                                    "capture, cryptofeed recording, saved Binance USD-M openInterest / "
                                    "fundingRate bodies or saved Bybit / OKX open-interest bodies)")
    return timeline


def _read_rest_bodies(raw: RawFile, timeline: Timeline) -> bool:
    """Saved Binance USD-M ``/fapi/v1/openInterest`` or ``/fapi/v1/fundingRate`` bodies, Bybit
    ``/v5/market/open-interest`` or OKX ``/api/v5/public/open-interest`` bodies (of one symbol
    each), one JSON document a line, each kept as written; False (nothing kept) when the file is
    anything else."""
    if not raw.first_lines[0].lstrip().startswith(("{", "[")):
        return False
    keep: list[Callable[[], None]] = []
    for line in filter(None, (text.strip() for text in raw.text().splitlines())):
        try:
            body = json_message(line, "body")
        except MessageError:
            return False
        add = _rest_body(body, line, timeline)
        if add is None:
            return False
        keep.append(add)
    for add in keep:
        add()
    return bool(keep)


def _rest_body(body: Any, line: str, timeline: Timeline) -> Callable[[], None] | None:
    """What keeps one saved body in ``timeline``, None when it is no body the replay serves."""
    kind = binance_api.body_kind(body)
    first = body[0] if isinstance(body, list) and body else body
    if kind in BINANCE_BODY_PATHS and isinstance(first, dict):
        product = native_symbol(symbol_of(str(first["symbol"])))
        return partial(timeline.add_body, Feed(binance_api.EXCHANGE, "perp"), BINANCE_BODY_PATHS[kind], product, line)
    for venue in (bybit, okx):
        symbol = venue.body_symbol(body)
        if symbol is not None:
            return partial(timeline.add_body, Feed(venue.EXCHANGE, "perp"), venue.OI_PATH, symbol, line)
    return None


def _binance_message(body: str, ts: int, source: int) -> Message:
    msg = json_message(body, "message")
    if not isinstance(msg, dict) or not isinstance(msg.get("stream"), str) or not isinstance(msg.get("data"), dict):
        raise MessageError("not a Binance combined-stream message {\"stream\": ..., \"data\": {...}}")
    stream: str = msg["stream"]
    return Message(ts, stream, stream.split("@", 1)[0].upper(), body, source, msg["data"].get("e") == "depthUpdate")


def _read_ws_capture(raw: RawFile, source: int, timeline: Timeline) -> None:
    text = raw.text()
    market = _path_market(raw) or _content_market(text)
    if market is None:
        raise ImportFormatError(raw.path, "cannot tell spot from USD-M (no depth diffs, no spot/usdm in the path)")
    feed = Feed(binance_api.EXCHANGE, market)
    lineno = 0
    try:
        file_symbol = name_info(raw.path, raw.name).symbol or _depth_symbol(text)
        for lineno, recv_ns, body in capture_lines(raw, text):
            if body.startswith('{"lastUpdateId"'):
                if file_symbol is None:
                    raise MessageError("a depth snapshot, but neither the file name nor a depth stream names its symbol")
                timeline.add_snapshot(feed, native_symbol(file_symbol), body)
            else:
                timeline.add_message(feed, _binance_message(body, recv_ns, source))
    except MessageError as exc:
        raise ImportFormatError(raw.path, exc.reason, lineno or None) from None


def _read_recording(raw: RawFile, source: int, timeline: Timeline) -> None:
    feed: Feed | None = None
    lineno = 0
    try:
        for lineno, rec in recording_lines(raw):
            if rec.url is None:
                if feed is None:
                    raise MessageError("exchange message before any websocket connect line (URL <-> TS)")
                body = rec.body or ""  # a message line always has its body
                if feed.exchange == binance_api.EXCHANGE:
                    timeline.add_message(feed, _binance_message(body, rec.ts, source))
                else:
                    timeline.add_message(feed, _coinbase_message(body, rec.ts, source))
            elif rec.direction == "<->":
                feed = Feed(*venue_of(rec.url))
            elif rec.direction == "->":
                _recorded_rest(rec.url, rec.body or "", timeline)
    except MessageError as exc:
        raise ImportFormatError(raw.path, exc.reason, lineno or None) from None


def _coinbase_message(body: str, ts: int, source: int) -> Message:
    msg = json_message(body, "message")
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise MessageError("not a Coinbase Exchange message (no \"type\")")
    kind: str = msg["type"]
    product = msg.get("product_id")
    return Message(ts, _COINBASE_CHANNELS.get(kind, kind), product if isinstance(product, str) else "", body,
                   source, kind == "l2update")


def _recorded_rest(url: str, body: str, timeline: Timeline) -> None:
    """A recorded Binance depth snapshot is kept; other REST responses are not served."""
    exchange, market = venue_of(url)
    if exchange != binance_api.EXCHANGE or binance_api.endpoint_kind(url) != "depth":
        return
    symbol = parse_qs(urlsplit(url).query).get("symbol", [""])[-1]
    parsed = json_message(body, "REST")
    if symbol and isinstance(parsed, dict) and "lastUpdateId" in parsed:
        timeline.add_snapshot(Feed(exchange, market), native_symbol(symbol_of(symbol)), body)
