"""The L2 engine: one book per (exchange, market, symbol), fed ``book_delta`` rows, sampled into
``book_depth`` rows.

::

    eng = BookEngine("binance_usdm", "binance", "perp", "SUSHI/USDT")
    out = eng.process(deltas)        # any number of calls, in arrival order
    out2 = eng.finish()              # end of the stream: write the last grid points
    eng.stats                        # messages, updates, gaps, resyncs, crossed, malformed …
    eng.issues                       # the malformed rows, with reasons
    eng.events                       # syncs, gaps, stale messages, crossed / uncrossed, …

:func:`build_book_depth` does the same for a frame holding several books.

Per message (see :mod:`tapewatch.book.rules`) the kernel decides, samples the grid points before
the message (see :mod:`tapewatch.book.sampling`), then applies the message to the array book
(:mod:`tapewatch.book.core`). Rows are checked first (:mod:`tapewatch.book.validate`). Diffs
that arrive while the book is out of sync are kept (as row arrays, across calls, at most
``max_pending_rows``) and replayed against the next snapshot, which is how Binance prescribes
it; for the plain rules they are dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from tapewatch.book import rules as R
from tapewatch.book._jit import level_dict, njit
from tapewatch.book.bands import DEFAULT_BANDS, band_bps, reference_codes
from tapewatch.book.core import (
    BAW, BBW, BOOK_FIELDS, DHI, DLO, FULL_ASK, FULL_BID, KNOWN_ASK, KNOWN_BID, NOTICK, OVA_MIN, OVB_MAX, RECENTRES,
    WIDTH, BASE, apply_overflow, apply_window, best_ask, best_bid, clear, count_levels, dump_levels, know_snapshot,
    level_size, place_window, recentre, set_level, SHIFT, aux_for, block_shift,
)
from tapewatch.book.sampling import BAND_FIELDS, TOP_FIELDS, ceil_grid, depth_frame, fill_sample, top_frame
from tapewatch.book.validate import REASONS, BookDataError, Rows, messages, prepare  # noqa: F401
from tapewatch.errors import TapewatchError
from tapewatch.schemas import conform
from tapewatch.timeutil import interval_ns

NULL = R.NULL

# engine fields of the state vector, after the book's own
SYNC = BOOK_FIELDS + 0
LAST = BOOK_FIELDS + 1  # update id the book is at
PENDING = BOOK_FIELDS + 2  # first buffered message (index in the current call), -1 none
CROSSED = BOOK_FIELDS + 3
NEXT = BOOK_FIELDS + 4  # next grid point to write (NULL before the first message)
PREV_SNAP = BOOK_FIELDS + 5
PREV_SNAP_SEQ = BOOK_FIELDS + 6
LAST_ACTION = BOOK_FIELDS + 7
EVER = BOOK_FIELDS + 8  # the book has been in sync at least once
OUT_N = BOOK_FIELDS + 9
EV_N = BOOK_FIELDS + 10
LAST_TS = BOOK_FIELDS + 11
C_MESSAGES = BOOK_FIELDS + 12
C_UPDATES = BOOK_FIELDS + 13
C_SNAPSHOTS = BOOK_FIELDS + 14
C_SNAPSHOT_LEVELS = BOOK_FIELDS + 15
C_GAPS = BOOK_FIELDS + 16
C_STALE = BOOK_FIELDS + 17
C_RESYNCS = BOOK_FIELDS + 18
C_CROSSED = BOOK_FIELDS + 19
C_WAITING = BOOK_FIELDS + 20
C_DISCARDS = BOOK_FIELDS + 21
C_BAD_MESSAGES = BOOK_FIELDS + 22
C_IGNORED_SNAPSHOTS = BOOK_FIELDS + 23
C_SAMPLES = BOOK_FIELDS + 24
UNSYNC_FROM = BOOK_FIELDS + 25  # since when the book is out of sync (NULL when in sync): no depth since
N_FIELDS = BOOK_FIELDS + 32

CONT_SKIP = 8  # rows continuing a message whose action was "ignore"

(EV_SYNC, EV_RESYNC, EV_GAP, EV_STALE, EV_CROSSED, EV_UNCROSSED, EV_MALFORMED, EV_SNAPSHOT_IGNORED, EV_SNAPSHOT,
 EV_MISSING) = range(1, 11)
EVENT_NAMES = {
    EV_SYNC: "sync", EV_RESYNC: "resync", EV_GAP: "gap", EV_STALE: "stale", EV_CROSSED: "crossed",
    EV_UNCROSSED: "uncrossed", EV_MALFORMED: "malformed_message", EV_SNAPSHOT_IGNORED: "snapshot_ignored",
    EV_SNAPSHOT: "snapshot", EV_MISSING: "missing",
}
EVENT_DETAIL = {
    EV_SYNC: "first snapshot applied (a = snapshot id)",
    EV_RESYNC: "book rebuilt from a snapshot after a discard (a = snapshot id)",
    EV_GAP: "messages lost or out of order: book discarded (a = id the book was at, b = the message's first id)",
    EV_STALE: "old or duplicate message ignored (a = id the book was at, b = the message's last id)",
    EV_CROSSED: "best bid >= best ask: no depth until it uncrosses",
    EV_UNCROSSED: "book no longer crossed",
    EV_MALFORMED: "a malformed row: book discarded",
    EV_SNAPSHOT_IGNORED: "snapshot older than the live book (a = book id, b = snapshot id)",
    EV_SNAPSHOT: "snapshot replaced the live book (a = book id, b = snapshot id)",
    EV_MISSING: "the book was out of sync, no depth (a = from, b = to, UTC ns)",
}


# -- kernel ------------------------------------------------------------------------------------
@njit
def _event(ev_i, ev_f, ist, kind: int, ts: int, a: int, b: int, x: float, y: float) -> None:
    n = ist[EV_N]
    if n < ev_i.shape[0]:
        ev_i[n, 0] = kind
        ev_i[n, 1] = ts
        ev_i[n, 2] = a
        ev_i[n, 3] = b
        ev_f[n, 0] = x
        ev_f[n, 1] = y
    ist[EV_N] = n + 1


@njit
def _discard(qty, aux, ist, ovb, ova) -> None:
    clear(qty, aux, ist, ovb, ova)
    ist[SYNC] = R.S_NONE
    ist[CROSSED] = 0
    ist[LAST] = NULL
    ist[C_DISCARDS] += 1


@njit
def _apply_rows(qty, aux, ist, ovb, ova, side, tick, size, r0: int, r1: int, spill) -> None:
    n = apply_window(qty, aux, ist, side, tick, size, r0, r1, spill)
    if n:
        apply_overflow(ist, ovb, ova, side, tick, size, spill, n)


@njit
def _applied(ist, code: int, seq: int) -> None:
    if code == R.COINBASE:
        if seq != NULL:
            ist[LAST] = seq
    elif code != R.TARDIS:
        ist[LAST] = seq
    ist[SYNC] = R.S_LIVE


@njit
def _crossed(ist, ev_i, ev_f, ts: int, scale: float) -> None:
    bb = best_bid(ist)
    ba = best_ask(ist)
    crossed = bb != NOTICK and ba != NOTICK and bb >= ba
    if crossed and ist[CROSSED] == 0:
        ist[C_CROSSED] += 1
        _event(ev_i, ev_f, ist, EV_CROSSED, ts, bb, ba, bb / scale, ba / scale)
    elif not crossed and ist[CROSSED] == 1:
        _event(ev_i, ev_f, ist, EV_UNCROSSED, ts, bb, ba, bb / scale if bb != NOTICK else np.nan,
               ba / scale if ba != NOTICK else np.nan)
    ist[CROSSED] = 1 if crossed else 0


@njit
def _can_emit(ist) -> bool:
    return (ist[SYNC] != R.S_NONE and ist[CROSSED] == 0
            and best_bid(ist) != NOTICK and best_ask(ist) != NOTICK)


@njit
def _write_points(qty, aux, ist, ovb, ova, scale: float, interval: int, bps, refs, nxt: int, end: int,
                  max_carry: int, out_ts, out_top, out_band) -> bool:
    """Write the grid points from ``nxt`` on that lie before ``end`` and at most ``max_carry`` after
    the last message (the bands are computed once and copied to the later points); leaves the
    next point to write in ``NEXT``. False when the output arrays filled up first."""
    src = -1
    stop = end
    if ist[LAST_TS] != NULL and ist[LAST_TS] + max_carry + 1 < stop:
        stop = ist[LAST_TS] + max_carry + 1  # a quiet book is carried this long at most
    while nxt < stop:
        n = ist[OUT_N]
        if n >= out_ts.shape[0]:
            ist[NEXT] = nxt
            return False
        if src < 0:
            fill_sample(qty, aux, ist, ovb, ova, scale, bps, refs, out_top[n], out_band[n])
            src = n
        else:
            out_top[n] = out_top[src]
            out_band[n] = out_band[src]
        out_ts[n] = nxt
        ist[OUT_N] = n + 1
        ist[C_SAMPLES] += 1
        nxt += interval
    ist[NEXT] = nxt
    return True


@njit
def _gap(qty, aux, ist, ovb, ova, ev_i, ev_f, ts: int, got: int, replay: bool, m: int) -> None:
    ist[C_GAPS] += 1
    _event(ev_i, ev_f, ist, EV_GAP, ts, ist[LAST], got, np.nan, np.nan)
    _discard(qty, aux, ist, ovb, ova)
    ist[PENDING] = m if replay else -1


@njit
def run(msg_start, m_ts, m_seq, m_first, m_prev, m_snap, m_bad, side, tick, size,
        qty, aux, ist, ovb, ova, scale: float, code: int, replay: bool, interval: int, bps, refs,
        m_begin: int, first_cont: bool, max_pending_rows: int, max_carry: int, full_depth: bool, out_ts, out_top,
        out_band, ev_i, ev_f) -> int:
    """Process messages ``m_begin..``; returns the index to resume at (``len`` when done, less
    when the output arrays are full). ``full_depth``: every snapshot holds the whole book."""
    n_msg = len(msg_start) - 1
    longest = 1
    for m in range(n_msg):
        if msg_start[m + 1] - msg_start[m] > longest:
            longest = msg_start[m + 1] - msg_start[m]
    spill = np.empty(longest, np.int64)
    for m in range(m_begin, n_msg):
        ts = m_ts[m]
        synced_before = ist[SYNC] != R.S_NONE
        ts_before = ist[LAST_TS]
        r0 = msg_start[m]
        r1 = msg_start[m + 1]
        seq = m_seq[m]
        if first_cont and m == 0:
            prev_action = ist[LAST_ACTION]
            if prev_action == R.APPLY:
                action = R.APPLY
            elif prev_action == R.SNAPSHOT or prev_action == R.SNAP_CONT:
                action = R.SNAP_CONT
            else:
                action = CONT_SKIP
        elif m_bad[m]:
            action = R.BAD
        else:
            snap = m_snap[m]
            cont = snap and ist[PREV_SNAP] == 1 and ist[PREV_SNAP_SEQ] == seq
            action = R.decide(code, ist[SYNC], ist[LAST], snap, cont, seq, m_first[m], m_prev[m])
        # -- sample the grid points before this message ----------------------------------------
        nxt = ist[NEXT]
        if action == R.BAD or ts == NULL:
            pass  # a malformed message says nothing about time; it discards the book below
        elif nxt == NULL:
            ist[NEXT] = ceil_grid(ts, interval)
        elif ts > nxt:
            if action != R.GAP and action != R.SNAP_CONT and _can_emit(ist):
                if not _write_points(qty, aux, ist, ovb, ova, scale, interval, bps, refs, nxt, ts, max_carry,
                                     out_ts, out_top, out_band):
                    return m  # the output is full: resume at this message
            ist[NEXT] = ceil_grid(ts, interval)
        # -- apply -----------------------------------------------------------------------------
        changed = False
        if not (first_cont and m == 0):
            ist[C_MESSAGES] += 1
        if action == R.BAD:
            ist[C_BAD_MESSAGES] += 1
            if ist[SYNC] != R.S_NONE:
                _event(ev_i, ev_f, ist, EV_MALFORMED, ts, ist[LAST], seq, np.nan, np.nan)
                _discard(qty, aux, ist, ovb, ova)
            ist[PENDING] = -1
        elif action == R.WAIT:
            ist[C_WAITING] += 1
            if replay:
                if ist[PENDING] < 0:
                    ist[PENDING] = m
                while ist[PENDING] < m and r1 - msg_start[ist[PENDING]] > max_pending_rows:
                    ist[PENDING] += 1
        elif action == R.STALE:
            ist[C_STALE] += 1
            _event(ev_i, ev_f, ist, EV_STALE, ts, ist[LAST], seq, np.nan, np.nan)
        elif action == R.GAP:
            _gap(qty, aux, ist, ovb, ova, ev_i, ev_f, ts, m_first[m] if m_first[m] != NULL else seq, replay, m)
        elif action == R.APPLY:
            nsp = apply_window(qty, aux, ist, side, tick, size, r0, r1, spill)
            if nsp:
                apply_overflow(ist, ovb, ova, side, tick, size, spill, nsp)
            ist[C_UPDATES] += r1 - r0
            _applied(ist, code, seq)
            changed = True
        elif action == R.SNAP_IGNORE:
            ist[C_IGNORED_SNAPSHOTS] += 1
            _event(ev_i, ev_f, ist, EV_SNAPSHOT_IGNORED, ts, ist[LAST], seq, np.nan, np.nan)
        elif action == R.SNAPSHOT:
            ist[C_SNAPSHOTS] += 1
            ist[C_SNAPSHOT_LEVELS] += r1 - r0
            was = ist[SYNC]
            if ist[EVER] == 0:
                _event(ev_i, ev_f, ist, EV_SYNC, ts, seq, NULL, np.nan, np.nan)
            elif was == R.S_NONE:
                ist[C_RESYNCS] += 1
                _event(ev_i, ev_f, ist, EV_RESYNC, ts, seq, NULL, np.nan, np.nan)
            else:
                _event(ev_i, ev_f, ist, EV_SNAPSHOT, ts, ist[LAST], seq, np.nan, np.nan)
            ist[EVER] = 1
            clear(qty, aux, ist, ovb, ova)
            place_window(ist, side, tick, size, r0, r1)
            _apply_rows(qty, aux, ist, ovb, ova, side, tick, size, r0, r1, spill)
            know_snapshot(ist, side, tick, r0, r1, full_depth or (code == R.COINBASE and seq == NULL))
            ist[LAST] = seq
            ist[SYNC] = R.S_AWAIT if code == R.BINANCE_SPOT or code == R.BINANCE_USDM else R.S_LIVE
            ist[CROSSED] = 0
            changed = True
            p = ist[PENDING]
            ist[PENDING] = -1
            if replay and p >= 0 and (code != R.COINBASE or seq != NULL):
                for k in range(p, m):  # the diffs buffered while out of sync
                    if m_snap[k] or m_bad[k] or (code == R.COINBASE and m_seq[k] == NULL):
                        continue
                    a = R.decide(code, ist[SYNC], ist[LAST], False, False, m_seq[k], m_first[k], m_prev[k])
                    if a == R.APPLY:
                        _apply_rows(qty, aux, ist, ovb, ova, side, tick, size, msg_start[k], msg_start[k + 1], spill)
                        ist[C_UPDATES] += msg_start[k + 1] - msg_start[k]
                        _applied(ist, code, m_seq[k])
                    elif a == R.STALE:
                        ist[C_STALE] += 1
                        _event(ev_i, ev_f, ist, EV_STALE, m_ts[k], ist[LAST], m_seq[k], np.nan, np.nan)
                    else:  # the snapshot does not reach the buffered diffs: wait for a newer one
                        _gap(qty, aux, ist, ovb, ova, ev_i, ev_f, m_ts[k],
                             m_first[k] if m_first[k] != NULL else m_seq[k], replay, k)
                        changed = False
                        break
        elif action == R.SNAP_CONT:
            ist[C_SNAPSHOT_LEVELS] += r1 - r0
            if ist[SYNC] != R.S_NONE:
                _apply_rows(qty, aux, ist, ovb, ova, side, tick, size, r0, r1, spill)
                know_snapshot(ist, side, tick, r0, r1, full_depth or (code == R.COINBASE and seq == NULL))
                changed = True
        if changed and ist[SYNC] != R.S_NONE:
            # best bid / ask, crossed check and the recentre rule written out: calls taking
            # arrays cost reference counting on every message (see core.apply_window)
            base = ist[BASE]
            bb = NOTICK
            if ist[BBW] >= 0:
                bb = base + ist[BBW]
            if ist[OVB_MAX] != NOTICK and ist[OVB_MAX] > bb:
                bb = ist[OVB_MAX]
            ba = NOTICK
            if ist[BAW] >= 0:
                ba = base + ist[BAW]
            if ist[OVA_MIN] != NOTICK and (ba == NOTICK or ist[OVA_MIN] < ba):
                ba = ist[OVA_MIN]
            crossed = bb != NOTICK and ba != NOTICK and bb >= ba
            if crossed != (ist[CROSSED] == 1):
                _crossed(ist, ev_i, ev_f, ts, scale)
            if bb != NOTICK or ba != NOTICK:
                ref = bb + (ba - bb) // 2 if bb != NOTICK and ba != NOTICK else (bb if bb != NOTICK else ba)
                w = ist[WIDTH]
                i = ref - base
                if i < w // 4 or i >= w - w // 4:
                    recentre(qty, aux, ist, ovb, ova, ref)
        if not (first_cont and m == 0):
            ist[LAST_ACTION] = action
        ist[PREV_SNAP] = 1 if m_snap[m] else 0
        ist[PREV_SNAP_SEQ] = seq
        if ist[SYNC] == R.S_NONE:
            if ist[UNSYNC_FROM] == NULL:  # depth stops at the last good message, or starts unknown
                ist[UNSYNC_FROM] = ts_before if synced_before and ts_before != NULL else ts
        elif ist[UNSYNC_FROM] != NULL and ts != NULL:
            _event(ev_i, ev_f, ist, EV_MISSING, ts, ist[UNSYNC_FROM], ts, np.nan, np.nan)
            ist[UNSYNC_FROM] = NULL
        if action != R.BAD and ts != NULL:
            ist[LAST_TS] = ts
    return n_msg


@njit
def flush(qty, aux, ist, ovb, ova, scale: float, interval: int, bps, refs, until: int, max_carry: int,
          out_ts, out_top, out_band) -> None:
    """Write the grid points ``NEXT .. until`` (inclusive) when the book is usable."""
    nxt = ist[NEXT]
    if nxt == NULL:
        return
    if _can_emit(ist):
        _write_points(qty, aux, ist, ovb, ova, scale, interval, bps, refs, nxt, until + 1, max_carry,
                      out_ts, out_top, out_band)
        nxt = ist[NEXT]
    if until >= nxt:
        nxt = ceil_grid(until + 1, interval)
    ist[NEXT] = nxt


@njit
def regrid(qty, aux, ist, ovb, ova, factor: int) -> None:
    """Put the book on a finer grid (every tick times ``factor``), same window length."""
    nb = count_levels(qty, ist, ovb, ova, 0)
    bt = np.empty(nb, np.int64)
    bq = np.empty(nb, np.float64)
    dump_levels(qty, ist, ovb, ova, 0, bt, bq)
    na = count_levels(qty, ist, ovb, ova, 1)
    at = np.empty(na, np.int64)
    aq = np.empty(na, np.float64)
    dump_levels(qty, ist, ovb, ova, 1, at, aq)
    kb = ist[KNOWN_BID]
    ka = ist[KNOWN_ASK]
    clear(qty, aux, ist, ovb, ova)
    ist[KNOWN_BID] = kb if kb == FULL_BID or kb == FULL_ASK else kb * factor
    ist[KNOWN_ASK] = ka if ka == FULL_BID or ka == FULL_ASK else ka * factor
    if nb and na:
        ist[BASE] = (bt[nb - 1] + at[0]) // 2 * factor - ist[WIDTH] // 2
    elif nb:
        ist[BASE] = bt[nb - 1] * factor - ist[WIDTH] // 2
    elif na:
        ist[BASE] = at[0] * factor - ist[WIDTH] // 2
    else:
        ist[BASE] = ist[BASE] * factor
    for i in range(nb):
        set_level(qty, aux, ist, ovb, ova, 0, bt[i] * factor, bq[i])
    for i in range(na):
        set_level(qty, aux, ist, ovb, ova, 1, at[i] * factor, aq[i])


# -- Python side -------------------------------------------------------------------------------
@dataclass
class BookStats:
    """Counters of one book since it was created."""

    messages: int = 0  # messages seen (a message = one event / snapshot / update group)
    updates: int = 0  # level updates applied from diffs
    snapshots: int = 0  # snapshots applied
    snapshot_levels: int = 0  # levels those snapshots carried
    gaps: int = 0  # sequence gaps (lost or reordered messages) detected
    stale: int = 0  # old or duplicate messages ignored
    resyncs: int = 0  # books rebuilt from a snapshot after a discard
    discards: int = 0  # books thrown away (gap or malformed message)
    crossed: int = 0  # times the book became crossed (best bid >= best ask)
    waiting: int = 0  # diff messages that arrived while the book was out of sync
    snapshots_ignored: int = 0  # snapshots older than the live book
    malformed: int = 0  # malformed rows (see issues)
    malformed_messages: int = 0  # messages holding malformed rows (each discards the book)
    samples: int = 0  # grid points written
    recentres: int = 0  # times the dense window moved
    in_sync: bool = False
    malformed_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class BookResult:
    """What one call wrote: ``depth`` (book_depth rows) and ``top`` (quote rows, best bid / ask at
    the same sample points)."""

    depth: pl.DataFrame
    top: pl.DataFrame

    @staticmethod
    def concat(results: Sequence["BookResult"]) -> "BookResult":
        if not results:
            return BookResult(conform("book_depth", pl.DataFrame()), conform("quote", pl.DataFrame()).drop("local_ts"))
        return BookResult(pl.concat([r.depth for r in results]), pl.concat([r.top for r in results], how="diagonal_relaxed"))


def _interval(interval: str | float | int) -> int:
    if isinstance(interval, str):
        return interval_ns(interval)
    ns = int(round(float(interval) * 1e9))
    if ns <= 0:
        raise TapewatchError(f"bad sampling interval {interval!r}: give seconds > 0 or e.g. '1s', '5s', '1m'")
    return ns


class BookEngine:
    """An L2 book for one (exchange, market, symbol) under one venue rule, sampled into depth bands.

    ``venue``: ``binance_spot``, ``binance_usdm``, ``coinbase`` or ``tardis`` (see
    :mod:`tapewatch.book.rules`; :func:`tapewatch.book.rules.rule_for` picks one from the
    exchange and market). ``exchange`` / ``market`` / ``symbol``: the book's key, written into the
    output rows; rows of another key are counted as malformed and left out. ``bands``: percent
    distances (default 1, 2, 5, 10); ``references``: ``"mid"`` and/or ``"touch"``; ``interval``:
    sampling step (``"1s"`` or seconds). ``strict=True`` raises :class:`BookDataError` on the first
    malformed row instead of counting it. ``max_window`` caps the dense window (ticks per side);
    ``window_pct`` is its width in percent of the price (default 4 x the widest band).
    ``max_carry``: how long a book with no message at all is still sampled (default a day; a
    sequenced venue proves continuity with its next message, but a feed silent for longer than
    this is more likely dead than quiet). ``full_depth``: every snapshot holds the whole book, so
    the book is known at any distance (by default a snapshot is taken to hold only its top levels,
    and bands past its deepest bid / ask are NaN; Coinbase's level2 websocket snapshot, which has
    no sequence number, is always full depth).
    """

    def __init__(
        self,
        venue: str,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
        *,
        bands: Sequence[float] = DEFAULT_BANDS,
        references: Sequence[str] | str = ("mid",),
        interval: str | float = "1s",
        strict: bool = False,
        max_window: int = 1 << 20,
        window_pct: float | None = None,
        max_pending_rows: int = 1_000_000,
        max_carry: str | float = "1d",
        max_issues: int = 10_000,
        max_events: int = 10_000,
        full_depth: bool = False,
    ) -> None:
        self.rule = R.rule(venue)
        self.key = {"exchange": exchange, "market": market, "symbol": symbol}
        self.bps = band_bps(bands)
        self.refs = reference_codes(references)
        self.interval = _interval(interval)
        self.strict = strict
        self.max_window = int(max_window)
        self.window_pct = float(window_pct) if window_pct else 4 * float(self.bps[-1]) / 100
        self.max_pending_rows = int(max_pending_rows)
        self.max_carry = _interval(max_carry)
        self.max_issues = max_issues
        self.max_events = max_events
        self.full_depth = bool(full_depth)
        self.decimals: int | None = None
        self.ist = np.zeros(N_FIELDS, dtype=np.int64)
        self.ist[[BBW, BAW]] = -1
        self.ist[[OVB_MAX, OVA_MIN, LAST, NEXT, PREV_SNAP_SEQ, LAST_TS, UNSYNC_FROM]] = NOTICK
        self.ist[KNOWN_BID] = FULL_ASK
        self.ist[KNOWN_ASK] = FULL_BID
        self.ist[PENDING] = -1
        self.ist[LAST_ACTION] = -1
        self.ist[DHI] = -1
        self.ist[SHIFT] = 6
        self.qty = np.zeros((2, 0), dtype=np.float64)
        self.aux = aux_for(0, 6)
        self.ovb = level_dict()
        self.ova = level_dict()
        self._carry: Rows | None = None
        self._last_key: tuple | None = None
        self._rows_seen = 0
        self._malformed: Counter[str] = Counter()
        self._issues: list[pl.DataFrame] = []
        self._n_issues = 0
        self._events: list[pl.DataFrame] = []
        self._missing: list[tuple[int, int]] = []

    # -- feeding ---------------------------------------------------------------------------
    def process(self, deltas: pl.DataFrame) -> BookResult:
        """Feed ``book_delta`` rows (this book's, in arrival order); returns the depth written."""
        rows, d, issues = prepare(deltas, self.rule, self.key, self.decimals)
        if issues is not None:
            self._note_issues(issues)
        self._rows_seen += deltas.height
        if d is not None:
            self._set_grid(d, rows)
        if not len(rows):
            return BookResult.concat([])
        carried = 0
        if self._carry is not None:
            carried = len(self._carry)
            rows = Rows.concat(self._carry, rows)
            self._carry = None
        msgs = messages(rows)
        m_begin = int(np.searchsorted(msgs.start[:-1], carried)) if carried else 0
        if carried:
            self.ist[PENDING] = 0
        first_cont = (not carried and self._last_key is not None
                      and self._last_key == _row_key(rows, 0))
        ts_lo = int(rows.ts[rows.ts != NULL].min()) if (rows.ts != NULL).any() else 0
        ts_hi = int(rows.ts.max())
        nxt = int(self.ist[NEXT]) if self.ist[NEXT] != NULL else ts_lo
        cap = max(1, min((ts_hi - min(nxt, ts_lo)) // self.interval + 2, 2_000_000))
        results = []
        m = m_begin
        while True:
            out = self._alloc(cap)
            ev_i = np.zeros((min(2 * len(msgs) + 16, 200_000), 4), dtype=np.int64)
            ev_f = np.zeros((ev_i.shape[0], 2), dtype=np.float64)
            self.ist[OUT_N] = 0
            self.ist[EV_N] = 0
            m = run(
                msgs.start, msgs.ts, msgs.seq, msgs.first, msgs.prev, msgs.snap, msgs.bad,
                rows.side, rows.tick, rows.size, self.qty, self.aux, self.ist, self.ovb, self.ova,
                self._scale, self.rule.code, self._replay, self.interval, self.bps, self.refs,
                m, first_cont and m == 0, self.max_pending_rows, self.max_carry, self.full_depth, *out, ev_i, ev_f,
            )
            results.append(self._result(*out))
            self._note_events(ev_i, ev_f)
            if m >= len(msgs):
                break
        p = int(self.ist[PENDING])
        if p >= 0:
            self._carry = rows.slice(int(msgs.start[p]))
            self._carry.row[:] = -1
            self.ist[PENDING] = -1
        self._last_key = _row_key(rows, len(rows) - 1)
        return BookResult.concat(results)

    def finish(self, end_ts: int | None = None) -> BookResult:
        """End of the stream: write the grid points up to the last message's ts, or up to
        ``end_ts`` (UTC ns) when the caller knows the data was complete until then."""
        until = int(self.ist[LAST_TS]) if end_ts is None else int(end_ts)
        nxt = int(self.ist[NEXT])
        if nxt == NULL or until == NULL or until < nxt or not self.qty.shape[1]:
            return BookResult.concat([])
        last = int(self.ist[LAST_TS])
        span = min(until, last + self.max_carry if last != NULL else until) - nxt
        out = self._alloc(max(1, span // self.interval + 1))
        self.ist[OUT_N] = 0
        flush(self.qty, self.aux, self.ist, self.ovb, self.ova, self._scale, self.interval, self.bps, self.refs,
              until, self.max_carry, *out)
        return self._result(*out)

    # -- looking at the book ---------------------------------------------------------------
    @property
    def in_sync(self) -> bool:
        return int(self.ist[SYNC]) != R.S_NONE

    def best(self) -> tuple[float, float, float, float] | None:
        """(best bid, its size, best ask, its size), or None when a side is empty."""
        bb, ba = best_bid(self.ist), best_ask(self.ist)
        if bb == NOTICK or ba == NOTICK:
            return None
        return (bb / self._scale, level_size(self.qty, self.ist, self.ovb, self.ova, 0, bb),
                ba / self._scale, level_size(self.qty, self.ist, self.ovb, self.ova, 1, ba))

    def levels(self, side: str) -> pl.DataFrame:
        """Every level of one side (``bid`` / ``ask``), ascending price: columns price, amount."""
        s = {"bid": 0, "ask": 1}[side]
        if not self.qty.shape[1]:
            return pl.DataFrame(schema={"price": pl.Float64, "amount": pl.Float64})
        n = count_levels(self.qty, self.ist, self.ovb, self.ova, s)
        t = np.empty(n, np.int64)
        q = np.empty(n, np.float64)
        dump_levels(self.qty, self.ist, self.ovb, self.ova, s, t, q)
        return pl.DataFrame({"price": t / self._scale, "amount": q})

    @property
    def stats(self) -> BookStats:
        i = self.ist
        return BookStats(
            messages=int(i[C_MESSAGES]), updates=int(i[C_UPDATES]), snapshots=int(i[C_SNAPSHOTS]),
            snapshot_levels=int(i[C_SNAPSHOT_LEVELS]), gaps=int(i[C_GAPS]), stale=int(i[C_STALE]),
            resyncs=int(i[C_RESYNCS]), discards=int(i[C_DISCARDS]), crossed=int(i[C_CROSSED]),
            waiting=int(i[C_WAITING]), snapshots_ignored=int(i[C_IGNORED_SNAPSHOTS]),
            malformed=sum(self._malformed.values()), malformed_messages=int(i[C_BAD_MESSAGES]),
            samples=int(i[C_SAMPLES]), recentres=int(i[RECENTRES]), in_sync=self.in_sync,
            malformed_by_reason=dict(self._malformed),
        )

    @property
    def issues(self) -> pl.DataFrame:
        """Malformed rows: ``row`` (position in the stream of rows fed, 0-based), ``ts``,
        ``reason``, ``value`` (at most ``max_issues`` kept; counts are exact in :attr:`stats`)."""
        if not self._issues:
            return pl.DataFrame(schema={"row": pl.Int64, "ts": pl.Int64, "reason": pl.String, "value": pl.String})
        return pl.concat(self._issues)

    def missing(self) -> list[tuple[int, int, bool]]:
        """The spans without depth because the book was out of sync: ``(from, to, open)`` in UTC
        ns; ``from`` is the last message of the book in sync (or the first message, before any
        snapshot), ``to`` the message that synced it again; an ``open`` span (the book is still
        out of sync) ends at the last message."""
        return missing_spans(self._missing, self.ist)

    @property
    def events(self) -> pl.DataFrame:
        """Sync events: ``ts``, ``event`` (sync, resync, gap, stale, crossed, uncrossed,
        malformed_message, snapshot, snapshot_ignored), ids ``a`` / ``b`` and prices ``bid`` /
        ``ask`` where they apply (the last ``max_events``)."""
        if not self._events:
            return pl.DataFrame(schema={"ts": pl.Int64, "event": pl.String, "a": pl.Int64, "b": pl.Int64,
                                        "bid": pl.Float64, "ask": pl.Float64})
        return pl.concat(self._events).tail(self.max_events)

    # -- internals -------------------------------------------------------------------------
    @property
    def _scale(self) -> float:
        return 10.0 ** (self.decimals or 0)

    @property
    def _replay(self) -> bool:
        return self.rule.code != R.TARDIS

    def _set_grid(self, d: int, rows: Rows) -> None:
        if self.decimals is None:
            self.decimals = d
            ticks = rows.tick[~rows.bad]
            centre = int(np.median(ticks)) if len(ticks) else 0
            w = int(min(self.max_window, max(1024, centre * self.window_pct / 100)))
            sh = block_shift(w)
            w = -(-w >> sh) << sh
            self.qty = np.zeros((2, w), dtype=np.float64)
            self.aux = aux_for(w, sh)
            self.ist[SHIFT] = sh
            self.ist[WIDTH] = w
            self.ist[DLO] = w
            self.ist[DHI] = -1
            self.ist[BASE] = centre - w // 2
        elif d > self.decimals:
            factor = 10 ** (d - self.decimals)
            regrid(self.qty, self.aux, self.ist, self.ovb, self.ova, factor)
            if self._carry is not None:
                self._carry.tick[:] *= factor
            self.decimals = d

    def _alloc(self, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.zeros(cap, dtype=np.int64),
            np.zeros((cap, TOP_FIELDS), dtype=np.float64),
            np.zeros((cap, len(self.refs), len(self.bps), BAND_FIELDS), dtype=np.float64),
        )

    def _result(self, out_ts: np.ndarray, out_top: np.ndarray, out_band: np.ndarray) -> BookResult:
        n = int(self.ist[OUT_N])
        return BookResult(
            depth_frame(self.key, out_ts[:n], out_band[:n], self.bps, self.refs),
            top_frame(self.key, out_ts[:n], out_top[:n]),
        )

    def _note_issues(self, issues: pl.DataFrame) -> None:
        issues = issues.with_columns(pl.col("row") + self._rows_seen)
        if self.strict:
            r = issues.row(0, named=True)
            raise BookDataError(
                f"malformed book_delta row {r['row']} (ts {r['ts']}): {r['reason']}"
                + (f": {r['value']}" if r["value"] else "")
            )
        self._malformed.update(issues.get_column("reason").to_list())
        room = self.max_issues - self._n_issues
        if room > 0:
            self._issues.append(issues.head(room))
            self._n_issues += min(room, issues.height)

    def _note_events(self, ev_i: np.ndarray, ev_f: np.ndarray) -> None:
        n = min(int(self.ist[EV_N]), ev_i.shape[0])
        if not n:
            return
        kinds = ev_i[:n, 0]
        self._missing += [(int(a), int(b)) for a, b in ev_i[:n][kinds == EV_MISSING, 2:4]]
        ev = pl.DataFrame(
            {
                "ts": ev_i[:n, 1],
                "event": [EVENT_NAMES[int(k)] for k in ev_i[:n, 0]],
                "a": ev_i[:n, 2],
                "b": ev_i[:n, 3],
                "bid": ev_f[:n, 0],
                "ask": ev_f[:n, 1],
            }
        ).with_columns(
            pl.when(pl.col(c) == NULL).then(None).otherwise(pl.col(c)).alias(c) for c in ("a", "b")
        ).with_columns(pl.col("bid").fill_nan(None), pl.col("ask").fill_nan(None))
        self._events.append(ev)
        if len(self._events) > 64:
            self._events = [pl.concat(self._events).tail(self.max_events)]


def missing_spans(closed: list[tuple[int, int]], ist: np.ndarray) -> list[tuple[int, int, bool]]:
    """The closed spans without depth, plus the open one of a book still out of sync (from the
    state vector ``ist``), as ``(from, to, open)`` (see :meth:`BookEngine.missing`)."""
    out = [(a, b, False) for a, b in closed]
    since = int(ist[UNSYNC_FROM])
    if since != NULL:
        out.append((since, max(since, int(ist[LAST_TS])), True))
    return out


def _row_key(rows: Rows, i: int) -> tuple:
    return (int(rows.ts[i]), int(rows.seq[i]), int(rows.first[i]), int(rows.prev[i]), bool(rows.snap[i]))


def build_book_depth(
    deltas: pl.DataFrame,
    venue: str | None = None,
    *,
    end_ts: int | None = None,
    **options,
) -> tuple[BookResult, dict[tuple[str, str, str], BookStats]]:
    """Depth for every book in ``deltas`` (grouped by exchange / market / symbol, arrival order
    kept within each): one :class:`BookEngine` per book, fed everything, then finished.

    ``venue`` is the sync rule for all books, or None to pick each book's from its exchange and
    market (:func:`tapewatch.book.rules.rule_for`). Returns the concatenated result and each
    book's stats.
    """
    keys = [c for c in ("exchange", "market", "symbol") if c in deltas.columns]
    if len(keys) < 3:
        raise TapewatchError("build_book_depth needs exchange, market and symbol columns")
    results: list[BookResult] = []
    stats: dict[tuple[str, str, str], BookStats] = {}
    for (ex, mkt, sym), part in deltas.group_by(keys, maintain_order=True):
        if ex is None or mkt is None or sym is None:
            raise TapewatchError("book_delta rows without exchange, market or symbol cannot be assigned to a book")
        eng = BookEngine(venue or R.rule_for(ex, mkt), ex, mkt, sym, **options)
        results.append(eng.process(part))
        results.append(eng.finish(end_ts))
        stats[(ex, mkt, sym)] = eng.stats
    return BookResult.concat(results), stats


__all__ = ["BookDataError", "BookEngine", "BookResult", "BookStats", "REASONS", "build_book_depth"]
