"""Bars built by tapewatch equal bars computed here by hand, in plain Python, from the raw rows.

Sources: the real Binance spot BTCUSDT trades Parquet (``buyer_maker = True`` → the taker sold),
the real Tardis BitMEX XBTUSD trades CSV (``side`` = taker side; 1 USD contracts → base =
contracts / price) and the real month of 1-minute BTC perpetual bars (quote volume only).
The raw files are read here with pyarrow / csv / gzip only, never with tapewatch.
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tapewatch.bars import BAR_COLUMNS, build_bars
from tapewatch.errors import TapewatchError
from tapewatch.importer import import_paths
from tapewatch.sources import detect
from tapewatch.sources.base import Hints, RawFile
from tapewatch.schemas import conform
from tapewatch.store import Store

TRADES = "nautilus-samples/binance/btcusdt-trades.parquet"
TARDIS = "nautilus-samples/tardis/bitmex_trades_XBTUSD.csv"
MONTH = "nautilus-samples/btc-perp-20211231-20220201_1m.csv.gz"
STEP = {"1s": 1_000_000_000, "10s": 10_000_000_000, "1m": 60_000_000_000, "5m": 300_000_000_000,
        "1h": 3_600_000_000_000, "1d": 86_400_000_000_000}


# -- the raw rows, read without tapewatch ------------------------------------------------------
def binance_raw(shared: Path) -> list[tuple[int, float, float, str]]:
    """(ts ns, price, base amount, taker side) of every trade, in file order."""
    t = pq.read_table(shared / TRADES)
    ms = t.column("timestamp").cast(pa.int64()).to_pylist()  # timestamp[ms, UTC] → epoch ms
    out = []
    for ts, price, qty, maker in zip(ms, t.column("price").to_pylist(), t.column("quantity").to_pylist(),
                                     t.column("buyer_maker").to_pylist(), strict=True):
        assert maker in ("True", "False")
        out.append((ts * 1_000_000, price, qty, "sell" if maker == "True" else "buy"))
    return out


def bitmex_raw(shared: Path) -> list[tuple[int, float, float, str]]:
    with open(shared / TARDIS, newline="") as fh:
        return [
            (int(r["timestamp"]) * 1000, float(r["price"]), float(r["amount"]) / float(r["price"]), r["side"])
            for r in csv.DictReader(fh)
        ]


def month_raw(shared: Path) -> list[tuple[int, float, float, float, float, float]]:
    """(open time ns, open, high, low, close, quote volume) of every 1-minute bar."""
    out = []
    with gzip.open(shared / MONTH, "rt", newline="") as fh:
        for r in csv.DictReader(fh):
            dt = datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
            out.append((int(dt.timestamp()) * 1_000_000_000, float(r["open"]), float(r["high"]), float(r["low"]),
                        float(r["close"]), float(r["volume"])))
    return out


# -- bars by hand ------------------------------------------------------------------------------
def hand_trade_bars(trades: list[tuple[int, float, float, str]], interval: str) -> list[dict[str, Any]]:
    step = STEP[interval]
    groups: dict[int, list[tuple[int, float, float, str]]] = defaultdict(list)
    for t in sorted(trades, key=lambda t: t[0]):  # stable: ties keep file order
        groups[t[0] // step * step].append(t)
    out = []
    for start in sorted(groups):
        g = groups[start]
        prices = [t[1] for t in g]
        buy = sum(t[2] for t in g if t[3] == "buy")
        sell = sum(t[2] for t in g if t[3] == "sell")
        out.append({
            "ts": start, "open": prices[0], "high": max(prices), "low": min(prices), "close": prices[-1],
            "volume": sum(t[2] for t in g), "taker_buy_volume": buy, "taker_sell_volume": sell,
            "quote_volume": sum(t[1] * t[2] for t in g), "trades": len(g),
        })
    return out


def hand_resample(bars: list[tuple[int, float, float, float, float, float]], interval: str) -> list[dict[str, Any]]:
    step = STEP[interval]
    groups: dict[int, list[tuple[int, float, float, float, float, float]]] = defaultdict(list)
    for b in bars:
        groups[b[0] // step * step].append(b)
    return [
        {"ts": s, "open": g[0][1], "high": max(b[2] for b in g), "low": min(b[3] for b in g), "close": g[-1][4],
         "quote_volume": sum(b[5] for b in g)}
        for s, g in sorted(groups.items())
    ]


def as_dicts(bars: pl.DataFrame) -> list[dict[str, Any]]:
    return bars.with_columns(pl.col("ts").dt.epoch("ns")).to_dicts()


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["ts"] for g in got] == [w["ts"] for w in want]
    for g, w in zip(got, want, strict=True):
        for k, v in w.items():
            if k in ("ts", "open", "high", "low", "close", "trades"):
                assert g[k] == v, (k, g, w)
            else:  # sums: the order of float additions may differ
                assert g[k] == pytest.approx(v, rel=1e-12, abs=1e-12), (k, g, w)


def tapewatch_trades(path: Path) -> pl.DataFrame:
    raw = RawFile(path)
    (batch,) = detect(raw).parse(raw, Hints())
    assert batch.kind == "trade"
    return batch.rows


# -- trades → bars -----------------------------------------------------------------------------
@pytest.mark.parametrize("interval", ["1s", "10s", "1m", "5m"])
def test_binance_trade_bars_equal_hand_computation(shared: Path, interval: str) -> None:
    bars = build_bars(tapewatch_trades(shared / TRADES), interval)
    assert bars.columns == BAR_COLUMNS
    want = hand_trade_bars(binance_raw(shared), interval)
    assert_same(as_dicts(bars), want)
    assert bars.select(pl.col("exchange", "market", "symbol", "interval").unique()).rows() == [
        ("binance", "spot", "BTC/USDT", interval)
    ]
    # the aggressor split is real: both sides traded, and they add up
    assert (bars["taker_buy_volume"] > 0).any() and (bars["taker_sell_volume"] > 0).any()
    assert (bars["taker_buy_volume"] + bars["taker_sell_volume"] - bars["volume"]).abs().max() < 1e-9


@pytest.mark.parametrize("interval", ["1m", "5m"])
def test_bitmex_tardis_trade_bars_equal_hand_computation(shared: Path, interval: str) -> None:
    bars = build_bars(tapewatch_trades(shared / TARDIS), interval)
    want = hand_trade_bars(bitmex_raw(shared), interval)
    assert_same(as_dicts(bars), want)
    (bar,) = as_dicts(bars)
    # all ten trades were taker SELLS: no taker buy volume at all
    assert bar["taker_buy_volume"] == 0.0 and bar["taker_sell_volume"] == pytest.approx(bar["volume"])
    # quote volume of 1-USD contracts is the number of contracts traded
    assert bar["quote_volume"] == pytest.approx(2152 + 9)


def test_bars_from_the_store_equal_hand_computation(shared: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    assert not import_paths([shared / TRADES, shared / TARDIS], store).errors
    for interval in ("1m", "5m"):
        binance = store.bars("binance", "spot", "BTC/USDT", interval)
        assert_same(as_dicts(binance), hand_trade_bars(binance_raw(shared), interval))
        bitmex = store.bars("bitmex", "perp", "BTC/USD", interval)
        assert_same(as_dicts(bitmex), hand_trade_bars(bitmex_raw(shared), interval))


def test_unsorted_input_is_sorted_first(shared: Path) -> None:
    trades = tapewatch_trades(shared / TRADES)
    shuffled = trades.sample(fraction=1.0, shuffle=True, seed=7)
    assert not shuffled["ts"].is_sorted()
    got = as_dicts(build_bars(shuffled, "10s"))
    want = hand_trade_bars(binance_raw(shared), "10s")
    # trades sharing a timestamp have no order once shuffled: open / close may be any of them
    assert_same([{k: v for k, v in g.items() if k not in ("open", "close")} for g in got],
                [{k: v for k, v in w.items() if k not in ("open", "close")} for w in want])
    raw = binance_raw(shared)
    for g in got:
        inside = [t for t in raw if g["ts"] <= t[0] < g["ts"] + STEP["10s"]]
        assert g["open"] in {t[1] for t in inside if t[0] == inside[0][0]}
        assert g["close"] in {t[1] for t in inside if t[0] == inside[-1][0]}


# -- resampling bars ---------------------------------------------------------------------------
@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_resampling_the_real_month_equals_hand_computation(shared: Path, interval: str) -> None:
    raw = RawFile(shared / MONTH)
    (batch,) = detect(raw).parse(raw, Hints())
    bars = build_bars(conform("bar", batch.rows), interval)
    want = hand_resample(month_raw(shared), interval)
    got = as_dicts(bars)
    assert_same(got, want)
    # the file has no base volume, taker split or trade count: resampling must not invent them
    assert all(g["volume"] is None and g["taker_buy_volume"] is None and g["trades"] is None for g in got)
    # 2021-12-31 23:01 → 2022-02-01 05:31: hours 12-31 23h + 31 days + 00h..05h; days Dec 31 + 31 + Feb 1
    assert len(got) == {"1h": 1 + 31 * 24 + 6, "1d": 1 + 31 + 1}[interval]


def test_bar_timestamps_are_on_the_grid(shared: Path) -> None:
    trades = tapewatch_trades(shared / TRADES)
    for interval in ("1s", "10s", "1m", "5m", "1h", "1d"):
        ts = build_bars(trades, interval)["ts"].dt.epoch("ns")
        assert (ts % STEP[interval] == 0).all()
        assert ts.is_sorted() and ts.n_unique() == len(ts)
    assert build_bars(trades, "1d")["ts"].to_list() == [datetime(2021, 1, 8, tzinfo=timezone.utc)]


def test_no_bar_for_empty_intervals(shared: Path) -> None:
    trades = tapewatch_trades(shared / TRADES)
    t0 = trades["ts"].min() // STEP["1s"] * STEP["1s"]
    gap = (t0 + 10 * STEP["1s"], t0 + 20 * STEP["1s"])
    holey = trades.filter((pl.col("ts") < gap[0]) | (pl.col("ts") >= gap[1]))
    bars = build_bars(holey, "1s")
    ts = bars["ts"].dt.epoch("ns").to_list()
    assert not [t for t in ts if gap[0] <= t < gap[1]]  # a gap, never a zero bar
    assert len(ts) == len({t // STEP["1s"] for t in holey["ts"].to_list()})
    assert (bars["trades"] > 0).all()
    # the same when resampling bars: drop one hour of the month, the 1h bars skip it
    raw = RawFile(shared / MONTH)
    (batch,) = detect(raw).parse(raw, Hints())
    month = conform("bar", batch.rows)
    hour = datetime(2022, 1, 10, 5, tzinfo=timezone.utc)
    cut = month.filter((pl.col("ts") < hour) | (pl.col("ts") >= datetime(2022, 1, 10, 6, tzinfo=timezone.utc)))
    hourly = build_bars(cut, "1h")
    assert hour not in hourly["ts"].to_list()
    assert hourly.height == build_bars(month, "1h").height - 1


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["1x", "m1", "0m", "", "1.5m", "5 min"])
def test_bad_interval_is_a_clear_error(shared: Path, bad: str) -> None:
    with pytest.raises(TapewatchError, match=r"bad interval .*use a number and one of s, m, h, d"):
        build_bars(tapewatch_trades(shared / TRADES), bad)


def test_interval_that_does_not_divide_is_a_clear_error(shared: Path) -> None:
    raw = RawFile(shared / MONTH)
    (batch,) = detect(raw).parse(raw, Hints())
    with pytest.raises(TapewatchError, match="cannot build 90s bars from 1m bars"):
        build_bars(conform("bar", batch.rows), "90s")
