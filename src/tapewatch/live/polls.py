"""REST polls of ``tapewatch live``: open interest (Binance USD-M, Bybit, OKX) and funding (Binance USD-M).

* open interest of ``oi.source``, every ``[live] oi_period``: Binance USD-M
  ``GET {rest}/fapi/v1/openInterest?symbol=BTCUSDT`` (the body ``{"openInterest", "symbol",
  "time"}`` becomes an ``open_interest`` row: ``ts`` = the body's ``time``, the venue's clock in
  UTC ns, ``oi`` in base units, ``oi_value`` null); Bybit
  ``GET {rest}/v5/market/open-interest?category=linear&symbol=BTCUSDT&intervalTime=5min&limit=1``
  and OKX ``GET {rest}/api/v5/public/open-interest?instType=SWAP&instId=BTC-USDT-SWAP``, read by
  :mod:`tapewatch.sources.bybit` / :mod:`tapewatch.sources.okx` into the rows backfill stores for
  the same values (``oi`` in the base coin; OKX adds ``oi_value`` in USD);
* funding: ``GET {rest}/fapi/v1/fundingRate?symbol=BTCUSDT&limit=3`` (the latest settlements)
  every ``[live] funding_period``; each ``{"symbol", "fundingTime", "fundingRate", "markPrice"}``
  becomes a ``funding`` row at its ``fundingTime``: the settled rates, as ``tapewatch import``
  and backfill store them (the predicted rate of the ``markPrice`` stream is not a settled rate
  and is not collected).

Each Binance body goes through :func:`binance_api.parse_rest`, the parser of ``tapewatch import``,
so a polled row equals an imported row of the same body; the same value polled again (same ``ts``)
is one stored row. The first poll comes at start, the next ones on the same grid, so a slow
answer does not make the polls drift.

The requests are made directly with aiohttp, not through ccxt (``fetch_open_interest``,
``fetch_funding_rate_history``): ccxt would hand back its unified structures instead of the
bodies, and the bodies are what the importer's parser reads. A 429 / 418 is honoured (its
``Retry-After`` waited out, :func:`tapewatch.live.rest.get_json`); a failed or malformed poll is
counted and skipped, never fatal: collection goes on and the next poll comes at its time.

An open interest source on another venue or market, and a funding source off Binance USD-M, is
named as not collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tapewatch.config import Config, duration_ns
from tapewatch.live.connection import FeedLog
from tapewatch.live.endpoints import Endpoints
from tapewatch.live.rest import get_json
from tapewatch.sources import binance_api, bybit, okx
from tapewatch.sources.messages import Context, MessageError, Rows

OI_PATH = "/fapi/v1/openInterest"
FUNDING_PATH = "/fapi/v1/fundingRate"
FUNDING_LIMIT = "3"  # settlements asked per funding poll (the latest first-to-last)
Parser = Callable[[Any, str, Context, Rows], None]  # (body, body kind, context, rows out)


@dataclass(frozen=True)
class OIRoute:
    """How one venue's perpetual open interest is asked for and read."""

    path: str
    params: dict[str, str]  # beyond the symbol
    symbol_param: str  # the query parameter carrying the native symbol
    native: Callable[[str, str], str]  # (base, quote) -> native symbol
    parse: Parser


OI_ROUTES = {
    binance_api.EXCHANGE: OIRoute(OI_PATH, {}, "symbol", lambda b, q: f"{b}{q}".upper(), binance_api.parse_rest),
    bybit.EXCHANGE: OIRoute(bybit.OI_PATH, bybit.OI_PARAMS, bybit.SYMBOL_PARAM, bybit.native_symbol, bybit.parse_rest),
    okx.EXCHANGE: OIRoute(okx.OI_PATH, okx.OI_PARAMS, okx.SYMBOL_PARAM, okx.native_symbol, okx.parse_rest),
}


@dataclass
class RestPoller:
    """Polls one REST body of ``kind`` (``openInterest``, ``fundingRate``) for ``native``
    (``BTCUSDT``, ``BTC-USDT-SWAP``, sent as ``symbol_param``) into ``rows`` through ``parse``;
    ``what`` names it in the summary line."""

    url: str
    native: str
    period: float  # seconds between polls
    session: aiohttp.ClientSession
    rows: Rows
    kind: str = "openInterest"
    what: str = "open interest"
    params: dict[str, str] = field(default_factory=dict)  # beyond the symbol
    symbol_param: str = "symbol"
    parse: Parser = binance_api.parse_rest
    polls: int = 0  # requests answered or failed
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
        """One request; its row is kept, or the failure counted with its reason. A poll is counted
        once answered (or failed), so a poll cancelled in flight counts neither way."""
        reply = await get_json(self.session, self.url, {self.symbol_param: self.native, **self.params}, self.log)
        self.polls += 1
        if not reply.ok:
            self._fail(reply.reason)
            return
        parsed = Rows()
        try:
            self.parse(reply.body, self.kind, Context(market="perp", recv_ns=reply.recv_ns), parsed)
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
    """The pollers of ``oi.source`` (a Binance USD-M, Bybit or OKX perpetual) and
    ``funding.source`` (Binance USD-M), each at the venue's ``[endpoints]`` REST URL; each other
    source is named as not collected in a line through ``say``."""
    pollers = []
    oi = cfg.oi.source
    route = OI_ROUTES.get(oi.exchange) if oi.market == "perp" else None
    if route is None:
        say(f"not collected: open interest of {oi.describe(base)} (live polls Binance USD-M, Bybit and OKX "
            "perpetual open interest only)")
    else:
        pollers.append(RestPoller(endpoints.of(oi.exchange, "perp").rest + route.path, route.native(base, oi.quote),
                                  duration_ns(cfg.live.oi_period, 1) / 1e9, session, rows, params=route.params,
                                  symbol_param=route.symbol_param, parse=route.parse))
    fr = cfg.funding.source
    if fr.exchange != binance_api.EXCHANGE or fr.market != "perp":
        say(f"not collected: funding of {fr.describe(base)} (live polls Binance USD-M funding only)")
    else:
        pollers.append(RestPoller(endpoints.of("binance", "perp").rest + FUNDING_PATH, f"{base}{fr.quote}".upper(),
                                  duration_ns(cfg.live.funding_period, 1) / 1e9, session, rows, "fundingRate",
                                  "funding", {"limit": FUNDING_LIMIT}))
    return pollers
