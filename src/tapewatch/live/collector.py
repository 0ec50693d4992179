"""The collector: venue feeds kept connected, their rows flushed to the store at an interval.

Each feed parses its messages into one shared :class:`~tapewatch.sources.messages.Rows`;
every ``flush_interval`` seconds (and once more when the collector stops) the rows gathered
so far are appended with :meth:`Store.append` (a part file per partition, atomic; a flush costs
what it adds, not the size of the day), in a worker thread so that the event loop keeps
receiving meanwhile. The trade coverage the feeds' shared
:class:`~tapewatch.live.trades.TradeLedger` proved is written after the rows it covers, every
``coverage_every`` seconds, at once when a trade gap was resolved (so that a hole shows at the
next bar close), and on the last flush: one record per stream every 10 s rather than per flush
(a kill -9 leaves at most that much of the stored trades without coverage; the restart's
:attr:`TradeLedger.resume` carries the stream on from the last stored trade).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import aiohttp
import polars as pl

from tapewatch.live.connection import Backoff, ConnectionLog, VenueFeed, run_connection
from tapewatch.live.trades import TradeLedger, last_stored_trade
from tapewatch.sources.base import Batch
from tapewatch.sources.messages import Rows
from tapewatch.store import Store


@dataclass
class Collector:
    """Runs ``feeds`` (each built on :attr:`rows`) and flushes :attr:`rows` to ``store``."""

    store: Store
    flush_interval: float = 1.0
    stale_after: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    rows: Rows = field(default_factory=Rows)
    ledger: TradeLedger = field(default_factory=TradeLedger)  # the feeds' trade ids, gaps and coverage
    coverage_every: float = 10.0  # seconds between trade coverage writes
    written: dict[str, int] = field(default_factory=dict)  # rows written so far, per kind
    _writing: asyncio.Future[list[Batch]] | None = field(default=None, init=False, repr=False)
    _covered_at: float = field(default=0.0, init=False, repr=False)  # loop time of the last coverage write

    def __post_init__(self) -> None:
        if self.ledger.resume is None:  # a restart carries on from what the store holds
            self.ledger.resume = partial(last_stored_trade, self.store)

    async def flush(self, last: bool = False) -> list[Batch]:
        """Write the rows gathered since the last flush (and the coverage when due, or ``last``),
        one flush at a time, and return them. The write runs on (shielded) when the caller is
        cancelled; the next flush waits for it. Only taking the rows runs in the event loop:
        their frames are built in the worker thread too."""
        if self._writing is not None:
            await self._writing
        rows = self.rows.detach()
        now = asyncio.get_running_loop().time()
        due = last or self.ledger.resolved or now - self._covered_at >= self.coverage_every
        proved = self.ledger.coverage() if due else pl.DataFrame()
        self._covered_at = now if due else self._covered_at
        self._writing = asyncio.ensure_future(asyncio.to_thread(self._write, rows, proved))
        return await asyncio.shield(self._writing)

    def _write(self, rows: Rows, proved: pl.DataFrame) -> list[Batch]:
        batches = rows.batches()
        for b in batches:
            self.store.append(b.kind, b.rows)
            self.written[b.kind] = self.written.get(b.kind, 0) + b.rows.height
        if not proved.is_empty():
            self.store.append("coverage", proved)
        return batches

    async def run(self, session: aiohttp.ClientSession, feeds: list[tuple[VenueFeed, ConnectionLog]],
                  after: Callable[[list[Batch]], Awaitable[None]] | None = None,
                  polls: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        """Keep every feed connected and the REST ``polls`` running (each adds to :attr:`rows` until
        cancelled, e.g. :meth:`RestPoller.run`), flush at the interval until cancelled, then call
        ``after`` with the rows written; flush (and call ``after``) once more on the way out."""
        tasks = [asyncio.create_task(run_connection(session, f, log, self.stale_after, self.backoff)) for f, log in feeds]
        tasks += [asyncio.create_task(poll()) for poll in polls]
        try:
            while True:
                await asyncio.sleep(self.flush_interval)
                written = await self.flush()
                if after is not None:
                    await after(written)
        finally:
            for t in tasks:
                t.cancel()
            self.ledger.cancel()
            await asyncio.gather(*tasks, *self.ledger.tasks, return_exceptions=True)
            written = await self.flush(last=True)
            if after is not None:
                await after(written)
