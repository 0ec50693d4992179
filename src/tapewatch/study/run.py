"""Run an event study: bars + event masks (or a parameter grid) → :class:`StudyResult`.

Plain inputs: :class:`~tapewatch.study.forward.PriceBars` and either the per-bar firing of each
side (``{"distribution": bool array, "accumulation": bool array}``) or an ``EventFn`` and a grid.
Steps: forward outcomes once for all bars; episode starts per set and side; the split into
periods; in the in-sample (or only) period point estimates, exact / rotation tests with one set of
draws shared by all sets, Benjamini–Hochberg and Reality Check / SPA when there is more than one set; the set
with the best in-sample score is then scored on the untouched out-of-sample part (holdout) or
chosen afresh on each walk-forward training window and scored on the next chunk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tapewatch.study import split as splits
from tapewatch.study.events import collapse, thin
from tapewatch.study.forward import ForwardTable, PriceBars, compute_forward, format_duration
from tapewatch.study.multiple import benjamini_hochberg, data_snooping
from tapewatch.study.regime import regime_codes, regime_stats
from tapewatch.study.result import (
    FoldStats, OutcomeStats, PeriodStats, SideStats, SideSweep, StudyResult, SweepRow, build_verdict, iso, num,
    p_text, pct, pct_range, significance_rule,
)
from tapewatch.study.settings import StudySettings
from tapewatch.study.stats import (
    Bootstrap, Estimates, Group, Sample, bootstrap_groups, estimate, exact_hit_test, selection_score,
)
from tapewatch.study.sweep import Cooldown, EventFn, Params, event_sets

Positions = NDArray[np.intp]


@dataclass(frozen=True)
class Side:
    """A detector output and the move it claims: ``direction`` -1 = a fall ("pullback"), +1 = a rise."""

    name: str
    direction: int
    claim: str


SIDES = (Side("distribution", -1, "pullback"), Side("accumulation", 1, "rally"))


@dataclass(frozen=True)
class Columns:
    """A side's outcome columns over all bars: the move label first, then the forward returns."""

    values: NDArray[np.float64]  # bars × columns
    horizons_ns: tuple[int, ...]
    signs: tuple[int, ...]
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    cost: float = 0.0  # round-trip cost as a fraction, for the net returns
    regime: NDArray[np.int8] | None = None  # per-bar regime codes (tapewatch.study.regime)


def side_columns(fw: ForwardTable, side: Side, cost_bps: float = 0.0, regime: NDArray[np.int8] | None = None
                 ) -> Columns:
    """The move label (0/1, claim direction +1) and each forward return (claim = the side's direction);
    ``cost_bps`` (round trip) for the net returns, ``regime`` the per-bar regime codes."""
    window = format_duration(fw.window_ns)
    label = f"{side.claim} >= {fw.move_pct:g}% within {window}"
    return Columns(
        values=np.column_stack([fw.hit(side.direction), fw.returns]),
        horizons_ns=(fw.window_ns, *fw.horizons_ns),
        signs=(1, *([side.direction] * len(fw.horizons_ns))),
        names=(label, *(f"return {format_duration(h)}" for h in fw.horizons_ns)),
        kinds=("hit", *(["return"] * len(fw.horizons_ns))),
        cost=cost_bps / 10_000.0, regime=regime,
    )


@dataclass(frozen=True)
class Study:
    """A study's result plus what a report draws: the forward table and, per side, the episode
    starts (positions into the bars) of the set reported in-sample."""

    result: StudyResult
    forward: ForwardTable
    events: dict[str, Positions]


def _seed(seed: int, *keys: int) -> int:
    """A sub-seed for one bootstrap, derived deterministically from the study seed."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def _outcomes(cols: Columns, est: Estimates, boot: Bootstrap, i: int) -> tuple[OutcomeStats, ...]:
    """Set ``i``'s statistics for every outcome column."""
    out = []
    for j, name in enumerate(cols.names):
        hit = cols.kinds[j] == "hit"
        out.append(OutcomeStats(
            outcome=name, kind=cols.kinds[j], horizon=format_duration(cols.horizons_ns[j]), events=int(est.n[i, j]),
            hits=int(round(est.total[i, j])) if hit else None, value=num(est.mean[i, j]),
            ci_low=num(boot.ci_low[i, j]), ci_high=num(boot.ci_high[i, j]),
            median=None if hit else num(est.median[i, j]),
            median_ci_low=None if hit else num(boot.median_ci_low[i, j]),
            median_ci_high=None if hit else num(boot.median_ci_high[i, j]),
            base=num(est.base[j]), base_median=None if hit else num(est.base_median[j]),
            excess=num(est.excess[i, j]), p_value=num(boot.p[i, j]),
            net_mean=None if hit else num(cols.signs[j] * est.mean[i, j] - cols.cost),
            net_median=None if hit else num(cols.signs[j] * est.median[i, j] - cols.cost),
        ))
    return tuple(out)


def _side_stats(side: Side, cols: Columns, set_index: int, params: Params, ts: NDArray[np.int64],
                period: splits.Period, sample: Sample, local: Positions, est: Estimates, boot: Bootstrap,
                i: int) -> SideStats:
    """One side's record for set ``i`` in a period (``local``: its episode starts in the period;
    ``sample``: the period's outcome columns, for the hit rate per regime)."""
    ts_period = ts[period.positions]
    regimes = () if cols.regime is None else regime_stats(sample.values[:, 0], cols.regime[period.positions], local)
    return SideStats(
        side=side.name, claim=side.claim, direction=side.direction, set_index=set_index, params=dict(params),
        episodes=int(len(local)), scored=int(est.n[i, 0]), event_times=tuple(iso(t) for t in ts_period[local]),
        outcomes=_outcomes(cols, est, boot, i), regimes=regimes,
    )


@dataclass
class _PeriodBuild:
    period: splits.Period
    role: str
    block: int = 0
    sides: list[SideStats] = dataclasses.field(default_factory=list)
    folds: list[FoldStats] = dataclasses.field(default_factory=list)

    def done(self, ts: NDArray[np.int64], step: int, reps: int, confidence: float) -> PeriodStats:
        start, end = self.period.bounds_ns(ts, step)
        return PeriodStats(self.period.name, self.role, iso(start), iso(end), self.period.size, self.block, reps,
                           confidence, tuple(self.sides), tuple(self.folds))


def _period_sample(cols: Columns, period: splits.Period, ts: NDArray[np.int64]) -> Sample:
    return Sample(period.restrict(cols.values, cols.horizons_ns, ts), cols.signs)


def _score_sets(build: _PeriodBuild, sides: list[Side], cols: dict[str, Columns], events: dict[str, Positions],
                params: dict[str, tuple[int, Params]], ts: NDArray[np.int64], settings: StudySettings,
                seed: int, block: int) -> None:
    """One set per side in one period: point estimates and tests with draws shared by the sides, with
    the block length estimated in-sample (``block``), so nothing is tuned on this period."""
    period = build.period
    groups, local = [], {}
    for side in sides:
        sample = _period_sample(cols[side.name], period, ts)
        local[side.name] = period.localize(events[side.name])
        groups.append(Group(sample, [local[side.name]], estimate(sample, [local[side.name]]), detail=[0]))
    boots = bootstrap_groups(groups, settings.reps, seed, settings.confidence, block=block)
    for side, g, boot in zip(sides, groups, boots):
        index, p = params[side.name]
        build.block = boot.block
        build.sides.append(_side_stats(side, cols[side.name], index, p, ts, period, g.sample, local[side.name],
                                       g.est, boot, 0))


def _periods(settings: StudySettings, ts: NDArray[np.int64], step: int
             ) -> tuple[_PeriodBuild, _PeriodBuild | None, list[tuple[splits.Period, splits.Period]]]:
    """The in-sample (or only) period, the out-of-sample one, and the walk-forward folds."""
    if settings.split == "holdout":
        main_p, oos_p = splits.holdout(ts, step, settings.holdout)
        return _PeriodBuild(main_p, "in-sample"), _PeriodBuild(oos_p, "out-of-sample"), []
    if settings.split == "walk_forward":
        wf = splits.walk_forward(ts, step, settings.folds)
        main = _PeriodBuild(dataclasses.replace(splits.whole(ts), name="all data (in-sample)"), "in-sample")
        name = f"out-of-sample, walk-forward over {settings.folds} folds"
        return main, _PeriodBuild(splits.pooled(name, [t for _, t in wf]), "out-of-sample"), wf
    return _PeriodBuild(splits.whole(ts), "all"), None, []


def run_study(
    bars: PriceBars,
    event_fn: EventFn,
    settings: StudySettings,
    cooldown: Cooldown,
    grid: Sequence[Params] = ({},),
    seed: int | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> Study:
    """The event study of every parameter set in ``grid`` (see the module docstring).

    ``event_fn(params)`` returns the per-bar firing per side name ("distribution",
    "accumulation"); ``cooldown`` in ns (or a function of the params); ``seed`` overrides
    ``settings.seed``; ``inputs`` (symbol, interval, files…) is copied into the result as is.
    """
    seed = settings.seed if seed is None else seed
    settings = dataclasses.replace(settings, seed=seed)
    step = bars.step_ns
    ts = bars.ts
    fw = compute_forward(bars, settings.horizons_ns(step), settings.move_window_ns(step), settings.move_pct,
                         settings.move_from)
    if not grid:
        raise ValueError("run_study: the grid is empty")
    gap = settings.episode_gap_ns(step)
    sets = event_sets(ts, event_fn, grid, cooldown, gap)
    unknown = set(sets) - {s.name for s in SIDES}
    if unknown:
        raise ValueError(f"unknown event side(s) {sorted(unknown)}; known: {[s.name for s in SIDES]}")
    sides = [s for s in SIDES if s.name in sets]
    k = len(grid)
    main, oos, wf = _periods(settings, ts, step)

    regime = regime_codes(bars, settings.regime_window_ns(step))
    cols = {side.name: side_columns(fw, side, settings.cost_bps, regime) for side in sides}
    sweeps: list[SideSweep] = []
    reported: dict[str, Positions] = {}
    chosen: dict[str, tuple[int, Params]] = {}
    groups, local, scores, bests = [], {}, {}, {}
    for side in sides:
        sample = _period_sample(cols[side.name], main.period, ts)
        local[side.name] = [main.period.localize(x) for x in sets[side.name]]
        est = estimate(sample, local[side.name])
        score = selection_score(est, 0, settings.min_events)
        best = 0 if k == 1 else (int(np.argmax(score)) if np.isfinite(score.max()) else None)
        i = 0 if best is None else best
        scores[side.name], bests[side.name], chosen[side.name] = score, best, (i, grid[i])
        reported[side.name] = sets[side.name][i]
        groups.append(Group(sample, local[side.name], est, detail=[i]))
    boots = bootstrap_groups(groups, settings.reps, _seed(seed, 1), settings.confidence) if sides else []
    for si, (side, g, boot) in enumerate(zip(sides, groups, boots)):
        i, params = chosen[side.name]
        main.block = boot.block
        main.sides.append(_side_stats(side, cols[side.name], i, params, ts, main.period, g.sample,
                                      local[side.name][i], g.est, boot, i))
        if k > 1:
            sweeps.append(_sweep(side, cols[side.name], grid, g.est, boot, scores[side.name], bests[side.name],
                                 g.sample, local[side.name], settings, _seed(seed, 2, si), step))
    if oos is not None and sides:
        if settings.split == "holdout":
            _score_sets(oos, sides, cols, reported, chosen, ts, settings, _seed(seed, 3), main.block)
        else:
            picked = {}
            for side in sides:
                picked[side.name], folds = _walk_forward(side, cols[side.name], wf, sets[side.name], grid, ts, step,
                                                         settings)
                oos.folds.extend(folds)
            per_fold = {side.name: (-1, {"walk_forward": "set chosen per fold"}) for side in sides}
            _score_sets(oos, sides, cols, picked, per_fold, ts, settings, _seed(seed, 3), main.block)

    periods = tuple(p.done(ts, step, settings.reps, settings.confidence) for p in (main, oos) if p is not None)
    info = {
        "bars": len(bars), "interval": format_duration(step), "start": iso(int(ts[0])), "end": iso(int(ts[-1]) + step),
        "parameter_sets": k, "cooldown": format_duration(cooldown) if isinstance(cooldown, int) else "per parameter set",
        "episode_gap": format_duration(gap),
        **dict(inputs or {}),
    }
    label = (f"move >= {settings.move_pct:g}% within {format_duration(fw.window_ns)}, measured "
             + ("from the signal bar's close" if settings.move_from == "close" else "peak-to-trough after the signal"))
    result = StudyResult(
        inputs=info, settings=dataclasses.asdict(settings), seed=seed, label=label,
        verdict=build_verdict(periods, tuple(sweeps), settings.alpha, settings.cost_bps, settings.min_events),
        periods=periods,
        sweeps=tuple(sweeps),
        notes=_notes(settings, gap),
    )
    return Study(result, fw, reported)


def _notes(settings: StudySettings, gap_ns: int) -> tuple[str, ...]:
    return (
        "forward returns and the move label start at the close of the signal bar and use later bars only",
        f"events are detector episodes counted at least {format_duration(gap_ns)} apart (the longest outcome "
        "window; an episode starting sooner after the last counted one shares outcome bars with it and is not "
        "counted), so n counts independent outcomes",
        "base = the same outcome averaged over every bar of the same period (the unconditional rate)",
        f"p-values are one-sided in the direction the signal claims: the move label by an exact binomial test "
        f"against the base rate, forward returns by a rotation permutation test on the same bars; intervals are "
        f"the matching one-sided {settings.confidence:.0%} bounds (Clopper–Pearson for the label; medians by a "
        "stationary block bootstrap)",
        f"significance rule: {significance_rule(settings.alpha, settings.min_events)}",
        "labels whose window runs past the end of their period are not scored (no peeking across a split)",
        f"net returns: in the direction the signal claims (distribution = short: -return - cost; accumulation = "
        f"long: return - cost) after a round-trip cost of {settings.cost_bps:g} bp",
        f"regime: bull when the close rose over the {settings.regime_window} ending at the bar's close, bear when "
        "not, unknown before the data covers that window; base rates per regime use the period's bars of that "
        "regime",
    )


def _sweep(side: Side, cols: Columns, grid: Sequence[Params], est: Estimates, boot: Bootstrap,
           score: NDArray[np.float64], best: int | None, sample: Sample, local: list[Positions],
           settings: StudySettings, seed: int, step: int) -> SideSweep:
    """BH over the label p-values, Reality Check / SPA for the best set, one row per set; sets with
    fewer than ``min_events`` scored events are not tested (no q, not a Reality Check / SPA model)."""
    enough = est.n[:, 0] >= settings.min_events
    bh = benjamini_hochberg(np.where(enough, boot.p[:, 0], np.nan), settings.alpha)
    bucket = settings.spa_bucket_ns(step)
    tested = [pos if ok else pos[:0] for pos, ok in zip(local, enough)]
    snoop = data_snooping(sample.values[:, 0], 1, tested, max(1, bucket // step), boot.block, settings.reps, seed)
    last = len(cols.names) - 1
    rows = tuple(
        SweepRow(
            set_index=i, params=dict(p), events=int(est.n[i, 0]), hits=int(round(est.total[i, 0])),
            hit_rate=num(est.mean[i, 0]), base_rate=num(est.base[0]), excess=num(est.excess[i, 0]),
            ci_low=num(boot.ci_low[i, 0]), ci_high=num(boot.ci_high[i, 0]), mean_return=num(est.mean[i, last]),
            return_p_value=num(boot.p[i, last]), p_value=num(boot.p[i, 0]), q_value=num(bh.q[i]),
            significant_bh=bool(bh.rejected[i]), score=num(score[i]),
        )
        for i, p in enumerate(grid)
    )
    return SideSweep(
        side=side.name, sets=len(grid), tested=bh.tested, min_events=settings.min_events, alpha=settings.alpha,
        bh_significant=int(bh.rejected.sum()),
        best_index=best, best_params=dict(grid[best]) if best is not None else None,
        reality_check_p=snoop.reality_check_p if snoop else None, spa_p=snoop.spa_p if snoop else None,
        spa_p_lower=snoop.spa_p_lower if snoop else None, spa_p_upper=snoop.spa_p_upper if snoop else None,
        spa_bucket=format_duration(bucket), spa_block_buckets=snoop.block_buckets if snoop else None, rows=rows,
    )


def _walk_forward(side: Side, cols: Columns, wf: list[tuple[splits.Period, splits.Period]],
                  side_sets: list[Positions], grid: Sequence[Params], ts: NDArray[np.int64], step: int,
                  settings: StudySettings) -> tuple[Positions, list[FoldStats]]:
    """Per fold: choose the set with the best score on the training window, keep its events in the
    test chunk. Returns all kept events (global positions) and one line per fold."""
    kept, folds = [], []
    for train, test in wf:
        t_sample = _period_sample(cols, train, ts)
        t_est = estimate(t_sample, [train.localize(s) for s in side_sets])
        score = selection_score(t_est, 0, settings.min_events)
        j = int(np.argmax(score)) if len(grid) > 1 and np.isfinite(score.max()) else 0
        lo, hi = test.ranges[0]
        ev = side_sets[j][(side_sets[j] >= lo) & (side_sets[j] < hi)]
        kept.append(ev)
        x_sample = _period_sample(cols, test, ts)
        x_est = estimate(x_sample, [test.localize(ev)])
        t0, t1 = test.bounds_ns(ts, step)
        folds.append(FoldStats(
            side=side.name, train_end=iso(train.bounds_ns(ts, step)[1]), test_start=iso(t0), test_end=iso(t1),
            set_index=j, params=dict(grid[j]), events=int(x_est.n[0, 0]), hits=int(round(x_est.total[0, 0])),
            hit_rate=num(x_est.mean[0, 0]), base_rate=num(x_est.base[0]),
        ))
    return np.concatenate(kept) if kept else np.arange(0), folds


def study_events(
    bars: PriceBars,
    fired: Mapping[str, Any],
    settings: StudySettings,
    cooldown_ns: int,
    seed: int | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> Study:
    """The event study of one configuration given its per-bar firing per side."""
    return run_study(bars, lambda _params: fired, settings, cooldown_ns, ({},), seed, inputs)


@dataclass(frozen=True)
class TrackRecord:
    """A configuration's point-in-time record for ``tapewatch scan``: only the events (and base-rate
    bars) whose move label was already known at ``as_of`` (UTC ISO time of the annotated event's
    bar open): a bar stamped ``t`` is known once ``t + move_window <= as_of``."""

    side: str
    as_of: str
    events: int  # counted, scored episodes known by then
    hits: int
    hit_rate: float | None
    base_rate: float | None  # over the scorable bars known by then
    ci_low: float | None  # one-sided Clopper–Pearson lower bound of the hit rate at ``confidence``
    p_value: float | None  # exact one-sided binomial test against the base rate
    confidence: float
    label: str

    def describe(self) -> str:
        """``before this event: n=14, hit 64 % (95 % CI ≥ 41 %) vs base 41 %, p = 0.08 (pullback >= 2% within 24h)``."""
        if not self.events:
            return f"before this event: no earlier {self.side} event with a known outcome ({self.label})"
        return (f"before this event: n={self.events}, hit {pct(self.hit_rate)} ({self.confidence * 100:g} % CI "
                f"{pct_range(self.ci_low, None)}) vs base {pct(self.base_rate)}, {p_text(self.p_value)} ({self.label})")


@dataclass(frozen=True)
class TrackRecords:
    """Per side, the counted episodes and the move label of every bar, to give point-in-time
    records (:meth:`at`)."""

    ts: NDArray[np.int64]  # bar open times (UTC ns)
    window_ns: int  # the move window: a bar's label is known this long after its open
    labels: dict[str, NDArray[np.float64]]  # side → 0/1 label per bar (NaN: not scorable)
    events: dict[str, Positions]  # side → counted episode starts
    names: dict[str, str]  # side → label text
    confidence: float

    def at(self, side: str, ts_ns: int) -> TrackRecord:
        """The record of ``side`` as known when the bar opening at ``ts_ns`` (UTC ns) is annotated:
        earlier events and base-rate bars with ``t + move_window <= ts_ns`` only."""
        y = self.labels[side]
        known = int(np.searchsorted(self.ts, ts_ns - self.window_ns, side="right"))
        bars = y[:known]
        base = float(np.nanmean(bars)) if np.isfinite(bars).any() else np.nan
        ev = self.events[side]
        ev = ev[ev < known]
        ev = ev[~np.isnan(y[ev])]
        hits = float(y[ev].sum())
        p, low = exact_hit_test(np.array([hits]), np.array([len(ev)]), base, 1, self.confidence)
        return TrackRecord(side, iso(ts_ns), int(len(ev)), int(round(hits)), num(hits / len(ev)) if len(ev) else None,
                           num(base), num(low[0]), num(p[0]), self.confidence, self.names[side])


def track_record(bars: PriceBars, fired: Mapping[str, Any], settings: StudySettings, cooldown_ns: int) -> TrackRecords:
    """The point-in-time records of each side in ``fired`` over ``bars`` (see :class:`TrackRecords`);
    episodes are counted as in the study (cool-down, then at least the longest outcome window apart)."""
    step = bars.step_ns
    fw = compute_forward(bars, settings.horizons_ns(step), settings.move_window_ns(step), settings.move_pct,
                         settings.move_from)
    gap = settings.episode_gap_ns(step)
    labels, events, names = {}, {}, {}
    for side in SIDES:
        if side.name in fired:
            cols = side_columns(fw, side)
            labels[side.name], names[side.name] = cols.values[:, 0], cols.names[0]
            events[side.name] = thin(bars.ts, collapse(bars.ts, fired[side.name], cooldown_ns), gap)
    return TrackRecords(bars.ts, fw.window_ns, labels, events, names, settings.confidence)
