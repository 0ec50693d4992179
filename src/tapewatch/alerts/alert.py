"""The Alert value: what one alert says, built from the detector's decision at a bar.

An alert is either an **event** (``kind = "event"``: distribution or accumulation fires at the
first bar of a run, see :mod:`tapewatch.detector`) or a **crossing** (``kind = "crossing"``: one
factor's condition for a side starts to hold at this bar, alerts.crossings in the config). Times
are bar open times in UTC ns; the alert is known at the bar's close (``bar_ts`` + interval).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tapewatch.detector import Decision
from tapewatch.display import fmt_number
from tapewatch.signals import premium
from tapewatch.signals.base import Context, Reading, Side, ns_of, num
from tapewatch.study.run import TrackRecord
from tapewatch.timeutil import ns_to_iso


@dataclass(frozen=True)
class Alert:
    """One alert. ``readings``: every factor's reading for ``side`` at the bar (value, threshold,
    state, why); ``reason``: the detector's decision (event) or the factor's why (crossing);
    ``premium``: the premium in its own history ("-$91.00 = -0.094% of price, z -2.3, lowest 3% of
    the last 30 days"); ``record``: this configuration's track record from the events whose
    outcome was known before this bar (events only; None for crossings)."""

    kind: str  # "event" or "crossing"
    side: Side
    base: str
    interval: str
    bar_ts: int  # bar open, UTC ns
    known_at: int  # bar close, UTC ns: when the alert could be raised
    close: float | None
    reason: str
    readings: tuple[Reading, ...]
    premium: str | None
    record: TrackRecord | None
    factor: str | None = None  # the factor that crossed (crossings only)

    @property
    def id(self) -> str:
        """A stable key: the same alert has the same id on every run (``BTC-4h-distribution-2025-01-01T04:00:00``)."""
        what = self.side if self.kind == "event" else f"{self.side}-{self.factor}"
        return f"{self.base}-{self.interval}-{what}-{ns_to_iso(self.bar_ts).replace(' ', 'T')}"

    def title(self) -> str:
        """``BTC 4h: DISTRIBUTION fired`` or ``BTC 4h: premium crossed its distribution threshold``."""
        if self.kind == "event":
            return f"{self.base} {self.interval}: {self.side.upper()} fired"
        return f"{self.base} {self.interval}: {self.factor} crossed its {self.side} threshold"

    def when(self) -> str:
        """The bar in words: ``bar 2025-01-01 04:00:00 → 08:00:00 UTC, close 94,000.5``."""
        close = "n/a" if self.close is None else fmt_number(self.close)
        return f"bar {ns_to_iso(self.bar_ts)} → {ns_to_iso(self.known_at)[11:]} UTC, close {close}"

    def record_text(self) -> str | None:
        """The track record in words (None for a crossing)."""
        return None if self.record is None else self.record.describe()

    def summary(self) -> str:
        """The one console line: title, bar, reason, premium in context, track record."""
        parts = [f"{self.title()} · {self.when()} · {self.reason}"]
        if self.premium and self.premium not in self.reason:
            parts.append(f"premium {self.premium}")
        if self.record is not None:
            parts.append(self.record.describe())
        return " · ".join(parts)

    def factor_lines(self) -> list[str]:
        """One line per factor: ``premium holds: <why> [values …; threshold …]``."""
        return [f"{r.factor} {r.state.value}: {r.why} [{reading_numbers(r)}]" for r in self.readings]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the generic webhook payload and the log record)."""
        return {
            "id": self.id, "kind": self.kind, "side": self.side, "factor": self.factor, "symbol": self.base,
            "interval": self.interval, "bar_open": iso_z(self.bar_ts), "known_at": iso_z(self.known_at),
            "close": self.close, "title": self.title(), "reason": self.reason, "summary": self.summary(),
            "factors": [r.to_dict() for r in self.readings], "premium": self.premium,
            "track_record": None if self.record is None else {**asdict(self.record), "text": self.record.describe()},
        }


def iso_z(ns: int) -> str:
    """``2025-01-01T04:00:00Z`` (UTC, to the second)."""
    return ns_to_iso(ns).replace(" ", "T") + "Z"


def reading_numbers(r: Reading) -> str:
    """A reading's numbers as text: ``premium_mean_k -0.147, premium_index -0.147; threshold_pct -0.05``."""
    values = ", ".join(f"{k} {'n/a' if v is None else fmt_number(v, 4, sign=True)}" for k, v in r.values.items())
    limits = ", ".join(f"{k} {fmt_number(v, 4, sign=True)}" for k, v in r.thresholds.items())
    return f"{values}; {limits}" if limits else values


def event_alert(row: dict[str, Any], ctx: Context, decision: Decision, record: TrackRecord | None) -> Alert:
    """The alert of a firing ``decision`` (:func:`tapewatch.detector.evaluate`) at the bar ``row``
    of the signal frame (``ts`` = bar open), with the track record known before it."""
    ts = _ts(row)
    return Alert("event", decision.side, ctx.base, ctx.interval, ts, ts + ctx.step, num(row.get("close")),
                 decision.reason, decision.readings, premium.context(row, ctx), record)


def crossing_alert(row: dict[str, Any], ctx: Context, decision: Decision, factor: str) -> Alert:
    """The alert of ``factor``'s condition for ``decision.side`` starting to hold at the bar ``row``."""
    ts = _ts(row)
    (reading,) = [r for r in decision.readings if r.factor == factor]
    return Alert("crossing", decision.side, ctx.base, ctx.interval, ts, ts + ctx.step, num(row.get("close")),
                 reading.why, decision.readings, premium.context(row, ctx), None, factor)


def _ts(row: dict[str, Any]) -> int:
    return ns_of(row["ts"]) or 0
