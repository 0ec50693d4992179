"""Distribution / accumulation: the factor conditions combined, with the reasons kept.

At each bar, every factor's condition for a side is *holds*, *fails* or *unavailable* (null:
an input it needs is missing). The side **fires** when (config ``[detector]``):

- every factor in ``required`` holds, and
- every factor in ``when_present`` holds wherever it is available (ignored where it is not);
- a required factor that is unavailable: ``unavailable = "block"`` → the result is unknown
  (null) unless another factor already fails; ``"skip"`` → it is left out;
- at least one factor must be available, otherwise the result is unknown.

Distribution uses spot selling into a rally, negative premium, ask-heavy book, OI rising into a
dip; accumulation is the mirror (spot buying into a decline, positive premium, bid-heavy book,
OI falling into a rally). An **event** is a run of firing bars: it starts at a firing bar with no
firing bar of the same side within ``cooldown`` before it, and records each factor's reading at
that first bar (value, threshold, holds / fails / unavailable, why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tapewatch.config import Config
from tapewatch.signals.base import SIDES, Context, Reading, Side, State, num
from tapewatch.signals.registry import conditional
from tapewatch.signals.spec import FactorSpec

FACTORS: dict[str, FactorSpec] = conditional()  # the factors with a condition per side, by name


def condition_column(factor: str, side: Side) -> str:
    """Column of a factor's condition for a side (e.g. ``premium``, ``distribution`` → ``negative_premium``)."""
    return FACTORS[factor].conditions[side]


def policy_text(cfg: Config) -> str:
    """The combination rule in words, for outputs."""
    d = cfg.detector
    parts = []
    if d.required:
        parts.append(f"required: {', '.join(d.required)}")
    if d.when_present:
        parts.append(f"when present: {', '.join(d.when_present)}")
    rule = (
        "an unavailable required factor blocks firing (result unknown)"
        if d.unavailable == "block"
        else "an unavailable required factor is skipped (fires on the available ones)"
    )
    return f"{'; '.join(parts)}; {rule} [detector.unavailable = {d.unavailable!r}]"


# -- vectorized: the `distribution` / `accumulation` columns -----------------------------------
def combine(df: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """Add the nullable boolean columns ``distribution`` and ``accumulation``."""
    return df.with_columns(_fires(cfg, side).alias(side) for side in SIDES)


def _fires(cfg: Config, side: Side) -> pl.Expr:
    d = cfg.detector
    req = [pl.col(condition_column(f, side)) for f in d.required]
    opt = [pl.col(condition_column(f, side)) for f in d.when_present]
    expr: pl.Expr = pl.lit(True)
    for c in req:
        expr = expr & (c.fill_null(True) if d.unavailable == "skip" else c)
    for c in opt:
        expr = expr & c.fill_null(True)
    available = pl.any_horizontal([c.is_not_null() for c in req + opt])
    return pl.when(available).then(expr).otherwise(pl.lit(None, dtype=pl.Boolean))


# -- per bar, with reasons ----------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """One side at one bar: fires (True / False / None = unknown), each factor's reading, why."""

    side: Side
    fires: bool | None
    readings: tuple[Reading, ...]
    reason: str
    skipped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side, "fires": self.fires, "reason": self.reason, "skipped": list(self.skipped),
            "readings": [r.to_dict() for r in self.readings],
        }


def decide(states: dict[str, State], cfg: Config) -> tuple[bool | None, str, tuple[str, ...]]:
    """The rule of :func:`combine` for one bar: ``(fires, reason, skipped factors)``."""
    d = cfg.detector
    used = [*d.required, *d.when_present]
    failing = [f for f in used if states[f] is State.FAILS]
    unavailable = [f for f in used if states[f] is State.UNAVAILABLE]
    blocking = [f for f in d.required if states[f] is State.UNAVAILABLE and d.unavailable == "block"]
    skipped = tuple(f for f in unavailable if f not in blocking)
    if len(unavailable) == len(used):
        return None, "no factor available", ()
    if failing:
        return False, f"does not hold: {', '.join(failing)}", skipped
    if blocking:
        return None, f"cannot tell: {', '.join(blocking)} unavailable and required (detector.unavailable = 'block')", ()
    held = [f for f in used if states[f] is State.HOLDS]
    reason = f"all hold: {', '.join(held)}"
    if skipped:
        reason += f"; without {', '.join(skipped)} (unavailable)"
    return True, reason, skipped


def evaluate(row: dict[str, Any], ctx: Context, side: Side) -> Decision:
    """Every factor's reading for ``side`` at one bar of the signal frame, and the decision."""
    readings = tuple(f.reading(row, ctx, side) for f in FACTORS.values() if f.reading is not None)
    fires, reason, skipped = decide({r.factor: r.state for r in readings}, ctx.cfg)
    return Decision(side, fires, readings, reason, skipped)


# -- events -------------------------------------------------------------------------------------
@dataclass
class Event:
    """A run of firing bars of one side.

    ``ts``: open time (UTC ns) of the first firing bar; ``known_at`` = ts + interval, when the
    signal was known; ``close``: price at that bar's close; ``last_ts``: open of the last firing
    bar of the run; ``bars``: firing bars in it; ``decision``: the readings at the first bar.
    ``annotations``: free text per label, for later additions (e.g. the event's track record).
    """

    side: Side
    ts: int
    known_at: int
    close: float | None
    last_ts: int
    bars: int
    decision: Decision
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side, "ts": self.ts, "known_at": self.known_at, "close": self.close,
            "last_ts": self.last_ts, "bars": self.bars, "decision": self.decision.to_dict(),
            "annotations": dict(self.annotations),
        }


def find_events(df: pl.DataFrame, ctx: Context, sides: tuple[Side, ...] = SIDES) -> list[Event]:
    """Events in a signal frame (``ts`` Int64 ns, with the side columns), oldest first."""
    gap = ctx.bars(ctx.cfg.detector.cooldown)
    events: list[Event] = []
    ts_all = df.get_column("ts").cast(pl.Int64)
    for side in sides:
        idx = df.with_row_index("__i").filter(pl.col(side).fill_null(False)).get_column("__i").to_list()
        current: Event | None = None
        last_i = -(10**18)
        for i in idx:
            if current is not None and i - last_i <= gap:
                current.bars += 1
                current.last_ts = int(ts_all[i])
            else:
                row = df.row(i, named=True)
                t = int(ts_all[i])
                current = Event(side, t, t + ctx.step, num(row.get("close")), t, 1, evaluate(row, ctx, side))
                events.append(current)
            last_i = i
    return sorted(events, key=lambda e: (e.ts, e.side))
