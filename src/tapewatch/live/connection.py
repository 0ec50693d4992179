"""One websocket connection state machine, shared by every venue.

connect → (the venue subscribes) → receive → … ; on a close, an error or a stale stream (no
message for ``stale_after`` seconds) it tells the venue (which drops what depends on the
stream, e.g. its depth sync) and reconnects after a backoff with jitter: attempt n waits a
uniform draw in [d/2, d] with d = min(cap, base · 2ⁿ); a connection that delivered a message
resets n. Pings are answered by aiohttp (``autoping``), as Binance and Coinbase require; they
do not keep a stream from being stale (a venue may ping a socket whose stream stopped).
The loop runs until cancelled (the venue is then told it is closed, once more).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp


class VenueFeed(Protocol):
    """What a venue plugs into :func:`run_connection`."""

    def url(self) -> str:
        """The websocket URL to connect to (streams in the URL for Binance)."""
        ...

    async def opened(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Called on each connect: send the subscription, if the venue wants one."""
        ...

    def handle(self, text: str, recv_ns: int) -> None:
        """One text message, received at ``recv_ns`` (UTC ns, local clock)."""
        ...

    def closed(self) -> None:
        """The connection is gone: forget what the stream's continuity carried."""
        ...


@dataclass
class Backoff:
    """Reconnect delays in seconds: attempt n waits uniform in [d/2, d], d = min(cap, base · 2ⁿ)."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        d = min(self.cap, self.base * 2**attempt)
        return self.rng.uniform(d / 2, d)


@dataclass
class FeedLog:
    """Counts of one feed: snapshots fetched, REST refusals (429 / 418), depth gaps, syncs
    reached, malformed messages skipped (with the one-line reason of the last one), trade-id
    gaps recovered by REST (and the trades they brought) or lost; ``lines`` the recovery lines,
    each also passed to ``say`` when given."""

    snapshots: int = 0
    refused: int = 0
    gaps: int = 0
    synced: int = 0
    malformed: int = 0
    last_error: str | None = None
    recovered: int = 0
    recovered_trades: int = 0
    lost: int = 0
    lines: list[str] = field(default_factory=list)
    say: Callable[[str], None] | None = None

    def note(self, line: str) -> None:
        """Keep one line a user reads (a recovery, a lost span) and print it through ``say``."""
        self.lines.append(line)
        if self.say is not None:
            self.say(line)

    def skip(self, what: str, text: str, reason: str) -> None:
        """Count a malformed message (``what`` names its venue / market) and keep a one-line reason."""
        self.malformed += 1
        self.last_error = f"{what} message {text[:60]!r}: {reason}"


@dataclass
class ConnectionLog:
    """What happened: connects made and why connections ended (``stale``, ``closed``, ``error``)."""

    connects: int = 0
    ends: Counter[str] = field(default_factory=Counter)
    messages: int = 0


async def run_connection(session: aiohttp.ClientSession, feed: VenueFeed, log: ConnectionLog,
                         stale_after: float = 30.0, backoff: Backoff | None = None) -> None:
    """Keep ``feed`` connected until cancelled (see the module docstring)."""
    backoff = backoff or Backoff()
    attempt = 0
    try:
        while True:
            try:
                async with session.ws_connect(feed.url(), autoping=True) as ws:
                    log.connects += 1
                    await feed.opened(ws)
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + stale_after  # pings do not count: only data moves it
                    while True:
                        msg = await asyncio.wait_for(ws.receive(), max(0.0, deadline - loop.time()))
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            deadline = loop.time() + stale_after
                            log.messages += 1
                            attempt = 0
                            feed.handle(msg.data, time.time_ns())
                        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                            log.ends["closed"] += 1
                            break
                        elif msg.type == aiohttp.WSMsgType.ERROR:
                            log.ends["error"] += 1
                            break
            except asyncio.TimeoutError:
                log.ends["stale"] += 1
            except (aiohttp.ClientError, OSError):
                log.ends["error"] += 1
            feed.closed()
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1
    finally:
        feed.closed()  # cancelled: the venue's own tasks (snapshot fetches) end with it
