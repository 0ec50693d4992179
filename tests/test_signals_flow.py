"""Taker flow / CVD: checked against sums computed here from the raw rows.

Spot: the real Binance BTCUSDT trades (``buyer_maker`` true → the taker sold). Perp: rows in the
Binance kline archive format (taker buy base volume in column 10).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

import polars as pl
import pyarrow.parquet as pq
import pytest

from _signals_data import TRADES_PARQUET, kline_line, klines_to_records
from tapewatch.config import config_from_dict
from tapewatch.signals.compute import compute_signals

STEP = 10_000_000_000  # 10 s bars: the real trade sample spans 46 s
CFG = config_from_dict({"flow": {"window": 2, "rally_pct": 0.01, "close_at_extreme": False}, "oi": {"window": 2}})


def _raw_trades() -> list[dict]:
    return pq.read_table(TRADES_PARQUET).to_pylist()


def _ns(dt: datetime) -> int:
    return int(round(dt.timestamp() * 1_000_000)) * 1_000


@pytest.fixture
def trade_store(store):
    raw = _raw_trades()
    store.write(
        "trade",
        pl.DataFrame(
            {
                "exchange": "binance", "market": "spot", "symbol": "BTC/USDT",
                "ts": [_ns(r["timestamp"]) for r in raw], "price": [r["price"] for r in raw],
                "amount": [r["quantity"] for r in raw],
                "taker_side": ["sell" if r["buyer_maker"] == "True" else "buy" for r in raw],
                "trade_id": [str(r["trade_id"]) for r in raw],
            }
        ),
    )
    return store


def _expected_by_bar() -> dict[int, dict[str, float]]:
    """Per 10 s bar, straight from the parquet rows: taker buy / sell volume and last price."""
    out: dict[int, dict[str, float]] = defaultdict(lambda: {"buy": 0.0, "sell": 0.0, "last": math.nan})
    for r in _raw_trades():
        t = _ns(r["timestamp"])
        b = out[t - t % STEP]
        b["sell" if r["buyer_maker"] == "True" else "buy"] += r["quantity"]
        b["last"] = r["price"]
    return dict(sorted(out.items()))


def test_spot_taker_flow_from_real_trades(trade_store):
    sig = compute_signals(trade_store, "BTC", "10s", config=CFG)
    got = {int(r["ts"].timestamp() * 1e9): r for r in sig.table().iter_rows(named=True)}
    exp = _expected_by_bar()
    assert sorted(got) == sorted(exp)  # one row per 10 s bar with trades, none invented
    keys = sorted(exp)
    cvd = 0.0
    closes = []
    for i, t in enumerate(keys):
        e, g = exp[t], got[t]
        cvd += e["buy"] - e["sell"]
        closes.append(e["last"])
        assert g["spot_taker_buy"] == pytest.approx(e["buy"], rel=1e-12)
        assert g["spot_taker_sell"] == pytest.approx(e["sell"], rel=1e-9)
        assert g["spot_net_taker"] == pytest.approx(e["buy"] - e["sell"], rel=1e-9, abs=1e-12)
        assert g["spot_taker_buy_ratio"] == pytest.approx(e["buy"] / (e["buy"] + e["sell"]), rel=1e-9)
        assert g["spot_cvd"] == pytest.approx(cvd, rel=1e-9, abs=1e-12)
        assert g["close"] == e["last"]
        # the rally condition over W = 2 bars, from the raw prices and flows
        if i >= 2:
            chg = (closes[i] / closes[i - 2] - 1) * 100
            flow = sum(exp[k]["buy"] - exp[k]["sell"] for k in keys[i - 1 : i + 1])
            assert g["price_change_pct"] == pytest.approx(chg, rel=1e-9, abs=1e-12)
            assert g["spot_selling_into_rally"] is (chg > 0.01 and flow < 0)
        else:
            assert g["spot_selling_into_rally"] is None  # not enough history: unavailable, not false
    # no perp data stored: perp flow is NaN and the inputs say so
    assert all(math.isnan(r["perp_net_taker"]) for r in got.values())
    assert {i.key: i.status for i in sig.inputs}["perp"] == "missing"


def test_cvd_starts_at_the_requested_start(trade_store):
    keys = sorted(_expected_by_bar())
    start = keys[2]
    sig = compute_signals(trade_store, "BTC", "10s", start=start, config=CFG)
    exp = _expected_by_bar()
    rows = sig.table().iter_rows(named=True)
    first = next(rows)
    assert int(first["ts"].timestamp() * 1e9) == start
    assert first["spot_cvd"] == pytest.approx(exp[start]["buy"] - exp[start]["sell"], rel=1e-9)
    # windows still see the warm-up bars before the start
    assert not math.isnan(first["price_change_pct"])


def test_perp_flow_from_binance_kline_rows(store):
    t0 = 1_641_168_000_000  # 2022-01-03 00:00 UTC, ms
    rows = [  # open, high, low, close, volume, taker buy base volume
        (46000.0, 46010.0, 45990.0, 46005.0, 12.5, 8.0),
        (46005.0, 46020.0, 46000.0, 46015.0, 7.25, 1.5),
        (46015.0, 46015.0, 45950.0, 45960.0, 20.0, 4.75),
        (45960.0, 45980.0, 45940.0, 45970.0, 3.0, 3.0),
        (45970.0, 46100.0, 45970.0, 46090.0, 30.0, 16.0),
        (46090.0, 46095.0, 46050.0, 46060.0, 9.5, 2.25),
        (46060.0, 46070.0, 46000.0, 46010.0, 11.0, 6.5),
    ]
    text = "\n".join(kline_line(t0 + i * 60_000, o, h, lo, c, v, b, 60_000) for i, (o, h, lo, c, v, b) in enumerate(rows))
    store.write("bar", klines_to_records(text, "binance", "perp", "BTC/USDT", "1m"))
    sig = compute_signals(store, "BTC", "2m", config=CFG)
    table = sig.table()
    # from the raw lines: 2-minute bars = lines (0,1), (2,3), (4,5), (6)
    lines = [ln.split(",") for ln in text.splitlines()]
    net = [2 * float(ln[9]) - float(ln[5]) for ln in lines]
    expected = [net[0] + net[1], net[2] + net[3], net[4] + net[5], net[6]]
    assert table.get_column("perp_net_taker").to_list() == pytest.approx(expected)
    cvd = [sum(expected[: i + 1]) for i in range(len(expected))]
    assert table.get_column("perp_cvd").to_list() == pytest.approx(cvd)
    assert table.get_column("close").to_list() == [float(lines[i][4]) for i in (1, 3, 5, 6)]
    # spot is missing: spot flow NaN and the spot-flow condition unavailable (null), never false
    assert all(math.isnan(x) for x in table.get_column("spot_net_taker"))
    assert table.get_column("spot_selling_into_rally").null_count() == table.height


def test_bars_without_taker_split_make_flow_unavailable(store):
    # Coinbase-like spot candles: no taker split at all
    t0 = 1_641_168_000_000_000_000
    store.write(
        "bar",
        pl.DataFrame(
            {
                "exchange": "binance", "market": "spot", "symbol": "BTC/USDT", "interval": "1m",
                "ts": [t0 + i * 60_000_000_000 for i in range(30)], "open": 1.0, "high": 1.0, "low": 1.0,
                "close": [100.0 + i for i in range(30)], "volume": 5.0,
            }
        ),
    )
    sig = compute_signals(store, "BTC", "1m", config=CFG)
    t = sig.table()
    assert t.get_column("spot_selling_into_rally").null_count() == t.height
    assert all(math.isnan(x) for x in t.get_column("spot_taker_buy"))
    spot = {i.key: i for i in sig.inputs}["spot"]
    assert spot.status == "present" and "no taker buy/sell split" in spot.note
    # the rally is there (+1 % a bar), the flow is unknown: the detector cannot say "no"
    assert t.get_column("distribution").null_count() == t.height
