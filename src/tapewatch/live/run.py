"""``tapewatch live``'s loop: collect, keep book depth, close bars with the batch code, raise alerts.

The collector (:mod:`tapewatch.live.collector`) writes the rows received every flush interval;
after each flush (and the last one, on the way out):

1. book_depth is brought up to date for every book that got deltas
   (:func:`tapewatch.book.derive.update_book`, resuming from its saved engine state);
2. the venue clock moves on: by the wall time since the last flush, at most two flush intervals
   (so a silent market still closes bars), and at least to the latest stored trade time (UTC ns;
   so a replay of old traffic runs on its own clock). The cap is what keeps a stalled process
   honest: when the loop or a feed falls behind (a busy CPU, a long close), the messages sent
   meanwhile are still in the socket, and a clock that ran on with the wall would close their bars
   before they are stored; capped, it waits for their trades to move it;
3. every bar of ``interval`` whose close lies ``grace`` seconds or more behind the venue clock is
   closed (but no bar from the first trade followed by a trade-id gap still being recovered by
   REST on, see :mod:`tapewatch.live.trades`): its signals are computed by :func:`~tapewatch.signals.compute.compute_signals` on the
   stored data (the batch code from the first bar to close, reading only the factors' declared
   warm-up before it, ``now`` = the last close; the running CVD columns are then continued from
   the previous close by :func:`~tapewatch.signals.resume.continue_cumulative`, so they run from
   the session's first bar, and a close costs the same however long the session), its row goes through
   :meth:`AlertEngine.on_bar`, and each alert is sent by :meth:`Dispatcher.emit` as its own task,
   so a slow or failing webhook never delays collection. One status line per closed bar.

There is no separate live formula: a bar's live row is the batch row of the same stored data
(``compute_signals`` from the session's first bar to that bar's close), bit for bit.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import polars as pl

from tapewatch.alerts.alert import Alert
from tapewatch.alerts.engine import AlertEngine
from tapewatch.alerts.sinks import Dispatcher
from tapewatch.book.derive import BookKey, merge_spans, touched_books, update_book
from tapewatch.config import Config, MarketRef, SeriesRef
from tapewatch.display import fmt_number
from tapewatch.errors import TapewatchError
from tapewatch.live.binance import API_KEY_ENV, BinanceFeed
from tapewatch.live.coinbase import CoinbaseFeed
from tapewatch.live.collector import Collector
from tapewatch.live.connection import ConnectionLog, VenueFeed
from tapewatch.live.endpoints import Endpoints
from tapewatch.signals.base import SIDES, ns_of
from tapewatch.signals.compute import compute_signals
from tapewatch.signals.resume import Totals, continue_cumulative
from tapewatch.sources.base import Batch
from tapewatch.study.settings import StudySettings
from tapewatch.study.wiring import track_records
from tapewatch.timeutil import interval_ns, ns_to_iso

BINANCE_STREAMS = {"spot": ("depth@100ms", "trade"), "perp": ("depth@0ms", "trade")}
COINBASE_CHANNELS = ["level2", "matches"]
Say = Callable[[str], None]


def markets(cfg: Config, base: str) -> list[MarketRef]:
    """The markets the signals of ``base`` read (spot, perp, the premium venues, the book sources),
    each once, in that order."""
    refs = [cfg.markets.spot, cfg.markets.perp, cfg.premium.a, cfg.premium.b, *cfg.book.sources]
    return list(dict.fromkeys(refs))


def usdt_usd_markets(cfg: Config) -> list[SeriesRef]:
    """The USDT/USD series the premium reads (``premium.usdt_usd``): its USDT/USD-adjusted columns
    are computed under either basis (the condition with ``basis = "usdt_adjusted"``, the context
    shown beside the raw index otherwise), so they are collected whenever configured."""
    return list(dict.fromkeys(cfg.premium.usdt_usd))


def build_feeds(cfg: Config, base: str, endpoints: Endpoints, session: aiohttp.ClientSession,
                collector: Collector, say: Say, env: Mapping[str, str] | None = None) -> list[VenueFeed]:
    """One feed per venue market of :func:`markets` (Binance spot / USD-M, Coinbase Exchange spot),
    plus the trades of the :func:`usdt_usd_markets` on those venues (Binance ``trade`` streams on
    the market's connection; Coinbase ``matches`` on a connection of their own, so that their book
    is not collected), on the collector's rows and trade ledger, their recovery lines said through
    ``say``; a market of another venue is named in a line through ``say`` and not collected. The
    Binance API key (USD-M trade recovery) is ``TAPEWATCH_BINANCE_API_KEY`` of ``env`` (default:
    the environment)."""
    env = os.environ if env is None else env
    binance: dict[str, list[str]] = {}
    coinbase: list[str] = []
    rates: list[str] = []  # Coinbase USDT/USD products: matches only
    wanted = [(ref.describe(base), ref.exchange, ref.market, base, ref.quote, False) for ref in markets(cfg, base)]
    for rate in usdt_usd_markets(cfg):
        asset, quote = rate.symbol.split(":")[0].split("/")
        wanted.append((rate.describe(), rate.exchange, rate.market, asset, quote, True))
    for name, exchange, market, asset, quote, trades_only in wanted:
        if exchange == "binance" and market in BINANCE_STREAMS:
            streams = ("trade",) if trades_only else BINANCE_STREAMS[market]
            binance.setdefault(market, []).extend(f"{asset}{quote}".lower() + f"@{s}" for s in streams)
        elif exchange == "coinbase" and market == "spot":
            (rates if trades_only else coinbase).append(f"{asset}-{quote}".upper())
        else:
            say(f"not collected: {name} (live collects Binance spot and USD-M, and Coinbase spot)")
    feeds: list[BinanceFeed | CoinbaseFeed] = [
        BinanceFeed(m, s, endpoints.of("binance", m), session, collector.rows, ledger=collector.ledger,
                    api_key=env.get(API_KEY_ENV) or None) for m, s in binance.items()]
    for products, channels in ((coinbase, COINBASE_CHANNELS), (rates, ["matches"])):
        if products:
            feeds.append(CoinbaseFeed(products, channels, endpoints.of("coinbase", "spot"), collector.rows,
                                      session, collector.ledger))
    for feed in feeds:
        feed.log.say = say
    return list(feeds)


@dataclass
class LiveRunner:
    """Collects ``base``'s markets into the collector's store and closes bars of ``interval``."""

    collector: Collector
    base: str
    interval: str
    cfg: Config
    settings: StudySettings
    dispatcher: Dispatcher
    say: Say
    grace: float = 2.0  # seconds the venue clock must be past a bar's close before it is closed
    frames: list[pl.DataFrame] = field(default_factory=list)  # the signal rows of each closed bar
    alerts: list[Alert] = field(default_factory=list)
    venue: int | None = None  # the venue clock, UTC ns (None before the first trade)
    _wall: int = 0  # monotonic ns of the last clock move
    next_bar: int | None = None  # open of the first bar not closed yet, UTC ns
    cvd: Totals = field(default_factory=dict)  # the running CVD columns at the last closed bar
    _sending: set[asyncio.Task[Any]] = field(default_factory=set)
    _alert_session: aiohttp.ClientSession | None = None
    engine: AlertEngine | None = None  # built on the context of the first signals computed
    _closing: asyncio.Future[list[tuple[str, list[Alert]]]] | None = None

    def __post_init__(self) -> None:
        self.step = interval_ns(self.interval)

    @property
    def bars_closed(self) -> int:
        """Bars closed so far."""
        return sum(f.height for f in self.frames)

    async def run(self, feeds: list[tuple[VenueFeed, ConnectionLog]], session: aiohttp.ClientSession,
                  polls: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        """Collect (``feeds`` and the REST ``polls``, see :meth:`Collector.run`) until cancelled; on
        the way out the last rows are flushed and processed, and the alerts being sent are given up
        to the alert timeout to finish."""
        async with aiohttp.ClientSession() as alert_session:
            self._alert_session = alert_session
            try:
                await self.collector.run(session, feeds, self.after_flush, polls)
            finally:
                if self._sending:
                    await asyncio.wait(self._sending, timeout=self.cfg.alerts.timeout)

    async def after_flush(self, batches: list[Batch]) -> None:
        """Books, clock and bar closes after one flush (see the module docstring)."""
        spans: dict[BookKey, tuple[int, int]] = {}
        for b in batches:
            if b.kind == "book_delta" and b.rows.height:
                spans = merge_spans(spans, touched_books(b.rows))
        self._tick(time.monotonic_ns(), [b.rows for b in batches if b.kind == "trade" and b.rows.height])
        if spans:
            await asyncio.to_thread(self._update_books, spans)
        if self.venue is None or self.next_bar is None:
            return
        limit = self.venue - int(self.grace * 1e9)
        pending = self.collector.ledger.pending_from()
        if pending is not None:  # trades after it may still come by REST: those bars wait
            limit = min(limit, pending)
        end = limit - limit % self.step  # the close of the last bar closed by now
        await self.close_bars(end)

    def _tick(self, wall: int, trades: list[pl.DataFrame]) -> None:
        """Move the venue clock at monotonic time ``wall`` (ns) past the ``trades`` just stored."""
        if self.venue is not None:
            self.venue += min(wall - self._wall, int(2e9 * self.collector.flush_interval))
        self._wall = wall
        if not trades:
            return
        ts = pl.concat([t.get_column("ts").cast(pl.Datetime("ns", "UTC")).dt.epoch("ns") for t in trades])
        first, last = int(ts.min()), int(ts.max())  # type: ignore[arg-type]
        self.venue = last if self.venue is None else max(self.venue, last)
        if self.next_bar is None:  # the session's first bar: that of its first trade
            self.next_bar = first - first % self.step

    def _update_books(self, spans: dict[BookKey, tuple[int, int]]) -> None:
        for key in sorted(spans):
            update_book(self.collector.store, key, spans[key][0], append=True)

    async def close_bars(self, end: int) -> None:
        """Close the bars opening from :attr:`next_bar` to ``end``: signals, status lines, alerts.
        The work runs in a thread and is shielded: a cancel (Ctrl-C) lets it finish, and the
        closing on the way out waits for it, so no bar is closed twice or half."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
        if self.next_bar is None or end <= self.next_bar:
            return
        self._closing = asyncio.ensure_future(asyncio.to_thread(self._close, self.next_bar, end))
        self._closing.add_done_callback(self._publish)
        await asyncio.shield(self._closing)

    def _close(self, start: int, end: int) -> list[tuple[str, list[Alert]]]:
        """(In a thread) the signals of the bars in [start, end) and each bar's status line and alerts."""
        self.next_bar = end
        try:  # the warm-up before `start` is read by compute_signals itself (registry.warmup_bars)
            sig = compute_signals(self.collector.store, self.base, self.interval, start, end, self.cfg, end)
        except TapewatchError as exc:
            return [(f"{self.base} {self.interval} bars to {ns_to_iso(end)} UTC: no signals ({exc})", [])]
        engine = self.engine = self.engine or AlertEngine(sig.context, self._record)
        frame, self.cvd = continue_cumulative(sig.frame, self.cvd)
        out = [(self.status(row), engine.on_bar(row)) for row in frame.iter_rows(named=True)]
        self.frames.append(frame)
        return out

    def _publish(self, done: asyncio.Future[list[tuple[str, list[Alert]]]]) -> None:
        """(In the loop) print the closed bars' lines and send their alerts, each as its own task."""
        if done.cancelled() or done.exception() is not None:
            return
        for line, alerts in done.result():
            self.say(line)
            for alert in alerts:
                self.alerts.append(alert)
                assert self._alert_session is not None
                task = asyncio.create_task(self.dispatcher.emit(self._alert_session, alert))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    def _record(self, side: str, ts: int) -> Any:
        """The point-in-time track record of an event at bar ``ts`` (stored history before its close)."""
        return track_records(self.collector.store, self.base, self.interval, self.cfg, self.settings,
                             ts + self.step).at(side, ts)  # type: ignore[arg-type]

    def status(self, row: dict[str, Any]) -> str:
        """``BTC 10s bar 2024-08-08 23:54:20 closed · close 60,123.5 · distribution no · accumulation n/a``."""
        ns = ns_of(row["ts"]) or 0
        close = "n/a" if row.get("close") is None else fmt_number(row["close"])
        sides = " · ".join(f"{s} {'n/a' if row.get(s) is None else ('yes' if row[s] else 'no')}" for s in SIDES)
        written = ", ".join(f"{n:,} {k}" for k, n in sorted(self.collector.written.items()))
        return f"{self.base} {self.interval} bar {ns_to_iso(ns)} closed · close {close} · {sides} · stored {written}"
