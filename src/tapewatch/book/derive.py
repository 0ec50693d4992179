"""book_delta in the store → book_depth in the store, through the L2 engine, across imports.

Run after an import: every book that received deltas is brought up to date from the earliest new
delta on. The engine does not start from scratch each time: after each UTC day of a book it
processed, its state is saved (:mod:`tapewatch.book.state`) under
``<store>/_book_state/exchange=…/market=…/symbol=…/<YYYY-MM-DD>.npz`` together with the instant
up to which it has seen every stored delta (the next midnight, or just after the book's last
delta on its last day). An import resumes from the latest state that saw nothing at or after its
earliest new delta, and runs to the book's last stored delta (a file that fills an earlier span
changes everything after it), saving new states on the way; with no usable state it starts at the
book's first stored delta. So contiguous files imported in separate calls, in any order, give the
depth one call with all of them gives: a snapshot in yesterday's file syncs today's diffs.

A book the engine could not keep in sync has spans without depth (diffs before any snapshot,
after a gap): :attr:`DerivedDepth.missing` lists them and :func:`book_sync_status` reads them back
for ``tapewatch status``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from tapewatch.book import state
from tapewatch.book.engine import BookEngine, BookStats, missing_spans
from tapewatch.book.rules import rule_for
from tapewatch.store import NS_PER_DAY, Store
from tapewatch.symbols import path_token

BookKey = tuple[str, str, str]  # exchange, market, symbol
Span = tuple[int, int, bool]  # from, to (UTC ns), still open (the book is out of sync at its last delta)
STATE_DIR = "_book_state"


@dataclass(frozen=True)
class DerivedDepth:
    """One book's depth update: book_depth rows written and new to the store, engine counters
    (since the book's first delta), and the spans without depth because it was out of sync."""

    key: BookKey
    rows: int
    added: int
    stats: BookStats
    missing: list[Span] = field(default_factory=list)


def touched_books(deltas: pl.DataFrame) -> dict[BookKey, tuple[int, int]]:
    """Per book in normalized book_delta rows, the first and last ``ts`` (UTC ns)."""
    ts = pl.col("ts").cast(pl.Int64) if deltas.schema["ts"] != pl.Int64 else pl.col("ts")
    spans = deltas.group_by("exchange", "market", "symbol").agg(ts.min().alias("lo"), ts.max().alias("hi"))
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in spans.iter_rows()}


def merge_spans(a: dict[BookKey, tuple[int, int]], b: dict[BookKey, tuple[int, int]]) -> dict[BookKey, tuple[int, int]]:
    """Union of two span maps (per book the earliest start and the latest end)."""
    out = dict(a)
    for k, (lo, hi) in b.items():
        out[k] = (min(lo, out[k][0]), max(hi, out[k][1])) if k in out else (lo, hi)
    return out


def state_dir(store: Store, key: BookKey) -> Path:
    """Where a book's saved engine states live."""
    ex, mkt, sym = key
    return store.root / STATE_DIR / f"exchange={ex}" / f"market={mkt}" / f"symbol={path_token(sym)}"


def _day(iso: str) -> int:
    """UTC ns of midnight of a ``YYYY-MM-DD`` day."""
    return (date.fromisoformat(iso) - date(1970, 1, 1)).days * NS_PER_DAY


def _resume(folder: Path, lo: int, eng: BookEngine) -> tuple[int, int] | None:
    """Load into ``eng`` the latest saved state that saw no delta at or after ``lo``; returns the
    day of that state and the instant its data ends (every stored delta before it was
    processed), None when none fits."""
    for p in sorted(folder.glob("*.npz"), reverse=True):
        if _day(p.stem) > lo:
            continue
        saved = state.read(p)
        cover = int(saved["cover_end"])
        if cover <= lo:
            return (_day(p.stem), cover) if state.load(saved, eng) else None
    return None


def update_book(store: Store, key: BookKey, lo: int, interval: str = "1s", max_carry: str = "60s",
                append: bool = False) -> DerivedDepth:
    """Bring one book's depth up to date after deltas from ``lo`` (UTC ns) on were stored: resume
    the engine from the latest saved state before ``lo`` (or start at the book's first delta),
    feed it every stored delta from there, day by day, saving its state after each day. With
    ``append`` (a live collector, every second) the depth rows go to :meth:`Store.append`, so an
    update costs what it adds; a sample written again (the last, still open one) wins over the
    earlier one on reading, as it does when merged."""
    put = store.append if append else store.write
    eng = BookEngine(rule_for(key[0], key[1]), *key, interval=interval, max_carry=max_carry)
    folder = state_dir(store, key)
    resumed = _resume(folder, lo, eng)
    cover = resumed[1] if resumed else None
    for p in folder.glob("*.npz"):  # states after the resume point are stale now
        if resumed is None or _day(p.stem) > resumed[0]:
            p.unlink()
    # one entry per day: a day written live has several files (its parts)
    days = sorted({_day(f.parent.name.removeprefix("date=")) for f in store.files("book_delta", *key, start=cover)})
    rows = added = 0
    last_ts: int | None = None
    for i, day in enumerate(days):
        deltas = store.read("book_delta", *key, start=day if cover is None else max(day, cover), end=day + NS_PER_DAY)
        if deltas.height:
            last_ts = int(deltas["ts"].dt.epoch("ns").max())
        w = put("book_depth", eng.process(deltas).depth)
        rows, added = rows + w.offered, added + w.added
        end = day + NS_PER_DAY if i < len(days) - 1 else (last_ts + 1 if last_ts is not None else None)
        if end is not None:
            state.save(folder / f"{_iso(day)}.npz", {**state.dump(eng), "cover_end": np.array(end, dtype=np.int64)})
    w = put("book_depth", eng.finish().depth)
    return DerivedDepth(key, rows + w.offered, added + w.added, eng.stats, eng.missing())


def _iso(day: int) -> str:
    return datetime.fromtimestamp(day // 10**9, timezone.utc).date().isoformat()


def depth_from_store(
    store: Store, spans: dict[BookKey, tuple[int, int]], interval: str = "1s", max_carry: str = "60s"
) -> list[DerivedDepth]:
    """Update book_depth (every ``interval``, bands 1/2/5/10 % of mid) of each book in ``spans``
    (first and last new delta, UTC ns) with :func:`update_book`; idempotent.

    A book with no message for longer than ``max_carry`` is not sampled further: in recorded
    data a long silence means missing data, not a quiet book.
    """
    return [update_book(store, key, spans[key][0], interval, max_carry) for key in sorted(spans)]


def book_sync_status(store: Store) -> list[tuple[BookKey, list[Span]]]:
    """Per book with a saved engine state, the spans it had no depth (see :class:`DerivedDepth`),
    as of its last import."""
    out = []
    for d in sorted((store.root / STATE_DIR).glob("exchange=*/market=*/symbol=*")):
        files = sorted(d.glob("*.npz"))
        if not files:
            continue
        saved = state.read(files[-1])
        key = json.loads(str(saved["config"]))["key"]
        closed = [(int(a), int(b)) for a, b in saved["missing"]]
        out.append(((key["exchange"], key["market"], key["symbol"]), missing_spans(closed, saved["ist"])))
    return out
