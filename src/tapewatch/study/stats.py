"""Event statistics against the unconditional base, for many parameter sets at once.

Inputs are plain: a :class:`Sample` — the outcome columns of one period, one row per bar (hit
labels 0/1 and forward returns as fractions; NaN = not scorable) with, per column, the direction
the signal claims (+1: higher than the base, -1: lower) — and a list of event sets, each an array
of row positions (episode starts, see :mod:`tapewatch.study.events`).

For each set and column: the event mean (the hit rate, or the mean forward return), the median,
and the base = the mean over *all* scorable bars of the same period.

Tests are one-sided in the direction the signal claims, and every interval is the matching
one-sided bound at ``confidence`` (a lower bound when the claim is "higher", an upper bound when
it is "lower"; the other end is open, NaN), so "p <= 1 - confidence" exactly when the bound
excludes the base. Both hold for any number of events, one included:

* a 0/1 column (the move label): the exact binomial test of the hits among the ``n`` events
  against the base rate, ``p = P(X >= hits)`` for ``X ~ Binomial(n, base)`` (``P(X <= hits)`` for a
  claim "lower"), and the one-sided Clopper–Pearson bound (``scipy.stats``). A single hit can never
  give ``p`` below the base rate.
* a forward-return column: a rotation permutation test on the same bars. Each draw shifts all of a
  set's events together by one random offset along the period (circularly), which keeps their
  spacing and the returns' own serial dependence; ``p = (1 + #{s·(m* - m) >= 0}) / (1 + draws)``
  with ``m`` the event mean, ``m*`` the shifted one and ``s`` the claimed direction. The bound
  inverts that test: ``m + base - s·c`` with ``c`` the critical value of ``s·m*`` at level
  ``1 - confidence``.

Medians get a stationary block bootstrap of the bars (``arch.bootstrap.StationaryBootstrap``; the
mean block length is ``arch.bootstrap.optimal_block_length`` of the outcome columns, the largest
of them) and the same one-sided percentile bound. One set of draws serves every parameter set: per
draw one shift (and one bootstrap count vector), and the event sums of all sets are one sparse
product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from arch.bootstrap import StationaryBootstrap, optimal_block_length
from numpy.typing import NDArray
from scipy import sparse
from scipy.stats import beta, binom

F64 = NDArray[np.float64]
Positions = NDArray[np.intp]


@dataclass(frozen=True)
class Sample:
    """Outcome columns of one period: ``values`` (bars × columns, NaN = not scorable) and the
    claimed direction of each column (``signs``, +1 or -1)."""

    values: F64
    signs: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.signs):
            raise ValueError("Sample: values must be bars × columns with one sign per column")

    @property
    def bars(self) -> int:
        return int(self.values.shape[0])

    @property
    def binary(self) -> tuple[bool, ...]:
        """Per column: every scorable value is 0 or 1 (a label, tested exactly)."""
        return tuple(bool(np.isin(c[~np.isnan(c)], (0.0, 1.0)).all()) for c in self.values.T)


@dataclass(frozen=True)
class Estimates:
    """Point estimates; arrays are sets × columns unless noted."""

    n: NDArray[np.int64]  # events with a scorable outcome
    total: F64  # sum of outcomes over those events (= hits for a 0/1 column)
    mean: F64  # hit rate or mean forward return (NaN without events)
    median: F64
    base: F64  # (columns,) mean over all scorable bars of the period
    base_median: F64  # (columns,)

    @property
    def excess(self) -> F64:
        return self.mean - self.base[None, :]


@dataclass(frozen=True)
class Bootstrap:
    """Test results; arrays are sets × columns (see the module doc)."""

    block: int  # mean block length of the median bootstrap (bars)
    reps: int
    confidence: float
    ci_low: F64  # one-sided bound of the event mean: the lower one for a claim "higher", else NaN
    ci_high: F64  # the upper one for a claim "lower", else NaN
    p: F64  # one-sided p-value of event mean vs base, in the claimed direction (exact for 0/1 columns)
    median_ci_low: F64 = field(repr=False)  # NaN except for the sets asked for in ``detail``
    median_ci_high: F64 = field(repr=False)


def event_matrix(sets: Sequence[Positions], bars: int) -> tuple[sparse.csr_matrix, Positions]:
    """Sets × union-of-event-positions 0/1 matrix, and the union (sorted row positions)."""
    union = np.unique(np.concatenate([np.asarray(s, dtype=np.intp) for s in sets])) if sets else np.arange(0)
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    cols = np.searchsorted(union, np.concatenate([np.asarray(s, dtype=np.intp) for s in sets])) if sets else rows
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), len(union)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m, union


def estimate(sample: Sample, sets: Sequence[Positions]) -> Estimates:
    """Point estimates of every set against the base of the sample's period."""
    vals = sample.values
    k, m = len(sets), vals.shape[1]
    n = np.zeros((k, m), dtype=np.int64)
    total = np.zeros((k, m))
    median = np.full((k, m), np.nan)
    for i, pos in enumerate(sets):
        ev = vals[np.asarray(pos, dtype=np.intp)]
        ok = ~np.isnan(ev)
        n[i] = ok.sum(axis=0)
        total[i] = np.where(ok, ev, 0.0).sum(axis=0)
        for j in np.flatnonzero(n[i]):
            median[i, j] = float(np.median(ev[ok[:, j], j]))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    base = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in vals.T])
    base_median = np.array([np.nanmedian(c) if np.isfinite(c).any() else np.nan for c in vals.T])
    return Estimates(n, total, mean, median, base, base_median)


def block_length(samples: Sequence[Sample]) -> int:
    """Mean block length in bars: the largest Politis–White optimal stationary-bootstrap block of the
    samples' first and last columns (the move label and the longest-horizon return — the most
    persistent ones; identical columns are estimated once), NaN rows dropped; at least 1 and at
    most the number of bars."""
    best, bars, seen = 1.0, 1, []
    for sample in samples:
        bars = max(bars, sample.bars)
        for j in sorted({0, sample.values.shape[1] - 1}):
            x = sample.values[:, j]
            x = x[~np.isnan(x)]
            if len(x) < 10 or np.ptp(x) == 0 or any(len(x) == len(y) and np.array_equal(x, y) for y in seen):
                continue
            seen.append(x)
            best = max(best, float(optimal_block_length(x)["stationary"].iloc[0]))
    return int(min(max(1, np.ceil(best)), bars))


def _weighted_medians(values: F64, counts: F64) -> F64:
    """Median of each resample given as draw counts (draws × len(values)); NaN for empty draws.

    Equals ``np.median`` of the resampled multiset (the mean of the two middle order statistics).
    """
    order = np.argsort(values, kind="stable")
    v = values[order]
    cum = np.cumsum(counts[:, order], axis=1)
    tot = cum[:, -1]
    lo = np.array([np.searchsorted(c, (t - 1) // 2, side="right") for c, t in zip(cum, tot)])
    hi = np.array([np.searchsorted(c, t // 2, side="right") for c, t in zip(cum, tot)])
    out = np.full(len(tot), np.nan)
    ok = tot > 0
    out[ok] = 0.5 * (v[lo[ok]] + v[hi[ok]])
    return out


@dataclass(frozen=True)
class Group:
    """One family of event sets scored on a sample (e.g. all parameter sets of one side)."""

    sample: Sample
    sets: Sequence[Positions]
    est: Estimates
    detail: Sequence[int] = ()  # sets that also get a median interval (stores per-draw counts: keep small)


class _Accumulator:
    """Collects one group's draws: per draw the event means of every set shifted by one offset,
    and the bootstrap counts of the sets that get a median bound."""

    def __init__(self, g: Group, reps: int) -> None:
        vals = g.sample.values
        self.group = g
        self.ok = ~np.isnan(vals)
        self.okvz = np.hstack([self.ok.astype(np.float64), np.where(self.ok, vals, 0.0)])  # counts and sums at once
        self.mat, self.union = event_matrix(g.sets, len(vals))
        self.m = vals.shape[1]
        self.detail = {i: np.asarray(g.sets[i], dtype=np.intp) for i in g.detail}
        self.detail_counts = {i: np.zeros((reps, len(p))) for i, p in self.detail.items()}
        self.mean_shift = np.full((reps, len(g.sets), vals.shape[1]), np.nan)

    def add(self, b: int, shift: int, counts: F64) -> None:
        """Draw ``b``: every event moved ``shift`` rows on (circularly); ``counts[t]`` = how often the
        bootstrap drew bar ``t``."""
        both = np.asarray(self.mat @ self.okvz[(self.union + shift) % len(self.okvz)])
        n_b, s_b = both[:, :self.m], both[:, self.m:]
        self.mean_shift[b] = np.where(n_b > 0, s_b / np.where(n_b > 0, n_b, 1.0), np.nan)
        for i, pos in self.detail.items():
            self.detail_counts[i][b] = counts[pos]

    def result(self, block: int, reps: int, confidence: float) -> Bootstrap:
        """One-sided p-values and bounds (exact for 0/1 columns, rotation otherwise), median bounds."""
        g = self.group
        vals, est = g.sample.values, g.est
        k, m = len(g.sets), vals.shape[1]
        sign = np.asarray(g.sample.signs, dtype=np.float64)
        p, bound = rotation_test(self.mean_shift, est.mean, est.base, sign, 1.0 - confidence)
        for j in np.flatnonzero(g.sample.binary):
            p[:, j], bound[:, j] = exact_hit_test(est.total[:, j], est.n[:, j], est.base[j], int(sign[j]), confidence)
        p[np.isnan(est.mean)] = np.nan
        bound[np.isnan(est.mean)] = np.nan
        up = sign[None, :] > 0
        ci_low, ci_high = np.where(up, bound, np.nan), np.where(up, np.nan, bound)
        med_lo = np.full((k, m), np.nan)
        med_hi = np.full((k, m), np.nan)
        for i, pos in self.detail.items():
            for j in range(m):
                good = self.ok[pos, j]
                if good.any():
                    meds = _weighted_medians(vals[pos[good], j], self.detail_counts[i][:, good])
                    q = float(np.nanquantile(meds, 1.0 - confidence if sign[j] > 0 else confidence))
                    med_lo[i, j], med_hi[i, j] = (q, np.nan) if sign[j] > 0 else (np.nan, q)
        return Bootstrap(block, reps, confidence, ci_low, ci_high, p, med_lo, med_hi)


def exact_hit_test(hits: F64, n: NDArray[np.int64], base: float, sign: int, confidence: float) -> tuple[F64, F64]:
    """Exact binomial test of ``hits`` out of ``n`` events against the rate ``base``, one-sided in
    the direction ``sign`` (+1: more hits than ``base`` predicts), and the matching one-sided
    Clopper–Pearson bound at ``confidence`` (lower for +1, upper for -1). NaN where ``n`` is 0.

    ``p <= 1 - confidence`` exactly when the bound excludes ``base``.
    """
    k = np.round(np.asarray(hits, dtype=np.float64))
    nn = np.asarray(n, dtype=np.float64)
    a = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        if sign > 0:
            p = binom.sf(k - 1, nn, base)
            bound = np.where(k > 0, beta.ppf(a, np.maximum(k, 1), nn - k + 1), 0.0)
        else:
            p = binom.cdf(k, nn, base)
            bound = np.where(k < nn, beta.ppf(1.0 - a, k + 1, np.maximum(nn - k, 1)), 1.0)
    none = nn <= 0
    return np.where(none, np.nan, p), np.where(none, np.nan, bound)


def rotation_test(shifted: F64, mean: F64, base: F64, sign: F64, alpha: float) -> tuple[F64, F64]:
    """p-values and one-sided bounds from rotated event means (see the module doc).

    ``shifted``: draws × sets × columns (NaN: no scorable event after the shift); ``mean``: sets ×
    columns; ``base`` and ``sign`` per column; ``alpha`` = 1 - confidence. The bound is
    ``mean + base - s·c`` where ``c`` is the ``(r + 1)``-th largest ``s·m*`` with
    ``r = floor(alpha (1 + draws) - 1)``, so ``p <= alpha`` exactly when ``s·(bound - base) > 0``;
    NaN when too few draws allow ``p <= alpha``.
    """
    s = sign[None, None, :]
    drawn = ~np.isnan(shifted)
    valid = drawn.sum(axis=0)
    exceed = (s * (shifted - mean[None]) >= -1e-12) & drawn
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (1.0 + exceed.sum(axis=0)) / (1.0 + valid)
    desc = np.sort(-(s * shifted), axis=0)  # ascending negatives = descending s·m*, NaN last
    r = np.floor(alpha * (1.0 + valid) - 1.0 + 1e-9).astype(np.int64)
    c = -np.take_along_axis(desc, np.clip(r, 0, max(len(shifted) - 1, 0))[None], axis=0)[0]
    bound = mean + base[None, :] - sign[None, :] * c
    bound[(r < 0) | (valid == 0)] = np.nan
    return p, bound


def bootstrap_groups(
    groups: Sequence[Group],
    reps: int,
    seed: int,
    confidence: float = 0.95,
    block: int | None = None,
) -> list[Bootstrap]:
    """Every set's event mean tested against the base (see the module doc).

    All groups must be samples of the same period (same bars); they share the draws: ``reps``
    rotations and bootstrap draws seeded by ``seed``, mean block length ``block`` bars (default
    :func:`block_length`). Memory: ``reps × sets × columns`` floats per group (1,000 × 1,000 × 4 =
    32 MB).
    """
    bars = groups[0].sample.bars
    if any(g.sample.bars != bars for g in groups):
        raise ValueError("bootstrap_groups: every group must cover the same bars")
    blk = block or block_length([g.sample for g in groups])
    accs = [_Accumulator(g, reps) for g in groups]
    bs = StationaryBootstrap(blk, np.zeros(bars), seed=seed)
    shifts = np.random.default_rng(seed).integers(0, bars, size=reps)
    with np.errstate(invalid="ignore", divide="ignore"):
        for b in range(reps):
            counts = np.bincount(bs.update_indices(), minlength=bars).astype(np.float64)
            for acc in accs:
                acc.add(b, int(shifts[b]), counts)
    return [acc.result(blk, reps, confidence) for acc in accs]


def bootstrap(
    sample: Sample,
    sets: Sequence[Positions],
    est: Estimates,
    reps: int,
    seed: int,
    confidence: float = 0.95,
    block: int | None = None,
    detail: Sequence[int] = (),
) -> Bootstrap:
    """:func:`bootstrap_groups` for a single group."""
    return bootstrap_groups([Group(sample, sets, est, detail)], reps, seed, confidence, block)[0]


def selection_score(est: Estimates, column: int, min_events: int) -> F64:
    """How well each set did on a 0/1 column, without a bootstrap (for choosing the best set).

    The z-score of the hit rate against the base rate, ``(rate - base) / sqrt(base (1 - base) / n)``;
    sets with fewer than ``min_events`` scored events (or no defined score) get -inf.
    """
    n = est.n[:, column].astype(np.float64)
    base = est.base[column]
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(base * (1.0 - base) / n)
        z = (est.mean[:, column] - base) / np.where(se > 0, se, np.nan)
    z = np.where(np.isnan(z), -np.inf, z)
    z[n < min_events] = -np.inf
    return z
