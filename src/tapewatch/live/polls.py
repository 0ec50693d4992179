"""Binance USD-M REST polls of ``tapewatch live``: open interest and funding.

* open interest: ``GET {rest}/fapi/v1/openInterest?symbol=BTCUSDT`` every ``[live] oi_period``;
  the body ``{"openInterest", "symbol", "time"}`` becomes an ``open_interest`` row: ``ts`` = the
  body's ``time`` (the venue's clock, UTC ns), ``oi`` in base units, ``oi_value`` null;
* funding: ``GET {rest}/fapi/v1/fundingRate?symbol=BTCUSDT&limit=3`` (the latest settlements)
  every ``[live] funding_period``; each ``{"symbol", "fundingTime", "fundingRate", "markPrice"}``
  becomes a ``funding`` row at its ``fundingTime``: the settled rates, as ``tapewatch import``
  and backfill store them (the predicted rate of the ``markPrice`` stream is not a settled rate
  and is not collected).

Each body goes through :func:`binance_api.parse_rest`, the parser of ``tapewatch import``, so a
polled row equals an imported row of the same body; the same value polled again (same ``ts``)
is one stored row. The first poll comes at start, the next ones on the same grid, so a slow
answer does not make the polls drift.

The requests are made directly with aiohttp, not through ccxt (``fetch_open_interest``,
``fetch_funding_rate_history``): ccxt would hand back its unified structures instead of the
bodies, and the bodies are what the importer's parser reads. A 429 / 418 is honoured (its
``Retry-After`` waited out, :func:`tapewatch.live.rest.get_json`); a failed or malformed poll is
counted and skipped, never fatal: collection goes on and the next poll comes at its time.

Bybit (``/v5/market/open-interest``) and OKX (``/api/v5/public/open-interest``) are not polled:
a source on those venues is named as not collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from tapewatch.config import Config, duration_ns
from tapewatch.live.connection import FeedLog
from tapewatch.live.endpoints import Endpoints
from tapewatch.live.rest import get_json
from tapewatch.sources import binance_api
from tapewatch.sources.messages import Context, MessageError, Rows

OI_PATH = "/fapi/v1/openInterest"
FUNDING_PATH = "/fapi/v1/fundingRate"
FUNDING_LIMIT = "3"  # settlements asked per funding poll (the latest first-to-last)


@dataclass
class RestPoller:
    """Polls one Binance USD-M REST body of ``kind`` (``openInterest``, ``fundingRate``) for
    ``native`` (``BTCUSDT``) into ``rows``; ``what`` names it in the summary line."""

    url: str
    native: str
    period: float  # seconds between polls
    session: aiohttp.ClientSession
    rows: Rows
    kind: str = "openInterest"
    what: str = "open interest"
    params: dict[str, str] = field(default_factory=dict)  # beyond ``symbol``
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
        reply = await get_json(self.session, self.url, {"symbol": self.native, **self.params}, self.log)
        if not reply.ok:
            self._fail(reply.reason)
            return
        parsed = Rows()
        try:
            binance_api.parse_rest(reply.body, self.kind, Context(market="perp", recv_ns=reply.recv_ns), parsed)
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
        return f"{self.what} {self.native}: {self.polls} poll{'' if self.polls == 1 else 's'}{failed}"


def rest_pollers(cfg: Config, base: str, endpoints: Endpoints, session: aiohttp.ClientSession, rows: Rows,
                 say: Callable[[str], None]) -> list[RestPoller]:
    """The pollers of ``oi.source`` and ``funding.source`` that are Binance USD-M; each other
    source is named as not collected in a line through ``say``."""
    rest = endpoints.of("binance", "perp").rest
    wanted = ((cfg.oi.source, "open interest", OI_PATH, "openInterest", cfg.live.oi_period, {}),
              (cfg.funding.source, "funding", FUNDING_PATH, "fundingRate", cfg.live.funding_period,
               {"limit": FUNDING_LIMIT}))
    pollers = []
    for ref, what, path, kind, period, params in wanted:
        if ref.exchange != binance_api.EXCHANGE or ref.market != "perp":
            say(f"not collected: {what} of {ref.describe(base)} (live polls Binance USD-M {what} only)")
            continue
        pollers.append(RestPoller(rest + path, f"{base}{ref.quote}".upper(), duration_ns(period, 1) / 1e9, session,
                                  rows, kind, what, params))
    return pollers
