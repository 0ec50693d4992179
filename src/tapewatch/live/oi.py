"""Open interest by REST polling: Binance USD-M ``GET {rest}/fapi/v1/openInterest?symbol=BTCUSDT``.

Every ``period`` seconds (``[live] oi_period``; the first poll at start, the next ones on the
same grid, so a slow answer does not make the polls drift) one request; the body
``{"openInterest", "symbol", "time"}`` goes through :func:`binance_api.parse_rest` with kind
``openInterest``, the parser of ``tapewatch import``, so a polled row equals an imported row of
the same body: ``ts`` = the body's ``time`` (the venue's clock, UTC ns), ``oi`` in base units,
``oi_value`` null. The same open interest polled twice (same ``time``) is one stored row.

The request is made directly with aiohttp, not through ccxt's ``fetch_open_interest``: ccxt
would hand back its unified structure (``openInterestAmount``, ``timestamp``) instead of the
body, and the body is what the importer's parser reads. A 429 / 418 is honoured (its
``Retry-After`` waited out, :func:`tapewatch.live.rest.get_json`); a failed or malformed poll is
counted and skipped, never fatal: collection goes on and the next poll comes at its time.

Bybit (``/v5/market/open-interest``) and OKX (``/api/v5/public/open-interest``) are not polled:
an ``oi.source`` on those venues is named as not collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from tapewatch.config import Config, duration_ns
from tapewatch.live.connection import FeedLog
from tapewatch.live.endpoints import Endpoints
from tapewatch.live.rest import get_json
from tapewatch.sources import binance_api
from tapewatch.sources.messages import Context, MessageError, Rows

OI_PATH = "/fapi/v1/openInterest"


@dataclass
class OIPoller:
    """Polls one Binance USD-M symbol's open interest (``native``, e.g. ``BTCUSDT``) into ``rows``."""

    url: str
    native: str
    period: float  # seconds between polls
    session: aiohttp.ClientSession
    rows: Rows
    polls: int = 0  # requests made
    failed: int = 0  # polls that stored nothing (refused, no answer, bad body)
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.log = FeedLog()  # ``refused``: the 429 / 418 answers

    async def run(self) -> None:
        """Poll until cancelled (see the module docstring)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            await self.poll()
            ticks = int((loop.time() - start) // self.period) + 1  # the next tick not yet passed
            await asyncio.sleep(max(0.0, start + ticks * self.period - loop.time()))

    async def poll(self) -> None:
        """One request; its row is kept, or the failure counted with its reason."""
        self.polls += 1
        reply = await get_json(self.session, self.url, {"symbol": self.native}, self.log)
        if not reply.ok:
            self._fail(reply.reason)
            return
        parsed = Rows()
        try:
            binance_api.parse_rest(reply.body, "openInterest", Context(market="perp", recv_ns=reply.recv_ns), parsed)
        except MessageError as exc:
            self._fail(f"bad body ({exc.reason})")
            return
        self.rows.extend(parsed)

    def _fail(self, reason: str) -> None:
        self.failed += 1
        self.last_error = reason

    def summary(self) -> str:
        """One line: ``open interest BTCUSDT: 12 polls, 1 failed (last: HTTP 429 (rate limited))``."""
        failed = f", {self.failed} failed (last: {self.last_error})" if self.failed else ""
        return f"open interest {self.native}: {self.polls} poll{'' if self.polls == 1 else 's'}{failed}"


def oi_poller(cfg: Config, base: str, endpoints: Endpoints, session: aiohttp.ClientSession, rows: Rows,
              say: Callable[[str], None]) -> OIPoller | None:
    """The poller of ``oi.source`` when it is Binance USD-M, else None after a line through ``say``
    naming it as not collected."""
    ref = cfg.oi.source
    if ref.exchange != binance_api.EXCHANGE or ref.market != "perp":
        say(f"not collected: open interest of {ref.describe(base)} (live polls Binance USD-M open interest only)")
        return None
    period = duration_ns(cfg.live.oi_period, 1) / 1e9
    return OIPoller(endpoints.of("binance", "perp").rest + OI_PATH, f"{base}{ref.quote}".upper(), period, session, rows)
