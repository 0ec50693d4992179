"""book_delta in the store → book_depth in the store, through the L2 engine.

Run after an import: every book that received deltas is rebuilt over the whole UTC days the new
deltas touch (a stream's REST snapshot and its websocket diffs may come from different files,
so the engine sees all of them together, in stored arrival order).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tapewatch.book.engine import BookStats, build_book_depth
from tapewatch.store import NS_PER_DAY, Store

BookKey = tuple[str, str, str]  # exchange, market, symbol


@dataclass(frozen=True)
class DerivedDepth:
    """One book's depth rebuild: book_depth rows written and new to the store, engine counters."""

    key: BookKey
    rows: int
    added: int
    stats: BookStats


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


def depth_from_store(
    store: Store, spans: dict[BookKey, tuple[int, int]], interval: str = "1s", max_carry: str = "60s"
) -> list[DerivedDepth]:
    """Rebuild book_depth (every ``interval``, bands 1/2/5/10 % of mid) for each book over the
    whole days of its span, from all book_delta the store holds there; idempotent.

    A book with no message for longer than ``max_carry`` is not sampled further: in recorded
    data a long silence means missing data, not a quiet book.
    """
    out = []
    for key in sorted(spans):
        lo, hi = spans[key]
        start, end = lo - lo % NS_PER_DAY, hi - hi % NS_PER_DAY + NS_PER_DAY
        deltas = store.read("book_delta", *key, start=start, end=end)
        result, stats = build_book_depth(deltas, interval=interval, max_carry=max_carry)
        w = store.write("book_depth", result.depth)
        out.append(DerivedDepth(key, result.depth.height, w.added, stats[key]))
    return out
