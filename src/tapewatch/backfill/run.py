"""``tapewatch backfill``: plan what to fetch for a request, fetch it, report what is missing.

Sources by venue and kind (``--kinds``; ``metrics`` and ``oi`` are the same thing):

==========  ===========================================================================
binance     klines, aggtrades, trades, bookdepth: the public archive. ``oi``: the archive's
            ``metrics`` files, then ccxt ``fetch_open_interest_history`` for the last
            ``oi_history_days`` (30) days the archive does not hold yet. ``funding``: the
            archive's monthly ``fundingRate`` files, then ccxt ``fetch_funding_rate_history``
            for what they do not hold (the current month).
coinbase    klines: ccxt ``fetch_ohlcv`` (Coinbase Exchange candles, spot).
bybit, okx  oi, funding: ccxt (USDT-margined perpetual).
==========  ===========================================================================

Everything already completed (the manifest in the store) is skipped, so running the same
command again only tops the store up, and a run that was killed resumes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape

from tapewatch.backfill.archive import (
    DATASETS, KLINE_INTERVALS, VENUE as ARCHIVE_VENUE, ArchiveBackfill, ArchiveFile, ArchiveReport,
    imported_files, ns_day, plan_files, tidy_downloads,
)
from tapewatch.backfill.config import BackfillConfig, VenueConfig
from tapewatch.backfill.http import HttpClient
from tapewatch.backfill.manifest import Manifest, SeriesKey, describe_ranges
from tapewatch.backfill.progress import BackfillProgress
from tapewatch.backfill.rest import (
    COINBASE_GRANULARITIES, REST_SOURCES, RestBackfill, RestReport, RestTask, Venue, make_exchange,
)
from tapewatch.backfill.retry import Retrier, RetryPolicy, VenueGate
from tapewatch.errors import TapewatchError
from tapewatch.store import NS_PER_DAY, Store
from tapewatch.symbols import check_market, unify
from tapewatch.timeutil import NS_PER, interval_ns

KIND_NAMES = {
    "klines": "klines", "candles": "klines", "aggtrades": "aggtrades", "trades": "trades",
    "metrics": "oi", "oi": "oi", "open_interest": "oi", "bookdepth": "bookdepth",
    "funding": "funding", "fundingrate": "funding",
}
VENUE_KINDS: dict[str, tuple[str, ...]] = {
    "binance": ("klines", "aggtrades", "trades", "oi", "bookdepth", "funding"),
    "coinbase": ("klines",),
    "bybit": ("oi", "funding"),
    "okx": ("oi", "funding"),
}
DEFAULT_KINDS: dict[str, tuple[str, ...]] = {
    "binance": ("klines", "aggtrades", "oi", "bookdepth", "funding"),
    "coinbase": ("klines",),
    "bybit": ("oi", "funding"),
    "okx": ("oi", "funding"),
}
DEFAULT_MARKETS: dict[str, tuple[str, ...]] = {
    "binance": ("spot", "perp"), "coinbase": ("spot",), "bybit": ("perp",), "okx": ("perp",),
}
STORE_KIND = {"klines": "bar", "oi": "open_interest", "funding": "funding"}
ARCHIVE_DATASET = {"klines": "klines", "aggtrades": "aggtrades", "trades": "trades", "oi": "metrics",
                   "bookdepth": "bookdepth", "funding": "funding"}
PERP_ONLY = ("oi", "funding", "bookdepth")
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class BackfillRequest:
    """What to fill: times are UTC ns, ``end`` exclusive (None: up to now)."""

    exchange: str
    symbol: str
    start: int
    end: int | None = None
    markets: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    interval: str = "1m"
    recheck: bool = False


@dataclass
class Plan:
    """Archive files and REST ranges to fetch, and the requested combinations that do not exist."""

    archive: list[ArchiveFile] = field(default_factory=list)
    rest: list[RestTask] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_list(text: str | None) -> tuple[str, ...] | None:
    """``"spot, perp"`` → ``("spot", "perp")``; None or empty → None."""
    if not text:
        return None
    return tuple(p.strip().lower() for p in text.split(",") if p.strip())


def make_plan(req: BackfillRequest, config: BackfillConfig, manifest: Manifest, now_ns: int) -> Plan:
    """Validate ``req`` and list the work; raises TapewatchError on a request that cannot be met."""
    venue = req.exchange.lower()
    if venue not in VENUE_KINDS:
        raise TapewatchError(f"unknown exchange {req.exchange!r}; backfill knows {', '.join(VENUE_KINDS)}")
    symbol = unify(req.symbol)
    markets = tuple(check_market(m) for m in (req.markets or DEFAULT_MARKETS[venue]))
    if set(markets) - {"spot", "perp"}:
        raise TapewatchError("backfill covers the spot and perp (USDT-margined perpetual) markets, not dated futures")
    kinds: list[str] = []
    for k in req.kinds or DEFAULT_KINDS[venue]:
        if k not in KIND_NAMES:
            raise TapewatchError(f"unknown kind {k!r}; use {', '.join(sorted(set(KIND_NAMES)))}")
        if KIND_NAMES[k] not in kinds:
            kinds.append(KIND_NAMES[k])
    bad = [k for k in kinds if k not in VENUE_KINDS[venue]]
    if bad:
        raise TapewatchError(f"{venue} backfill has no {', '.join(bad)}; it has {', '.join(VENUE_KINDS[venue])}")
    if "aggtrades" in kinds and "trades" in kinds:
        raise TapewatchError("choose aggtrades or trades, not both: both become trade records and would count "
                             "the same volume twice")
    end = min(req.end if req.end is not None else now_ns, now_ns)
    if req.start >= end:
        raise TapewatchError("--start must be before --end (and before now)")
    _check_interval(venue, kinds, req.interval)
    plan = Plan()
    for market in markets:
        skipped = [k for k in kinds if (k in PERP_ONLY and market != "perp") or (venue == "coinbase" and market != "spot")]
        if skipped:
            plan.notes.append(f"{venue} has no {market} {', '.join(skipped)}; skipped")
        for kind in (k for k in kinds if k not in skipped):
            if venue == ARCHIVE_VENUE:
                _plan_archive(plan, req, manifest, market, kind, symbol, end, now_ns)
            if (venue, STORE_KIND.get(kind, "")) in REST_SOURCES:
                _plan_rest(plan, req, config, venue, market, kind, symbol, end, now_ns)
    return plan


def _check_interval(venue: str, kinds: list[str], interval: str) -> None:
    if "klines" not in kinds:
        return
    allowed = KLINE_INTERVALS if venue == ARCHIVE_VENUE else COINBASE_GRANULARITIES
    if interval not in allowed:
        raise TapewatchError(f"{venue} klines come in {', '.join(allowed)}; not {interval!r}")


def _plan_archive(plan: Plan, req: BackfillRequest, manifest: Manifest, market: str, kind: str, symbol: str,
                  end: int, now_ns: int) -> None:
    ds = DATASETS[ARCHIVE_DATASET[kind]]
    interval = req.interval if ds.interval else None
    first, last = ns_day(req.start), ns_day(end - 1)
    files = plan_files(ds, market, symbol, interval, first, last + _ONE_DAY, ns_day(now_ns), manifest)
    if req.recheck:
        seen = {f.path for f in files}
        files += [f for f in imported_files(manifest, ds, market, symbol, interval, first, last + _ONE_DAY)
                  if f.path not in seen]
    plan.archive.extend(files)


def _plan_rest(plan: Plan, req: BackfillRequest, config: BackfillConfig, venue: str, market: str, kind: str,
               symbol: str, end: int, now_ns: int) -> None:
    store_kind = STORE_KIND[kind]
    src = REST_SOURCES[(venue, store_kind)]
    interval = req.interval if store_kind == "bar" else ""
    start = req.start
    if store_kind == "bar":  # whole candles only; the one still open is not final
        step = interval_ns(interval)
        start -= start % step
        end -= end % step
    if src.recent_only:
        start = max(start, now_ns - config.oi_history_days * NS_PER_DAY + NS_PER["h"])
    if start < end:
        plan.rest.append(RestTask(SeriesKey(venue, market, store_kind, symbol, interval), start, end))


# -- outcome -----------------------------------------------------------------------------------
@dataclass
class BackfillReport:
    """The whole run: plan, archive and REST outcomes, and the messages that follow from them."""

    plan: Plan
    archive: ArchiveReport = field(default_factory=ArchiveReport)
    rest: RestReport = field(default_factory=RestReport)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed, nothing was left for a ban, and no REST range is missing."""
        return self.archive.complete and not self.rest.missing and not self.rest.banned

    @property
    def offline(self) -> bool:
        """True when every failure is a venue that could not be reached (no network, a wrong URL)."""
        venues_down = set(self.rest.unreachable)
        return bool(self.archive.unreachable or venues_down) and not self.archive.failed \
            and self.archive.banned is None and not self.rest.banned \
            and all(key.venue in venues_down for key, _, _ in self.rest.missing)

    @property
    def fetched_nothing(self) -> bool:
        """True when no archive file was imported and no REST page came back."""
        return not self.archive.imported and not self.rest.windows

    def offline_line(self) -> str:
        """All unreachable venues in one line: hosts grouped by reason, and what was not fetched."""
        down = [u for u in (self.archive.unreachable, *self.rest.unreachable.values()) if u is not None]
        by_reason: dict[str, list[str]] = {}
        for u in down:
            by_reason.setdefault(u.reason, []).append(u.host)
        reach = "; ".join(f"cannot reach {', '.join(dict.fromkeys(hosts))}: {why}" for why, hosts in by_reason.items())
        left = [f"{len(self.archive.not_attempted)} archive files"] if self.archive.not_attempted else []
        left += [f"{len(self.rest.missing)} REST series"] if self.rest.missing else []
        return f"{reach}; not fetched: {' and '.join(left) or 'nothing'} (what the store holds stays; run again to resume)"

    def problems(self) -> list[str]:
        """One clear line per failure, each naming what is missing (one line in all when offline)."""
        if self.offline:
            return [self.offline_line()]
        out = [msg for _, msg in self.archive.failed]
        for stop in (self.archive.banned, self.archive.unreachable):
            if stop is not None:
                out.append(f"{stop}; not fetched: {describe_files(self.archive.not_attempted)}")
        for key, ranges, reason in self.rest.missing:
            out.append(f"missing {key.label()} {describe_ranges(ranges)}: {reason}")
        return out

    def warnings(self) -> list[str]:
        """Things to know that are not failures: files not (yet) published, skipped combinations."""
        out = list(self.plan.notes)
        if self.archive.not_published:
            out.append(f"not in the archive (HTTP 404; not published yet, or before the listing): "
                       f"{describe_files(self.archive.not_published)}")
        return out

    def summary(self) -> str:
        a, r = self.archive, self.rest
        parts = [f"{len(a.imported)} archive files imported ({a.rows_added:,} new rows)"]
        if a.held:
            parts.append(f"{len(a.held)} already held")
        if a.unchanged:
            parts.append(f"{len(a.unchanged)} unchanged since imported")
        if r.windows:
            parts.append(f"{r.windows} REST pages ({r.added:,} new rows)")
        return ", ".join(parts) + f" in {self.seconds:.1f}s"


def describe_files(files: list[ArchiveFile], limit: int = 6) -> str:
    """Files grouped per series into runs of consecutive periods: ``binance perp BTC/USDT klines 1m
    2024-01-01 → 2024-01-03 (3 daily files)``."""
    groups: dict[tuple[str, str], list[ArchiveFile]] = {}
    for f in sorted(files, key=lambda f: (f.series_label(), f.period, f.first)):
        groups.setdefault((f.series_label(), f.period), []).append(f)
    runs: list[str] = []
    for (series, period), fs in groups.items():
        run = [fs[0]]
        for f in fs[1:] + [None]:  # type: ignore[list-item]
            if f is not None and f.first == run[-1].end:
                run.append(f)
                continue
            span = run[0].stamp if len(run) == 1 else f"{run[0].stamp} → {run[-1].stamp}"
            runs.append(f"{series} {span} ({len(run)} {period} file{'s' if len(run) > 1 else ''})")
            if f is not None:
                run = [f]
    text = "; ".join(runs[:limit])
    return text + (f"; and {len(runs) - limit} more runs" if len(runs) > limit else "")


# -- running -----------------------------------------------------------------------------------
async def backfill_async(
    req: BackfillRequest,
    store: Store,
    config: BackfillConfig,
    console: Console | None = None,
    now_ns: int | None = None,
    retrier: Retrier | None = None,
    exchange_factory: Callable[[Venue, VenueConfig, RetryPolicy], Any] = make_exchange,
) -> BackfillReport:
    """Run a backfill; ``console`` shows the progress bar (None: no bar). ``now_ns``,
    ``retrier`` (its sleep and randomness) and ``exchange_factory`` are injectable for tests."""
    t0 = time.monotonic()
    now_ns = now_ns if now_ns is not None else time.time_ns()
    manifest = Manifest.load(store.root)
    plan = make_plan(req, config, manifest, now_ns)
    if not config.keep_files:
        tidy_downloads(store.root, manifest)
    report = BackfillReport(plan)
    with BackfillProgress(console) as progress:
        retrier = replace(retrier or Retrier(config.retry),
                          on_retry=lambda what, err, wait: progress.log(f"[yellow]retrying[/] in {wait:.1f}s: "
                                                                        f"{escape(str(err))}"))
        if plan.archive:
            gate = VenueGate("binance archive")
            async with HttpClient("binance archive", retrier, gate) as http:
                max_bytes = int(config.max_file_mb * 1e6) if config.max_file_mb else None
                run = ArchiveBackfill(store, manifest, http, config.archive_url, progress, config.concurrency,
                                      config.keep_files, req.recheck, max_bytes)
                report.archive = await run.run(plan.archive)
        if plan.rest:
            rest = RestBackfill(store, manifest, config, retrier, progress, now_ns, exchange_factory)
            report.rest = await rest.run(plan.rest)
    report.seconds = time.monotonic() - t0
    return report


def run_backfill(req: BackfillRequest, store: Store, config: BackfillConfig, console: Console | None = None,
                 **kwargs: Any) -> BackfillReport:
    """:func:`backfill_async` from synchronous code."""
    return asyncio.run(backfill_async(req, store, config, console, **kwargs))
