"""Corrections for trying many parameter sets.

* Benjamini–Hochberg (``statsmodels.stats.multitest.multipletests``, ``fdr_bh``) on the sets'
  p-values: adjusted p-values ("q") and which sets survive at a false discovery rate ``alpha``.
* White's Reality Check and Hansen's SPA for the best set: is the best of all sets better than the
  base rate, allowing for the search? Each set is a "model" whose per-bar gain over the benchmark is
  ``g_t = s · e_t · (y_t - base) · bars / n_events`` (``e_t`` = 1 on an event bar, ``y_t`` the 0/1
  label, ``s`` the claimed direction), so the mean gain is the set's excess hit rate. The gains are
  summed into time buckets (``spa_bucket``, default 4h, so a year of 1-minute bars is 2,190 rows
  instead of 525,600). The base is held fixed.

  Both are computed here (:func:`spa_test`) from one stationary bootstrap of the buckets (only the
  public index generator ``arch.bootstrap.StationaryBootstrap.update_indices``):

  - Reality Check (White 2000): ``V = max_k sqrt(T) mean_k``, ``V* = max_k sqrt(T) (mean*_k - mean_k)``,
    ``p = share of draws with V* > V``.
  - SPA (Hansen 2005): the studentised ``T = max(0, max_k sqrt(T) mean_k / omega_k)`` with
    ``omega_k`` the long-run standard deviation (:func:`long_run_sd`), and
    ``T* = max(0, max_k sqrt(T) (mean*_k - mu_k) / omega_k)``. The "consistent" p-value (the one
    reported) re-centres with ``mu_k = mean_k`` only for sets whose mean is above
    ``-omega_k sqrt(2 log log T / T)`` and 0 for the clearly worse ones; "lower" uses
    ``max(mean_k, 0)``, "upper" ``mean_k``. A set with three lucky events cannot outrank a set
    with 500 solid ones, since each mean is divided by its own standard error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from arch.bootstrap import StationaryBootstrap
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
    spa = spa_test(g, block, reps, seed)
    best = int(used[int(np.argmax(g.mean(axis=0)))])
    return SnoopingResult(
        models=int(used.size), best=best, reality_check_p=spa.reality_check, spa_p=spa.consistent,
        spa_p_lower=spa.lower, spa_p_upper=spa.upper, buckets=int(g.shape[0]),
        bucket_bars=bucket_bars, block_buckets=block, reps=reps,
    )


@dataclass(frozen=True)
class SPAResult:
    """p-values of "no model beats the benchmark" (see the module doc)."""

    reality_check: float  # White's, on the raw means
    lower: float  # Hansen's SPA, studentised, three re-centrings
    consistent: float
    upper: float


def spa_test(gains: F64, block: int, reps: int, seed: int) -> SPAResult:
    """White's Reality Check and Hansen's studentised SPA of the columns of ``gains`` (time ×
    models; a model's gain over the benchmark per period, larger = better) under a stationary
    bootstrap with mean block ``block`` rows, ``reps`` draws seeded by ``seed``."""
    t, k = gains.shape
    mean = gains.mean(axis=0)
    omega = long_run_sd(gains, block)
    omega = np.where(omega > 0, omega, np.inf)  # a constant gain carries no evidence
    root = np.sqrt(t)
    floor = -omega * np.sqrt(2.0 * np.log(np.log(t)) / t) if t > 2 else np.full(k, -np.inf)
    centres = np.stack([np.maximum(mean, 0.0), np.where(mean >= floor, mean, 0.0), mean])  # lower, consistent, upper
    bs = StationaryBootstrap(block, np.zeros(t), seed=seed)
    counts = np.stack([np.bincount(bs.update_indices(), minlength=t) for _ in range(reps)]).astype(np.float64)
    mean_star = counts @ gains / t  # reps × models
    rc = float(np.mean(root * (mean_star - mean).max(axis=1) > root * mean.max()))
    stat = max(0.0, float((root * mean / omega).max()))
    star = np.maximum(0.0, (root * (mean_star[None] - centres[:, None, :]) / omega).max(axis=2))  # 3 × reps
    lower, consistent, upper = (float(x) for x in (star > stat).mean(axis=1))
    return SPAResult(rc, lower, consistent, upper)


def long_run_sd(x: F64, block: int) -> F64:
    """Long-run standard deviation of each column of ``x`` (rows = time) under the stationary
    bootstrap with mean block ``block``: ``sqrt(g_0 + 2 sum_i k_i g_i)`` with the autocovariances
    ``g_i`` and the Politis–Romano weights ``k_i = (1 - i/T)(1 - p)^i + (i/T)(1 - p)^(T - i)``,
    ``p = 1 / block`` (Hansen's 2005 estimator, as in ``arch.bootstrap.SPA``), by FFT in
    O(k T log T); a negative variance estimate gives 0."""
    t = x.shape[0]
    d = x - x.mean(axis=0)
    size = 1 << int(2 * t - 1).bit_length()
    f = np.fft.rfft(d, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:t] / t  # g_0 .. g_{T-1}
    i = np.arange(1, t)
    p = 1.0 / block
    kappa = (1.0 - i / t) * (1.0 - p) ** i + (i / t) * (1.0 - p) ** (t - i)
    var = acov[0] + 2.0 * (kappa[:, None] * acov[1:]).sum(axis=0)
    return np.sqrt(np.maximum(var, 0.0))
