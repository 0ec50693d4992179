"""Study periods: the in-sample part, an untouched final part, walk-forward folds.

A :class:`Period` is one or more whole ranges of bar positions studied together. Labels are
embargoed at every range end: an outcome whose horizon runs past the last bar of its range is
NaN inside that period, so no in-sample label ever looks at out-of-sample prices.
Splits are by time (bar open times, UTC ns), so gaps in the data do not shift them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tapewatch.errors import TapewatchError
from tapewatch.timeutil import ns_to_iso

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Period:
    """A named set of bar-position ranges ``[lo, hi)`` into the full bar arrays."""

    name: str
    ranges: tuple[tuple[int, int], ...]

    @property
    def positions(self) -> NDArray[np.intp]:
        """The period's bar positions, in order."""
        return np.concatenate([np.arange(lo, hi) for lo, hi in self.ranges]) if self.ranges else np.arange(0)

    @property
    def size(self) -> int:
        return sum(hi - lo for lo, hi in self.ranges)

    def bounds_ns(self, ts: I64, step_ns: int) -> tuple[int, int]:
        """First bar open and last bar close of the period (UTC ns)."""
        return int(ts[self.ranges[0][0]]), int(ts[self.ranges[-1][1] - 1]) + step_ns

    def restrict(self, values: F64, horizons_ns: tuple[int, ...] | list[int], ts: I64) -> F64:
        """Rows of ``values`` (n × m, column j looks ``horizons_ns[j]`` ahead) for this period, NaN
        where the horizon runs past the last bar of the row's range."""
        parts = []
        h = np.asarray(horizons_ns, dtype=np.int64)
        for lo, hi in self.ranges:
            part = values[lo:hi].copy()
            part[ts[lo:hi, None] + h[None, :] > ts[hi - 1]] = np.nan
            parts.append(part)
        return np.concatenate(parts) if parts else values[:0]

    def localize(self, positions: NDArray[np.intp]) -> NDArray[np.intp]:
        """Global bar positions that fall inside the period, as positions into :attr:`positions`."""
        out, offset = [], 0
        for lo, hi in self.ranges:
            inside = positions[(positions >= lo) & (positions < hi)]
            out.append(inside - lo + offset)
            offset += hi - lo
        return np.concatenate(out).astype(np.intp) if out else np.arange(0)


def _cut(ts: I64, step_ns: int, fraction: float) -> int:
    """Position of the first bar that opens at or after ``fraction`` of the time span."""
    t0, t1 = int(ts[0]), int(ts[-1]) + step_ns
    return int(np.searchsorted(ts, t0 + fraction * (t1 - t0), side="left"))


def whole(ts: I64) -> Period:
    """All bars as one period."""
    return Period("all data", ((0, len(ts)),))


def holdout(ts: I64, step_ns: int, fraction: float) -> tuple[Period, Period]:
    """In-sample = the first ``1 - fraction`` of the time span; out-of-sample = the untouched rest."""
    cut = _cut(ts, step_ns, 1.0 - fraction)
    if cut <= 0 or cut >= len(ts):
        span = f"{ns_to_iso(int(ts[0]))} → {ns_to_iso(int(ts[-1]) + step_ns)} UTC" if len(ts) else "no time span"
        raise TapewatchError(
            f"holdout of {fraction:.0%}: the price bars ({len(ts):,} bars with a close, {span}) leave {max(cut, 0):,} "
            f"bars in-sample and {max(len(ts) - cut, 0):,} out-of-sample; the study needs bars on both sides — store a "
            "longer stretch of spot or perp bars for this symbol at this interval (tapewatch status lists them), "
            "or choose --interval / --start / --end where they are"
        )
    return Period("in-sample", ((0, cut),)), Period(f"out-of-sample, final untouched {fraction:.0%}", ((cut, len(ts)),))


def walk_forward(ts: I64, step_ns: int, folds: int) -> list[tuple[Period, Period]]:
    """``folds`` (train, test) pairs: the span is cut into ``folds + 1`` equal chunks of time; fold
    ``j`` trains on chunks ``0..j-1`` (an expanding window) and tests on chunk ``j``."""
    cuts = [_cut(ts, step_ns, i / (folds + 1)) for i in range(folds + 2)]
    cuts[-1] = len(ts)
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise TapewatchError(f"too few bars for {folds} walk-forward folds")
    return [
        (Period(f"walk-forward train {j}", ((0, cuts[j]),)), Period(f"walk-forward test {j}", ((cuts[j], cuts[j + 1]),)))
        for j in range(1, folds + 1)
    ]


def pooled(name: str, periods: list[Period]) -> Period:
    """The union of several periods' ranges (e.g. all walk-forward test chunks)."""
    return Period(name, tuple(r for p in periods for r in p.ranges))
