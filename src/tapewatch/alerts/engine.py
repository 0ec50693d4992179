"""Bar by bar: which alerts a closed bar raises, de-duplicated by the detector cool-down.

:class:`AlertEngine` is fed every closed bar of the signal frame in time order (``on_bar``);
the batch command and a live loop call it the same way. The cool-down is the detector's
(``detector.cooldown``, in whole bars as :func:`tapewatch.detector.find_events` counts it): a
firing bar opens a new alert when no firing bar of the same (symbol, side) — or, for a crossing,
the same (symbol, side, factor) — lies within the cool-down before it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tapewatch.alerts.alert import Alert, crossing_alert, event_alert
from tapewatch.detector import evaluate
from tapewatch.signals.base import Context, Side, State, ns_of
from tapewatch.study.run import TrackRecord

Key = tuple[str, ...]


class CoolDown:
    """Remembers the last firing bar per key; ``admit`` says whether a firing bar starts a new run."""

    def __init__(self, cooldown_ns: int) -> None:
        self.cooldown_ns = cooldown_ns
        self._last: dict[Key, int] = {}

    def admit(self, key: Key, ts: int) -> bool:
        """Record a firing bar opening at ``ts`` (UTC ns); True when it starts a new run (the last
        firing bar of ``key`` is more than the cool-down before it, or there is none)."""
        last = self._last.get(key)
        self._last[key] = ts
        return last is None or ts - last > self.cooldown_ns


RecordFn = Callable[[Side, int], TrackRecord]


class AlertEngine:
    """Alerts of one symbol at one interval. ``record``: (side, bar open ns) → the point-in-time
    track record (e.g. ``TrackRecords.at``), None for no record."""

    def __init__(self, ctx: Context, record: RecordFn | None = None) -> None:
        self.ctx = ctx
        self.record = record
        self.sides: tuple[Side, ...] = tuple(s for s in ctx.cfg.alerts.sides)  # type: ignore[misc]
        self.crossings = ctx.cfg.alerts.crossings
        self.cooldown = CoolDown(ctx.bars(ctx.cfg.detector.cooldown) * ctx.step)
        self._held: dict[Key, bool] = {}

    def on_bar(self, row: dict[str, Any]) -> list[Alert]:
        """The alerts raised at the closed bar ``row`` (a signal-frame row, ``ts`` = bar open)."""
        ts = ns_of(row["ts"]) or 0
        out: list[Alert] = []
        for side in self.sides:
            d = evaluate(row, self.ctx, side)
            if d.fires and self.cooldown.admit((self.ctx.base, side), ts):
                out.append(event_alert(row, self.ctx, d, self.record(side, ts) if self.record else None))
            for r in d.readings:
                if r.factor not in self.crossings:
                    continue
                key = (self.ctx.base, side, r.factor)
                holds = r.state is State.HOLDS
                crossed = holds and not self._held.get(key, True)  # the first bar seen is no crossing
                self._held[key] = holds
                if holds and self.cooldown.admit(key, ts) and crossed:
                    out.append(crossing_alert(row, self.ctx, d, r.factor))
        return out
