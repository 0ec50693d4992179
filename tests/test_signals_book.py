"""Book depth ratio from rows in the Binance ``bookDepth`` archive format, recomputed here."""

from __future__ import annotations

import csv
import io
import math
import random

import polars as pl
import pytest

from _signals_data import MIN, bookdepth_csv, bookdepth_to_records, ns
from tapewatch.config import config_from_dict
from tapewatch.signals.compute import compute_signals

STEP = 5 * MIN
FIRST = ns("2022-01-03 00:00:00")
BARS = 48
CFG = {"book": {"band": 2.0, "threshold": 0.1, "sustain": 2, "max_age": "2m"}}


@pytest.fixture(scope="module")
def depth_text() -> str:
    """Snapshots about every 30 s (jittered; some exactly on a bar close); the book leans to the
    ask side in the second half hour. bookDepth depth is cumulative within each percentage."""
    rng = random.Random(3)
    snaps = []
    t = FIRST
    while t < FIRST + BARS * STEP:
        lean = -0.4 if FIRST + 30 * MIN <= t < FIRST + 60 * MIN else 0.0
        levels = {}
        bid_cum = ask_cum = 0.0
        for p in (1, 2, 3, 4, 5):
            bid_cum += rng.uniform(50, 150) * (1 + lean)
            ask_cum += rng.uniform(50, 150) * (1 - lean)
            levels[-p] = (bid_cum, bid_cum * 41_000 * (1 - p / 200))
            levels[p] = (ask_cum, ask_cum * 41_000 * (1 + p / 200))
        snaps.append((t, levels))
        t += 30_000_000_000 if rng.random() < 0.8 else rng.choice([29, 31, 45]) * 1_000_000_000
    # a gap of 20 minutes without snapshots (collector down)
    snaps = [s for s in snaps if not (FIRST + 3 * 60 * MIN <= s[0] < FIRST + 3 * 60 * MIN + 20 * MIN)]
    return bookdepth_csv(snaps)


def _price_bars(store) -> None:
    store.write(
        "bar",
        pl.DataFrame(
            {
                "exchange": "binance", "market": "perp", "symbol": "BTC/USDT", "interval": "5m",
                "ts": [FIRST + i * STEP for i in range(BARS)], "open": 41_000.0, "high": 41_000.0,
                "low": 41_000.0, "close": 41_000.0,
            }
        ),
    )


def _raw(text: str) -> list[tuple[int, float, float, float, float, float]]:
    """(ts, percentage, depth, notional) rows parsed with csv."""
    return [(ns(r["timestamp"]), float(r["percentage"]), float(r["depth"]), float(r["notional"]), 0, 0)
            for r in csv.DictReader(io.StringIO(text))]


def _ratio(raw, t_open: int, band: float, col: int, max_age: int = 2 * MIN) -> float | None:
    close = t_open + STEP
    before = [r[0] for r in raw if r[0] < close]
    if not before or close - max(before) > max_age:
        return None
    last = max(before)
    bid = next(r[col] for r in raw if r[0] == last and r[1] == -band)
    ask = next(r[col] for r in raw if r[0] == last and r[1] == band)
    return (bid - ask) / (bid + ask)


@pytest.mark.parametrize("measure,col", [("notional", 3), ("amount", 2)])
def test_book_ratio_from_bookdepth_rows(store, depth_text, measure, col):
    _price_bars(store)
    store.write("book_depth", bookdepth_to_records(depth_text, market="perp"))
    cfg = config_from_dict({"book": {**CFG["book"], "measure": measure}})
    sig = compute_signals(store, "BTC", "5m", config=cfg)
    rows = {int(r["ts"].timestamp()) * 1_000_000_000: r for r in sig.table(all_columns=True).iter_rows(named=True)}
    raw = _raw(depth_text)
    for k in (0, 5, 7, 11, 20, 30, 33, 40, 47):
        t = FIRST + k * STEP
        for band in (1.0, 2.0, 5.0):
            exp = _ratio(raw, t, band, col)
            assert rows[t][f"book_ratio_{band:g}"] == pytest.approx(exp, rel=1e-9)
        assert math.isnan(rows[t]["book_ratio_10"])  # bookDepth has no 10 % band
        r_now, r_prev = _ratio(raw, t, 2.0, col), _ratio(raw, t - STEP, 2.0, col) if k else None
        if r_now is None or r_prev is None:
            assert rows[t]["ask_heavy_book"] is None
        else:
            assert rows[t]["ask_heavy_book"] is (r_now < -0.1 and r_prev < -0.1)
            assert rows[t]["bid_heavy_book"] is (r_now > 0.1 and r_prev > 0.1)
        assert rows[t]["book_source"] == "binance perp BTC/USDT"
    assert rows[FIRST + 8 * STEP]["ask_heavy_book"] is True
    # during the 20-minute gap the depth goes stale after max_age: unavailable, not false
    gap_bar = FIRST + 3 * 60 * MIN + 5 * MIN
    assert math.isnan(rows[gap_bar]["book_ratio_2"]) and rows[gap_bar]["ask_heavy_book"] is None


def test_a_record_on_the_bar_close_belongs_to_the_next_bar(store):
    _price_bars(store)
    close = FIRST + STEP
    text = bookdepth_csv([
        (FIRST + 10 * 1_000_000_000, {-1: (100.0, 1.0), 1: (300.0, 3.0)}),
        (close, {-1: (500.0, 5.0), 1: (100.0, 1.0)}),  # stamped exactly at the first bar's close
    ])
    store.write("book_depth", bookdepth_to_records(text, market="perp"))
    cfg = config_from_dict({"book": {"max_age": "10m"}})
    t = compute_signals(store, "BTC", "5m", end=FIRST + 2 * STEP, config=cfg).table()
    assert t.get_column("book_ratio_1").to_list() == pytest.approx([(1 - 3) / 4, (5 - 1) / 6])


def test_spot_depth_preferred_bar_by_bar_and_reference_respected(store, depth_text):
    _price_bars(store)
    store.write("book_depth", bookdepth_to_records(depth_text, market="perp"))
    # an L2-engine-like spot record for the third bar only, and a 'touch' record that must be ignored
    spot = pl.DataFrame(
        {
            "exchange": "binance", "market": "spot", "symbol": "BTC/USDT", "ts": [FIRST + 3 * STEP - MIN],
            "band_pct": [2.0], "reference": ["mid"], "bid_amount": [9.0], "ask_amount": [1.0],
            "bid_notional": [900.0], "ask_notional": [100.0],
        }
    )
    store.write("book_depth", spot)
    store.write("book_depth", spot.with_columns(pl.lit("touch").alias("reference"), pl.col("ts") + 1_000,
                                                 pl.lit(1.0).alias("bid_notional")))
    cfg = config_from_dict({"book": {"max_age": "4m"}})
    rows = compute_signals(store, "BTC", "5m", end=FIRST + 4 * STEP, config=cfg).table(all_columns=True)
    src = rows.get_column("book_source").to_list()
    assert src == ["binance perp BTC/USDT", "binance perp BTC/USDT", "binance spot BTC/USDT", "binance perp BTC/USDT"]
    assert rows.get_column("book_ratio_2")[2] == pytest.approx(0.8)
    assert math.isnan(rows.get_column("book_ratio_1")[2])  # the spot record has no 1 % band
