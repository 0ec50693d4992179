"""The known range of a book on real captures: a 1,000-level Binance BTC/USDT snapshot reaches
about 0.33 % from mid, so every 1/2/5/10 % band is NaN (never the same understated sum), each
sample says how far the book is known (checked against the deepest bid / ask of the raw snapshot
JSON and the reference book's mid), narrower bands inside the range equal the dict reference,
and the book factor says its band is out of range."""

from __future__ import annotations

import gzip
import json
import math
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import book_ref as B
from test_book_continuation import HFT_URLS, _seconds
from tapewatch.book import BookEngine
from tapewatch.config import config_from_dict
from tapewatch.importer import import_paths
from tapewatch.signals import book as book_factor
from tapewatch.signals.base import Context
from tapewatch.signals.compute import compute_signals
from tapewatch.store import Store

MARKETS = {"spot": ("spot", "binance_spot"), "usdm": ("perp", "binance_usdm")}


def recording(shared: Path, market: str, out: Path) -> tuple[Path, dict]:
    """The hftbacktest capture as one cryptofeed recording (JSON unchanged); and its snapshot."""
    ws_url, rest_url = HFT_URLS[market]
    lines, snap = [], None
    with gzip.open(shared / "hftbacktest-binance-ws" / market / "btcusdt_20240808.gz", "rt") as fh:
        for line in fh:
            ts, _, body = line.rstrip("\n").partition(" ")
            msg = json.loads(body)
            if not lines:
                lines.append(f"{ws_url} <-> {_seconds(int(ts))}\n")
            if "lastUpdateId" in msg:
                snap = msg
                lines.append(f"{rest_url} -> {_seconds(int(ts))}: {body}\n")
            elif msg.get("data", {}).get("e") == "depthUpdate":
                lines.append(f"{_seconds(int(ts))}: {body}\n")
    path = out / f"{market}.rec"
    path.write_text("".join(lines))
    return path, snap


@pytest.fixture(params=list(MARKETS))
def imported(request, shared: Path, tmp_path: Path):
    market = request.param
    path, snap = recording(shared, market, tmp_path)
    store = Store(tmp_path / "s")
    assert not import_paths([path], store).errors
    return store, MARKETS[market], snap


def test_wide_bands_are_nan_and_the_known_range_is_given(imported) -> None:
    store, (market, venue), snap = imported
    key = ("binance", market, "BTC/USDT")
    assert B.assert_store_matches_reference(store, key, venue) >= 10
    depth = store.read("book_depth", *key)
    assert depth.height and depth["band_pct"].unique().sort().to_list() == [1.0, 2.0, 5.0, 10.0]
    for c in ("bid_amount", "ask_amount", "bid_notional", "ask_notional"):
        assert depth[c].is_nan().all(), c  # no band fits in ±0.35 %: none is a silent understatement
    # known range by hand: the raw snapshot's deepest bid / ask against the reference's mid
    low = min(Decimal(p) for p, _ in snap["bids"])
    high = max(Decimal(p) for p, _ in snap["asks"])
    ref = B.stored_reference(store, key, venue)
    for r in depth.filter(pl.col("band_pct") == 1.0).with_columns(pl.col("ts").dt.epoch("ns")).iter_rows(named=True):
        (bb, _, ba, _), _ = ref.samples[r["ts"]]
        mid = (bb + ba) / 2
        # the range moves with the price (0 once the mid falls below the deepest snapshot bid)
        assert r["bid_known_pct"] == pytest.approx(max(0.0, float((mid - low) / mid * 100)), rel=1e-12)
        assert r["ask_known_pct"] == pytest.approx(max(0.0, float((high - mid) / mid * 100)), rel=1e-12)
    start = depth.sort("ts").row(0, named=True)
    assert start["bid_known_pct"] > 0.2 and start["ask_known_pct"] > 0.2


def test_bands_inside_the_known_range_equal_the_reference(imported) -> None:
    store, (market, venue), _ = imported
    bands = (0.05, 0.1, 0.25, 0.5)
    deltas = store.read("book_delta", "binance", market, "BTC/USDT")
    eng = BookEngine(venue, "binance", market, "BTC/USDT", bands=bands)
    out = [eng.process(deltas), eng.finish()]
    depth = pl.concat([o.depth for o in out])
    got = B.engine_samples(depth, pl.concat([o.top for o in out]))
    ref = B.RefBook(venue, bands=bands)
    ref.feed(B.split_messages(deltas.with_columns(
        pl.col("ts").dt.epoch("ns"),
        pl.col("price").map_elements(repr, return_dtype=pl.String).alias("price_text"),
        pl.col("amount").map_elements(repr, return_dtype=pl.String).alias("amount_text"),
    )))
    ref.finish(ref.last_ts)
    B.assert_same_samples(got, ref.samples)
    narrow = depth.filter((pl.col("band_pct") <= 0.1) & (pl.col("ts") == pl.col("ts").min()))
    assert narrow.height == 2 and (narrow["bid_notional"] > 0).all() and (narrow["ask_notional"] > 0).all()
    wide = depth.filter((pl.col("band_pct") == 0.5) & (pl.col("ts") == pl.col("ts").min()))
    assert wide["bid_amount"].is_nan().all() and wide["ask_amount"].is_nan().all()


def test_book_factor_says_its_band_is_out_of_range(imported) -> None:
    store, (market, _), _ = imported
    first = store.read("book_depth")["ts"].min()
    t0 = int(first.timestamp()) // 60 * 60 * 10**9  # the minute of the first depth sample
    store.write("bar", pl.DataFrame({
        "exchange": "binance", "market": market, "symbol": "BTC/USDT", "interval": "1m",
        "ts": [t0 + i * 60 * 10**9 for i in range(4)], "open": 61_800.0, "high": 61_800.0, "low": 61_800.0,
        "close": 61_800.0,
    }))
    cfg = config_from_dict({"book": {"band": 1.0, "sustain": 1, "max_age": "2m"}})
    sig = compute_signals(store, "BTC", "1m", config=cfg)
    row = sig.table(all_columns=True).row(0, named=True)
    assert math.isnan(row["book_ratio_1"]) and 0 < row["book_bid_known_pct"] < 0.5
    ctx = Context(cfg, "BTC", "1m", 60 * 10**9, t0)
    reading = book_factor.reading(row, ctx, "distribution")
    assert "band 1% is beyond the book's known range" in reading.why
    assert f"bids to {row['book_bid_known_pct']:.2f}%" in reading.why
    assert reading.values["book_bid_known_pct"] == row["book_bid_known_pct"]
