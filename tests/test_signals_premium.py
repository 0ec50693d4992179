"""Premium from rows in Coinbase's candle format (venue a) and Binance's kline format (venue b),
USDT/USD from Kraken OHLC rows; every number recomputed here from the raw rows."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics

import pytest

from _signals_data import (
    MIN, coinbase_candles_json, coinbase_to_records, kline_line, klines_to_records, kraken_ohlc_json,
    kraken_to_records, ns, perp_rows,
)
from tapewatch.config import config_from_dict
from tapewatch.signals import premium
from tapewatch.signals.compute import compute_signals

STEP = 5 * MIN
FIRST = ns("2022-01-20 00:00:00")
BARS = 288  # one day of 5m bars
CFG = {"premium": {"history": "6h", "min_history": "1h", "smooth": 3, "threshold_pct": 0.02}}


@pytest.fixture(scope="module")
def raw():
    """Binance BTCUSDT 5m kline lines and Coinbase BTC-USD 5m candles over the real perp prices,
    the Coinbase price carrying a premium that swings from positive to deeply negative."""
    perp = {r[0]: r for r in perp_rows()}
    lines, candles, usdt = [], [], []
    for i in range(BARS):
        t = FIRST + i * STEP
        o, c = perp[t][1], perp[t + 4 * MIN][4]
        lines.append(kline_line(t // 1_000_000, o, max(o, c), min(o, c), c, 10.0 + i % 7, 4.0, 300_000))
        gap = 40 * math.sin(i / 20) - (90 if 150 <= i < 170 else 0)
        if i != 100:  # Coinbase returns no row for an interval without trades
            candles.append((t // 1_000_000_000, c - 50, c + 50, o + gap, c + gap, 3.5))
        if i % 3 == 0:
            usdt.append((t // 1_000_000_000, 1.0 + 0.001 * math.cos(i / 10)))
    return {
        "klines": "\n".join(lines) + "\n",
        "coinbase": coinbase_candles_json(candles),
        "kraken": kraken_ohlc_json(usdt),
    }


@pytest.fixture
def prem_store(store, raw):
    store.write("bar", klines_to_records(raw["klines"], "binance", "spot", "BTC/USDT", "5m"))
    store.write("bar", coinbase_to_records(raw["coinbase"], "BTC/USD", "5m"))
    store.write("bar", kraken_to_records(raw["kraken"], "15m"))
    return store


def _parsed(raw) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
    """(binance close, coinbase close, kraken USDT/USD close) by bar open time, from the raw texts."""
    bn = {int(r[0]) * 1_000_000: float(r[4]) for r in csv.reader(io.StringIO(raw["klines"]))}
    cb = {int(r[0]) * 1_000_000_000: float(r[4]) for r in json.loads(raw["coinbase"])}
    kr = {int(r[0]) * 1_000_000_000: float(r[4]) for r in json.loads(raw["kraken"])["result"]["USDTZUSD"]}
    return bn, cb, kr


def _rows(sig) -> dict[int, dict]:
    return {int(r["ts"].timestamp()) * 1_000_000_000: r for r in sig.table(all_columns=True).iter_rows(named=True)}


def test_premium_gap_index_z_rank_against_raw_rows(prem_store, raw):
    sig = compute_signals(prem_store, "BTC", "5m", config=config_from_dict(CFG))
    rows = _rows(sig)
    bn, cb, _ = _parsed(raw)
    index = {t: (cb[t] - bn[t]) / bn[t] * 100 if t in cb else None for t in bn}
    times = sorted(bn)
    for i in (5, 40, 99, 100, 101, 155, 169, 200, 287):
        t = times[i]
        r = rows[t]
        if t not in cb:
            assert math.isnan(r["premium_gap"]) and math.isnan(r["premium_index"])
            assert r["negative_premium"] is None  # the 3-bar mean lacks a bar: unavailable
            continue
        assert r["premium_gap"] == pytest.approx(cb[t] - bn[t], abs=1e-9)
        assert r["premium_index"] == pytest.approx(index[t], rel=1e-12)
        window = [index[u] for u in times[max(0, i - 71) : i + 1] if index[u] is not None]  # 6h = 72 bars
        if len(window) >= 12:  # min_history 1h = 12 bars
            z = (index[t] - statistics.fmean(window)) / statistics.stdev(window)
            rank = 100 * sum(1 for x in window if x <= index[t]) / len(window)
            assert r["premium_z"] == pytest.approx(z, rel=1e-9)
            assert r["premium_pct_rank"] == pytest.approx(rank, rel=1e-12)
        last3 = [index[u] for u in times[i - 2 : i + 1]]
        if None in last3:
            assert r["negative_premium"] is None
        else:
            assert r["negative_premium"] is (statistics.fmean(last3) < -0.02)
            assert r["positive_premium"] is (statistics.fmean(last3) > 0.02)
    assert rows[times[165]]["negative_premium"] is True  # inside the -$90 episode


def test_usdt_adjusted_premium_uses_the_last_closed_usdt_bar(prem_store, raw):
    cfg = config_from_dict({**CFG, "premium": {**CFG["premium"], "basis": "usdt_adjusted"}})
    rows = _rows(compute_signals(prem_store, "BTC", "5m", config=cfg))
    bn, cb, kr = _parsed(raw)
    for t in [FIRST + k * STEP for k in (2, 3, 4, 50, 130, 287)]:
        # the Kraken 15m bar must have closed by this 5m bar's close
        usable = [u for u in kr if u + 15 * MIN <= t + STEP]
        if not usable:
            assert math.isnan(rows[t]["premium_gap"])
            continue
        rate = kr[max(usable)]
        b_usd = bn[t] * rate
        assert rows[t]["premium_gap"] == pytest.approx(cb[t] - b_usd, rel=1e-9)
        assert rows[t]["premium_index"] == pytest.approx((cb[t] - b_usd) / b_usd * 100, rel=1e-9)
        assert rows[t]["premium_gap_raw"] == pytest.approx(cb[t] - bn[t], abs=1e-9)
    assert math.isnan(rows[FIRST]["premium_gap"])  # no USDT/USD bar closed yet


def test_missing_venue_makes_premium_unavailable(store, raw):
    store.write("bar", klines_to_records(raw["klines"], "binance", "spot", "BTC/USDT", "5m"))
    sig = compute_signals(store, "BTC", "5m", config=config_from_dict(CFG))
    t = sig.table()
    for c in ("premium_gap", "premium_index", "premium_z", "premium_pct_rank"):
        assert all(math.isnan(x) for x in t.get_column(c))
    assert t.get_column("negative_premium").null_count() == t.height
    status = {i.key: i for i in sig.inputs}
    assert status["premium_a"].status == "missing" and "coinbase spot BTC/USD" in status["premium_a"].source
    # premium is required: its absence never makes the detector say "no", only "unknown";
    # a "no" needs an available factor that fails
    assert sig.events == () and not t.get_column("distribution").any()
    no = t.filter(t["distribution"] == False)  # noqa: E712
    assert no.height > 0 and (no["spot_selling_into_rally"] == False).all()  # noqa: E712
    assert t.filter(t["spot_selling_into_rally"])["distribution"].null_count() == t["spot_selling_into_rally"].sum()


def test_premium_context_text():
    from tapewatch.config import Config
    from tapewatch.signals.base import Context

    ctx = Context(Config(), "BTC", "5m", STEP, 0)
    row = {"premium_gap": -91.0, "premium_index": -0.1003, "premium_z": -2.31, "premium_pct_rank": 3.2,
           "premium_hist_n": 8640}
    assert premium.context(row, ctx) == "-$91.00 = -0.100% of price, z -2.3, lowest 3% of the last 30 days"
    row |= {"premium_pct_rank": 99.0, "premium_hist_n": 288}
    text = premium.context(row, ctx)
    assert text is not None and re.search(r"highest 1% of 1\.0 days of history so far$", text)
    assert premium.context({"premium_gap": None}, ctx) is None


def test_premium_context_never_says_highest_zero_percent():
    """Issue 10.12: a value at the 99.55th percentile of 30 days of 5m bars was printed as "highest
    0 % of the last 30 days". The share of the window at or above it is 100 - 99.55 + 100/8640 =
    0.46 %, shown rounded up as 0.5 %; the lowest tail likewise."""
    from tapewatch.config import Config
    from tapewatch.signals.base import Context

    ctx = Context(Config(), "BTC", "5m", STEP, 0)
    row = {"premium_gap": 40.0, "premium_index": 0.09, "premium_z": 2.9, "premium_pct_rank": 99.55,
           "premium_hist_n": 8640}
    text = premium.context(row, ctx)
    assert text is not None and text.endswith("highest 0.5% of the last 30 days"), text
    assert "highest 0%" not in text
    row |= {"premium_pct_rank": 100.0 / 8640}  # the single lowest value of the window
    assert premium.context(row, ctx).endswith("lowest 0.1% of the last 30 days")
    row |= {"premium_pct_rank": 97.5}  # 2.51 % at or above: whole percent from 1 % on
    assert premium.context(row, ctx).endswith("highest 3% of the last 30 days")
