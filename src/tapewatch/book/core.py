"""The array book: a dense size-per-tick window around the touch, plus a small overflow map.

Prices are integers on a decimal tick grid (``tick = round(price * 10**decimals)``), so every
comparison — which level is best, whether a level lies inside a band — is exact. One book side is
a row of ``qty`` (shape ``(2, W)``: row 0 bids, row 1 asks); window index ``i`` holds the size at
tick ``base + i``, 0 meaning "no level". Setting a level is an array store; the best bid / ask
are window indices kept up to date on every change (a scan to the next non-empty tick when the
best level is removed). Levels outside the window — far from the touch, or the whole book just
after a big move — live in a tick → size map per side (``ovb``, ``ova``), so nothing is ever
lost; the highest overflow bid and lowest overflow ask are tracked too, so the best price is
right even when the touch has left the window. When the mid (or a one-sided touch) drifts out
of the middle half of the window, the engine calls :func:`recentre`, which moves the window
(O(W), rare) so that depth bands are sums over a contiguous slice again.

Block sums: the window is cut into blocks of ``2**shift`` ticks (64 and up, about sqrt(W / 16));
``aux`` (shape ``(4, blocks)``) holds per block the bid size sum, bid notional sum, ask size sum
and ask notional sum. A write only marks its block stale (NaN); a stale block is summed again
(in a fixed order) when a band next needs it, and an empty current block lets the best-price scan
skip it whole. So a band over 60,000 ticks (10 % of a price quoted to 8 decimals) costs a few
hundred reads instead of 60,000, the sums are always exact recomputations (no drift from adding
and subtracting), and an update costs one extra store.

The integer state vector ``ist`` holds the window position and best indices (fields below);
the engine appends its own fields after :data:`BOOK_FIELDS`.

Known range: a REST snapshot of N levels says nothing about the levels beyond its deepest bid and
ask, and later diffs cannot tell either (a level out there that did not change is never sent).
So the book is known on the bid side from its deepest snapshot bid up (``KNOWN_BID``), on the ask
side up to its deepest snapshot ask (``KNOWN_ASK``); a full-depth snapshot (Coinbase's level2
channel) makes a side known whole (:data:`FULL_BID` / :data:`FULL_ASK`). An empty book knows
nothing (``KNOWN_BID = FULL_ASK``, ``KNOWN_ASK = FULL_BID``).
"""

from __future__ import annotations

import numpy as np

from tapewatch.book._jit import njit

NOTICK = -(2**63)  # "no level"

BASE = 0  # absolute tick of window index 0
WIDTH = 1  # W, the window length in ticks
BBW = 2  # window index of the best bid, -1 when the window holds no bid
BAW = 3  # window index of the best ask, -1 when the window holds no ask
OVB_MAX = 4  # highest bid tick in the overflow map (NOTICK when empty)
OVA_MIN = 5  # lowest ask tick in the overflow map (NOTICK when empty)
RECENTRES = 6  # how many times the window moved
DLO = 7  # lowest window index written with a size since the last clear (W when none)
DHI = 8  # highest such index (-1 when none): clearing a snapshot only zeroes this span
SHIFT = 9  # log2 of the block length (ticks per block), chosen per window by :func:`block_shift`
KNOWN_BID = 10  # the book is known on the bid side for ticks >= this (see "Known range" below)
KNOWN_ASK = 11  # ... and on the ask side for ticks <= this
BOOK_FIELDS = 12
MIN_SHIFT = 6
FULL_BID = -(2**62)  # KNOWN_BID of a book known to the bottom (a full-depth snapshot)
FULL_ASK = 2**62  # KNOWN_ASK of a book known to the top


@njit
def dict_max(d) -> int:
    m = NOTICK
    for k in d.keys():
        if k > m:
            m = k
    return m


@njit
def dict_min(d) -> int:
    m = NOTICK
    for k in d.keys():
        if m == NOTICK or k < m:
            m = k
    return m


@njit
def clear(qty, aux, ist, ovb, ova) -> None:
    """Empty the book (both sides, window and overflow). Only blocks that may hold a level are
    zeroed, so a snapshot costs the span it covered, not the whole window."""
    lo = ist[DLO]
    hi = ist[DHI]
    sh = ist[SHIFT]
    if hi >= lo:
        for b in range(lo >> sh, (hi >> sh) + 1):
            for s in range(2):
                a = aux[2 * s, b]
                if a != 0.0:  # stale (NaN) or holding size
                    qty[s, b << sh : (b + 1) << sh] = 0.0
                    aux[2 * s, b] = 0.0
                    aux[2 * s + 1, b] = 0.0
    ist[DLO] = ist[WIDTH]
    ist[DHI] = -1
    ovb.clear()
    ova.clear()
    ist[BBW] = -1
    ist[BAW] = -1
    ist[OVB_MAX] = NOTICK
    ist[OVA_MIN] = NOTICK
    ist[KNOWN_BID] = FULL_ASK
    ist[KNOWN_ASK] = FULL_BID


@njit
def know_snapshot(ist, side, tick, r0: int, r1: int, full: bool) -> None:
    """Widen the known range to the snapshot rows ``r0:r1`` (their deepest bid and ask), or to the
    whole book when the snapshot is ``full`` depth."""
    if full:
        ist[KNOWN_BID] = FULL_BID
        ist[KNOWN_ASK] = FULL_ASK
        return
    for r in range(r0, r1):
        if side[r] == 0:
            if tick[r] < ist[KNOWN_BID]:
                ist[KNOWN_BID] = tick[r]
        elif tick[r] > ist[KNOWN_ASK]:
            ist[KNOWN_ASK] = tick[r]


@njit
def set_overflow(ist, ovb, ova, side: int, tick: int, q: float) -> None:
    """Set the size at ``tick`` (outside the window) in the overflow map."""
    if side == 0:
        if q > 0.0:
            ovb[tick] = q
            if tick > ist[OVB_MAX]:
                ist[OVB_MAX] = tick
        elif tick in ovb:
            del ovb[tick]
            if tick == ist[OVB_MAX]:
                ist[OVB_MAX] = dict_max(ovb)
    else:
        if q > 0.0:
            ova[tick] = q
            m = ist[OVA_MIN]
            if m == NOTICK or tick < m:
                ist[OVA_MIN] = tick
        elif tick in ova:
            del ova[tick]
            if tick == ist[OVA_MIN]:
                ist[OVA_MIN] = dict_min(ova)


@njit
def apply_window(qty, aux, ist, side, tick, size, r0: int, r1: int, spill) -> int:
    """Apply rows ``r0:r1`` that fall inside the window: store the size, mark the block stale,
    keep the best indices right (a scan to the next level when the best one is removed, skipping
    blocks known to be empty). The indices of the rows outside the window go to ``spill``
    (returns how many) for :func:`apply_overflow`.

    The hot path, written out in one loop on purpose: with numba, a call per row to a helper
    taking the arrays costs ~30 ns of reference counting, fifteen times the work itself; and no
    typed map is touched here (that costs reference counting too)."""
    base = ist[BASE]
    w = ist[WIDTH]
    sh = ist[SHIFT]
    mask = (1 << sh) - 1
    n = 0
    for r in range(r0, r1):
        i = tick[r] - base
        if i < 0 or i >= w:
            spill[n] = r
            n += 1
            continue
        s = side[r]
        q = size[r]
        qty[s, i] = q
        aux[2 * s, i >> sh] = np.nan
        if q > 0.0:
            if i < ist[DLO]:
                ist[DLO] = i
            if i > ist[DHI]:
                ist[DHI] = i
        if s == 0:
            if q > 0.0:
                if i > ist[BBW]:
                    ist[BBW] = i
            elif i == ist[BBW]:
                j = i - 1
                while j >= 0:
                    if qty[0, j] != 0.0:
                        break
                    if (j & mask) == mask and aux[0, j >> sh] == 0.0:
                        j -= mask + 1  # a whole block known to be empty
                    else:
                        j -= 1
                ist[BBW] = j if j >= 0 else -1
        else:
            if q > 0.0:
                ba = ist[BAW]
                if ba < 0 or i < ba:
                    ist[BAW] = i
            elif i == ist[BAW]:
                j = i + 1
                while j < w:
                    if qty[1, j] != 0.0:
                        break
                    if (j & mask) == 0 and aux[2, j >> sh] == 0.0:
                        j += mask + 1
                    else:
                        j += 1
                ist[BAW] = j if j < w else -1
    return n


@njit
def set_level(qty, aux, ist, ovb, ova, side: int, tick: int, q: float) -> None:
    """Set the size at ``tick`` on ``side`` (0 bid, 1 ask); ``q == 0`` removes the level.
    (One row; the engine applies whole messages with :func:`apply_window`.)"""
    sides = np.empty(1, np.int8)
    sides[0] = side
    ticks = np.empty(1, np.int64)
    ticks[0] = tick
    sizes = np.empty(1, np.float64)
    sizes[0] = q
    spill = np.empty(1, np.int64)
    if apply_window(qty, aux, ist, sides, ticks, sizes, 0, 1, spill):
        set_overflow(ist, ovb, ova, side, tick, q)


@njit
def apply_overflow(ist, ovb, ova, side, tick, size, spill, n: int) -> None:
    for x in range(n):
        r = spill[x]
        set_overflow(ist, ovb, ova, side[r], tick[r], size[r])


@njit
def best_tick(ist, side: int) -> int:
    """Tick of the best bid (``side`` 0) or ask (1), NOTICK when that side is empty: the better of
    the window's best and the overflow map's best."""
    i, m = (ist[BBW], ist[OVB_MAX]) if side == 0 else (ist[BAW], ist[OVA_MIN])
    t = ist[BASE] + i if i >= 0 else NOTICK
    if m != NOTICK and (t == NOTICK or (m > t if side == 0 else m < t)):
        t = m
    return t


@njit
def best_bid(ist) -> int:
    """Tick of the best bid, NOTICK when there is no bid."""
    return best_tick(ist, 0)


@njit
def best_ask(ist) -> int:
    """Tick of the best ask, NOTICK when there is no ask."""
    return best_tick(ist, 1)


@njit
def level_size(qty, ist, ovb, ova, side: int, tick: int) -> float:
    """Size resting at ``tick`` on ``side`` (0 when no level)."""
    i = tick - ist[BASE]
    if i >= 0 and i < ist[WIDTH]:
        return qty[side, i]
    if side == 0:
        return ovb.get(tick, 0.0)
    return ova.get(tick, 0.0)


@njit
def _scan_best(qty, ist) -> None:
    w = ist[WIDTH]
    j = w - 1
    while j >= 0 and qty[0, j] == 0.0:
        j -= 1
    ist[BBW] = j
    j = 0
    while j < w and qty[1, j] == 0.0:
        j += 1
    ist[BAW] = j if j < w else -1


@njit
def _shift_side(qty, side: int, ov, old_base: int, new_base: int, w: int) -> None:
    d = new_base - old_base
    for i in range(w):  # levels leaving the window go to the overflow map
        q = qty[side, i]
        if q != 0.0:
            j = old_base + i - new_base
            if j < 0 or j >= w:
                ov[old_base + i] = q
    if d >= w or -d >= w:
        qty[side, :] = 0.0
    elif d > 0:
        for j in range(w - d):
            qty[side, j] = qty[side, j + d]
        for j in range(w - d, w):
            qty[side, j] = 0.0
    elif d < 0:
        e = -d
        for j in range(w - 1, e - 1, -1):
            qty[side, j] = qty[side, j - e]
        for j in range(e):
            qty[side, j] = 0.0
    n = 0
    inside = np.empty(len(ov), np.int64)
    for k in ov.keys():  # overflow levels now inside the window move in
        if k >= new_base and k < new_base + w:
            inside[n] = k
            n += 1
    for x in range(n):
        k = inside[x]
        qty[side, k - new_base] = ov[k]
        del ov[k]


@njit
def recentre(qty, aux, ist, ovb, ova, centre: int) -> None:
    """Move the window so that tick ``centre`` sits in its middle (levels are moved, never lost)."""
    w = ist[WIDTH]
    old = ist[BASE]
    new = centre - w // 2
    if new == old:
        return
    _shift_side(qty, 0, ovb, old, new, w)
    _shift_side(qty, 1, ova, old, new, w)
    ist[BASE] = new
    ist[DLO] = 0
    ist[DHI] = w - 1
    aux[:, :] = np.nan
    _scan_best(qty, ist)
    ist[OVB_MAX] = dict_max(ovb)
    ist[OVA_MIN] = dict_min(ova)
    ist[RECENTRES] += 1


@njit
def place_window(ist, side, tick, size, r0: int, r1: int) -> None:
    """Centre an empty book's window on the touch of the snapshot rows ``r0:r1``."""
    bb = NOTICK
    ba = NOTICK
    for r in range(r0, r1):
        if size[r] > 0.0:
            if side[r] == 0:
                if tick[r] > bb:
                    bb = tick[r]
            elif ba == NOTICK or tick[r] < ba:
                ba = tick[r]
    if bb != NOTICK and ba != NOTICK:
        ref = bb + (ba - bb) // 2
    elif bb != NOTICK:
        ref = bb
    elif ba != NOTICK:
        ref = ba
    else:
        return
    ist[BASE] = ref - ist[WIDTH] // 2


@njit
def count_levels(qty, ist, ovb, ova, side: int) -> int:
    n = 0
    for i in range(ist[WIDTH]):
        if qty[side, i] != 0.0:
            n += 1
    return n + (len(ovb) if side == 0 else len(ova))


@njit
def dump_levels(qty, ist, ovb, ova, side: int, ticks, sizes) -> int:
    """Write every level of ``side`` into ``ticks`` / ``sizes`` (ascending tick); returns the count."""
    n = 0
    ov = ovb if side == 0 else ova
    for k in ov.keys():
        ticks[n] = k
        sizes[n] = ov[k]
        n += 1
    base = ist[BASE]
    for i in range(ist[WIDTH]):
        q = qty[side, i]
        if q != 0.0:
            ticks[n] = base + i
            sizes[n] = q
            n += 1
    order = np.argsort(ticks[:n])
    t2 = ticks[:n][order].copy()
    s2 = sizes[:n][order].copy()
    ticks[:n] = t2
    sizes[:n] = s2
    return n


def block_shift(width: int) -> int:
    """Block length (log2) for a window: about sqrt(W / 16) ticks, at least 64. A band walk reads
    about W / 4 / block blocks plus two partial blocks per band, which this balances."""
    target = max(float(width) / 16.0, 1.0) ** 0.5
    sh = MIN_SHIFT
    while (1 << (sh + 1)) <= target * 1.41:
        sh += 1
    return sh


def aux_for(width: int, shift: int) -> np.ndarray:
    """The block-sum array of a window (all blocks current and empty)."""
    return np.zeros((4, max(1, width >> shift)), dtype=np.float64)
