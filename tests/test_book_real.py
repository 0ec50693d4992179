"""The L2 engine on the real L2 data in tests/data against a plain dict reference book.

At every sample point the engine writes, the reference book (tests/book_ref.py: dict per side,
Decimal prices, the venue rules written out) must have a sample too, with the same best bid /
ask and the same band depths (base and quote, mid and touch, 1/2/5/10 %); and vice versa. At the
end the two books must hold exactly the same levels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import book_ref as B
from conftest import SHARED
from tapewatch.book import BookEngine, build_book_depth

REFS = ("mid", "touch")


def run_both(venue, df, key, *, references=REFS, interval="1s", end=None, chunks=None, **opts):
    eng = BookEngine(venue, *key, references=references, interval=interval, **opts)
    results = []
    if chunks:
        chunks = sorted(c for c in set(chunks) if 0 < c < df.height)
        for lo, hi in zip([0, *chunks], [*chunks, df.height]):
            results.append(eng.process(df.slice(lo, hi - lo)))
    else:
        results.append(eng.process(df))
    results.append(eng.finish(end))
    depth = pl.concat([r.depth for r in results])
    top = pl.concat([r.top for r in results])
    step = eng.interval
    ref = B.RefBook(venue, references=tuple(references), interval=step)
    ref.feed(B.split_messages(df))
    ref.finish(ref.last_ts if end is None else end)
    return eng, ref, B.engine_samples(depth, top), depth


def same_levels(eng: BookEngine, ref: B.RefBook) -> None:
    for side, book in (("bid", ref.bids), ("ask", ref.asks)):
        got = eng.levels(side)
        want = sorted(book.items())
        assert got.height == len(want), (side, got.height, len(want))
        for (p, q), (gp, gq) in zip(want, got.iter_rows()):
            assert gp == float(p) and B.close(gq, q), (side, p, q, gp, gq)


def _books(kind):
    if not SHARED.is_dir():
        return []
    if kind == "spot":
        return [("binance_spot", s, df) for s, df in B.binance_books(SHARED, futures=False).items()]
    if kind == "usdm":
        return [("binance_usdm", s, df) for s, df in B.binance_books(SHARED, futures=True).items()]
    return [("coinbase", s, df) for s, df in B.coinbase_books(SHARED).items()]


CASES = _books("spot") + _books("usdm") + _books("coinbase")


@pytest.mark.parametrize("venue,symbol,df", CASES, ids=[f"{v}-{s}" for v, s, _ in CASES])
def test_recordings_match_reference(venue, symbol, df):
    key = (df["exchange"][0], df["market"][0], symbol)
    eng, ref, got, depth = run_both(venue, df, key)
    assert len(got) >= 15, "a 30 s recording should give most of its 1 s samples"
    B.assert_same_samples(got, ref.samples)
    same_levels(eng, ref)
    st = eng.stats
    assert st.gaps == 0 and st.discards == 0 and st.malformed == 0 and st.crossed == 0
    assert st.snapshots == 1 and st.in_sync
    assert st.stale == ref.stale  # e.g. the Binance diffs buffered before the snapshot, u <= lastUpdateId
    assert st.samples == len(got)
    # book_depth rows: schema, one row per sample x reference x band, sane values
    assert depth.columns == ["exchange", "market", "symbol", "ts", "band_pct", "reference", "bid_amount",
                             "ask_amount", "bid_notional", "ask_notional", "bid_known_pct", "ask_known_pct"]
    assert depth.height == len(got) * 2 * 4
    assert depth.filter((pl.col("bid_amount") <= 0) | (pl.col("ask_amount") <= 0)).is_empty()
    wide = depth.filter(pl.col("reference") == "mid").sort("ts", "band_pct")
    # nested bands: 10 % holds at least what 1 % holds
    assert (wide.group_by("ts").agg(pl.col("bid_amount").diff().min()).get_column("bid_amount").fill_null(0) >= 0).all()


def test_binance_spot_buffered_diffs_are_replayed():
    """The NKN/USDT snapshot arrived after a diff; move it later still (a slow REST answer), so
    several diffs are buffered: the engine replays them and writes the same depth as the reference,
    and from the snapshot on, what the unmodified stream gives."""
    df = B.binance_books(SHARED, futures=False)["NKN/USDT"]
    msgs = B.split_messages(df)
    snap_i = next(i for i, m in enumerate(msgs) if m.snap)
    late = [m for i, m in enumerate(msgs) if i != snap_i]
    late.insert(snap_i + 6, msgs[snap_i])
    moved = B.to_frame(late, df)
    key = ("binance", "spot", "NKN/USDT")
    eng, ref, got, _ = run_both("binance_spot", moved, key)
    B.assert_same_samples(got, ref.samples)
    assert eng.stats.gaps == 0 and eng.stats.waiting == snap_i + 6
    _, clean, _, _ = run_both("binance_spot", df, key)
    arrival = msgs[snap_i + 6].ts
    for t, s in got.items():
        if t >= arrival:
            B.assert_same_samples({t: s}, {t: clean.samples[t]})


def test_usdm_snapshot_csv_does_not_bridge_its_update():
    """nautilus' Binance USD-M sample: a bids-only snapshot (lastUpdateId 2098021528332) and one
    update 10 minutes later with U = 2098041693435: under the USD-M rule (U <= lastUpdateId <= u)
    it cannot follow that snapshot, so the engine reports a gap and writes nothing."""
    df = B.nautilus_binance(SHARED)
    end = int(df["ts"].max()) + 5_000_000_000
    eng, ref, got, _ = run_both("binance_usdm", df, ("binance", "perp", "BTC/USDT"), end=end)
    assert got == {} and ref.samples == {}
    assert eng.stats.gaps == 1 and not eng.stats.in_sync
    ev = eng.events
    assert ev.get_column("event").to_list() == ["sync", "gap"]
    assert ev.row(1, named=True)["a"] == 2098021528332 and ev.row(1, named=True)["b"] == 2098041693435
    # read as a plain snapshot + update stream it is a two-sided book
    eng, ref, got, _ = run_both("tardis", df, ("binance", "perp", "BTC/USDT"), end=end)
    assert len(got) == 5  # whole seconds after the update, up to the end time given
    B.assert_same_samples(got, ref.samples)
    same_levels(eng, ref)


def test_tardis_incremental_snapshot():
    """Tardis deribit incremental_book_L2: one snapshot message (asks only). The book is built
    exactly, but a one-sided book has no mid, so no depth is written."""
    df = B.tardis_deribit(SHARED)
    eng, ref, got, _ = run_both("tardis", df, ("deribit", "perp", "BTC/USD"), end=int(df["ts"].max()) + 3_000_000_000)
    assert got == {} and ref.samples == {}
    same_levels(eng, ref)
    assert eng.levels("ask").height == 15 and eng.best() is None


def test_tardis_book_snapshots_reset_the_book():
    """Tardis book_snapshot_25: every line is a whole book (its own seq), each resets the book;
    sampled every 10 ms."""
    df = B.tardis_snapshots(SHARED, 25)
    eng, ref, got, _ = run_both("tardis", df, ("binance", "perp", "BTC/USDT"), interval=0.01)
    assert len(got) >= 15
    B.assert_same_samples(got, ref.samples)
    same_levels(eng, ref)
    assert eng.stats.snapshots == 10 and eng.levels("bid").height == 25


@pytest.mark.parametrize("cut", [1, 7, 333, 1000, 1500])
def test_chunked_feeding_equals_one_call(cut):
    """Feeding a stream in pieces (cut anywhere, even inside a message) gives the same output."""
    df = B.binance_books(SHARED, futures=True)["SUSHI/USDT"]
    key = ("binance", "perp", "SUSHI/USDT")
    _, _, whole, _ = run_both("binance_usdm", df, key)
    cuts = sorted({cut, cut * 3, cut * 5, df.height // 2} - {0} & set(range(1, df.height)))
    eng, ref, pieces, _ = run_both("binance_usdm", df, key, chunks=cuts)
    assert pieces.keys() == whole.keys()
    B.assert_same_samples(pieces, ref.samples)
    same_levels(eng, ref)


def test_chunked_coinbase_inside_snapshot():
    df = B.coinbase_books(SHARED)["SKL/USD"]
    key = ("coinbase", "spot", "SKL/USD")
    eng, ref, pieces, _ = run_both("coinbase", df, key, chunks=[5, 900, 2000, 2001, df.height - 3])
    B.assert_same_samples(pieces, ref.samples)
    same_levels(eng, ref)


def test_build_book_depth_many_books():
    """All Coinbase products in one frame, in arrival order: one book each, rule from the venue."""
    books = B.coinbase_books(SHARED)
    allrows = pl.concat(list(books.values())).sort("ts", maintain_order=True)
    result, stats = build_book_depth(allrows.drop("price_text", "amount_text"), references=REFS)
    assert set(stats) == {("coinbase", "spot", s) for s in books}
    for sym, df in books.items():
        _, ref, _, _ = run_both("coinbase", df, ("coinbase", "spot", sym))
        mine = B.engine_samples(result.depth.filter(pl.col("symbol") == sym), result.top.filter(pl.col("symbol") == sym))
        B.assert_same_samples(mine, ref.samples)


def test_plain_python_fallback_gives_the_same_depth(tmp_path: Path):
    """With TAPEWATCH_NO_NUMBA=1 the same kernels run as plain Python: same output."""
    df = B.binance_books(SHARED, futures=False)["BLZ/ETH"]
    src = tmp_path / "in.parquet"
    df.write_parquet(src)
    code = (
        "import polars as pl, sys; from tapewatch.book import BookEngine, _jit; assert not _jit.NUMBA;"
        f"df = pl.read_parquet({str(src)!r});"
        "e = BookEngine('binance_spot', 'binance', 'spot', 'BLZ/ETH', references=('mid','touch'));"
        "r = e.process(df); f = e.finish();"
        f"pl.concat([r.depth, f.depth]).write_parquet({str(tmp_path / 'out.parquet')!r})"
    )
    env = {**os.environ, "TAPEWATCH_NO_NUMBA": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    slow = pl.read_parquet(tmp_path / "out.parquet")
    eng = BookEngine("binance_spot", "binance", "spot", "BLZ/ETH", references=("mid", "touch"))
    fast = pl.concat([eng.process(df).depth, eng.finish().depth])
    assert slow.height == fast.height > 0
    assert slow.equals(fast)


def test_reference_is_exact_decimal():
    """Sanity of the reference itself: its prices are the venue's decimal strings."""
    df = B.binance_books(SHARED, futures=False)["NKN/USDT"]
    m = B.split_messages(df)[0]
    assert isinstance(m.rows[0][1], Decimal) and str(m.rows[0][1]) == df["price_text"][0]
