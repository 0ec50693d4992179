"""The alerts of the stored signals over a range, bar by bar (what ``tapewatch alerts`` sends).

The signals are computed once (:func:`tapewatch.signals.compute.compute_signals`) from the
cool-down before ``since`` on, so that a run of firing bars that began before ``since`` is not
alerted again; every bar then goes through :class:`~tapewatch.alerts.engine.AlertEngine` in time
order, and alerts on bars opening before ``since`` are dropped. Each event carries this
configuration's point-in-time track record (:func:`tapewatch.study.wiring.track_records`: only
events whose outcome was known before it).
"""

from __future__ import annotations

from tapewatch.alerts.alert import Alert
from tapewatch.alerts.engine import AlertEngine
from tapewatch.config import Config, to_bars
from tapewatch.signals.compute import compute_signals
from tapewatch.store import Store
from tapewatch.study.settings import StudySettings
from tapewatch.study.wiring import track_records
from tapewatch.timeutil import interval_ns


def batch_alerts(
    store: Store,
    base: str,
    interval: str,
    since: int | None,
    end: int | None,
    cfg: Config,
    settings: StudySettings,
) -> list[Alert]:
    """Alerts on bars opening in [since, end) (UTC ns; None = all stored), oldest first."""
    step = interval_ns(interval)
    # the cool-down before `since`, plus one bar for the crossings' previous state
    warm = None if since is None else since - (to_bars(cfg.detector.cooldown, step) + 1) * step
    sig = compute_signals(store, base, interval, warm, end, cfg)
    wanted = any(sig.frame.get_column(s).fill_null(False).any() for s in cfg.alerts.sides)
    records = track_records(store, base, interval, cfg, settings, end) if wanted else None
    engine = AlertEngine(sig.context, records.at if records else None)
    out: list[Alert] = []
    for row in sig.frame.iter_rows(named=True):
        out += engine.on_bar(row)
    return [a for a in out if since is None or a.bar_ts >= since]
