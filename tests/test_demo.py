"""`tapewatch demo` on the bundled real sample, then the README's next commands with no flags.

The demo runs once (module fixture) in a fresh working directory, as a user runs it from a clone;
its printed numbers are checked against values computed here with pandas from the sample files,
and the sample files are checked row by row against the real files they come from.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tapewatch.cli import app
from tapewatch.sample_data import SAMPLE_END, SAMPLE_START, sample_dir

runner = CliRunner()
ENV = {"COLUMNS": "250", "TAPEWATCH_STORE": "", "TAPEWATCH_CONFIG": ""}
WINDOW = (pd.Timestamp(SAMPLE_START, unit="ns", tz="UTC"), pd.Timestamp(SAMPLE_END, unit="ns", tz="UTC"))


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A fresh directory after `tapewatch demo` ran in it, and the demo's output (whitespace collapsed)."""
    d = tmp_path_factory.mktemp("clone")
    old = os.getcwd()
    os.chdir(d)
    try:
        res = runner.invoke(app, ["demo"], env=ENV)
        assert res.exit_code == 0, res.output
        yield d, _flat(res.output)
    finally:
        os.chdir(old)


def _sample(name: str) -> pd.DataFrame:
    return pq.read_table(sample_dir() / name).to_pandas()


def _premium_15m() -> pd.DataFrame:
    """Coinbase 15m close minus the Binance spot close of the same 15m bar (last 5m close in it),
    over the bars where both exist — computed here with pandas from the sample files."""
    cb = _sample("coinbase_spot_btcusd_15m.parquet").set_index("ts")["close"]
    spot = _sample("binance_spot_btcusdt_5m.parquet").set_index("ts")["close"]
    b15 = spot.groupby(spot.index.floor("15min")).last()
    both = pd.concat({"a": cb, "b": b15}, axis=1, sort=True).dropna()
    both["gap"] = both["a"] - both["b"]
    both["index"] = both["gap"] / both["b"] * 100
    return both


def test_demo_prints_real_events_the_premium_in_context_and_the_study(demo_dir: tuple[Path, str]) -> None:
    _, out = demo_dir
    fired = [int(n) for n in re.findall(r"distribution fired (\d+) times?", out)]
    assert fired and all(n > 0 for n in fired), out[:2000]
    assert "in-sample" in out and "out-of-sample, final untouched 30%" in out
    assert re.search(r"vs a base rate of \d+ %", out) and re.search(r"95 % CI (\d+–\d+|≥ \d+|≤ \d+) %", out)
    assert re.search(r"p = 0\.\d+", out) and re.search(r"adjusted p = [\d.]+ after adjusting for the \d+ tests", out)
    assert "What does −$91 mean?" in out and "So: on these months" in out
    assert "required: flow, premium" in out and "oi — not used: only daily means" in out
    assert "book — when present: no order-book depth" in out

    # the premium: share of 15m bars at or below -$91 and the latest bar, recomputed here
    prem = _premium_15m()
    share = (prem["gap"] <= -91).mean()
    assert f"a gap at or below it on {share:.1%} of bars" in out
    last = prem.iloc[-1]
    sample_rank = 100 * (prem["index"] <= last["index"]).mean()
    words = f"lowest {sample_rank:.0f} %" if sample_rank <= 50 else f"highest {100 - sample_rank:.0f} %"
    sign = "−" if last["gap"] < 0 else "+"
    expect = f"latest bar: {prem.index[-1]:%Y-%m-%d %H:%M:%S} UTC (15m bar): {sign}${abs(last['gap']):,.2f} = " \
             f"{last['index']:+.3f} % of price (${last['b']:,.0f})"
    assert expect in out, out[out.find("latest bar"):][:300]
    m = re.search(re.escape(expect) + r", z ([+-]\d+\.\d) and (lowest|highest) (\d+) % of the trailing 30 days, "
                  + re.escape(words) + " of the whole sample", out)
    assert m, out[out.find("latest bar"):][:300]
    # z and rank over the trailing 30 days (2,880 bars of 15m, ending at the bar, incl. empty slots)
    hist = prem["index"][prem.index > prem.index[-1] - pd.Timedelta(days=30)]
    z = (last["index"] - hist.mean()) / hist.std(ddof=1)
    assert float(m.group(1)) == pytest.approx(z, abs=0.051)
    rank = 100 * (hist <= last["index"]).mean()
    assert int(m.group(3)) == round(rank if m.group(2) == "lowest" else 100 - rank)


def test_demo_taker_totals_equal_the_sample_klines(demo_dir: tuple[Path, str]) -> None:
    _, out = demo_dir
    k = _sample("binance_spot_btcusdt_4h.parquet")
    buy = k["taker_buy_volume"].sum()
    sell = (k["volume"] - k["taker_buy_volume"]).sum()
    assert f"takers bought {buy:,.0f} BTC and sold {sell:,.0f} BTC on Binance spot (net {buy - sell:+,.0f})" in out


def test_after_the_demo_the_next_commands_work_with_no_flags(demo_dir: tuple[Path, str]) -> None:
    d, _ = demo_dir
    assert (d / "tapewatch-data" / "tapewatch.toml").is_file()
    old = os.getcwd()
    os.chdir(d)
    try:
        status = runner.invoke(app, ["status"], env=ENV)
        assert status.exit_code == 0, status.output
        st = _flat(status.output)  # tables may be narrow (80 columns): check the row counts
        assert all(n in st for n in ("108,768", "111,034", "36,233", "1,133", "378"))  # spot: 5m + 4h
        scan = runner.invoke(app, ["scan", "--symbol", "BTC"], env=ENV)
        assert scan.exit_code == 0, scan.output
        s = _flat(scan.output)
        assert "BTC · 4h · latest closed bar 2026-01-12 12:00:00" in s
        assert "config: tapewatch-data/tapewatch.toml (the store's config)" in s
        bt = runner.invoke(app, ["backtest", "--symbol", "BTC"], env=ENV)
        assert bt.exit_code == 0, bt.output
        b = _flat(bt.output)
        assert "config: tapewatch-data/tapewatch.toml (the store's config) · BTC · 4h bars" in b
        assert "detector: required: flow, premium" in b and re.search(r"distribution fired [1-9]\d* times", b)
        rep = runner.invoke(app, ["report", "--symbol", "BTC", "--out", "report.html"], env=ENV)
        assert rep.exit_code == 0, rep.output
        page = (d / "report.html").read_text(encoding="utf-8")
        head = page[page.find("<h1>"):page.find("<h2>Verdict")]
        assert "detector: required: flow, premium" in head and "missing inputs: " in head
        assert "{" not in head and "[]" not in head  # sentences, no Python reprs
        assert "off the scale" in page  # the premium spikes, marked at the edge of a readable range
        assert "all hold: flow, premium" in page  # each event marker explains itself on hover
    finally:
        os.chdir(old)


# -- the sample is the real data ------------------------------------------------------------------
def _window(df: pd.DataFrame, col: str = "ts") -> pd.DataFrame:
    return df[(df[col] >= WINDOW[0]) & (df[col] < WINDOW[1])]


@pytest.mark.parametrize("rel, name, market", [
    ("freqtrade-binance-btc-2025/spot/BTC_USDT-5m.feather", "binance_spot_btcusdt_5m.parquet", "spot"),
    ("freqtrade-binance-btc-2025/futures/BTC_USDT_USDT-5m-futures.feather", "binance_perp_btcusdt_5m.parquet", "perp"),
    ("freqtrade-coinbase-btcusd-2024-2026/BTC_USD-15m.feather", "coinbase_spot_btcusd_15m.parquet", "spot"),
])
def test_sample_bars_equal_the_real_feather_rows(shared: Path, rel: str, name: str, market: str) -> None:
    real = _window(feather.read_table(shared / rel).to_pandas().rename(columns={"date": "ts"}))
    sample = _sample(name)
    assert (sample["market"] == market).all() and sample["ts"].is_monotonic_increasing
    assert sample["ts"].min() >= WINDOW[0] and sample["ts"].max() < WINDOW[1]
    merged = real.merge(sample, on="ts", how="left", suffixes=("_real", ""))
    assert len(merged) == len(real) > 500
    for c in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(merged[c].to_numpy(), merged[f"{c}_real"].to_numpy())  # exact floats
    assert merged["taker_buy_volume"].isna().all()  # freqtrade files carry no taker split


def test_sample_4h_taker_klines_equal_the_real_csv(shared: Path) -> None:
    text = gzip.decompress((shared / "kaggle-binance-btcusdt-4h-1d/btc_4h_data_2018_to_2025.csv.gz").read_bytes())
    real = pd.read_csv(io.BytesIO(text), dtype={"Open time": str})
    real = real[real["Open time"].str.strip() != ""].dropna(subset=["Open time"])
    real["ts"] = pd.to_datetime(real["Open time"].str.strip(), utc=True)
    real = _window(real)
    sample = _sample("binance_spot_btcusdt_4h.parquet")
    merged = real.merge(sample, on="ts", how="left")
    assert len(merged) == len(real) > 500
    for src, col in (("Open", "open"), ("Close", "close"), ("Volume", "volume"),
                     ("Taker buy base asset volume", "taker_buy_volume"), ("Quote asset volume", "quote_volume"),
                     ("Number of trades", "trades")):
        np.testing.assert_array_equal(merged[col].to_numpy(), merged[src].to_numpy())
    assert (sample["interval"] == "4h").all() and len(sample) == 2_266  # every 4h bar of the window


def test_sample_funding_and_daily_oi_equal_the_real_rows(shared: Path) -> None:
    f = _window(feather.read_table(
        shared / "freqtrade-binance-btc-2025/futures/BTC_USDT_USDT-1h-funding_rate.feather").to_pandas()
        .rename(columns={"date": "ts"}))
    fs = _sample("binance_perp_btcusdt_funding.parquet")
    m = f.merge(fs, on="ts", how="left")
    assert len(m) == len(f) > 100
    np.testing.assert_array_equal(m["rate"].to_numpy(), m["open"].to_numpy())
    oi = pd.read_csv(shared / "binance-metrics-daily-2021-2026/BTC_USDT_metrics_1d.csv.gz")
    # each daily mean is stamped at the end of its day (when it is known): no look-ahead
    oi["ts"] = pd.to_datetime(oi["date"], utc=True) + pd.Timedelta(days=1)
    oi = _window(oi)
    os_ = _sample("binance_perp_btcusdt_oi_1d.parquet")
    m = oi.merge(os_, on="ts", how="left", suffixes=("_real", ""))
    assert len(m) == len(os_) == 378
    np.testing.assert_array_equal(m["oi"].to_numpy(), m["oi_real"].to_numpy())
    np.testing.assert_array_equal(m["oi_value"].to_numpy(), m["oi_value_real"].to_numpy())


def test_sample_fits_the_package_budget() -> None:
    files = sorted(p.name for p in sample_dir().iterdir())
    assert files == sorted([
        "PROVENANCE.md", "binance_perp_btcusdt_5m.parquet", "binance_perp_btcusdt_funding.parquet",
        "binance_perp_btcusdt_oi_1d.parquet", "binance_spot_btcusdt_4h.parquet", "binance_spot_btcusdt_5m.parquet",
        "coinbase_spot_btcusd_15m.parquet",
    ])
    assert sum(p.stat().st_size for p in sample_dir().iterdir()) <= 12_000_000
