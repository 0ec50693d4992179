"""Gap handling on real messages: drop, duplicate and reorder them; the engine must notice each,
resync from the next snapshot, and never write depth from a broken book.

"Never from a broken book" is checked against the unmodified stream: every sample the engine
writes from a corrupted stream must equal the sample of the clean stream at the same time, and
no sample may fall between the corruption and the resync. The resync snapshot is the book a REST
request would have returned: the clean book after message ``j``, with ``j``'s update id,
arriving two messages later (so the diffs in between are buffered and replayed).
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

import book_ref as B
from conftest import SHARED
from tapewatch.book import BookEngine

REFS = ("mid", "touch")


def stream(name: str):
    """(venue, key, messages) of one real stream; Coinbase level2 has no sequence numbers, so
    its messages are numbered here (snapshot 1000, then +1 per message) to test the sequence rule."""
    if name == "spot":
        df = B.binance_books(SHARED, futures=False)["NKN/USDT"]
        return "binance_spot", df, B.split_messages(df)
    if name.startswith("usdm"):
        sym = name.split(":")[1]
        df = B.binance_books(SHARED, futures=True)[sym]
        return "binance_usdm", df, B.split_messages(df)
    df = B.coinbase_books(SHARED)["SKL/USD"]
    msgs = B.split_messages(df)
    return "coinbase", df, [replace(m, seq=1000 + i) for i, m in enumerate(msgs)]


def run(venue, like, msgs, **opts):
    df = B.to_frame(msgs, like)
    key = (like["exchange"][0], like["market"][0], like["symbol"][0])
    eng = BookEngine(venue, *key, references=REFS, **opts)
    r, f = eng.process(df), eng.finish()
    got = B.engine_samples(pl.concat([r.depth, f.depth]), pl.concat([r.top, f.top]))
    ref = B.RefBook(venue, references=REFS)
    ref.feed(msgs)
    ref.finish(ref.last_ts)
    return eng, got, ref


def clean_book_after(venue, msgs, j) -> B.RefBook:
    ref = B.RefBook(venue, references=REFS)
    ref.feed(msgs[: j + 1])
    return ref


def with_resync(venue, msgs, corrupted, j):
    """``corrupted`` plus a snapshot of the clean book after message j, arriving after j + 2."""
    snap = B.snapshot_of(clean_book_after(venue, msgs, j), msgs[j + 2].ts + 1, clean_book_after(venue, msgs, j).last)
    at = corrupted.index(msgs[j + 2]) + 1
    return corrupted[:at] + [snap] + corrupted[at:], snap.ts


def assert_never_broken(got, clean, broken_from, resync_ts):
    """Every sample equals the clean stream's; none while the book was broken."""
    B.assert_same_samples(got, clean.samples, only=set(got), known=False)  # the resync snapshot reaches elsewhere
    inside = [t for t in got if broken_from <= t < resync_ts]
    assert not inside, f"depth written from a broken book at {inside[:3]}"
    assert any(t >= resync_ts for t in got), "no depth after the resync"


STREAMS = ["spot", "usdm:SUSHI/USDT", "usdm:CTK/USDT", "coinbase-seq"]


@pytest.mark.parametrize("name", STREAMS)
def test_clean_stream_has_no_gap(name):
    venue, like, msgs = stream(name)
    eng, got, ref = run(venue, like, msgs)
    assert eng.stats.gaps == 0 and eng.stats.resyncs == 0
    B.assert_same_samples(got, ref.samples)


def corrupted_run(name, corrupt):
    """Stream ``name`` with its messages changed by ``corrupt(msgs, k)`` at ``k`` a third in, and
    a resync snapshot of the clean book after ``k + 10``. The depth must agree with the reference
    book on the corrupted stream and never come from a broken book; returns (engine, samples,
    clean reference, messages, k)."""
    venue, like, msgs = stream(name)
    _, _, clean = run(venue, like, msgs)
    k = len(msgs) // 3
    corrupted, resync_ts = with_resync(venue, msgs, corrupt(msgs, k), k + 10)
    eng, got, ref = run(venue, like, corrupted)
    B.assert_same_samples(got, ref.samples)  # the reference agrees on the corrupted stream
    assert_never_broken(got, clean, msgs[k].ts, resync_ts)
    return eng, got, clean, msgs, k


@pytest.mark.parametrize("name", STREAMS)
def test_dropped_message(name):
    eng, got, clean, msgs, k = corrupted_run(name, lambda msgs, k: msgs[:k] + msgs[k + 1:])
    st = eng.stats
    assert st.gaps == 1 and st.resyncs == 1 and st.discards == 1 and st.in_sync
    gap = eng.events.filter(pl.col("event") == "gap").row(0, named=True)
    assert gap["ts"] == msgs[k + 1].ts
    assert len(got) >= len(clean.samples) - 8


@pytest.mark.parametrize("name", STREAMS)
@pytest.mark.parametrize("delay", [0, 1, 3])
def test_duplicated_message(name, delay):
    """A message delivered twice (right after itself, or one or three messages later) is old news:
    ignored, no gap, the depth is exactly the clean stream's. (Delivered right after itself, the
    copy's rows cannot be told from more rows of the same message — rows carry no message id — and
    are applied again, which changes nothing since sizes are absolute.)"""
    venue, like, msgs = stream(name)
    clean_eng, clean_got, clean = run(venue, like, msgs)
    k = len(msgs) // 2
    dup = msgs[: k + 1 + delay] + [msgs[k]] + msgs[k + 1 + delay:]
    eng, got, _ = run(venue, like, dup)
    assert eng.stats.gaps == 0
    assert eng.stats.stale == clean_eng.stats.stale + (delay > 0)
    assert eng.events.filter(pl.col("event") == "stale").height == eng.stats.stale
    B.assert_same_samples(got, clean.samples)


@pytest.mark.parametrize("name", STREAMS)
def test_reordered_messages(name):
    eng, *_ = corrupted_run(name, lambda msgs, k: msgs[:k] + [msgs[k + 1], msgs[k]] + msgs[k + 2:])
    assert eng.stats.gaps == 1 and eng.stats.resyncs == 1


@pytest.mark.parametrize("name", ["spot", "usdm:SUSHI/USDT"])
def test_gap_without_new_snapshot_stops_depth(name):
    """No snapshot after the gap: nothing more is written, however long the stream goes on."""
    venue, like, msgs = stream(name)
    k = len(msgs) // 3
    eng, got, _ = run(venue, like, msgs[:k] + msgs[k + 1:])
    assert eng.stats.gaps == 1 and not eng.stats.in_sync
    assert got and max(got) < msgs[k].ts
    before = next(i for i, m in enumerate(msgs) if m.snap)  # diffs that came before the snapshot
    assert eng.stats.waiting == before + len(msgs) - k - 2  # and every diff after the gap


def test_old_snapshot_is_ignored():
    """A REST snapshot older than the live book (it arrived late) must not roll the book back."""
    venue, like, msgs = stream("spot")
    _, _, clean = run(venue, like, msgs)
    snap = next(m for m in msgs if m.snap)
    k = len(msgs) // 2
    late = replace(snap, ts=msgs[k].ts + 1)
    eng, got, _ = run(venue, like, msgs[: k + 1] + [late] + msgs[k + 1:])
    assert eng.stats.snapshots_ignored == 1 and eng.stats.gaps == 0
    B.assert_same_samples(got, clean.samples)


def test_snapshot_rows_reset_the_book():
    """Tardis rule (and Coinbase level2 without sequence numbers): a new snapshot replaces the
    book, whatever was there — here an old state of the book, re-sent later."""
    venue, like, msgs = stream("coinbase-seq")
    msgs = [replace(m, seq=None) for m in msgs]
    k = len(msgs) // 2
    old = B.snapshot_of(clean_book_after("tardis", msgs, k - 200), msgs[k].ts + 1, None)
    stream_ = msgs[: k + 1] + [old] + msgs[k + 1:]
    for rule in ("tardis", "coinbase"):
        eng, got, ref = run(rule, like, stream_)
        assert eng.stats.snapshots == 2 and eng.stats.gaps == 0
        B.assert_same_samples(got, ref.samples)
        events = eng.events.get_column("event").to_list()
        assert events[:2] == ["sync", "snapshot"]


def test_crossed_book_is_reported_and_not_sampled():
    """A bid placed at the best ask crosses the book: counted, reported, no depth until it is
    removed again."""
    venue, like, msgs = stream("coinbase-seq")
    msgs = [replace(m, seq=None) for m in msgs]
    _, _, clean = run("coinbase", like, msgs)
    k = len(msgs) // 3
    state = clean_book_after("coinbase", msgs, k)
    ask = min(state.asks)
    cross = B.Msg(msgs[k].ts + 1, None, None, None, False, [("bid", ask, state.asks[ask])])
    k2 = next(i for i in range(k + 1, len(msgs)) if msgs[i].ts > msgs[k].ts + 3_000_000_000)
    uncross = B.Msg(msgs[k2].ts + 1, None, None, None, False, [("bid", ask, 0)])
    stream_ = msgs[: k + 1] + [cross] + msgs[k + 1: k2 + 1] + [uncross] + msgs[k2 + 1:]
    eng, got, ref = run("coinbase", like, stream_)
    assert eng.stats.crossed == 1
    ev = eng.events.filter(pl.col("event").is_in(["crossed", "uncrossed"]))
    assert ev.get_column("event").to_list() == ["crossed", "uncrossed"]
    row = ev.row(0, named=True)
    assert row["bid"] >= row["ask"] and row["ts"] == cross.ts
    B.assert_same_samples(got, ref.samples)
    uncrossed_at = ev.row(1, named=True)["ts"]  # our removal, or a real update that took the ask away
    assert uncrossed_at - cross.ts > 1_000_000_000
    assert not [t for t in got if cross.ts <= t < uncrossed_at]
    B.assert_same_samples(got, clean.samples, only={t for t in got if t < cross.ts or t > uncross.ts})
    assert any(t > uncross.ts for t in got)


def test_bounded_buffer():
    """Diffs kept while waiting for a snapshot are bounded (max_pending_rows); when the snapshot
    then no longer reaches the kept diffs, that is a gap, not a wrong book."""
    venue, like, msgs = stream("spot")
    snap_i = next(i for i, m in enumerate(msgs) if m.snap)
    late = [m for i, m in enumerate(msgs) if i != snap_i]
    late.insert(snap_i + 20, msgs[snap_i])
    eng, got, ref = run(venue, like, late, max_pending_rows=5)
    assert eng.stats.gaps == 1 and not eng.stats.in_sync and got == {}
    eng, got, ref = run(venue, like, late)
    assert eng.stats.gaps == 0 and eng.stats.in_sync and got
