"""Trade-id continuity of the live feeds: missed trades fetched by REST, the rest recorded as holes.

Binance ``@trade`` ids and Coinbase ``match`` trade_ids are consecutive per symbol / product.
:class:`TradeLedger` keeps, per (exchange, market, symbol), the last id seen; a trade whose id is
more than one past it (after a reconnect, a dropped message, a stale stream) opens a
:class:`Gap` of the ids in between. :class:`Recovery` fills each gap in a background task (message
handling never waits for it) from the venue's REST trades, paged by the venue's pager; the pages
are parsed by the importers' REST parsers and only rows of the missing ids are kept, so a
recovered row equals an imported row of the same trade (``local_ts`` = the REST answer's
receive time). A request that fails is tried again after a backoff, ``attempts`` times in all
(429 / 418 are waited out for their Retry-After first, see :mod:`tapewatch.live.rest`).

Coverage (:mod:`tapewatch.coverage`, source ``trade``, origin ``live``): from a stream's first
trade on, the ledger proves every trade up to its last one. What cannot be recovered (REST
errors after the retries, ids the venue no longer serves, a missing API key) is a hole from
1 ns after the last trade held before the missing ids to the first trade held after them
(``[before + 1, after)``, UTC ns, as an import proves ``[first, last + 1)`` of a file), so bars
over it are not built from the incomplete trades and ``tapewatch status`` lists it. Coverage
past a gap still being recovered is written once it is resolved. One line per recovery or lost
span goes through the feed's :class:`~tapewatch.live.connection.FeedLog`.

Restarts: a stream's first trade is checked against the last trade the store holds for it
(:func:`last_stored_trade`), so the trades a killed or stopped collector did not store (its last
flush interval, the time it was down) are a gap like any other and fetched by REST, up to
``RESUME_MAX_IDS`` ids; a longer outage is left as a hole (no coverage over it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import aiohttp
import polars as pl

from tapewatch import coverage
from tapewatch.live.connection import Backoff, FeedLog
from tapewatch.live.rest import Reply, get_json
from tapewatch.sources.messages import Context, Key, MessageError, Rows
from tapewatch.store import NS_PER_DAY, Store
from tapewatch.timeutil import ns_to_iso

ORIGIN = "live"
ATTEMPTS = 3  # REST tries per page before a gap is given up
RESUME_MAX_IDS = 100_000  # a restart's gap up to this many ids is fetched (100 pages of Binance spot)
PENDING, RECOVERED, LOST = "pending", "recovered", "lost"


class RecoveryError(Exception):
    """A gap cannot be filled; ``reason`` is the one-line cause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Gap:
    """Missing trade ids ``lo``..``hi`` (inclusive) of ``key``, between the held trades stamped
    ``before`` and ``after`` (UTC ns); ``state`` pending, recovered or lost."""

    key: Key
    lo: int
    hi: int
    before: int
    after: int
    state: str = PENDING

    def describe(self) -> str:
        """``binance spot BTC/USDT trade ids 5–9``."""
        ids = f"id {self.lo}" if self.lo == self.hi else f"ids {self.lo}–{self.hi}"
        return f"{self.key.exchange} {self.key.market} {self.key.symbol} trade {ids}"


@dataclass
class _Stream:
    last_id: int
    last_ts: int
    start: int  # coverage from here on is not written yet (UTC ns)
    gaps: list[Gap] = field(default_factory=list)


@dataclass
class TradeLedger:
    """Per stream the last trade id seen, its open gaps, and the coverage they leave to write."""

    streams: dict[Key, _Stream] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # the recoveries running
    resolved: bool = False  # a gap was resolved since the last coverage() call
    resume: Callable[[Key], tuple[int, int] | None] | None = None  # a stream's last stored trade (id, UTC ns)

    def resolve(self, gap: Gap, state: str) -> None:
        """Mark ``gap`` recovered or lost (its coverage is written at the next coverage() call)."""
        gap.state = state
        self.resolved = True

    def cancel(self) -> None:
        """Stop the running recoveries (collection is over); their gaps stay pending, unwritten."""
        for task in self.tasks:
            task.cancel()

    def seen(self, key: Key, trade_id: int, ts: int) -> Gap | None:
        """A trade received on the stream (id, UTC ns): the gap it opens, if any. An id at or
        below the last one (a repeat) changes nothing."""
        s = self.streams.get(key)
        if s is None:
            stored = self.resume(key) if self.resume is not None else None
            if stored is None or not stored[0] < trade_id <= stored[0] + 1 + RESUME_MAX_IDS:
                self.streams[key] = _Stream(trade_id, ts, ts)
                return None
            s = self.streams[key] = _Stream(stored[0], stored[1], stored[1])  # carry on from the store
        if trade_id <= s.last_id:
            return None
        gap = Gap(key, s.last_id + 1, trade_id - 1, s.last_ts, ts) if trade_id > s.last_id + 1 else None
        if gap is not None:
            s.gaps.append(gap)
        s.last_id, s.last_ts = trade_id, ts
        return gap

    def pending_from(self) -> int | None:
        """The time (UTC ns) of the earliest trade followed by a gap still being recovered: bars
        from there on are not complete yet. None when nothing is pending."""
        times = [g.before for s in self.streams.values() for g in s.gaps if g.state == PENDING]
        return min(times) if times else None

    def coverage(self) -> pl.DataFrame:
        """The coverage records proved since the last call: per stream up to its first pending
        gap, a lost gap leaving a hole ``[before + 1, after)``."""
        spans: list[tuple[str, str, str, int, int]] = []
        self.resolved = False
        for key, s in self.streams.items():
            cursor, blocked = s.start, False
            for gap in s.gaps:
                if gap.state == PENDING:
                    spans.append((key.exchange, key.market, key.symbol, cursor, gap.before + 1))
                    cursor, blocked = gap.before, True
                    break
                if gap.state == LOST:
                    spans.append((key.exchange, key.market, key.symbol, cursor, gap.before + 1))
                    cursor = gap.after
            if not blocked:
                spans.append((key.exchange, key.market, key.symbol, cursor, s.last_ts + 1))
                cursor = s.last_ts
            s.gaps = [g for g in s.gaps if g.state == PENDING]
            s.start = cursor
        return coverage.trade_spans([sp for sp in spans if sp[4] > sp[3]], ORIGIN)


def last_stored_trade(store: Store, key: Key) -> tuple[int, int] | None:
    """The highest numeric trade id ``store`` holds for ``key`` on its last stored day, and that
    trade's time (UTC ns); None when it holds none."""
    files = store.files("trade", key.exchange, key.market, key.symbol)
    if not files:
        return None
    day = date.fromisoformat(files[-1].parent.name.removeprefix("date="))
    rows = store.read("trade", key.exchange, key.market, key.symbol, start=(day - date(1970, 1, 1)).days * NS_PER_DAY)
    ids = rows.select(pl.col("trade_id").cast(pl.Int64, strict=False).alias("id"),
                      pl.col("ts").dt.epoch("ns")).drop_nulls().sort("id")
    return None if ids.is_empty() else (int(ids["id"][-1]), int(ids["ts"][-1]))


Pager = Callable[["Recovery", Gap], AsyncIterator[Rows]]


@dataclass
class Recovery:
    """One feed's trade recovery: :meth:`check` each message's parsed rows; gaps are filled by
    ``pages`` (the venue's pager: parsed REST pages for a gap) into ``rows``."""

    ledger: TradeLedger
    rows: Rows
    log: FeedLog
    pages: Pager
    session: aiohttp.ClientSession | None
    backoff: Backoff = field(default_factory=Backoff)
    attempts: int = ATTEMPTS

    def check(self, parsed: Rows) -> None:
        """Note the trades of one parsed message; start a recovery task for each gap they open."""
        for r in parsed.of("trade"):
            gap = self.ledger.seen(Key(r["exchange"], r["market"], r["symbol"]), int(r["trade_id"]), r["ts"])
            if gap is not None:
                task = asyncio.get_running_loop().create_task(self.fill(gap))
                self.ledger.tasks.add(task)
                task.add_done_callback(self.ledger.tasks.discard)

    async def get(self, url: str, params: Mapping[str, str], headers: Mapping[str, str] | None = None) -> Reply:
        """One REST page, tried ``attempts`` times (after a backoff from the second on);
        RecoveryError with the last failure's reason when none succeeds."""
        if self.session is None:
            raise RecoveryError("the feed has no REST session")
        reply = Reply(reason="not tried")
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff.delay(attempt - 1))
            reply = await get_json(self.session, url, params, self.log, headers)
            if reply.ok:
                return reply
        raise RecoveryError(f"{reply.reason} after {self.attempts} tries")

    async def page(self, url: str, params: Mapping[str, str], parse: Callable[[Any, str, Context, Rows], None],
                   ctx: Context, headers: Mapping[str, str] | None = None) -> tuple[Rows, Reply]:
        """One REST page of trades (see :meth:`get`) parsed by ``parse`` (an importer's
        ``parse_rest``, kind ``trades``) with ``ctx``; rows stamped with the answer's receive time."""
        reply = await self.get(url, params, headers)
        rows = Rows()
        rows.local_ts = reply.recv_ns
        try:
            parse(reply.body, "trades", ctx, rows)
        except MessageError as exc:
            raise RecoveryError(f"malformed trades answer: {exc.reason}") from None
        return rows, reply

    async def fill(self, gap: Gap) -> None:
        """Fetch the gap's trades; keep those of its ids; resolve it as recovered or lost."""
        found: dict[int, dict[str, Any]] = {}
        kept = Rows()
        reason = ""
        try:
            async for page in self.pages(self, gap):
                page.keep("trade", lambda r: gap.lo <= int(r["trade_id"]) <= gap.hi and int(r["trade_id"]) not in found)
                found.update((int(r["trade_id"]), r) for r in page.of("trade"))
                kept.extend(page)
        except RecoveryError as exc:
            reason = exc.reason
        except Exception as exc:  # noqa: BLE001 — a gap left pending would hold every later bar close
            reason = f"recovery failed ({type(exc).__name__}: {exc})"
        self.rows.extend(kept)
        missing = [i for i in range(gap.lo, gap.hi + 1) if i not in found]
        if not missing:
            self.ledger.resolve(gap, RECOVERED)
            self.log.recovered += 1
            self.log.recovered_trades += len(found)
            self.log.note(f"{gap.describe()}: missed on the stream, {len(found):,} recovered by REST")
            return
        low, high = missing[0], missing[-1]
        gap.before = found[low - 1]["ts"] if low - 1 in found else gap.before
        gap.after = found[high + 1]["ts"] if high + 1 in found else gap.after
        self.ledger.resolve(gap, LOST)
        self.log.lost += 1
        why = reason or "the venue did not serve them"
        self.log.note(f"{gap.describe()}: {len(missing):,} trades lost ({why}); coverage has a hole "
                      f"{ns_to_iso(gap.before)} → {ns_to_iso(gap.after)} UTC")
