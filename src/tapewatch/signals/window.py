"""Rolling sum, mean and standard deviation whose value at a bar depends only on that bar's window.

Polars' ``rolling_sum`` / ``rolling_mean`` / ``rolling_std`` update a running total (add the
entering value, subtract the leaving one), so the last bits of a value at bar t depend on where the
series started. A frame that starts at a warm-up (``registry.warmup_bars``) would then differ, by a
rounding, from one that starts days earlier, and a live bar close computed over its warm-up would
not equal the batch row of the whole session. Here every value is a function of the values in its
window alone, in a fixed order, so it is bit for bit the same whatever the series' first bar.

How: the bars are cut into blocks of ``w`` consecutive bars aligned on the epoch (bar index
``ts // step``). A window of ``w`` bars ending at bar t is the prefix of t's block up to t plus a
suffix (to its end) of the block before; both are accumulated from the block boundary, so they
hold only values of the window (the van Herk / Gil-Werman decomposition). Each part keeps its
count of present values, its sum and its Welford mean and squared deviations (M2); the two are
merged with Chan's formula. O(n) whatever ``w``.

Conventions match polars': a null is left out of the window (``min_samples`` counts present
values; fewer gives null), a NaN is a value and makes the windows that hold it NaN; the first
rows' windows are cut at the series start. ``mean`` = sum / count; ``std`` is the sample standard
deviation (ddof 1).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tapewatch.book._jit import njit


@njit
def _running(x: np.ndarray, ok: np.ndarray, order: np.ndarray, reset: np.ndarray) -> tuple[np.ndarray, ...]:  # pragma: no cover - numba
    """Visiting the rows in ``order`` and starting afresh at each row where ``reset`` holds: per row,
    (count, sum, Welford mean, M2) of the present values visited since the last reset, itself included."""
    n = x.shape[0]
    cnt, tot, mean, m2 = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    c = s = m = q = 0.0
    for k in range(n):
        i = order[k]
        if reset[i]:
            c = s = m = q = 0.0
        if ok[i]:
            c += 1.0
            s += x[i]
            d = x[i] - m
            m += d / c
            q += d * (x[i] - m)
        cnt[i], tot[i], mean[i], m2[i] = c, s, m, q
    return cnt, tot, mean, m2


@njit
def _windows(x: np.ndarray, ok: np.ndarray, a0: int, w: int) -> tuple[np.ndarray, ...]:  # pragma: no cover - numba
    """Per bar: (count, sum, M2) of the present values in the ``w`` bars ending there."""
    n = x.shape[0]
    rows = np.arange(n)
    pos = (a0 + rows) % w  # place of each bar in its block
    first_of_block, last_of_block = pos == 0, pos == w - 1
    first_of_block[0] = last_of_block[n - 1] = True
    pc, ps, pm, pq = _running(x, ok, rows, first_of_block)  # block prefixes, up to each bar
    sc, ss, sm, sq = _running(x, ok, rows[::-1], last_of_block)  # block suffixes, from each bar
    cnt, tot, m2 = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        first = max(0, i - w + 1)
        block = i - (a0 + i) % w  # row of the first bar of i's block (may lie before the series)
        c, s, m, q = pc[i], ps[i], pm[i], pq[i]
        if first < block and sc[first] > 0:
            cb, sb, mb, qb = sc[first], ss[first], sm[first], sq[first]
            if c > 0:
                d = m - mb
                q = qb + q + d * d * cb * c / (cb + c)
            else:
                q = qb
            c, s = cb + c, sb + s
        cnt[i], tot[i], m2[i] = c, s, q
    return cnt, tot, m2


class Rolling:
    """The rolling statistics of one column of a frame on a contiguous bar grid (``ts`` Int64 ns,
    one row per bar of ``step`` ns) over windows of ``w`` bars ending at each bar."""

    def __init__(self, df: pl.DataFrame, column: str, w: int, step: int) -> None:
        col = df.get_column(column).cast(pl.Float64)
        ts = df.get_column("ts")
        n = df.height
        a0 = int(ts[0]) // step if n else 0
        if n and int(ts[-1]) // step - a0 != n - 1:
            raise ValueError("rolling windows need one row per bar (a contiguous grid)")
        x = col.fill_null(0.0).to_numpy().astype(np.float64)
        ok = col.is_not_null().to_numpy()
        self.name = column
        self.count, self.total, self.m2 = _windows(x, ok, a0, w) if n else (np.zeros(0),) * 3

    def _out(self, values: np.ndarray, min_samples: int) -> pl.Series:
        out = pl.Series(self.name, values, dtype=pl.Float64)
        enough = pl.Series(self.count >= max(min_samples, 1))
        return out.zip_with(enough, pl.Series(self.name, [None] * len(values), dtype=pl.Float64))

    def sum(self, min_samples: int) -> pl.Series:
        """Sum of the present values (null below ``min_samples`` of them)."""
        return self._out(self.total, min_samples)

    def mean(self, min_samples: int) -> pl.Series:
        """Mean of the present values (sum / count; null below ``min_samples``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._out(self.total / self.count, min_samples)

    def std(self, min_samples: int) -> pl.Series:
        """Sample standard deviation (ddof 1; null below ``max(min_samples, 2)`` present values)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.maximum(self.m2 / (self.count - 1.0), 0.0)
        return self._out(np.sqrt(var), max(min_samples, 2))

