"""Backfill the store from the real exchanges: the Binance public archive and ccxt REST.

``tapewatch backfill`` (tapewatch.commands.backfill) drives :func:`run.run_backfill`;
``tapewatch status`` shows the result per series with its gaps (:mod:`gaps`).

Modules: :mod:`archive` (data.binance.vision files), :mod:`rest` (ccxt), :mod:`http` and
:mod:`retry` (downloads, 429 / 418 / 5xx policy), :mod:`manifest` (what is done),
:mod:`gaps` (what the store holds), :mod:`config` (TOML overrides), :mod:`progress`.
"""

from __future__ import annotations

from tapewatch.backfill.config import BackfillConfig, VenueConfig, load_config
from tapewatch.backfill.gaps import SeriesStatus, gaps_table, series_status
from tapewatch.backfill.manifest import Manifest, SeriesKey
from tapewatch.backfill.retry import RetryPolicy
from tapewatch.backfill.run import BackfillReport, BackfillRequest, backfill_async, make_plan, run_backfill

__all__ = [
    "BackfillConfig", "BackfillReport", "BackfillRequest", "Manifest", "RetryPolicy", "SeriesKey", "SeriesStatus",
    "VenueConfig", "backfill_async", "gaps_table", "load_config", "make_plan", "run_backfill", "series_status",
]
