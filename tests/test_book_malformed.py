"""Malformed book_delta rows: a clear reason each, counted, and the stream goes on.

Rows of another symbol are simply left out (the book is untouched). Any other malformed row makes
its message unusable, so the book is discarded and rebuilt from the next snapshot: applying the
rest of the message would leave a book that silently differs from the venue's.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

import book_ref as B
from conftest import SHARED
from tapewatch.book import REASONS, BookDataError, BookEngine
from tapewatch.errors import TapewatchError

REFS = ("mid", "touch")


@pytest.fixture(scope="module")
def nkn():
    df = B.binance_books(SHARED, futures=False)["NKN/USDT"]
    return df, B.split_messages(df)


def run(df, venue="binance_spot", key=("binance", "spot", "NKN/USDT"), **opts):
    eng = BookEngine(venue, *key, references=REFS, **opts)
    r, f = eng.process(df), eng.finish()
    return eng, B.engine_samples(pl.concat([r.depth, f.depth]), pl.concat([r.top, f.top]))


def clean_samples(df):
    ref = B.RefBook("binance_spot", references=REFS)
    ref.feed(B.split_messages(df))
    ref.finish(ref.last_ts)
    return ref.samples


def corrupt(df: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    """``df`` with one row's fields replaced (None allowed)."""
    out = df.with_row_index("__i")
    for col, v in values.items():
        dtype = df.schema[col]
        out = out.with_columns(
            pl.when(pl.col("__i") == row).then(pl.lit(v, dtype=dtype)).otherwise(pl.col(col)).alias(col)
        )
    return out.drop("__i")


def row_of_message(df, msgs, k):
    return sum(len(m.rows) for m in msgs[:k])


BAD_VALUES = [
    ("missing price", {"price": None}, REASONS[6]),
    ("NaN price", {"price": float("nan")}, REASONS[7]),
    ("infinite price", {"price": float("inf")}, REASONS[7]),
    ("zero price", {"price": 0.0}, REASONS[8]),
    ("negative size", {"amount": -5.0}, REASONS[11]),
    ("NaN size", {"amount": float("nan")}, REASONS[10]),
    ("missing size", {"amount": None}, REASONS[9]),
    ("missing side", {"side": None}, REASONS[4]),
    ("unknown side", {"side": "buy"}, REASONS[5]),
    ("missing seq", {"seq": None}, REASONS[13]),
    ("missing U", {"first_seq": None}, REASONS[14]),
    ("missing ts", {"ts": None}, REASONS[3]),
    ("missing is_snapshot", {"is_snapshot": None}, REASONS[12]),
    ("missing symbol", {"symbol": None}, REASONS[2]),
]


@pytest.mark.parametrize("name,values,reason", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_malformed_row_discards_book_and_is_reported(nkn, name, values, reason):
    df, msgs = nkn
    k = len(msgs) // 2
    row = row_of_message(df, msgs, k)
    bad = corrupt(df, row, **values)
    eng, got = run(bad)
    st = eng.stats
    assert st.malformed == 1 and st.malformed_by_reason == {reason: 1}
    assert st.malformed_messages >= 1 and st.discards == 1 and not st.in_sync
    issue = eng.issues.row(0, named=True)
    assert issue["row"] == row and issue["reason"] == reason
    ev = eng.events.filter(pl.col("event") == "malformed_message")
    assert ev.height == 1
    # depth up to the bad message is the clean stream's; after it, none (no snapshot follows)
    clean = clean_samples(df)
    B.assert_same_samples(got, clean, only=set(got))
    assert got and max(got) < msgs[k].ts
    assert set(got) == {t for t in clean if t < msgs[k - 1].ts} | {t for t in got if t >= msgs[k - 1].ts}


def test_bad_message_then_resync(nkn):
    """After a malformed message the book comes back with the next snapshot."""
    df, msgs = nkn
    k = len(msgs) // 3
    bad_msg = replace(msgs[k], rows=[(s, p, -q if i == 0 else q) for i, (s, p, q) in enumerate(msgs[k].rows)])
    j = k + 8
    ref = B.RefBook("binance_spot", references=REFS)
    ref.feed(msgs[: j + 1])
    snap = B.snapshot_of(ref, msgs[j + 2].ts + 1, ref.last)
    stream = msgs[:k] + [bad_msg] + msgs[k + 1: j + 3] + [snap] + msgs[j + 3:]
    eng, got = run(B.to_frame(stream, df))
    assert eng.stats.malformed == 1 and eng.stats.resyncs == 1 and eng.stats.in_sync
    clean = clean_samples(df)
    B.assert_same_samples(got, clean, only=set(got))
    assert not [t for t in got if msgs[k].ts <= t < snap.ts]
    assert any(t > snap.ts for t in got)


def test_wrong_symbol_rows_are_left_out(nkn):
    """Rows of another book are counted and dropped; this book is not disturbed at all."""
    df, msgs = nkn
    other = B.binance_books(SHARED, futures=False)["LRC/BTC"]
    mixed = pl.concat([df, other]).sort("ts", maintain_order=True)
    eng, got = run(mixed)
    st = eng.stats
    assert st.malformed == other.height and st.malformed_by_reason == {REASONS[1]: other.height}
    assert st.discards == 0 and st.in_sync
    B.assert_same_samples(got, clean_samples(df))
    assert set(eng.issues.get_column("value").unique()) == {"binance/spot/LRC/BTC"}


def test_many_malformed_rows_do_not_stop_the_stream(nkn):
    df, msgs = nkn
    bad = df
    for r in range(5, df.height, 97):
        bad = corrupt(bad, r, price=float("nan"))
    eng, _ = run(bad)
    assert eng.stats.malformed == len(range(5, df.height, 97))
    assert eng.stats.messages == len(msgs)


def test_strict_mode_raises_clear_error(nkn):
    df, msgs = nkn
    bad = corrupt(df, 40, amount=-1.5)
    with pytest.raises(BookDataError, match=r"row 40 .*negative amount: -1\.5"):
        run(bad, strict=True)


def test_missing_column_is_an_error(nkn):
    df, _ = nkn
    with pytest.raises(TapewatchError, match="lack column"):
        BookEngine("binance_spot").process(df.drop("is_snapshot"))


def test_usdm_needs_pu():
    df = B.binance_books(SHARED, futures=True)["SUSHI/USDT"]
    msgs = B.split_messages(df)
    row = row_of_message(df, msgs, 20)
    eng, _ = run(corrupt(df, row, prev_seq=None), "binance_usdm", ("binance", "perp", "SUSHI/USDT"))
    assert eng.stats.malformed_by_reason == {REASONS[15]: 1}


def test_unknown_venue_and_bad_options():
    with pytest.raises(TapewatchError, match="unknown book venue rule"):
        BookEngine("kraken")
    with pytest.raises(TapewatchError, match="bad depth band"):
        BookEngine("tardis", bands=(0.001,))
    with pytest.raises(TapewatchError, match="reference"):
        BookEngine("tardis", references=("vwap",))
