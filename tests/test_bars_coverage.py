"""Bars by coverage, one trade per venue id, integer grids, column-aware sources, inert settings.

Real rows only: the cryptofeed Binance USD-M recording (SUSHIUSDT 1m klines and aggTrades, 30 s),
the nautilus Binance spot trade table, the Binance spot 4h klines with taker-buy volume (Kaggle)
and the freqtrade Binance spot 5m OHLCV (no taker split). Expected values are computed here from
the raw files with json / csv / pyarrow, never through tapewatch.
"""

from __future__ import annotations

import csv
import gzip
import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tapewatch import coverage
from tapewatch.cli import app
from tapewatch.config import Config, ConfigError, config_from_dict
from tapewatch.importer import import_paths
from tapewatch.signals.compute import compute_signals
from tapewatch.signals.frame import load
from tapewatch.store import Store
from tapewatch.study.wiring import prepare
from tapewatch.timeutil import bar_opens, ns_to_iso

RECORDING = "cryptofeed-recordings/BINANCE_FUTURES.ws.1.0"
TRADES = "nautilus-samples/binance/btcusdt-trades.parquet"
KLINES_4H = "kaggle-binance-btcusdt-4h-1d/btc_4h_data_2018_to_2025.csv.gz"
OHLCV_5M = "freqtrade-binance-btc-2025/spot/BTC_USDT-5m.feather"
MS = 1_000_000
MIN = 60_000_000_000
H = 60 * MIN
DAY = 24 * H
NOW = 2_000_000_000_000_000_000  # every bar here has closed
SUSHI = ("binance", "perp", "SUSHI/USDT")


# -- the raw rows, read without tapewatch ------------------------------------------------------
def recording_lines(shared: Path) -> tuple[str, list[str], list[str]]:
    """``(connect line, SUSHIUSDT closed-kline lines, SUSHIUSDT aggTrade lines)`` of the recording."""
    lines = (shared / RECORDING).read_text().splitlines(keepends=True)
    klines = [ln for ln in lines if '"stream":"sushiusdt@kline_1m"' in ln and '"x":true' in ln]
    trades = [ln for ln in lines if '"stream":"sushiusdt@aggTrade"' in ln]
    return lines[0], klines, trades


def message(line: str) -> dict[str, Any]:
    return json.loads(line.split(": ", 1)[1])["data"]


def sushi_trades(shared: Path) -> list[tuple[int, float, float, str]]:
    """(trade time ns, price, amount, taker side) of every SUSHIUSDT aggTrade, in file order."""
    return [
        (m["T"] * MS, float(m["p"]), float(m["q"]), "sell" if m["m"] else "buy")
        for m in map(message, recording_lines(shared)[2])
    ]


def hand_bar(trades: list[tuple[int, float, float, str]], start: int, step: int) -> dict[str, Any]:
    inside = sorted((t for t in trades if start <= t[0] < start + step), key=lambda t: t[0])
    prices = [t[1] for t in inside]
    return {
        "ts": start, "open": prices[0], "high": max(prices), "low": min(prices), "close": prices[-1],
        "volume": sum(t[2] for t in inside), "taker_buy_volume": sum(t[2] for t in inside if t[3] == "buy"),
        "quote_volume": sum(t[1] * t[2] for t in inside), "trades": len(inside),
    }


def kline_bar(line: str) -> dict[str, Any]:
    k = message(line)["k"]
    return {
        "ts": k["t"] * MS, "open": float(k["o"]), "high": float(k["h"]), "low": float(k["l"]), "close": float(k["c"]),
        "volume": float(k["v"]), "taker_buy_volume": float(k["V"]), "quote_volume": float(k["q"]), "trades": k["n"],
    }


def rows_of(bars: pl.DataFrame) -> list[dict[str, Any]]:
    cols = ["ts", "open", "high", "low", "close", "volume", "taker_buy_volume", "quote_volume", "trades"]
    return bars.with_columns(pl.col("ts").dt.epoch("ns")).select(cols).to_dicts()


def assert_bar(got: dict[str, Any], want: dict[str, Any]) -> None:
    for k, v in want.items():
        if k in ("ts", "open", "high", "low", "close", "trades"):
            assert got[k] == v, (k, got, want)
        else:
            assert got[k] == pytest.approx(v, rel=1e-12), (k, got, want)


# -- 1. bars by coverage, per bar ---------------------------------------------------------------
def test_a_kline_is_kept_where_trades_cover_only_part_of_its_bar(shared: Path, store: Store) -> None:
    _, klines, _ = recording_lines(shared)
    (kline,) = klines  # the 22:25 SUSHIUSDT kline closed during the recording
    trades = sushi_trades(shared)
    first, last = min(t[0] for t in trades), max(t[0] for t in trades)
    assert (first - kline_bar(kline)["ts"]) // 1_000_000_000 == 44  # trades start 44 s into that minute
    assert not import_paths([shared / RECORDING], store).errors
    got = rows_of(store.bars(*SUSHI, "1m"))
    # 22:25 from the kline (all 113 trades of the minute), not from the 16 s of trades recorded in it
    assert [g["ts"] for g in got] == [kline_bar(kline)["ts"], kline_bar(kline)["ts"] + MIN]
    assert_bar(got[0], kline_bar(kline))
    assert got[0]["trades"] == 113 and got[0]["volume"] == 3005.0
    # 22:26 only the trades have it (no kline closed): built from them, as recorded
    assert_bar(got[1], hand_bar(trades, kline_bar(kline)["ts"] + MIN, MIN))
    # the importer recorded what the file holds completely: the kline's minute, the trades' span
    cov = store.read("coverage", *SUSHI).sort("source")
    assert cov.select(pl.col("source"), pl.col("ts").dt.epoch("ns"), pl.col("end").dt.epoch("ns")).rows() == [
        ("bar:1m", kline_bar(kline)["ts"], kline_bar(kline)["ts"] + MIN),
        ("trade", first, last + 1),
    ]


def test_importing_trades_later_changes_no_bar_they_do_not_cover(shared: Path, store: Store, tmp_path: Path) -> None:
    head, klines, trade_lines = recording_lines(shared)
    (tmp_path / "klines").write_text(head + "".join(klines))
    (tmp_path / "trades").write_text(head + "".join(trade_lines))
    assert not import_paths([tmp_path / "klines"], store).errors
    before = rows_of(store.bars(*SUSHI, "1m"))
    assert len(before) == 1
    assert_bar(before[0], kline_bar(klines[0]))
    assert not import_paths([tmp_path / "trades"], store).errors
    after = rows_of(store.bars(*SUSHI, "1m"))
    assert after[0] == before[0]  # the bar seen before is unchanged
    assert_bar(after[1], hand_bar(sushi_trades(shared), before[0]["ts"] + MIN, MIN))


def test_trades_win_where_their_coverage_holds_the_whole_bar(shared: Path, store: Store) -> None:
    assert not import_paths([shared / RECORDING], store).errors
    t0 = kline_bar(recording_lines(shared)[1][0])["ts"]
    # a source that proves the trades of 22:25-22:27 complete (as a daily archive proves its day)
    store.write("coverage", pl.DataFrame({
        "exchange": ["binance"], "market": ["perp"], "symbol": ["SUSHI/USDT"], "ts": [t0], "end": [t0 + 2 * MIN],
        "source": ["trade"], "origin": ["test"],
    }).with_columns(pl.col("end").cast(pl.Datetime("ns", "UTC"))))
    got = rows_of(store.bars(*SUSHI, "1m"))
    assert_bar(got[0], hand_bar(sushi_trades(shared), t0, MIN))


def test_a_daily_trade_archive_covers_its_whole_day(shared: Path) -> None:
    t = pq.read_table(shared / TRADES)
    rows = pl.DataFrame({
        "exchange": "binance", "market": "spot", "symbol": "BTC/USDT",
        "ts": [v * MS for v in t.column("timestamp").cast(pa.int64()).to_pylist()],
    })
    day = (date(2021, 1, 8) - date(1970, 1, 1)).days * DAY
    name = Path("BTCUSDT-trades-2021-01-08.zip")
    assert coverage.archive_day("binance-trades", name) == day
    assert coverage.archive_day("parquet-trades", name) is None  # only the archive's own format proves a day
    cov = coverage.of_rows("trade", rows, str(name), day)
    assert cov.select(pl.col("ts").dt.epoch("ns"), pl.col("end").dt.epoch("ns")).rows() == [(day, day + DAY)]
    first, last = min(rows["ts"]), max(rows["ts"])
    cov = coverage.of_rows("trade", rows, "a recording", None)
    assert cov.select(pl.col("ts").dt.epoch("ns"), pl.col("end").dt.epoch("ns")).rows() == [(first, last + 1)]


def test_status_shows_coverage_and_its_holes(shared: Path, tmp_path: Path) -> None:
    head, _, trade_lines = recording_lines(shared)
    (tmp_path / "a").write_text(head + "".join(trade_lines[:10]))
    (tmp_path / "b").write_text(head + "".join(trade_lines[-10:]))
    st = Store(tmp_path / "s")
    assert not import_paths([tmp_path / "a", tmp_path / "b"], st).errors
    times = [m["T"] * MS for m in map(message, trade_lines)]
    hole = (max(times[:10]) + 1, min(times[-10:]))
    (streams,) = coverage.summary(st)
    assert (streams.source, streams.holes) == ("trade", [hole])
    res = CliRunner().invoke(app, ["status", "--store", str(st.root), "--no-gaps"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    # times are shown truncated to the second: a span ending 1 ns before a minute ends in that minute
    assert ns_to_iso(1_626_992_760 * 10**9 - 1) == "2021-07-22 22:25:59"
    seconds = (hole[1] - hole[0]) // 10**9
    assert 0 < seconds < 60 and f"({seconds}s)" in res.output and "coverage" in res.output


# -- 2. one trade per venue trade id ------------------------------------------------------------
def test_a_republished_trade_replaces_the_earlier_row(shared: Path, store: Store, tmp_path: Path) -> None:
    t = pq.read_table(shared / TRADES)
    assert not import_paths([shared / TRADES], store).errors
    k = 100
    fixed_price = t.column("price")[k].as_py() + 1.0
    corrected = t.slice(k, 1).set_column(t.schema.get_field_index("price"), "price", pa.array([fixed_price]))
    republished = tmp_path / "binance" / "btcusdt-trades.parquet"  # the path names venue and symbol
    republished.parent.mkdir()
    pq.write_table(corrected, republished)
    assert not import_paths([republished], store).errors
    got = store.trades("binance", "spot", "BTC/USDT")
    assert got.height == t.num_rows == 2001
    row = got.filter(pl.col("trade_id") == str(t.column("trade_id")[k].as_py()))
    assert row["price"].to_list() == [fixed_price]
    # the whole table's quote volume counts the corrected trade once, at its corrected price
    prices = t.column("price").to_pylist()
    qty = t.column("quantity").to_pylist()
    prices[k] = fixed_price
    want = sum(p * q for p, q in zip(prices, qty, strict=True))
    assert store.bars("binance", "spot", "BTC/USDT", "1d")["quote_volume"].sum() == pytest.approx(want, rel=1e-12)


# -- 3. integer time grids ----------------------------------------------------------------------
def _ohlcv_5m(shared: Path) -> pl.DataFrame:
    """The freqtrade 5m spot bars as bar records (no taker split in the file)."""
    t = feather.read_table(shared / OHLCV_5M)
    return pl.DataFrame({
        "exchange": "binance", "market": "spot", "symbol": "BTC/USDT", "interval": "5m",
        "ts": t.column("date").cast(pa.int64()).to_pylist(),
        **{c: t.column(c).to_pylist() for c in ("open", "high", "low", "close", "volume")},
    })


def test_signal_grid_keeps_the_last_15m_bar_of_a_long_range(shared: Path, store: Store) -> None:
    bars = _ohlcv_5m(shared)
    edges = bars.filter((pl.col("ts") < 1_735_603_200 * 10**9 + 15 * MIN) | (pl.col("ts") >= 1_771_537_500 * 10**9))
    store.write("bar", edges)  # the first and the last 15 minutes of the file
    step = 15 * MIN
    first = (date(2024, 12, 31) - date(1970, 1, 1)).days * DAY
    last = (date(2026, 2, 19) - date(1970, 1, 1)).days * DAY + 21 * H + 45 * MIN
    assert edges["ts"].min() == first and edges["ts"].max() == last + 10 * MIN
    expected = ((date(2026, 2, 19) - date(2024, 12, 31)).days * 96) + 21 * 4 + 3 + 1
    assert expected == 39_928
    aligned = load(store, "BTC", "15m", Config(), now=NOW)
    ts = aligned.frame["ts"].to_list()
    assert len(ts) == expected and ts[0] == first and ts[-1] == last
    assert bar_opens(first, last, step).tolist() == [first + i * step for i in range(expected)]


# -- 6. column-aware source choice --------------------------------------------------------------
def _klines_4h(shared: Path, days: tuple[str, ...]) -> list[dict[str, Any]]:
    with gzip.open(shared / KLINES_4H, "rt", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Open time"][:10] in days]
    return [
        {"exchange": "binance", "market": "spot", "symbol": "BTC/USDT", "interval": "4h",
         "ts": int(datetime.strptime(r["Open time"].strip(), "%Y-%m-%d %H:%M:%S.%f")
                   .replace(tzinfo=timezone.utc).timestamp()) * 10**9,
         "open": float(r["Open"]), "high": float(r["High"]), "low": float(r["Low"]), "close": float(r["Close"]),
         "volume": float(r["Volume"]), "taker_buy_volume": float(r["Taker buy base asset volume"]),
         "quote_volume": float(r["Quote asset volume"]), "trades": int(r["Number of trades"])}
        for r in rows
    ]


def _mixed_store(shared: Path, store: Store, kline_days: tuple[str, ...]) -> list[dict[str, Any]]:
    jan = (date(2025, 1, 1) - date(1970, 1, 1)).days * DAY
    store.write("bar", _ohlcv_5m(shared).filter(pl.col("ts").is_between(jan, jan + 2 * DAY, closed="left")))
    klines = _klines_4h(shared, kline_days)
    store.write("bar", pl.DataFrame(klines))
    return klines


def test_4h_klines_with_the_taker_split_win_over_5m_bars_without(shared: Path, store: Store) -> None:
    klines = _mixed_store(shared, store, ("2025-01-01", "2025-01-02"))
    assert len(klines) == 12
    got = rows_of(store.bars("binance", "spot", "BTC/USDT", "4h"))
    assert len(got) == 12
    for g, k in zip(got, klines, strict=True):
        assert_bar(g, {c: k[c] for c in ("ts", "open", "high", "low", "close", "volume", "taker_buy_volume")})


def test_a_factor_that_loses_the_taker_split_says_so(shared: Path, store: Store) -> None:
    klines = _mixed_store(shared, store, ("2025-01-01",))  # 4h klines on the first day only
    cfg = config_from_dict({"flow": {"window": "8h"}})
    sig = compute_signals(store, "BTC", "4h", config=cfg, now=NOW)
    net = sig.frame["spot_net_taker"].to_list()
    assert len(net) == 12
    for got, k in zip(net[:6], klines, strict=True):
        assert got == pytest.approx(2 * k["taker_buy_volume"] - k["volume"], rel=1e-12)
    assert net[6:] == [None] * 6  # day 2 has only the 5m bars: no split
    (spot,) = [i for i in sig.inputs if i.key == "spot"]
    assert spot.unsplit == 6 and "taker buy/sell split missing in 6 of 12 bars" in spot.note


# -- 7. inert parameters refused ----------------------------------------------------------------
def test_a_one_bar_flow_window_is_refused_naming_key_and_interval(shared: Path, store: Store) -> None:
    _mixed_store(shared, store, ("2025-01-01", "2025-01-02"))
    with pytest.raises(ConfigError, match=r"flow\.window = '4h' is one 4h bar.*flow\.rally_pct has no effect at 4h"):
        compute_signals(store, "BTC", "4h", config=Config(), now=NOW)
    with pytest.raises(ConfigError, match=r"flow\.window = '1h' is one 4h bar"):
        compute_signals(store, "BTC", "4h", config=config_from_dict({"flow": {"window": "1h"}}), now=NOW)
    # two bars, or no close-at-extreme rule: every setting matters
    assert compute_signals(store, "BTC", "4h", config=config_from_dict({"flow": {"window": "8h"}}), now=NOW)
    off = config_from_dict({"flow": {"close_at_extreme": False}})
    assert compute_signals(store, "BTC", "4h", config=off, now=NOW)


def test_a_sweep_warns_about_sets_whose_setting_has_no_effect(shared: Path, store: Store) -> None:
    _mixed_store(shared, store, ("2025-01-01", "2025-01-02"))
    grid = [{"flow.window": w, "flow.rally_pct": p} for w in ("4h", "8h") for p in (0.25, 0.5, 1.0)]
    ds = prepare(store, "BTC", "4h", None, None, Config(), grid)
    assert len(ds.warnings) == 3
    for w, p in zip(ds.warnings, (0.25, 0.5, 1.0), strict=True):
        assert f'"flow.rally_pct": {p}' in w and "flow.window = '4h' is one 4h bar" in w
