"""Raw Binance websocket captures: one event per line, ``<local receive ns> <raw JSON>``.

This is the layout hftbacktest's collectors write (gzip text): combined-stream messages
``{"stream": "btcusdt@depth@100ms", "data": {...}}`` exactly as Binance sends them, plus the
REST depth snapshot (``{"lastUpdateId": ...}``) the collector fetched once the streams ran.
Spot and USD-M: depth diffs, trades, aggTrades, bookTicker and klines go through the same
parsers as live and recorded messages (:mod:`tapewatch.sources.binance_api`).

Times: a row's ``ts`` is the exchange's own time (trade time ``T``, depth event time ``E``,
USD-M bookTicker ``E``); where Binance sends none (spot bookTicker, spot REST snapshot) it is
the local receive time. The local receive time of the line is kept beside it as ``local_ts``
on every trade, book_delta and quote row (the local clock may run behind the exchange's).

Key: exchange ``binance`` (``--exchange`` for a venue with Binance's protocol, e.g.
``binanceus``); market from ``--market``, else the path (``spot`` / ``usdm``, ``um``,
``futures``, ``perp``), else the content (depth diffs with ``pu`` are USD-M); the snapshot's
symbol from ``--symbol``, else the file name, else the one depth stream of the file.
A flag that contradicts what the path or content says is an error naming both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

from tapewatch.errors import ImportFormatError
from tapewatch.sources import binance_api
from tapewatch.sources.base import Batch, Format, Hints, RawFile, agree, with_exchange
from tapewatch.sources.messages import Context, MessageError, Rows, json_message, located, symbol_of
from tapewatch.sources.tables import name_info

_LINE = re.compile(r"^(\d{16,19}) (\{.*)$")
_DEPTH_STREAM = re.compile(r'"stream":\s*"([a-z0-9]+)@depth')
_PERP_WORDS = {"usdm", "um", "futures", "future", "perp", "perpetual", "fapi"}


def capture_lines(raw: RawFile, text: str) -> Iterator[tuple[int, int, str]]:
    """``(line number, local receive ns, raw JSON text)`` of every non-empty line of a capture
    (``text`` is ``raw``'s content); a line of another shape is an ImportFormatError naming it."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise ImportFormatError(raw.path, f"not a capture line (<receive ns> <JSON>): {line[:60]!r}", lineno)
        yield lineno, int(m.group(1)), m.group(2)


def _path_market(raw: RawFile) -> str | None:
    """``perp`` or ``spot`` when a folder or the file name says so, else None."""
    words = {w for part in raw.path.parts for w in re.split(r"[^a-z0-9]+", part.lower()) if w}
    if words & _PERP_WORDS:
        return "perp"
    return "spot" if "spot" in words else None


def _content_market(text: str) -> str | None:
    """``perp`` when depth diffs carry ``pu`` (USD-M only), ``spot`` when they do not, else None."""
    if '"depthUpdate"' not in text:
        return None
    return "perp" if '"pu":' in text else "spot"


def _depth_symbol(text: str) -> str | None:
    """The symbol of the file's depth stream, when there is exactly one."""
    natives = set(_DEPTH_STREAM.findall(text))
    return symbol_of(natives.pop()) if len(natives) == 1 else None


class BinanceWsCapture:
    """A raw Binance websocket capture: ``<receive ns> <JSON>`` per line."""

    name = "binance-ws-capture"

    def sniff(self, raw: RawFile) -> bool:
        lines = raw.first_lines
        if not lines or not all(_LINE.match(ln) for ln in lines):
            return False
        return '"stream"' in raw.head or '"lastUpdateId"' in raw.head

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        text = raw.text()
        said_market = _path_market(raw)
        content_market = _content_market(text)
        if said_market and content_market and said_market != content_market:
            raise ImportFormatError(
                raw.path, f"the path says market {said_market} but the depth diffs are {content_market}'s"
            )
        market = agree(raw, "market", hints.market, said_market or content_market)
        if market is None:
            raise ImportFormatError(raw.path, "cannot tell spot from USD-M (no depth diffs, no spot/usdm in the path); pass --market")
        info = name_info(raw.path, raw.name)
        try:
            hinted = symbol_of(hints.symbol) if hints.symbol else None
            said_symbol = info.symbol or _depth_symbol(text)
        except MessageError as exc:
            raise ImportFormatError(raw.path, exc.reason) from None
        symbol = agree(raw, "symbol", hinted, said_symbol)
        exchange = agree(raw, "exchange", hints.exchange, info.exchange) or binance_api.EXCHANGE
        base = replace(Context.of_file(raw, Hints(interval=hints.interval)), market=market, symbol=symbol)
        rows = Rows()
        lineno = 0
        try:
            for lineno, recv_ns, body in capture_lines(raw, text):
                msg = json_message(body, "message")
                rows.local_ts = recv_ns
                ctx = replace(base, recv_ns=recv_ns)
                if isinstance(msg, dict) and "lastUpdateId" in msg and "stream" not in msg:
                    binance_api.parse_rest(msg, "depth", ctx, rows)
                else:
                    binance_api.parse_ws_message(msg, ctx, rows)
        except MessageError as exc:
            raise located(raw.path, exc, lineno or None) from None
        return with_exchange(rows.batches(), exchange)


FORMATS: list[Format] = [BinanceWsCapture()]
