"""Pytest fixtures and helpers of the backfill tests (import the fixtures into a test module)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from fakevenue import netguard
from fakevenue.server import FakeVenue
from tapewatch.backfill.config import BackfillConfig, VenueConfig
from tapewatch.backfill.rest import VENUES
from tapewatch.backfill.retry import Retrier, RetryPolicy
from tapewatch.backfill.run import BackfillReport, BackfillRequest, run_backfill
from tapewatch.store import Store

# tiny waits: the suite stays fast; Retry-After values are recorded, not slept
FAST_RETRY = RetryPolicy(base_delay=0.001, max_delay=0.004, max_attempts=5, timeout=2.0, max_retry_after=120.0)


@pytest.fixture
def venue() -> Iterator[FakeVenue]:
    """The fake exchanges on 127.0.0.1:<free port>."""
    fv = FakeVenue().start()
    yield fv
    fv.stop()


@pytest.fixture
def recordings(shared: Path) -> Path:
    return shared / "cryptofeed-recordings"


def config_for(fv: FakeVenue, **changes: Any) -> BackfillConfig:
    """Archive and every venue's ccxt URLs pointed at the fake; fast retries."""
    venues = {name: VenueConfig(api_base=fv.url, rate_limit_ms=1) for name in VENUES}
    return replace(BackfillConfig(archive_url=fv.url, retry=FAST_RETRY, venues=venues), **changes)


@dataclass
class RecordingSleep:
    """An asyncio sleep that records what was asked and sleeps at most 1 ms."""

    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(min(seconds, 0.001))


def run(fv: FakeVenue, store: Store, req: BackfillRequest, now_ms: int, sleep: RecordingSleep | None = None,
        console: Any = None, **config_changes: Any) -> BackfillReport:
    """One backfill against the fake, with ``now`` fixed and a recording sleep."""
    cfg = config_for(fv, **config_changes)
    retrier = Retrier(cfg.retry, sleep=sleep or RecordingSleep(), rng=random.Random(7))
    return run_backfill(req, store, cfg, console, now_ns=now_ms * 1_000_000, retrier=retrier)
