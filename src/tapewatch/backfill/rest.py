"""What the archive lacks, through ccxt's REST clients (``ccxt.async_support``).

=========  ==============  ==========================================  ========  ======
venue      store kind      ccxt method                                 per page  rows
=========  ==============  ==========================================  ========  ======
coinbase   bar             fetch_ohlcv (Coinbase Exchange candles)     300       1 per interval *with trades*
binance    open_interest   fetch_open_interest_history (5m)            500       5 min, last 30 days only
binance    funding         fetch_funding_rate_history                  1000      1–8 h
bybit      open_interest   fetch_open_interest_history (5m)            200       5 min
bybit      funding         fetch_funding_rate_history                  200       1–8 h
okx        open_interest   fetch_open_interest_history (5m)            100       5 min
okx        funding         fetch_funding_rate_history                  100       1–8 h
=========  ==============  ==========================================  ========  ======

A series is fetched in windows that cannot hold more rows than one page (page size × the
smallest row spacing), each asked for with ``since`` and its last millisecond, so nothing is
skipped whatever order the venue returns rows in. Each window's rows are written to the store
as they arrive; the part of the window far enough in the past to be final (``settle_ns``) is
recorded in the manifest, so a later run starts after it. Coinbase returns no candle for an interval without trades:
none is invented, the missing minute stays a gap (``tapewatch status`` shows it as "no rows at
source" because the window was fetched).

Base URLs are ccxt's own ``urls["api"]``, overridden per venue by the config (``api_base``
rewrites every host, ``urls`` replaces single keys) through the constructor — never by editing
ccxt. Every response passes :func:`tapewatch.backfill.retry.check_status` first, so 429 /
418 / 5xx / truncated JSON follow the same policy as archive downloads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import polars as pl
from rich.markup import escape

from tapewatch.backfill.config import BackfillConfig, VenueConfig
from tapewatch.backfill.manifest import Entry, Manifest, Range, SeriesKey
from tapewatch.backfill.progress import BackfillProgress
from tapewatch.backfill.retry import (
    Banned, GiveUp, HTTPStatusError, Retrier, RetryPolicy, TransientError, Unreachable, VenueGate, check_status,
    unreachable_reason,
)
from tapewatch.errors import TapewatchError
from tapewatch.store import Store
from tapewatch.timeutil import NS_PER, interval_ns, ns_to_iso

MS = 1_000_000  # ns per ms


@dataclass(frozen=True)
class Venue:
    """A venue reachable through ccxt: our name, ccxt's id, the ccxt market types to load."""

    name: str
    ccxt_id: str
    market_types: tuple[str, ...] = ()


VENUES: dict[str, Venue] = {
    "binance": Venue("binance", "binance", ("linear",)),
    "coinbase": Venue("coinbase", "coinbaseexchange"),
    "bybit": Venue("bybit", "bybit", ("linear",)),
    "okx": Venue("okx", "okx", ("swap",)),
}


@dataclass(frozen=True)
class RestSource:
    """How one (venue, store kind) is read: ccxt method, page size, smallest row spacing (ns),
    the timeframe passed (OI), and the param that carries the window's end (``until``:
    last ms, inclusive; OKX funding's ``after``: exclusive)."""

    method: str
    page: int
    spacing: Callable[[str], int]
    timeframe: str | None = None
    until_param: str = "until"
    until_exclusive: bool = False
    recent_only: bool = False  # the venue keeps only config.oi_history_days of it


_FIVE_MIN = 5 * NS_PER["m"]


def _fixed(ns: int) -> Callable[[str], int]:
    return lambda _interval: ns


REST_SOURCES: dict[tuple[str, str], RestSource] = {
    ("coinbase", "bar"): RestSource("fetch_ohlcv", 300, interval_ns),
    ("binance", "open_interest"): RestSource("fetch_open_interest_history", 500, _fixed(_FIVE_MIN), "5m", recent_only=True),
    ("binance", "funding"): RestSource("fetch_funding_rate_history", 1000, _fixed(NS_PER["h"])),
    ("bybit", "open_interest"): RestSource("fetch_open_interest_history", 200, _fixed(_FIVE_MIN), "5m"),
    ("bybit", "funding"): RestSource("fetch_funding_rate_history", 200, _fixed(NS_PER["h"])),
    ("okx", "open_interest"): RestSource("fetch_open_interest_history", 100, _fixed(_FIVE_MIN), "5m"),
    ("okx", "funding"): RestSource("fetch_funding_rate_history", 100, _fixed(NS_PER["h"]), None, "after", True),
}
COINBASE_GRANULARITIES = ("1m", "5m", "15m", "1h", "6h", "1d")


def ccxt_symbol(symbol: str, market: str) -> str:
    """ccxt's symbol: ``BTC/USDT`` spot stays, a linear perpetual settles in its quote (``BTC/USDT:USDT``)."""
    if market == "perp" and ":" not in symbol:
        return f"{symbol}:{symbol.split('/')[1]}"
    return symbol


# -- ccxt clients ------------------------------------------------------------------------------
def rewrite_base(url: str, api_base: str) -> str:
    """``https://fapi.binance.com/fapi/v1`` → ``<api_base>/fapi.binance.com/fapi/v1``."""
    parts = urlsplit(url)
    return f"{api_base.rstrip('/')}/{parts.netloc}{parts.path}"


def override_urls(api: Any, cfg: VenueConfig) -> Any:
    """ccxt's ``urls["api"]`` (a string or a dict of strings) with the config's overrides applied."""
    if isinstance(api, dict):
        out = {k: (rewrite_base(v, cfg.api_base) if cfg.api_base and isinstance(v, str) else override_urls(v, cfg))
               for k, v in api.items()}
        unknown = set(cfg.urls) - set(out)
        if unknown:
            raise TapewatchError(f"config: unknown ccxt url key(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(sorted(out))}")
        return {**out, **cfg.urls}
    if isinstance(api, str) and cfg.api_base:
        return rewrite_base(api, cfg.api_base)
    return api


def _implode(api: Any, hostname: str | None) -> Any:
    if isinstance(api, dict):
        return {k: _implode(v, hostname) for k, v in api.items()}
    if isinstance(api, str) and hostname:
        return api.replace("{hostname}", hostname)
    return api


def _instrumented(cls: type, venue: str) -> type:
    """A subclass of a ccxt exchange class whose every response goes through our status policy first."""

    def on_rest_response(self: Any, code: int, reason: str, url: str, method: str, response_headers: dict,
                         response_body: str, request_headers: dict, request_body: Any) -> str:
        check_status(code, response_headers or {}, url, venue, response_body or "")
        if code >= 400:
            raise HTTPStatusError(f"HTTP {code} from {url}: {(response_body or '').strip()[:300]}")
        body = cls.on_rest_response(self, code, reason, url, method, response_headers, response_body,
                                    request_headers, request_body)
        if body and body[:1] in "[{":
            try:
                json.loads(body)
            except ValueError as exc:
                raise TransientError(f"truncated or malformed JSON from {url} ({len(body):,} bytes)") from exc
        return body

    return type(cls.__name__, (cls,), {"on_rest_response": on_rest_response})


def make_exchange(venue: Venue, cfg: VenueConfig, policy: RetryPolicy) -> Any:
    """A ccxt async client for ``venue``: URLs from ccxt's ``urls`` overridden by ``cfg``,
    timeouts from ``policy``, ccxt's own rate limiter on, only the needed market types loaded."""
    import ccxt.async_support as ccxt_async

    cls = getattr(ccxt_async, venue.ccxt_id)
    probe = cls()
    api = override_urls(_implode(probe.urls["api"], getattr(probe, "hostname", None)), cfg)
    options: dict[str, Any] = {}
    if venue.market_types:
        options["fetchMarkets"] = {**probe.options.get("fetchMarkets", {}), "types": list(venue.market_types)}
    options.update(cfg.options)
    conf: dict[str, Any] = {
        "urls": {"api": api},
        "timeout": int(policy.timeout * 1000),
        "enableRateLimit": True,
        "options": options,
    }
    if cfg.rate_limit_ms is not None:
        conf["rateLimit"] = cfg.rate_limit_ms
    return _instrumented(cls, venue.name)(conf)


async def _ccxt_call(fn: Callable[[], Any], venue: str) -> Any:
    """Await a ccxt call, turning ccxt's transport failures into TransientError (Unreachable for
    ``venue`` when its host cannot be reached at all) and its other errors into HTTPStatusError
    (not retried)."""
    import aiohttp
    import ccxt.async_support as ccxt_async

    try:
        return await fn()
    except TapewatchError:
        raise
    except ccxt_async.NetworkError as exc:
        reason = unreachable_reason(exc)
        if reason is not None:  # ccxt's message is "<id> <METHOD> <url>"
            url = next((w for w in str(exc).split() if "://" in w), "")
            raise Unreachable(venue, urlsplit(url).netloc or "its API", reason) from exc
        raise TransientError(f"{type(exc).__name__}: {exc}") from exc
    except ccxt_async.BaseError as exc:
        if isinstance(exc.__cause__, aiohttp.ClientPayloadError):
            raise TransientError(f"truncated body: {exc}") from exc
        raise HTTPStatusError(f"{type(exc).__name__}: {exc}") from exc


# -- rows --------------------------------------------------------------------------------------
def to_rows(key: SeriesKey, items: list[Any], market: dict[str, Any], lo: int, hi: int) -> pl.DataFrame:
    """ccxt's parsed result → store rows of ``key.kind`` with ``lo <= ts < hi`` (UTC ns)."""
    base = {"exchange": key.venue, "market": key.market, "symbol": key.symbol}
    records: list[dict[str, Any]] = []
    for it in items:
        if key.kind == "bar":
            ts, o, h, low, c, v = it[:6]
            rec = {"ts": int(ts) * MS, "interval": key.interval, "open": o, "high": h, "low": low, "close": c,
                   "volume": v}
        elif key.kind == "open_interest":
            amount = it.get("baseVolume")
            if amount is None and it.get("openInterestAmount") is not None:
                amount = float(it["openInterestAmount"]) * float(market.get("contractSize") or 1)
            rec = {"ts": int(it["timestamp"]) * MS, "oi": amount, "oi_value": it.get("openInterestValue")}
        else:  # funding
            mark = (it.get("info") or {}).get("markPrice")
            rec = {"ts": int(it["timestamp"]) * MS, "rate": it.get("fundingRate"),
                   "mark_price": float(mark) if mark not in (None, "") else None}
        if lo <= rec["ts"] < hi:
            records.append({**base, **rec})
    return pl.DataFrame(records) if records else pl.DataFrame()


# -- running -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RestTask:
    """Fetch ``[start, end)`` (UTC ns) of one series."""

    key: SeriesKey
    start: int
    end: int

    @property
    def source(self) -> RestSource:
        return REST_SOURCES[(self.key.venue, self.key.kind)]

    @property
    def window(self) -> int:
        return self.source.page * self.source.spacing(self.key.interval)


@dataclass
class RestReport:
    """What the REST part did: rows written, windows done, and what is missing and why."""

    rows: int = 0
    added: int = 0
    windows: int = 0
    missing: list[tuple[SeriesKey, list[Range], str]] = field(default_factory=list)  # series, ranges, why
    banned: dict[str, Banned] = field(default_factory=dict)
    unreachable: dict[str, Unreachable] = field(default_factory=dict)


def settle_ns(key: SeriesKey) -> int:
    """How far in the past a window must end before it is recorded as final."""
    spacing = REST_SOURCES[(key.venue, key.kind)].spacing(key.interval)
    return max(2 * spacing, 10 * NS_PER["m"])


def windows(task: RestTask, manifest: Manifest) -> Iterator[Range]:
    """The not-yet-completed windows of ``task``, in time order."""
    for a, b in manifest.uncovered(task.key, task.start, task.end):
        while a < b:
            yield a, min(a + task.window, b)
            a = min(a + task.window, b)


@dataclass
class RestBackfill:
    """Run REST tasks: venues in parallel, each venue's windows one after another (ccxt's rate
    limiter spaces them)."""

    store: Store
    manifest: Manifest
    config: BackfillConfig
    retrier: Retrier
    progress: BackfillProgress
    now_ns: int
    exchange_factory: Callable[[Venue, VenueConfig, RetryPolicy], Any] = make_exchange
    report: RestReport = field(default_factory=RestReport)

    async def run(self, tasks: list[RestTask]) -> RestReport:
        by_venue: dict[str, list[RestTask]] = {}
        for t in tasks:
            by_venue.setdefault(t.key.venue, []).append(t)
        self.progress.plan("rest", sum(sum(1 for _ in windows(t, self.manifest)) for t in tasks), "pages")
        await asyncio.gather(*(self._venue(VENUES[v], ts) for v, ts in by_venue.items()))
        return self.report

    async def _venue(self, venue: Venue, tasks: list[RestTask]) -> None:
        gate = VenueGate(venue.name)
        ex = self.exchange_factory(venue, self.config.venue(venue.name), self.retrier.policy)
        try:
            try:
                await self.retrier.run(lambda: _ccxt_call(ex.load_markets, venue.name), what=f"{venue.name} market list",
                                       gate=gate)
            except (GiveUp, Banned, Unreachable) as exc:
                self._give_up_all(venue, tasks, exc)
                return
            for i, task in enumerate(tasks):
                try:
                    await self._series(ex, gate, task)
                except (Banned, Unreachable) as exc:
                    self._give_up_all(venue, tasks[i:], exc)
                    return
        finally:
            await ex.close()

    def _give_up_all(self, venue: Venue, tasks: list[RestTask], exc: GiveUp | Banned | Unreachable) -> None:
        if isinstance(exc, Banned):
            self.report.banned[venue.name] = exc
        if isinstance(exc, Unreachable):
            self.report.unreachable[venue.name] = exc
        why = f"{exc.reason} (gave up after {exc.attempts} attempts)" if isinstance(exc, GiveUp) else str(exc)
        for t in tasks:
            left = self.manifest.uncovered(t.key, t.start, t.end)
            if left:
                self.report.missing.append((t.key, left, why))
                self.progress.missed("rest", sum(1 for _ in windows(t, self.manifest)))

    async def _series(self, ex: Any, gate: VenueGate, task: RestTask) -> None:
        src = task.source
        symbol = ccxt_symbol(task.key.symbol, task.key.market)
        spacing = src.spacing(task.key.interval)
        final_before = self.now_ns - settle_ns(task.key)
        final_before -= final_before % spacing
        todo = list(windows(task, self.manifest))
        for n, (a, b) in enumerate(todo):
            what = f"{task.key.label()} {ns_to_iso(a)} → {ns_to_iso(b)} (ccxt {ex.id}.{src.method})"
            try:
                items = await self.retrier.run(
                    lambda: _ccxt_call(lambda: self._fetch(ex, src, task, symbol, a, b), task.key.venue),
                    what=what, gate=gate)
            except GiveUp as exc:
                left = self.manifest.uncovered(task.key, a, task.end)
                self.report.missing.append((task.key, left, f"{exc.reason} (gave up after {exc.attempts} attempts)"))
                self.progress.log(f"[red]failed[/] {escape(str(exc))}")
                self.progress.missed("rest", len(todo) - n)
                return
            rows = to_rows(task.key, items, ex.market(symbol), a, b)
            written = await asyncio.to_thread(self.store.write, task.key.kind, rows)
            self.report.rows += written.offered
            self.report.added += written.added
            self.report.windows += 1
            final = min(b, final_before)
            if final > a:  # what can no longer change is done; a later run starts from there
                self.manifest.add(Entry(task.key, a, final, "rest", f"{ex.id}.{src.method}", "",
                                        written.offered, written.added))
            self.progress.done("rest")

    async def _fetch(self, ex: Any, src: RestSource, task: RestTask, symbol: str, a: int, b: int) -> list[Any]:
        since = a // MS
        last = (b // MS) if src.until_exclusive else (b - 1) // MS
        params = {src.until_param: last}
        method = getattr(ex, src.method)
        if src.method == "fetch_ohlcv":
            return await method(symbol, task.key.interval, since, src.page, params)
        if src.method == "fetch_open_interest_history":
            return await method(symbol, src.timeframe, since, src.page, params)
        return await method(symbol, since, src.page, params)
