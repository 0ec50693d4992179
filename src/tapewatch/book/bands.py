"""Depth bands: bid and ask size within p % of a reference price, in base and quote units.

Two references (the ``reference`` column of ``book_depth``):

``mid`` (Hyblock's convention, and Binance's ``bookDepth`` archive)
    bids with ``price >= mid * (1 - p/100)``, asks with ``price <= mid * (1 + p/100)``,
    ``mid = (best bid + best ask) / 2``.
``touch`` (Kaiko's convention)
    bids with ``price >= best bid * (1 - p/100)``, asks with ``price <= best ask * (1 + p/100)``.

Both limits are inclusive and computed exactly: prices are integer ticks and ``p`` is taken in
basis points, so ``mid * (1 - p/100)`` becomes ``ceil((bb + ba) * (10000 - bp) / 20000)`` in
integer arithmetic — a level sitting exactly on the limit is always in, whatever floating point
would have said. Base amount = sum of sizes; quote notional = sum of ``price * size``.

The kernel walks the window once per side from the touch outwards, through the widest band, in
blocks of 64+ ticks (their sums are kept by :mod:`tapewatch.book.core`), and closes each narrower band
on the way (the bands are nested); only the block where a band ends is read tick by tick. Levels
in the overflow map are added only when the widest band reaches outside the window. Depth is sampled at most
once per book change (the engine reuses the sums for every grid point until the next message),
so this is a few thousand additions per second of data, whatever the update rate.

:func:`with_delta_ratio` adds ``delta = bids - asks`` and ``ratio = (bids - asks) / (bids + asks)``
(in [-1, 1]; null when the band is empty) to ``book_depth`` rows.

Known range (see :mod:`tapewatch.book.core`): a band reaching past the deepest level the book
knows on a side would understate that side, so :func:`mask_unknown` makes its amount and
notional NaN, and gives how far from the reference the book is known (``bid_known_pct`` /
``ask_known_pct``; ``inf`` for a side known whole). The test is exact in integer ticks: the bid
side of a band is known when its limit ``mid * (1 - p/100)`` is at or above the deepest known
bid (the ask side mirrored).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from tapewatch.book._jit import njit
from tapewatch.book.core import BASE, FULL_ASK, FULL_BID, KNOWN_ASK, KNOWN_BID, SHIFT, WIDTH
from tapewatch.errors import TapewatchError

DEFAULT_BANDS = (1.0, 2.0, 5.0, 10.0)
REFERENCES = ("mid", "touch")
MID = 0
TOUCH = 1


def band_bps(bands: Sequence[float]) -> np.ndarray:
    """Band percentages as sorted integer basis points (1 % → 100); each must be a whole number of
    basis points in (0, 100) %."""
    if not len(bands):
        raise TapewatchError("give at least one depth band (percent from the reference price)")
    out = []
    for b in bands:
        bp = round(float(b) * 100)
        if not 0 < bp < 10000 or abs(bp - float(b) * 100) > 1e-6:
            raise TapewatchError(f"bad depth band {b!r}: use a percentage in (0, 100) with at most 2 decimals")
        out.append(bp)
    if len(set(out)) != len(out):
        raise TapewatchError(f"duplicate depth bands in {list(bands)}")
    return np.array(sorted(out), dtype=np.int64)


def reference_codes(references: Sequence[str] | str) -> np.ndarray:
    refs = [references] if isinstance(references, str) else list(references)
    bad = [r for r in refs if r not in REFERENCES]
    if bad or not refs:
        raise TapewatchError(f"bad depth reference {bad or refs!r}: use 'mid' and/or 'touch'")
    return np.array([REFERENCES.index(r) for r in dict.fromkeys(refs)], dtype=np.int64)


@njit
def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


@njit
def band_limits(bb: int, ba: int, bps, ref: int, lo, hi) -> None:
    """Tick limits of each band: bids at ``tick >= lo[k]`` and asks at ``tick <= hi[k]`` are in band k."""
    for k in range(len(bps)):
        bp = bps[k]
        if ref == MID:
            s = bb + ba
            lo[k] = _ceil_div(s * (10000 - bp), 20000)
            hi[k] = (s * (10000 + bp)) // 20000
        else:
            lo[k] = _ceil_div(bb * (10000 - bp), 10000)
            hi[k] = (ba * (10000 + bp)) // 10000


@njit(inline="always")
def _tick_sums(qty, side: int, i0: int, i1: int, base: int, scale: float) -> tuple[float, float]:
    """Size and notional (``size * price``) of one side over window indices ``i0 .. i1 - 1``,
    summed in index order."""
    q = 0.0
    n = 0.0
    for i in range(i0, i1):
        x = qty[side, i]
        if x != 0.0:
            q += x
            n += x * ((base + i) / scale)
    return q, n


@njit
def band_sums(qty, aux, ist, ovb, ova, scale: float, bb: int, ba: int, bps, ref: int, out) -> None:
    """Fill ``out[k] = (bid_amount, ask_amount, bid_notional, ask_notional)`` for each band ``k``.

    ``bb`` / ``ba`` are the best bid / ask ticks (both present, ``bb < ba``); ``scale = 10**decimals``
    turns a tick back into a price. Whole blocks come from the block sums; only the block
    where a band ends is summed tick by tick (by :func:`_tick_sums`, which numba inlines: a real
    call taking the arrays would cost reference counting per block).
    """
    nb = len(bps)
    lo = np.empty(nb, np.int64)
    hi = np.empty(nb, np.int64)
    band_limits(bb, ba, bps, ref, lo, hi)
    base = ist[BASE]
    w = ist[WIDTH]
    sh = ist[SHIFT]
    blk = 1 << sh
    for k in range(nb):
        out[k, 0] = 0.0
        out[k, 1] = 0.0
        out[k, 2] = 0.0
        out[k, 3] = 0.0
    # bids: blocks from the touch down; nothing above the best bid is non-zero
    top = bb - base
    if top >= w:
        top = w - 1
    if top >= 0:
        cq = 0.0
        cn = 0.0
        k = 0
        b = top >> sh
        while b >= 0 and k < nb:
            start = b << sh
            while k < nb and lo[k] - base >= start:  # band k ends inside this block
                pq, pn = _tick_sums(qty, 0, lo[k] - base, min(start + blk - 1, top) + 1, base, scale)
                out[k, 0] = cq + pq
                out[k, 2] = cn + pn
                k += 1
            if k == nb:
                break
            if np.isnan(aux[0, b]):  # a stale block: sum it again
                aux[0, b], aux[1, b] = _tick_sums(qty, 0, start, start + blk, base, scale)
            cq += aux[0, b]
            cn += aux[1, b]
            b -= 1
        while k < nb:
            out[k, 0] = cq
            out[k, 2] = cn
            k += 1
    if lo[nb - 1] < base or bb >= base + w:
        for t, q in ovb.items():  # overflow levels are all outside the window
            if t >= lo[nb - 1] and t <= bb:
                for k in range(nb):
                    if t >= lo[k]:
                        out[k, 0] += q
                        out[k, 2] += q * (t / scale)
    # asks: blocks from the touch up; nothing below the best ask is non-zero
    bottom = ba - base
    if bottom < 0:
        bottom = 0
    if bottom < w:
        cq = 0.0
        cn = 0.0
        k = 0
        b = bottom >> sh
        last = (w >> sh) - 1
        while b <= last and k < nb:
            start = b << sh
            end = start + blk - 1
            while k < nb and hi[k] - base <= end:
                pq, pn = _tick_sums(qty, 1, max(start, bottom), hi[k] - base + 1, base, scale)
                out[k, 1] = cq + pq
                out[k, 3] = cn + pn
                k += 1
            if k == nb:
                break
            if np.isnan(aux[2, b]):
                aux[2, b], aux[3, b] = _tick_sums(qty, 1, start, start + blk, base, scale)
            cq += aux[2, b]
            cn += aux[3, b]
            b += 1
        while k < nb:
            out[k, 1] = cq
            out[k, 3] = cn
            k += 1
    if hi[nb - 1] >= base + w or ba < base:
        for t, q in ova.items():
            if t <= hi[nb - 1] and t >= ba:
                for k in range(nb):
                    if t <= hi[k]:
                        out[k, 1] += q
                        out[k, 3] += q * (t / scale)


@njit
def mask_unknown(ist, bb: int, ba: int, bps, ref: int, out) -> None:
    """NaN the bid (ask) fields of each band in ``out`` (see :func:`band_sums`) that reaches past
    the known range, and write the known range in percent of the reference price into
    ``out[k, 4]`` (bids) and ``out[k, 5]`` (asks)."""
    kb = ist[KNOWN_BID]
    ka = ist[KNOWN_ASK]
    if ref == MID:
        s = bb + ba  # twice the mid, in ticks
        den = 20000
        rb = s / 2.0
        ra = rb
    else:
        den = 10000
        rb = float(bb)
        ra = float(ba)
    bid_pct = np.inf if kb == FULL_BID else max(0.0, (rb - kb) / rb * 100.0)
    ask_pct = np.inf if ka == FULL_ASK else max(0.0, (ka - ra) / ra * 100.0)
    for k in range(len(bps)):
        bp = bps[k]
        out[k, 4] = bid_pct
        out[k, 5] = ask_pct
        if ref == MID:
            lim_b = s * (10000 - bp)
            lim_a = s * (10000 + bp)
        else:
            lim_b = bb * (10000 - bp)
            lim_a = ba * (10000 + bp)
        if kb != FULL_BID and (kb == FULL_ASK or lim_b < kb * den):
            out[k, 0] = np.nan
            out[k, 2] = np.nan
        if ka != FULL_ASK and (ka == FULL_BID or lim_a > ka * den):
            out[k, 1] = np.nan
            out[k, 3] = np.nan


def _unit_cols(unit: str) -> tuple[str, str]:
    if unit == "base":
        return "bid_amount", "ask_amount"
    if unit == "quote":
        return "bid_notional", "ask_notional"
    raise TapewatchError(f"bad depth unit {unit!r}: use 'base' or 'quote'")


def delta_expr(unit: str = "quote") -> pl.Expr:
    """``bids - asks`` of ``book_depth`` rows, in base (``amount``) or quote (``notional``) units."""
    b, a = _unit_cols(unit)
    return (pl.col(b) - pl.col(a)).alias("delta")


def ratio_expr(unit: str = "quote") -> pl.Expr:
    """``(bids - asks) / (bids + asks)`` in [-1, 1]; null when the band is empty on both sides."""
    b, a = _unit_cols(unit)
    total = pl.col(b) + pl.col(a)
    return pl.when(total > 0).then((pl.col(b) - pl.col(a)) / total).otherwise(None).alias("ratio")


def with_delta_ratio(depth: pl.DataFrame, unit: str = "quote") -> pl.DataFrame:
    """``book_depth`` rows with ``delta`` and ``ratio`` columns added (see :func:`ratio_expr`)."""
    return depth.with_columns(delta_expr(unit), ratio_expr(unit))
