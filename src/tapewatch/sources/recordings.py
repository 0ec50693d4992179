"""cryptofeed recordings: raw REST and websocket traffic, one event per line.

Line shapes (``UNIX_TS`` = decimal epoch seconds of the recording machine)::

    URL -> UNIX_TS: BODY        a REST response body
    URL <-> UNIX_TS             a websocket connection opened
    URL <- UNIX_TS: MSG         what the client sent (subscriptions): ignored
    UNIX_TS: MSG                what the exchange sent on the last connection opened
    configuration: {...}        cryptofeed's own settings: ignored

Venue and market come from the URLs (Binance spot: api / stream.binance.com; Binance USD-M:
fapi / fstream.binance.com; Coinbase Exchange: api / ws-feed .pro / .exchange .coinbase.com);
another venue's recording is an error naming it. Bodies and messages go to the parsers in
:mod:`tapewatch.sources.binance_api` and :mod:`tapewatch.sources.coinbase`; messages of no
interest (subscription replies, heartbeats) are skipped. Row ``ts`` is the exchange's own time
where the message has one (trade time, depth event time, Coinbase ``time``), else the recording
time (converted exactly, without floats). Rows keep the order of the file; timestamps of
different symbols interleave freely and are not checked for order.

A malformed line (bad JSON, a missing field, a negative size, a NaN price, an unknown line
shape) is an ImportFormatError naming its line; nothing of the file is imported then.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field as dc_field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tapewatch.sources import binance_api, coinbase
from tapewatch.errors import ImportFormatError
from tapewatch.sources.base import Batch, Format, Hints, RawFile
from tapewatch.sources.messages import (
    Context,
    MessageError,
    Rows,
    interval_text,
    integer,
    json_message,
    located,
    seconds_text_ns,
    symbol_of,
)

_EVENT = re.compile(r"^(?P<url>[a-z][a-z0-9+.-]*://\S+) (?P<dir><->|->|<-) (?P<ts>\d+(?:\.\d+)?)(?:: (?P<body>.*))?$")
_MESSAGE = re.compile(r"^(?P<ts>\d+(?:\.\d+)?): (?P<body>.*)$")
_CONFIG = "configuration: "


def venue_of(url: str) -> tuple[str, str]:
    """(exchange, market) of a recorded URL; a venue tapewatch does not read is a MessageError."""
    market = binance_api.market_of_url(url)
    if market is not None:
        return binance_api.EXCHANGE, market
    if coinbase.is_exchange_url(url):
        return coinbase.EXCHANGE, coinbase.MARKET
    host = urlsplit(url).hostname or url
    raise MessageError(
        f"recording of {host}: tapewatch reads Binance (spot, USD-M) and Coinbase Exchange recordings only"
    )


@dataclass(frozen=True)
class RecordingLine:
    """One line of a recording. ``url`` is None for ``TS: MSG`` (a message of the open websocket
    connection); otherwise ``direction`` is ``<->`` (a connection opens), ``->`` (a REST
    response) or ``<-`` (what the client sent). ``ts`` is the recording machine's time, UTC ns."""

    ts: int
    body: str | None
    url: str | None = None
    direction: str | None = None


def recording_lines(raw: RawFile) -> Iterator[tuple[int, RecordingLine]]:
    """``(line number, line)`` for every line of a recording but blank and configuration lines;
    a line of no recording shape is an ImportFormatError naming it."""
    for lineno, line in enumerate(raw.text().splitlines(), start=1):
        if not line.strip() or line.startswith(_CONFIG):
            continue
        if m := _MESSAGE.match(line):
            yield lineno, RecordingLine(seconds_text_ns(m["ts"]), m["body"])
        elif m := _EVENT.match(line):
            yield lineno, RecordingLine(seconds_text_ns(m["ts"]), m["body"], m["url"], m["dir"])
        else:
            raise ImportFormatError(raw.path, f"not a recording line: {line[:60]!r}", lineno)


@dataclass
class _Connection:
    """The websocket connection that the following ``UNIX_TS: MSG`` lines belong to."""

    exchange: str
    market: str
    feed: coinbase.FeedState = dc_field(default_factory=coinbase.FeedState)


class CryptofeedRecording:
    """A cryptofeed recording file (``BINANCE.ws.1.0``, ``COINBASE.0``…)."""

    name = "cryptofeed-recording"

    def sniff(self, raw: RawFile) -> bool:
        lines = raw.first_lines
        if lines and lines[0].startswith(_CONFIG):
            lines = lines[1:]
        return bool(lines) and _EVENT.match(lines[0]) is not None

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        rows = Rows()
        base = Context.of_file(raw, hints)
        conn: _Connection | None = None
        lineno = 0
        try:
            for lineno, rec in recording_lines(raw):
                if rec.url is None:
                    if conn is None:
                        raise MessageError("exchange message before any websocket connect line (URL <-> TS)")
                    ctx = replace(base, market=conn.market, recv_ns=rec.ts)
                    msg = json_message(rec.body, "message")
                    if conn.exchange == binance_api.EXCHANGE:
                        binance_api.parse_ws_message(msg, ctx, rows)
                    else:
                        coinbase.parse_feed_message(msg, ctx, rows, conn.feed)
                elif rec.direction == "<->":
                    if conn is not None:
                        conn.feed.finish()
                    conn = _Connection(*venue_of(rec.url))
                elif rec.direction == "->":
                    self._rest(rec.url, json_message(rec.body, "REST"), replace(base, recv_ns=rec.ts), rows)
                # "<-": what the client sent; nothing to import
            lineno = 0
            if conn is not None:
                conn.feed.finish()
        except MessageError as exc:
            raise located(raw.path, exc, lineno or None) from None
        return rows.batches()

    @staticmethod
    def _rest(url: str, body: Any, ctx: Context, rows: Rows) -> None:
        """One REST response: dispatched by the endpoint of its URL; others are skipped."""
        exchange, market = venue_of(url)
        query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        if exchange == binance_api.EXCHANGE:
            kind = binance_api.endpoint_kind(url)
            if kind is None or binance_api.is_error_body(body):
                return
            symbol = symbol_of(query["symbol"]) if query.get("symbol") else ctx.symbol
            ctx = replace(ctx, market=market, symbol=symbol, interval=query.get("interval") or ctx.interval)
            binance_api.parse_rest(body, kind, ctx, rows)
            return
        target = coinbase.rest_target(url)
        if target is None or (isinstance(body, dict) and set(body) == {"message"}):
            return  # not an endpoint tapewatch reads, or an error reply
        kind, product, _ = target
        granularity = query.get("granularity")
        ctx = replace(
            ctx,
            market=market,
            symbol=symbol_of(product) if product else ctx.symbol,
            interval=interval_text(integer(granularity, "granularity")) if granularity else ctx.interval,
        )
        level = integer(query["level"], "level") if query.get("level") else None
        coinbase.parse_rest(body, kind, ctx, rows, level)


FORMATS: list[Format] = [CryptofeedRecording()]
