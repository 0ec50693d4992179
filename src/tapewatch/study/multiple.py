"""Corrections for trying many parameter sets.

* Benjamini–Hochberg (``statsmodels.stats.multitest.multipletests``, ``fdr_bh``) on the sets'
  p-values: adjusted p-values ("q") and which sets survive at a false discovery rate ``alpha``.
* White's Reality Check and Hansen's SPA (``arch.bootstrap.SPA``) for the best set: is the best
  of all sets better than the base rate, allowing for the search? Each set is a "model" whose
  per-bar gain over the benchmark is ``g_t = s · e_t · (y_t - base) · bars / n_events`` (``e_t`` = 1
  on an event bar, ``y_t`` the 0/1 label, ``s`` the claimed direction), so the mean gain is the
  set's excess hit rate. The gains are summed into time buckets (``spa_bucket``, default 4h, so a
  year of 1-minute bars is 2,190 rows instead of 525,600); the benchmark loss is zero and a set's
  loss is minus its gain. The base is held fixed.

  Reality Check (White 2000) = the "upper" p-value of ``arch.bootstrap.SPA`` on the raw gains: the
  statistic is the largest mean gain. SPA (Hansen 2005) = the "consistent" p-value on studentised
  gains. arch 8's ``SPA`` uses ``studentize`` only to screen models for the consistent p-value and
  always takes the largest *raw* mean as its statistic, so a set with three lucky events outranks
  a set with 500 solid ones; the gains are therefore divided by their long-run standard deviation
  here first (the stationary-bootstrap kernel arch uses, with the same block length), which makes
  arch's statistic Hansen's ``max_k sqrt(n) mean_k / omega_k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from arch.bootstrap import SPA
from numpy.typing import NDArray
from scipy import sparse
from statsmodels.stats.multitest import multipletests

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class BHResult:
    """Benjamini–Hochberg over the sets with a p-value (NaN p: not tested, q NaN, not rejected)."""

    alpha: float
    tested: int
    q: F64
    rejected: NDArray[np.bool_]


def benjamini_hochberg(p: F64, alpha: float) -> BHResult:
    """BH-adjusted p-values and rejections at false discovery rate ``alpha``."""
    p = np.asarray(p, dtype=np.float64)
    ok = ~np.isnan(p)
    q = np.full(p.shape, np.nan)
    rejected = np.zeros(p.shape, dtype=bool)
    if ok.any():
        rej, q_ok, _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
        q[ok] = q_ok
        rejected[ok] = rej
    return BHResult(alpha, int(ok.sum()), q, rejected)


@dataclass(frozen=True)
class SnoopingResult:
    """Reality Check and SPA p-values for "the best set beats the base", and what they used."""

    models: int  # sets with at least one scored event
    best: int  # index (into the sets given) of the set with the largest excess
    reality_check_p: float
    spa_p: float  # Hansen's consistent p-value
    spa_p_lower: float
    spa_p_upper: float
    buckets: int
    bucket_bars: int
    block_buckets: int
    reps: int


def gains_by_bucket(y: F64, sign: int, sets: Sequence[NDArray[np.intp]], bucket_bars: int) -> tuple[F64, NDArray[np.intp]]:
    """Buckets × models matrix of summed gains (see the module doc) and the sets used as models.

    ``y``: the period's 0/1 labels (NaN = not scorable); ``sets``: event row positions per set.
    The matrix is scaled so that each column's mean over buckets is the set's excess hit rate.
    """
    ok = ~np.isnan(y)
    base = float(np.mean(y[ok])) if ok.any() else np.nan
    bars = len(y)
    n_buckets = max(1, -(-bars // bucket_bars))
    rows, cols, data, used = [], [], [], []
    for i, pos in enumerate(sets):
        pos = np.asarray(pos, dtype=np.intp)
        pos = pos[ok[pos]]
        if pos.size == 0:
            continue
        rows.append(pos // bucket_bars)
        cols.append(np.full(pos.size, len(used)))
        data.append(sign * (y[pos] - base) * n_buckets / pos.size)
        used.append(i)
    if not used:
        return np.zeros((n_buckets, 0)), np.arange(0)
    g = sparse.coo_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n_buckets, len(used))
    ).toarray()
    return g, np.asarray(used, dtype=np.intp)


def data_snooping(
    y: F64,
    sign: int,
    sets: Sequence[NDArray[np.intp]],
    bucket_bars: int,
    block_bars: int,
    reps: int,
    seed: int,
) -> SnoopingResult | None:
    """White's Reality Check and Hansen's SPA for the best of ``sets`` (None when no set has an event).

    ``block_bars``: the bar-level bootstrap block length, converted to buckets (rounded up).
    """
    g, used = gains_by_bucket(y, sign, sets, bucket_bars)
    if used.size == 0:
        return None
    block = max(1, -(-block_bars // bucket_bars))
    bench = np.zeros(g.shape[0])

    def run(gains: F64) -> dict[str, float]:
        spa = _SPA(bench, -gains, block_size=block, reps=reps, bootstrap="stationary", studentize=True, seed=seed)
        spa.compute()
        return {k: float(v) for k, v in spa.pvalues.items()}

    rc = run(g)
    hansen = run(g / long_run_sd(g, block)[None, :])
    best = int(used[int(np.argmax(g.mean(axis=0)))])
    return SnoopingResult(
        models=int(used.size), best=best, reality_check_p=rc["upper"], spa_p=hansen["consistent"],
        spa_p_lower=hansen["lower"], spa_p_upper=hansen["upper"], buckets=int(g.shape[0]),
        bucket_bars=bucket_bars, block_buckets=block, reps=reps,
    )


class _SPA(SPA):
    """``arch.bootstrap.SPA`` with its loss-differential variances computed by FFT.

    arch computes them with a Python loop over all T lags of a T × k product (O(T² k): seconds for
    2,000 buckets × 1,000 sets); :func:`long_run_sd` gives the same numbers (checked in the tests)
    in O(k T log T). Nothing else changes.
    """

    def _compute_variance(self) -> None:
        if self.nested:  # pragma: no cover - not used here
            super()._compute_variance()
            return
        self._loss_diff_var = long_run_sd(self._loss_diff, self.block_size, floor=False) ** 2


def long_run_sd(x: F64, block: int, floor: bool = True) -> F64:
    """Long-run standard deviation of each column of ``x`` (rows = time) under the stationary
    bootstrap with mean block ``block``: ``sqrt(g_0 + 2 sum_i k_i g_i)`` with the autocovariances
    ``g_i`` and the Politis–Romano weights ``k_i = (1 - i/T)(1 - p)^i + (i/T)(1 - p)^(T - i)``,
    ``p = 1 / block`` (the estimator of ``arch.bootstrap.SPA``, by FFT). With ``floor``, a
    non-positive variance falls back to ``g_0`` and a zero one to 1 (for scaling)."""
    t = x.shape[0]
    d = x - x.mean(axis=0)
    size = 1 << int(2 * t - 1).bit_length()
    f = np.fft.rfft(d, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:t] / t  # g_0 .. g_{T-1}
    i = np.arange(1, t)
    p = 1.0 / block
    kappa = (1.0 - i / t) * (1.0 - p) ** i + (i / t) * (1.0 - p) ** (t - i)
    var = acov[0] + 2.0 * (kappa[:, None] * acov[1:]).sum(axis=0)
    if not floor:
        return np.sqrt(np.maximum(var, 0.0))
    var = np.where(var > 0, var, acov[0])
    return np.sqrt(np.where(var > 0, var, 1.0))
