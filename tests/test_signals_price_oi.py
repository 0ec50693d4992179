"""Price change on the real BTC perpetual month; open interest from Binance ``metrics`` rows;
funding from Binance ``fundingRate`` rows — each checked against numbers computed here from the rows."""

from __future__ import annotations

import csv
import io
import math

import pytest

from _signals_data import (
    MIN, funding_csv, funding_to_records, metrics_csv, metrics_to_records, ns, perp_records, perp_rows,
)
from tapewatch.config import config_from_dict
from tapewatch.signals.compute import compute_signals

HOUR = 60 * MIN


@pytest.fixture(scope="module")
def perp():
    return perp_rows()


@pytest.fixture
def perp_store(store, perp):
    store.write("bar", perp_records(perp))
    return store


def _close_at(perp, t_open: int, step: int) -> float:
    """Close of the bar [t_open, t_open + step): the last 1-minute close inside it."""
    inside = [r for r in perp if t_open <= r[0] < t_open + step]
    return inside[-1][4]


@pytest.mark.parametrize(
    "interval,step,window,when",
    [
        ("1h", HOUR, "4h", ["2022-01-05 13:00:00", "2022-01-21 20:00:00", "2022-01-24 12:00:00", "2022-01-31 23:00:00"]),
        ("5m", 5 * MIN, "1h", ["2022-01-03 00:00:00", "2022-01-10 14:35:00", "2022-01-21 16:05:00"]),
    ],
)
def test_price_change_on_the_real_perp_month(perp_store, perp, interval, step, window, when):
    cfg = config_from_dict({"oi": {"window": window}})
    sig = compute_signals(perp_store, "BTC", interval, config=cfg)
    rows = {int(r["ts"].timestamp()) * 1_000_000_000: r for r in sig.table().iter_rows(named=True)}
    w = {"4h": 4 * HOUR, "1h": HOUR}[window]
    for text in when:
        t = ns(text)
        close, before = _close_at(perp, t, step), _close_at(perp, t - w, step)
        assert rows[t]["close"] == close
        assert rows[t]["price_change_pct"] == pytest.approx((close / before - 1) * 100, rel=1e-12)
        # no OI stored: the OI condition is unavailable whatever the price did
        assert math.isnan(rows[t]["oi"]) and rows[t]["oi_rising_into_dip"] is None


def _metrics_rows(perp, first: int, minutes: int) -> list[tuple[int, float, float]]:
    """OI every 5 minutes: rising in the first hours, then falling; value = oi * perp close."""
    closes = {r[0]: r[4] for r in perp}
    out = []
    oi = 70_000.0
    for k in range(0, minutes, 5):
        t = first + k * MIN
        oi *= 1.0015 if (k // 60) % 3 != 2 else 0.996
        out.append((t, oi, oi * closes.get(t, 40_000.0)))
    return out


def test_open_interest_from_metrics_rows(perp_store, perp):
    first = ns("2022-01-21 12:00:00")
    text = metrics_csv(_metrics_rows(perp, first, 12 * 60))
    perp_store.write("open_interest", metrics_to_records(text))
    cfg = config_from_dict({"oi": {"window": "1h", "rise_pct": 0.5, "dip_pct": 0.0}})
    sig = compute_signals(perp_store, "BTC", "5m", start=first, end=first + 12 * HOUR, config=cfg)
    rows = {int(r["ts"].timestamp()) * 1_000_000_000: r for r in sig.table().iter_rows(named=True)}
    raw = [(ns(r["create_time"]), float(r["sum_open_interest"])) for r in csv.DictReader(io.StringIO(text))]

    def oi_at(t_open: int) -> float:
        close = t_open + 5 * MIN
        known = [v for ts, v in raw if ts < close]  # strictly before the bar close
        return known[-1]

    checked = 0
    for text_t in ["2022-01-21 13:00:00", "2022-01-21 14:05:00", "2022-01-21 15:30:00", "2022-01-21 17:55:00",
                   "2022-01-21 20:10:00", "2022-01-21 23:55:00"]:
        t = ns(text_t)
        oi, oi_before = oi_at(t), oi_at(t - HOUR)
        chg = (oi / oi_before - 1) * 100
        pchg = (_close_at(perp, t, 5 * MIN) / _close_at(perp, t - HOUR, 5 * MIN) - 1) * 100
        assert rows[t]["oi"] == oi
        assert rows[t]["oi_change_pct"] == pytest.approx(chg, rel=1e-12)
        assert rows[t]["price_change_pct"] == pytest.approx(pchg, rel=1e-12)
        assert rows[t]["oi_rising_into_dip"] is (chg > 0.5 and pchg < 0)
        checked += rows[t]["oi_rising_into_dip"]
    assert checked >= 1  # the crash of 2022-01-21 with OI rising: the condition does hold somewhere

    # the 5-minute row stamped exactly at a bar's close belongs to the next bar
    t = ns("2022-01-21 13:00:00")
    assert rows[t]["oi"] == dict(raw)[t] != dict(raw)[t + 5 * MIN]


def test_stale_open_interest_is_unavailable(perp_store, perp):
    first = ns("2022-01-10 00:00:00")
    rows = [r for r in _metrics_rows(perp, first, 6 * 60) if not (ns("2022-01-10 02:00:00") <= r[0] < ns("2022-01-10 04:00:00"))]
    perp_store.write("open_interest", metrics_to_records(metrics_csv(rows)))
    sig = compute_signals(perp_store, "BTC", "5m", start=first, end=first + 6 * HOUR)
    by = {int(r["ts"].timestamp()) * 1_000_000_000: r for r in sig.table().iter_rows(named=True)}
    # last row 01:55; max_age 15m: bars closing up to 02:10 still use it, later ones have no OI
    last = rows[[r[0] for r in rows].index(ns("2022-01-10 01:55:00"))][1]
    assert by[ns("2022-01-10 02:05:00")]["oi"] == pytest.approx(last, rel=1e-12)
    assert math.isnan(by[ns("2022-01-10 02:10:00")]["oi"])
    assert by[ns("2022-01-10 03:00:00")]["oi_rising_into_dip"] is None  # unavailable, not false
    assert by[ns("2022-01-10 04:00:00")]["oi_rising_into_dip"] is None  # needs OI an hour back too
    assert by[ns("2022-01-10 05:00:00")]["oi_rising_into_dip"] is not None


def test_funding_from_fundingrate_rows(perp_store):
    times = [ns("2022-01-10 00:00:00"), ns("2022-01-10 08:00:00"), ns("2022-01-10 16:00:00")]
    text = funding_csv(list(zip(times, [0.0001, -0.00004, 0.00025])))
    perp_store.write("funding", funding_to_records(text))
    sig = compute_signals(perp_store, "BTC", "1h", start=times[0] - 2 * HOUR, end=times[0] + 30 * HOUR)
    by = {int(r["ts"].timestamp()) * 1_000_000_000: r for r in sig.table().iter_rows(named=True)}
    raw = [(int(r["calc_time"]) * 1_000_000, float(r["last_funding_rate"])) for r in csv.DictReader(io.StringIO(text))]
    assert math.isnan(by[ns("2022-01-09 23:00:00")]["funding_rate"])  # the 00:00 record is not before that close
    assert math.isnan(by[ns("2022-01-09 22:00:00")]["funding_rate"])
    assert by[ns("2022-01-10 00:00:00")]["funding_rate"] == raw[0][1]
    assert by[ns("2022-01-10 07:00:00")]["funding_rate"] == raw[0][1]
    assert by[ns("2022-01-10 08:00:00")]["funding_rate"] == raw[1][1]
    assert by[ns("2022-01-11 00:00:00")]["funding_rate"] == raw[2][1]  # 8 h old: within max_age 9h
    assert math.isnan(by[ns("2022-01-11 01:00:00")]["funding_rate"])  # 10 h old at the close: too old
