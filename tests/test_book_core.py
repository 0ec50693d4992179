"""Unit tests of the array book: exact band limits, the overflow map and window moves, the tick
grid, sampling rules, delta / ratio. The real-data checks are in test_book_real.py; the
randomised streams here are built to push the book through the paths real 30 s recordings do
not reach (price moving far, levels outside the window, finer prices arriving later)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import polars as pl
import pytest

import book_ref as B
from tapewatch.book import BookEngine, build_book_depth, rule_for, with_delta_ratio
from tapewatch.book.engine import LAST_TS

KEY = ("test", "spot", "BTC/USD")
S = 1_000_000_000


def msg(ts, rows, snap=False, seq=None):
    return B.Msg(ts, seq, None, None, snap, [(side, Decimal(p), Decimal(q)) for side, p, q in rows])


def like():
    return pl.DataFrame({"exchange": [KEY[0]], "market": [KEY[1]], "symbol": [KEY[2]]})


def run(venue, msgs, references=("mid", "touch"), bands=(1, 2, 5, 10), end=None, chunks=1, full_depth=True, **opts):
    """Engine and reference fed ``msgs``; snapshots are full depth unless told (the band arithmetic
    is tested here; the known range of a partial snapshot in test_book_known_range.py)."""
    df = B.to_frame(msgs, like())
    eng = BookEngine(venue, *KEY, references=references, bands=bands, full_depth=full_depth, **opts)
    parts = []
    step = -(-df.height // chunks)
    for lo in range(0, df.height, step):
        parts.append(eng.process(df.slice(lo, step)))
    parts.append(eng.finish(end))
    depth = pl.concat([p.depth for p in parts])
    got = B.engine_samples(depth, pl.concat([p.top for p in parts]))
    ref = B.RefBook(venue, bands=tuple(bands), references=tuple(references), full_depth=full_depth)
    ref.feed(msgs)
    ref.finish(ref.last_ts if end is None else end)
    return eng, got, ref, depth


def test_band_limits_are_exact_and_inclusive():
    snap = msg(10 * S + 1, [
        ("bid", "99.00", "1"), ("bid", "98.01", "2"), ("bid", "98.00", "4"), ("bid", "97.99", "8"),
        ("ask", "101.00", "1"), ("ask", "101.99", "2"), ("ask", "102.00", "4"), ("ask", "102.01", "8"),
    ], snap=True)
    eng, got, ref, depth = run("tardis", [snap], bands=(1, 2), end=11 * S)
    B.assert_same_samples(got, ref.samples)
    row = {(r["reference"], r["band_pct"]): r for r in depth.iter_rows(named=True)}
    # mid = 100: 1 % -> bids >= 99, asks <= 101; 2 % -> bids >= 98, asks <= 102 (limits included)
    assert (row[("mid", 1.0)]["bid_amount"], row[("mid", 1.0)]["ask_amount"]) == (1, 1)
    assert (row[("mid", 2.0)]["bid_amount"], row[("mid", 2.0)]["ask_amount"]) == (7, 7)
    # touch: bids >= 99 * 0.99 = 98.01, asks <= 101 * 1.01 = 102.01
    assert (row[("touch", 1.0)]["bid_amount"], row[("touch", 1.0)]["ask_amount"]) == (3, 15)
    assert row[("mid", 2.0)]["bid_notional"] == pytest.approx(99 + 2 * 98.01 + 4 * 98)
    assert depth.get_column("ts").dt.epoch("ns").unique().to_list() == [11 * S]


def test_sampling_grid_and_carry_forward():
    """Points are whole seconds; the row at t holds every message with ts <= t; a quiet book is
    carried to the next message; nothing is written before the first snapshot or after the last
    message unless the caller gives an end time."""
    book = [("bid", "99", "1"), ("ask", "101", "1")]
    msgs = [
        msg(5 * S + 500, book, snap=True),
        msg(6 * S, [("bid", "99", "2")]),  # exactly on a grid point: in the row at 6 s
        msg(9 * S + 1, [("bid", "99", "3")]),
    ]
    eng, got, ref, depth = run("tardis", msgs, bands=(5,))
    B.assert_same_samples(got, ref.samples)
    assert sorted(got) == [6 * S, 7 * S, 8 * S, 9 * S]
    sizes = {t: got[t][0][1] for t in got}
    assert sizes == {6 * S: 2.0, 7 * S: 2.0, 8 * S: 2.0, 9 * S: 2.0}
    _, got2, _, _ = run("tardis", msgs, bands=(5,), end=12 * S)
    assert sorted(got2) == [6 * S, 7 * S, 8 * S, 9 * S, 10 * S, 11 * S, 12 * S] and got2[12 * S][0][1] == 3.0
    eng, got5, _, _ = run("tardis", msgs, bands=(5,), interval="5s", end=20 * S)
    assert sorted(got5) == [10 * S, 15 * S, 20 * S]


def test_quiet_book_is_carried_for_max_carry_only():
    book = [("bid", "99", "1"), ("ask", "101", "1")]
    msgs = [msg(1 * S, book, snap=True), msg(100 * S, [("bid", "99", "2")])]
    df = B.to_frame(msgs, like())
    eng = BookEngine("tardis", *KEY, max_carry="10s")
    r = eng.process(df)
    assert r.depth.get_column("ts").dt.epoch("s").unique().sort().to_list() == list(range(1, 12))
    f = eng.finish(end_ts=500 * S)
    assert f.depth.get_column("ts").dt.epoch("s").unique().sort().to_list() == list(range(100, 111))


def random_stream(seed: int, n: int = 2500, decimals: int = 2, drift: float = 0.8, seq: bool = False):
    """A book whose mid wanders far (x0.5 .. x2), with levels near the touch and far from it.
    Every message keeps the book uncrossed; sizes are absolute; 0 removes."""
    rng = np.random.default_rng(seed)
    step = Decimal(1).scaleb(-decimals)
    mid = Decimal(100)
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}

    def px(x: float) -> Decimal:
        return (Decimal(repr(x)) / step).quantize(Decimal(1)) * step

    rows = []
    for _ in range(400):
        off = float(rng.exponential(0.05)) + 0.0005
        p_b, p_a = px(float(mid) * (1 - off)), px(float(mid) * (1 + off))
        q = Decimal(int(rng.integers(1, 500))) / 10
        if p_b > 0:
            bids[p_b] = q
            rows.append(("bid", str(p_b), str(q)))
        asks[p_a] = q
        rows.append(("ask", str(p_a), str(q)))
    out = [msg(1 * S, rows, snap=True, seq=1 if seq else None)]
    ts = 1 * S
    for i in range(n):
        ts += int(rng.integers(1, 120)) * 1_000_000
        mid = max(Decimal(5), mid * Decimal(repr(float(np.exp(rng.normal(0, 0.004 * drift))))))
        mid = px(float(mid))
        rows = []
        for p in [p for p in bids if p >= mid]:
            del bids[p]
            rows.append(("bid", str(p), "0"))
        for p in [p for p in asks if p <= mid]:
            del asks[p]
            rows.append(("ask", str(p), "0"))
        for _ in range(int(rng.integers(1, 5))):
            far = rng.random() < 0.1
            off = float(rng.uniform(0.1, 0.6)) if far else float(rng.exponential(0.01)) + float(step) / float(mid)
            side = "bid" if rng.random() < 0.5 else "ask"
            p = px(float(mid) * (1 - off if side == "bid" else 1 + off))
            if p <= 0 or (side == "bid" and p >= mid) or (side == "ask" and p <= mid):
                continue
            book = bids if side == "bid" else asks
            if rng.random() < 0.3 and book:
                p = list(book)[int(rng.integers(0, len(book)))]
                del book[p]
                rows.append((side, str(p), "0"))
            else:
                q = Decimal(int(rng.integers(1, 500))) / 10
                book[p] = q
                rows.append((side, str(p), str(q)))
        if rows:
            out.append(msg(ts, rows, seq=(len(out) + 1) if seq else None))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_walk_with_narrow_window_matches_reference(seed):
    """Window of 1024 ticks (±5 % of 100.00): the 10 % band needs the overflow map, and the mid
    wandering from 100 to far away forces the window to move again and again."""
    msgs = random_stream(seed)
    eng, got, ref, _ = run("coinbase", msgs, window_pct=1, chunks=3)
    assert len(got) > 100
    B.assert_same_samples(got, ref.samples)
    assert eng.stats.recentres > 3
    assert len(eng.ovb) + len(eng.ova) > 0
    for side, book in (("bid", ref.bids), ("ask", ref.asks)):
        lv = eng.levels(side)
        assert lv.get_column("price").to_list() == [float(p) for p in sorted(book)]


def test_sequenced_random_walk():
    msgs = random_stream(7, n=800, seq=True)
    eng, got, ref, _ = run("coinbase", msgs)
    B.assert_same_samples(got, ref.samples)
    assert eng.stats.gaps == 0 and eng.stats.updates > 800


def test_finer_prices_later_regrid_the_book():
    """Prices with 1 decimal first, then 3 decimals: the book moves to the finer grid, nothing lost."""
    coarse = random_stream(11, n=300, decimals=1)
    fine = random_stream(12, n=300, decimals=3)
    t_end = coarse[-1].ts
    later = [B.Msg(m.ts + t_end, None, None, None, False, m.rows) for m in fine[1:]]
    msgs = coarse + later
    eng, got, ref, _ = run("tardis", msgs, chunks=2)
    assert eng.decimals == 3
    B.assert_same_samples(got, ref.samples)


def test_delta_and_ratio():
    depth = pl.DataFrame({"bid_amount": [3.0, 0.0, 1.0], "ask_amount": [1.0, 0.0, 3.0],
                          "bid_notional": [30.0, 0.0, 10.0], "ask_notional": [10.0, 0.0, 30.0]})
    out = with_delta_ratio(depth, "base")
    assert out.get_column("delta").to_list() == [2.0, 0.0, -2.0]
    assert out.get_column("ratio").to_list() == [0.5, None, -0.5]
    assert with_delta_ratio(depth).get_column("delta").to_list() == [20.0, 0.0, -20.0]


def test_rule_for_venues():
    assert rule_for("binance", "spot") == "binance_spot"
    assert rule_for("binance", "perp") == "binance_usdm"
    assert rule_for("coinbase", "spot") == "coinbase"
    assert rule_for("deribit", "perp") == "tardis"


def test_build_book_depth_needs_keys():
    from tapewatch.errors import TapewatchError

    with pytest.raises(TapewatchError):
        build_book_depth(pl.DataFrame({"ts": [1]}))


def test_memory_is_bounded_by_the_book_not_the_stream():
    """The state is the window plus the overflow map: feeding ten times more messages through the
    same price range does not grow it."""
    msgs = random_stream(5, n=400, drift=0.2)
    df = B.to_frame(msgs, like())
    eng = BookEngine("tardis", *KEY)
    eng.process(df)
    size1 = eng.qty.nbytes, len(eng.ovb) + len(eng.ova)
    for _ in range(10):
        eng.process(df.with_columns(pl.col("ts") + int(eng.ist[LAST_TS]) + 1))
    size2 = eng.qty.nbytes, len(eng.ovb) + len(eng.ova)
    assert size2[0] == size1[0] and size2[1] <= 2 * size1[1] + 10
