"""Bull / bear regimes, measured on past bars only, and the hit rate per regime.

Bar ``i`` (open ``ts_i``, known at its close ``ts_i + step``) is labelled by the trailing return of
the close over the window ``W`` that ends at its close: ``close_i / close(ts_i + step - W) - 1``,
where ``close(T)`` is the close of the last bar that closed at or before ``T`` (a gap carries the
previous close forward, as for the forward returns). A positive return is "bull", zero or
negative "bear"; when ``ts_i + step - W`` falls before the first bar's close the window is not
covered and the label is "unknown". Nothing after the signal bar's close is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from tapewatch.study.forward import PriceBars, carried_close
from tapewatch.study.result import RegimeStats, num

REGIMES = ("bull", "bear", "unknown")
BULL, BEAR, UNKNOWN = 0, 1, 2  # codes: indices into REGIMES


def trailing_returns(bars: PriceBars, window_ns: int) -> NDArray[np.float64]:
    """Per bar, the close's return over ``window_ns`` ending at that bar's close (NaN: not covered)."""
    w = bars.bars_in(window_ns, "the regime window")
    g = bars.grid
    close_ff = carried_close(bars)
    out = np.full(len(bars), np.nan)
    ok = g >= w
    out[ok] = bars.close[ok] / close_ff[g[ok] - w] - 1.0
    return out


def regime_codes(bars: PriceBars, window_ns: int) -> NDArray[np.int8]:
    """Per bar: :data:`BULL`, :data:`BEAR` or :data:`UNKNOWN` (see the module docstring)."""
    r = trailing_returns(bars, window_ns)
    out = np.where(r > 0, BULL, BEAR).astype(np.int8)
    out[np.isnan(r)] = UNKNOWN
    return out


def regime_stats(label: NDArray[np.float64], codes: NDArray[np.int8], events: Sequence[int] | NDArray[np.intp]
                 ) -> tuple[RegimeStats, ...]:
    """Hit rate of ``events`` (row positions) vs the base rate, per regime, over one period.

    ``label`` is the period's 0/1 move label (NaN = not scorable) and ``codes`` its bars' regimes.
    """
    ev = np.asarray(events, dtype=np.intp)
    scored = ~np.isnan(label)
    out = []
    for code, name in enumerate(REGIMES):
        at = ev[scored[ev] & (codes[ev] == code)]
        hits = float(label[at].sum())
        every = scored & (codes == code)
        rate = hits / len(at) if len(at) else None
        base = float(label[every].mean()) if every.any() else None
        out.append(RegimeStats(name, int(len(at)), int(round(hits)), num(rate), int(every.sum()), num(base),
                               num(rate - base) if rate is not None and base is not None else None))
    return tuple(out)
