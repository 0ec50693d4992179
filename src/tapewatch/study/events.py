"""Events from a per-bar firing series: one episode counts once.

A firing within ``cooldown`` after the previous *firing* bar belongs to the same episode (the
rule of ``detector.cooldown`` in the signal configuration); the episode is stamped at its first
bar. So a condition that holds for three hours with a one-hour cool-down is one event, and a
condition that fires every 30 minutes all day is one event too.

The study then counts only episodes whose outcome windows do not overlap (:func:`thin`): an episode
that starts less than the longest outcome window after the last *counted* one shares outcome bars
with it and is not counted, so ``n`` is a number of independent outcomes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

I64 = NDArray[np.int64]


def as_fired(values: Any) -> NDArray[np.bool_]:
    """A firing series as a bool array: null / NaN (unknown) counts as not fired."""
    if isinstance(values, pl.Series):
        return values.cast(pl.Boolean).fill_null(False).to_numpy()
    arr = np.asarray(values)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype == object:
        return np.array([bool(v) if v is not None and v == v else False for v in arr], dtype=bool)
    return np.nan_to_num(arr.astype(np.float64), nan=0.0) != 0


def collapse(ts: I64, fired: Any, cooldown_ns: int) -> NDArray[np.intp]:
    """Positions of the first bar of each episode.

    ``ts``: bar open times (UTC ns, increasing); ``fired``: per-bar firing (bool, or null/NaN for
    unknown = not fired); ``cooldown_ns`` >= 0: a firing at most this long after the previous
    firing bar continues the episode.
    """
    pos = np.flatnonzero(as_fired(fired))
    if pos.size == 0:
        return pos
    keep = np.empty(pos.size, dtype=bool)
    keep[0] = True
    keep[1:] = np.diff(ts[pos]) > cooldown_ns
    return pos[keep]


def thin(ts: I64, starts: NDArray[np.intp], gap_ns: int) -> NDArray[np.intp]:
    """The episode starts that are counted: the first, then each one at least ``gap_ns`` after the
    last counted one (greedy, in time order, so a counted event depends only on earlier ones).

    ``ts``: bar open times (UTC ns); ``starts``: positions from :func:`collapse`. Two counted
    events are at least ``gap_ns`` apart, so with ``gap_ns`` >= the outcome window they share no
    outcome bar.
    """
    if starts.size < 2 or gap_ns <= 0 or (np.diff(ts[starts]) >= gap_ns).all():
        return starts
    keep = np.zeros(starts.size, dtype=bool)
    last = None
    for i, t in enumerate(ts[starts].tolist()):
        if last is None or t - last >= gap_ns:
            keep[i] = True
            last = t
    return starts[keep]
