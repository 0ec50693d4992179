"""What an event study found: result dataclasses, the verdict in plain words, deterministic JSON.

Units: rates and returns are fractions (0.64 = 64 %, -0.008 = -0.8 %); times are UTC ISO-8601
(``2022-01-05T14:00:00Z``, a bar's open time); durations are text (``24h``). Everything that is
not defined (no events, a horizon past the data) is ``None`` (``null`` in JSON).
The JSON has sorted keys and floats rounded to 12 significant digits and contains no wall-clock
time, so the same inputs and seed give byte-identical output.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np


def iso(ns: int) -> str:
    """UTC ISO-8601 text of a nanosecond timestamp (second precision)."""
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def num(x: Any) -> float | None:
    """A plain float, or None for NaN / inf / None."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class OutcomeStats:
    """One outcome of one side's events in one period, against the base over all bars of the period."""

    outcome: str  # e.g. "pullback >= 2% within 24h", "return 24h"
    kind: str  # "hit" (0/1 label) | "return" (forward return)
    horizon: str
    events: int  # events whose outcome can be scored
    hits: int | None  # for "hit"
    value: float | None  # hit rate, or mean forward return
    ci_low: float | None  # one-sided bound at the period's confidence: the lower one for a claim "higher"
    ci_high: float | None  # … the upper one for a claim "lower"; the other end is open (None)
    median: float | None
    median_ci_low: float | None
    median_ci_high: float | None
    base: float | None  # unconditional rate / mean over the period's scorable bars
    base_median: float | None
    excess: float | None  # value - base
    p_value: float | None  # one-sided, in the direction the signal claims (exact binomial for "hit")
    # for "return": the mean / median return net of the round-trip cost, in the claimed direction
    # (distribution = short: -return - cost; accumulation = long: return - cost); None for "hit"
    net_mean: float | None = None
    net_median: float | None = None


@dataclass(frozen=True)
class RegimeStats:
    """One regime's share of a side's scored events: their hit rate vs the base rate over the
    period's scorable bars of the same regime (see :mod:`tapewatch.study.regime`)."""

    regime: str  # "bull" | "bear" | "unknown"
    events: int  # scored events in this regime
    hits: int
    hit_rate: float | None
    bars: int  # scorable bars of the period in this regime
    base_rate: float | None
    excess: float | None  # hit_rate - base_rate


@dataclass(frozen=True)
class SideStats:
    """One side (distribution / accumulation) for the parameter set reported, in one period."""

    side: str
    claim: str  # "pullback" | "rally"
    direction: int  # -1 claims a fall, +1 a rise
    set_index: int
    params: dict[str, Any]
    episodes: int  # episode starts in the period
    scored: int  # of which the move label can be scored
    event_times: tuple[str, ...]
    outcomes: tuple[OutcomeStats, ...]
    regimes: tuple[RegimeStats, ...] = ()  # the move label per bull / bear / unknown regime

    @property
    def label(self) -> OutcomeStats:
        return self.outcomes[0]


@dataclass(frozen=True)
class FoldStats:
    """One walk-forward fold: the set chosen on the training window and how it did on the test chunk."""

    side: str
    train_end: str
    test_start: str
    test_end: str
    set_index: int | None
    params: dict[str, Any] | None
    events: int
    hits: int
    hit_rate: float | None
    base_rate: float | None


@dataclass(frozen=True)
class PeriodStats:
    """A period's results; ``role`` is "in-sample", "out-of-sample" or "all"."""

    name: str
    role: str
    start: str
    end: str
    bars: int
    block_bars: int
    reps: int
    confidence: float
    sides: tuple[SideStats, ...]
    folds: tuple[FoldStats, ...] = ()


@dataclass(frozen=True)
class SweepRow:
    """One parameter set of a sweep, in-sample, on the move label (and the longest-horizon return)."""

    set_index: int
    params: dict[str, Any]
    events: int
    hits: int
    hit_rate: float | None
    base_rate: float | None
    excess: float | None
    ci_low: float | None
    ci_high: float | None
    mean_return: float | None
    return_p_value: float | None
    p_value: float | None
    q_value: float | None  # Benjamini–Hochberg adjusted (None: fewer than min_events events, not tested)
    significant_bh: bool
    score: float | None  # selection z-score


@dataclass(frozen=True)
class SideSweep:
    """The multiple-testing picture of one side over the whole grid (in-sample)."""

    side: str
    sets: int
    tested: int  # sets tested: at least ``min_events`` scored events
    alpha: float
    bh_significant: int
    best_index: int | None
    best_params: dict[str, Any] | None
    reality_check_p: float | None
    spa_p: float | None
    spa_p_lower: float | None
    spa_p_upper: float | None
    spa_bucket: str
    spa_block_buckets: int | None
    rows: tuple[SweepRow, ...]
    min_events: int = 1  # sets with fewer scored events are not tested (no q, not an SPA model)


@dataclass(frozen=True)
class StudyResult:
    """Everything one study run found. ``verdict`` is the plain-words summary, top first."""

    inputs: dict[str, Any]
    settings: dict[str, Any]
    seed: int
    label: str  # e.g. ">= 2% move within 24h from the signal close"
    verdict: tuple[str, ...]
    periods: tuple[PeriodStats, ...]
    sweeps: tuple[SideSweep, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def period(self, role: str) -> PeriodStats | None:
        """The first period with this role."""
        return next((p for p in self.periods if p.role == role), None)

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys, rounded floats, null for undefined, trailing newline)."""
        return json.dumps(plain(dataclasses.asdict(self)), sort_keys=True, indent=2, ensure_ascii=False,
                          allow_nan=False) + "\n"

    def write_json(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json(), encoding="utf-8")
        return p


def plain(x: Any) -> Any:
    """``x`` as JSON-ready values: dicts with text keys, lists, plain ints and bools, floats rounded
    to 12 significant digits, None for NaN / inf."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = num(x)
        return None if v is None else float(f"{v:.12g}")
    return x


# -- plain words ------------------------------------------------------------------------------------
def pct(x: float | None, digits: int = 0) -> str:
    """A fraction as percent text: ``0.6428`` → ``64 %``."""
    return "n/a" if x is None else f"{x * 100:.{digits}f} %"


def pct_range(lo: float | None, hi: float | None, digits: int = 0) -> str:
    """A fraction interval as ``38–86 %``; a one-sided one as ``≥ 41 %`` / ``≤ -0.10 %``."""
    if lo is None and hi is None:
        return "n/a"
    if hi is None:
        return f"≥ {pct(lo, digits)}"
    if lo is None:
        return f"≤ {pct(hi, digits)}"
    sep = " to " if lo < 0 or hi < 0 else "–"
    return f"{lo * 100:.{digits}f}{sep}{hi * 100:.{digits}f} %"


def p_text(p: float | None) -> str:
    """``p = 0.08`` / ``p < 0.001`` (two significant digits)."""
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {float(f'{p:.2g}'):g}"


def side_sentence(s: SideStats, confidence: float = 0.95) -> str:
    """``distribution fired 14 times; 9 were followed by a >= 2 % pullback within 24h (64 %, 95 % CI
    38–86 %) vs a base rate of 41 %; p = 0.08`` — without the significance clause."""
    lab = s.label
    if s.episodes == 0:
        return f"{s.side} never fired"
    fired = f"{s.side} fired {s.episodes} time{'s' if s.episodes != 1 else ''}"
    if lab.events == 0:
        return f"{fired}; none can be scored yet (the {lab.horizon} window runs past the data)"
    unscored = s.episodes - lab.events
    scored = f" ({unscored} too close to the end of the period to score)" if unscored else ""
    hits = lab.hits or 0
    verb = "was" if hits == 1 else "were"
    ci = f"{pct(lab.value)}, {_conf(confidence)} CI {pct_range(lab.ci_low, lab.ci_high)}"
    return (
        f"{fired}{scored}; {hits} {verb} followed by a {_move(lab.outcome)} within {lab.horizon} ({ci}) "
        f"vs a base rate of {pct(lab.base)}; {p_text(lab.p_value)}"
    )


def returns_sentence(s: SideStats, confidence: float = 0.95, cost_bps: float | None = None) -> str | None:
    """The longest-horizon forward return after the events vs all bars (and, with ``cost_bps``, the
    mean net of that round-trip cost in the claimed direction), or None without events."""
    r = s.outcomes[-1]
    if r.kind != "return" or r.events == 0:
        return None
    return (
        f"after {s.side}, the mean {r.horizon} return was {pct(r.value, 2)} "
        f"({_conf(confidence)} CI {pct_range(r.ci_low, r.ci_high, 2)}; median {pct(r.median, 2)}) "
        f"vs {pct(r.base, 2)} for all bars; {p_text(r.p_value)}"
        + ("" if cost_bps is None else
           f"; net of a {cost_bps:g} bp round trip, {'short' if s.direction < 0 else 'long'}: {pct(r.net_mean, 2)}")
    )


def regime_sentence(s: SideStats) -> str | None:
    """``by regime: bull n=5, hit 60 % vs base 41 %; bear n=3, …`` (regimes with events), or None."""
    parts = [f"{r.regime} n={r.events}, hit {pct(r.hit_rate)} vs base {pct(r.base_rate)}"
             for r in s.regimes if r.events]
    return f"{s.side} by regime: " + "; ".join(parts) if parts else None


def _conf(confidence: float) -> str:
    return f"{confidence * 100:g} %"


def _move(outcome: str) -> str:
    # "pullback >= 2% within 24h" → ">= 2 % pullback"
    name, _, rest = outcome.partition(" ")
    size = rest.split(" within ")[0].replace("%", " %")
    return f"{size} {name}"


def significance_rule(alpha: float, min_events: int) -> str:
    """The one rule every verdict follows, in words."""
    level = f"{alpha:g}"
    return (f"a single configuration (and every out-of-sample result) is significant when it has at least "
            f"{min_events} scored events and its exact one-sided p <= {level}; the best of a sweep is significant "
            f"only when both White's Reality Check and Hansen's SPA give p <= {level}; Benjamini–Hochberg q-values "
            f"are a per-set screen and decide nothing")


def significance_clause(p: float | None, alpha: float, sweep: SideSweep | None, events: int | None = None,
                        min_events: int = 1) -> str:
    """By :func:`significance_rule`: ``significant at the 5 % level (one-sided)``, ``too few events
    to test (3 < 5)`` or ``not significant after correcting for 48 parameter sets: the Reality Check
    and SPA must both give p <= 0.05 (Reality Check p = 0.5; SPA p = 0.4; BH q = 0.6, not deciding)``."""
    level = f"{alpha * 100:g} %"
    if sweep is None or sweep.sets <= 1:
        if events is not None and events < min_events:
            return f"too few events to test ({events} < {min_events} needed)"
        ok = p is not None and p <= alpha
        return f"{'' if ok else 'not '}significant at the {level} level (one-sided)"
    corrected = f"after correcting for {sweep.sets} parameter sets"
    if sweep.best_index is None:
        return f"not significant {corrected}: no set has the {sweep.min_events} scored events needed to be tested"
    q = sweep.rows[sweep.best_index].q_value
    ok = sweep_significant(sweep, alpha)
    detail = "; ".join(f"{name} {p_text(v).removeprefix('p ')}" for name, v in (
        ("Reality Check p", sweep.reality_check_p), ("SPA p", sweep.spa_p)))
    need = f"the Reality Check and SPA {'both give' if ok else 'must both give'} p <= {alpha:g}"
    return f"{'' if ok else 'not '}significant {corrected}: {need} ({detail}; BH q {p_text(q).removeprefix('p ')}, not deciding)"


def sweep_significant(sweep: SideSweep, alpha: float | None = None) -> bool:
    """By :func:`significance_rule`: the best set of a sweep is significant only when it was tested
    and both the Reality Check and the SPA give p <= ``alpha`` (default: the sweep's own)."""
    level = sweep.alpha if alpha is None else alpha
    return (sweep.best_index is not None and sweep.reality_check_p is not None and sweep.spa_p is not None
            and sweep.reality_check_p <= level and sweep.spa_p <= level)


def sweep_summary(sw: SideSweep) -> str:
    """One line on a side's sweep: how many sets were tested, what decides and what only screens."""
    best = (f"best {format_params(sw.best_params)}" if sw.best_params is not None
            else "no best set (none has enough events to be tested)")
    return (f"{sw.side}: {sw.sets} parameter sets, {sw.tested} tested (at least {sw.min_events} events); {best}: "
            f"Reality Check {p_text(sw.reality_check_p)}, SPA "
            f"{p_text(sw.spa_p)} (buckets of {sw.spa_bucket}; these decide); Benjamini–Hochberg keeps "
            f"{sw.bh_significant} at FDR {sw.alpha:.0%} (a per-set screen)")


def build_verdict(periods: tuple[PeriodStats, ...], sweeps: tuple[SideSweep, ...], alpha: float,
                  cost_bps: float | None = None, min_events: int = 1) -> tuple[str, ...]:
    """The verdict lines: per period and side the hit sentence with its significance clause (by
    :func:`significance_rule`), the return sentence (net of ``cost_bps`` when given) and the hit rate
    per regime."""
    by_side = {s.side: s for s in sweeps}
    lines = []
    for period in periods:
        prefix = f"{period.name} ({period.start[:16].replace('T', ' ')} → {period.end[:16].replace('T', ' ')}): "
        for s in period.sides:
            line = prefix + side_sentence(s, period.confidence)
            if s.label.events:
                sweep = by_side.get(s.side) if period.role != "out-of-sample" else None
                line += "; " + significance_clause(s.label.p_value, alpha, sweep, s.label.events, min_events)
                if sweep is not None and sweep.sets > 1:
                    line += (f" [best of {sweep.sets} sets: {format_params(s.params)}]" if sweep.best_index is not None
                             else f" [no set had enough events to be chosen; shown: {format_params(s.params)}]")
            lines.append(line)
            for extra in (returns_sentence(s, period.confidence, cost_bps), regime_sentence(s)):
                if extra:
                    lines.append(prefix + extra)
    return tuple(lines)


def format_params(params: dict[str, Any]) -> str:
    """``window=1h, flow.rally_pct=0.5`` (``defaults`` when empty)."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
