"""Forward returns and the move label, measured on future bars only.

A bar stamped ``ts`` (its open time, UTC ns) covers ``[ts, ts + step)``; a signal on it is known
at its close ``ts + step``. Everything here is measured from that close:

* the forward return at horizon ``H`` is ``close(ts + step + H) / close(ts) - 1``, where
  ``close(T)`` is the close of the last bar that closed at or before ``T`` (a gap in the data
  carries the previous close forward);
* the move label over the window ``W`` uses the bars ``j`` with ``ts < ts_j <= ts + W`` (the bars
  that close within ``W`` after the signal bar's close): ``down`` is the lowest low relative to the
  signal close (``move_from="close"``) or the largest peak-to-trough drawdown inside the window,
  the peak starting at the signal close (``move_from="peak"``; a bar's own high is not taken as
  a peak for its own low, since the order inside a bar is unknown); ``up`` is the mirror;
* a value is NaN where its horizon runs past the data: ``ts + H > ts_last``.

The computation is vectorised over all bars once; a study then only gathers rows at events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from tapewatch.errors import TapewatchError
from tapewatch.timeutil import interval_ns

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


_UNITS = (("d", 86_400_000_000_000), ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000))


def format_duration(ns: int) -> str:
    """A duration in nanoseconds as short text in the largest whole unit (days from two days on):
    ``24h``, ``90m``, ``2d``."""
    for unit, size in _UNITS:
        if ns and ns % size == 0 and (unit != "d" or ns >= 2 * size):
            return f"{ns // size}{unit}"
    return f"{ns / 1e9:g}s"


@dataclass(frozen=True)
class PriceBars:
    """Bars on one regular time grid: open time ``ts`` (UTC ns, strictly increasing, multiples of
    ``step_ns`` apart — gaps allowed) and ``close``, ``high``, ``low`` in quote units."""

    ts: I64
    close: F64
    high: F64
    low: F64
    step_ns: int

    def __post_init__(self) -> None:
        n = len(self.ts)
        if not (len(self.close) == len(self.high) == len(self.low) == n):
            raise TapewatchError("bars: ts, close, high and low must have the same length")
        if n == 0:
            raise TapewatchError("bars: no bars in the requested range")
        d = np.diff(self.ts)
        if (d <= 0).any():
            raise TapewatchError("bars: timestamps must be strictly increasing")
        if (d % self.step_ns).any():
            raise TapewatchError("bars: timestamps are not on the interval grid")
        if not np.isfinite(self.close).all() or (self.close <= 0).any():
            raise TapewatchError("bars: every close must be a positive number")

    @classmethod
    def from_frame(cls, df: pl.DataFrame, interval: str) -> PriceBars:
        """From a frame with ``ts`` (Datetime or int ns), ``close``, ``high``, ``low``.

        Rows without a close are dropped; a missing high or low falls back to the close.
        """
        df = df.filter(pl.col("close").is_not_null())
        ts = df.get_column("ts")
        if ts.dtype != pl.Int64:
            ts = ts.cast(pl.Datetime("ns", "UTC")).cast(pl.Int64)
        close = df.get_column("close").cast(pl.Float64).to_numpy()
        high = df.get_column("high").cast(pl.Float64).fill_null(df.get_column("close")).to_numpy()
        low = df.get_column("low").cast(pl.Float64).fill_null(df.get_column("close")).to_numpy()
        return cls(ts.to_numpy().astype(np.int64), close, np.maximum(high, close), np.minimum(low, close),
                   interval_ns(interval))

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def grid(self) -> I64:
        """Each bar's index on the regular grid that starts at the first bar."""
        return (self.ts - self.ts[0]) // self.step_ns

    def bars_in(self, duration_ns: int, what: str) -> int:
        """``duration_ns`` as a whole number of bars (TapewatchError when it is not one)."""
        if duration_ns <= 0 or duration_ns % self.step_ns:
            raise TapewatchError(
                f"{what} ({format_duration(duration_ns)}) must be a positive whole number of "
                f"{format_duration(self.step_ns)} bars"
            )
        return duration_ns // self.step_ns


@dataclass(frozen=True)
class ForwardTable:
    """Per-bar forward outcomes (see the module docstring); NaN where the horizon runs past the data.

    ``returns[:, j]`` is the forward return (a fraction, 0.01 = 1 %) at ``horizons_ns[j]``;
    ``down`` / ``up`` are the fall / rise within ``window_ns`` as fractions (down <= 0 when price
    traded below the reference); ``move_pct`` is the label threshold in percent.
    """

    bars: PriceBars
    horizons_ns: tuple[int, ...]
    returns: F64
    window_ns: int
    move_pct: float
    move_from: str
    down: F64
    up: F64

    def hit(self, direction: int) -> F64:
        """1.0 where the move happened (a fall for ``direction`` -1, a rise for +1), 0.0 where not, NaN unknown."""
        x = self.down if direction < 0 else self.up
        thr = self.move_pct / 100.0
        out = np.where(direction * x >= thr - 1e-12, 1.0, 0.0)
        out[np.isnan(x)] = np.nan
        return out


def _on_grid(bars: PriceBars, values: F64, fill: float) -> F64:
    out = np.full(int(bars.grid[-1]) + 1, fill)
    out[bars.grid] = values
    return out


def carried_close(bars: PriceBars) -> F64:
    """Per grid slot (from the first bar): the close of the last bar at or before it (gaps carry
    the previous close forward)."""
    close = _on_grid(bars, bars.close, np.nan)
    last = np.maximum.accumulate(np.where(np.isnan(close), 0, np.arange(len(close))))
    return close[last]


def forward_returns(bars: PriceBars, horizons_ns: tuple[int, ...]) -> F64:
    """``(n, len(horizons))`` forward returns from each bar's close (fractions; NaN past the data)."""
    g = bars.grid
    size = int(g[-1]) + 1
    close_ff = carried_close(bars)
    out = np.full((len(bars), len(horizons_ns)), np.nan)
    for j, h_ns in enumerate(horizons_ns):
        target = g + bars.bars_in(h_ns, "a horizon")
        ok = target < size
        out[ok, j] = close_ff[target[ok]] / bars.close[ok] - 1.0
    return out


def _future_extreme(values: F64, w: int, low: bool) -> F64:
    """For each grid slot k: min (or max) of ``values[k+1 .. k+w]``; ±inf where none exist."""
    fill = np.inf if low else -np.inf
    filt = minimum_filter1d if low else maximum_filter1d
    # window [k, k+w-1] with origin -(w // 2); then shift by one slot to start after k
    ahead = filt(values, size=w, origin=-(w // 2), mode="constant", cval=fill)
    return np.concatenate([ahead[1:], [fill]])


def _drawdowns(close: F64, high: F64, low: F64, w: int) -> tuple[F64, F64]:
    """Largest peak-to-trough fall and trough-to-peak rise within the next ``w`` slots (grid arrays;
    missing slots hold +inf lows / -inf highs). The reference starts at each slot's close."""
    size = len(close)
    down = np.full(size, np.inf)
    up = np.full(size, -np.inf)
    peak = close.copy()
    trough = close.copy()
    for k in range(1, w + 1):
        m = size - k
        if m <= 0:
            break
        with np.errstate(invalid="ignore"):  # missing slots: NaN references, ±inf extremes
            np.minimum(down[:m], low[k:] / peak[:m] - 1.0, out=down[:m])
            np.maximum(up[:m], high[k:] / trough[:m] - 1.0, out=up[:m])
        np.fmax(peak[:m], high[k:], out=peak[:m])
        np.fmin(trough[:m], low[k:], out=trough[:m])
    return down, up


def compute_forward(
    bars: PriceBars,
    horizons_ns: tuple[int, ...],
    window_ns: int,
    move_pct: float,
    move_from: str = "close",
) -> ForwardTable:
    """Forward returns at ``horizons_ns`` and the fall / rise within ``window_ns`` for every bar.

    ``move_pct`` (percent) is stored for :meth:`ForwardTable.hit`; ``move_from`` is "close"
    (relative to the signal close) or "peak" (peak-to-trough drawdown inside the window).
    """
    if move_from not in ("close", "peak"):
        raise TapewatchError(f"move_from must be 'close' or 'peak', got {move_from!r}")
    w = bars.bars_in(window_ns, "the move window")
    g = bars.grid
    last_ok = g + w <= g[-1]
    high = _on_grid(bars, bars.high, -np.inf)
    low = _on_grid(bars, bars.low, np.inf)
    if move_from == "close":
        down = _future_extreme(low, w, low=True)[g] / bars.close - 1.0
        up = _future_extreme(high, w, low=False)[g] / bars.close - 1.0
    else:
        d, u = _drawdowns(_on_grid(bars, bars.close, np.nan), high, low, w)
        down, up = d[g], u[g]
    for x in (down, up):
        x[~last_ok | ~np.isfinite(x)] = np.nan
    return ForwardTable(bars, tuple(horizons_ns), forward_returns(bars, horizons_ns), window_ns, move_pct,
                        move_from, down, up)
