"""The formats users bring, on real rows: freqtrade Feather / Parquet OHLCV (bars, funding, mark),
Binance kline API dumps with text times (maintenance bars, duplicate bars), OHLCV CSVs in other
column orders, Binance /futures/data CSVs and derived daily series. Expected values are read from
the raw files in the test (pyarrow, csv) and compared with what tapewatch imports."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from parse_helpers import parse, raises

from tapewatch.errors import SkipFileError
from tapewatch.importer import import_paths
from tapewatch.sources.base import Hints
from tapewatch.store import Store

FT = "freqtrade-binance-btc-2025"
KAGGLE = "kaggle-binance-btcusdt-4h-1d"
H4 = 4 * 3600 * 10**9


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def text_ns(text: str) -> int:
    """``2018-01-01 00:00:00.000000 UTC`` (or with a trailing space) as UTC ns, by hand."""
    return ns(datetime.strptime(text.strip().removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc))


def feather_rows(path: Path) -> list[dict]:
    return feather.read_table(path).to_pylist()


def csv_rows(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


# -- freqtrade Feather / Parquet ---------------------------------------------------------------
@pytest.mark.parametrize(("rel", "market"), [
    (f"{FT}/spot/BTC_USDT-5m.feather", "spot"), (f"{FT}/futures/BTC_USDT_USDT-5m-futures.feather", "perp"),
])
def test_freqtrade_bars(shared: Path, rel: str, market: str) -> None:
    raw = feather_rows(shared / rel)
    name, (batch,) = parse(shared / rel)
    assert (name, batch.kind) == ("ohlcv-table", "bar")
    rows = batch.rows
    assert rows.select(pl.col("exchange", "market", "symbol", "interval").unique()).rows() == [
        ("binance", market, "BTC/USDT", "5m")
    ]
    # date = bar open time; volume is base (BTC) by default, quote volume unknown
    expected = [(ns(r["date"]), r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in raw]
    assert rows.select("ts", "open", "high", "low", "close", "volume").rows() == expected
    assert rows.get_column("quote_volume").is_null().all()


def test_parquet_ohlcv_with_quote_volume_unit(shared: Path, tmp_path: Path) -> None:
    """The Coinbase Feather rows written as Parquet (schema kept) import the same; ``--volume-unit
    quote`` stores the volume as quote volume."""
    table = feather.read_table(shared / "freqtrade-coinbase-btcusd-2024-2026/BTC_USD-15m.feather")
    p = tmp_path / "coinbase" / "BTC_USD-15m.parquet"
    p.parent.mkdir()
    pq.write_table(table, p)
    (batch,) = parse(p, Hints(volume_unit="quote"))[1]
    rows = batch.rows
    assert rows.select(pl.col("exchange", "market", "symbol", "interval").unique()).rows() == [
        ("coinbase", "spot", "BTC/USD", "15m")
    ]
    raw = table.to_pylist()
    assert rows.select("ts", "close", "quote_volume").rows() == [(ns(r["date"]), r["close"], r["volume"]) for r in raw]
    assert rows.get_column("volume").is_null().all()


def test_freqtrade_funding_rate_is_in_open(shared: Path) -> None:
    rel = f"{FT}/futures/BTC_USDT_USDT-1h-funding_rate.feather"
    raw = feather_rows(shared / rel)
    (batch,) = parse(shared / rel)[1]
    assert batch.kind == "funding"
    assert batch.rows.select("market", "symbol").unique().rows() == [("perp", "BTC/USDT")]
    assert batch.rows.select("ts", "rate").rows() == [(ns(r["date"]), r["open"]) for r in raw]
    assert {datetime.fromtimestamp(t / 1e9, timezone.utc).hour for t in batch.rows["ts"]} <= {0, 8, 16}


def test_freqtrade_mark_klines_are_mark_prices_not_bars(shared: Path) -> None:
    rel = f"{FT}/futures/BTC_USDT_USDT-1h-mark.feather"
    raw = feather_rows(shared / rel)
    (batch,) = parse(shared / rel)[1]
    assert batch.kind == "mark_price"
    assert batch.rows.select("ts", "interval", "open", "high", "low", "close").rows() == [
        (ns(r["date"]), "1h", r["open"], r["high"], r["low"], r["close"]) for r in raw
    ]


def test_freqtrade_flags_contradicting_the_name(shared: Path) -> None:
    path = shared / f"{FT}/spot/BTC_USDT-5m.feather"
    raises(path, "--market perp contradicts the file, which says market spot", hints=Hints(market="perp"))
    raises(path, "--exchange coinbase contradicts the file, which says exchange binance", hints=Hints(exchange="coinbase"))
    raises(path, "--interval 1h contradicts the file, which says interval 5m", hints=Hints(interval="1h"))


# -- Binance kline API dumps (Kaggle) ------------------------------------------------------------
def kline_expected(rows: list[dict]) -> list[tuple]:
    return [
        (text_ns(r["Open time"]), float(r["Open"]), float(r["Close"]), float(r["Volume"]),
         float(r["Taker buy base asset volume"]), float(r["Quote asset volume"]), int(r["Number of trades"]))
        for r in rows
    ]


def test_kline_dump_with_utc_text_times(shared: Path) -> None:
    path = shared / KAGGLE / "btc_1d_data_2018_to_2025.csv.gz"
    name, (batch,) = parse(path)
    assert name == "binance-klines"
    rows = batch.rows
    assert rows.select(pl.col("exchange", "market", "symbol", "interval").unique()).rows() == [
        ("binance", "spot", "BTC/USDT", "1d")
    ]
    got = rows.select("ts", "open", "close", "volume", "taker_buy_volume", "quote_volume", "trades").rows()
    assert got == kline_expected(csv_rows(path))
    assert batch.notes == []


def test_maintenance_bars_are_imported_with_a_counted_note(shared: Path, tmp_path: Path) -> None:
    """The 4h dump's bars before the duplicated 2018-07-06 rows: a few close early (maintenance)."""
    lines = gzip.open(shared / KAGGLE / "btc_4h_data_2018_to_2025.csv.gz", "rt").read().splitlines()[:1100]
    p = tmp_path / KAGGLE / "btc_4h_data_2018_to_2025.csv"
    p.parent.mkdir()
    p.write_text("\n".join(lines) + "\n")
    raw = list(csv.DictReader(io.StringIO("\n".join(lines))))
    short = [i + 2 for i, r in enumerate(raw) if text_ns(r["Close time"]) + 10**6 - text_ns(r["Open time"]) < H4]
    (batch,) = parse(p)[1]
    assert batch.rows.height == len(raw) and len(short) >= 2
    assert batch.notes == [
        f"{len(short)} bar(s) close before the end of their 4h (Binance maintenance), first at row {short[0]}: "
        "imported as given"
    ]
    assert batch.rows.select("ts", "open", "close", "volume", "taker_buy_volume", "quote_volume", "trades").rows() == (
        kline_expected(raw)
    )


def test_duplicate_bars_name_both_rows_and_write_nothing(shared: Path, tmp_path: Path, store: Store) -> None:
    """The real 2018-07-06 rows (a 2025-priced row under a 2018 time), in the first 1,116 lines."""
    lines = gzip.open(shared / KAGGLE / "btc_4h_data_2018_to_2025.csv.gz", "rt").read().splitlines()[:1116]
    first = next(i for i, ln in enumerate(lines) if ln.startswith("2018-07-06 00:00"))
    assert lines[first + 1].startswith("2018-07-06 00:00") and lines[first] != lines[first + 1]
    path = tmp_path / KAGGLE / "btc_4h_data_2018_to_2025.csv"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    report = import_paths([path], store)
    (res,) = report.files
    assert res.error is not None
    assert f"rows {first + 1} and {first + 2} are both the bar opened at 2018-07-06 00:00:00 UTC (different values)" in res.error
    assert store.read("bar").is_empty()


def test_the_unfinished_last_bar_of_a_dump_is_left_out_with_a_note(shared: Path, tmp_path: Path) -> None:
    """The real end of the 4h dump: two bars, then the bar in progress with no open or close time."""
    lines = gzip.open(shared / KAGGLE / "btc_4h_data_tail.csv.gz", "rt").read().splitlines()
    assert lines[-1].startswith(",") and ",," in lines[-1]  # no open time, no close time
    path = tmp_path / KAGGLE / "btc_4h_data_2018_to_2025.csv"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    (batch,) = parse(path)[1]
    raw = list(csv.DictReader(io.StringIO("\n".join(lines[:-1]))))
    assert batch.rows.select("ts", "open", "close", "volume", "taker_buy_volume", "quote_volume", "trades").rows() == (
        kline_expected(raw)
    )
    assert batch.notes == [f"row {len(lines)} has no open or close time (the bar in progress when the file was "
                           "written): not imported"]
    # anywhere but last, a row without times is an error naming it
    path.write_text("\n".join([lines[0], lines[-1], *lines[1:-1]]) + "\n")
    raises(path, "empty open_time", row=2)


def test_exchange_flag_is_honoured_and_a_contradiction_is_an_error(shared: Path, tmp_path: Path) -> None:
    src = shared / KAGGLE / "btc_1d_data_2018_to_2025.csv.gz"
    p = tmp_path / "us" / "btc_1d.csv.gz"
    p.parent.mkdir()
    shutil.copy(src, p)
    (batch,) = parse(p, Hints(exchange="binanceus", symbol="BTC/USDT"))[1]
    assert set(batch.rows.get_column("exchange")) == {"binanceus"}
    raises(src, "--exchange binanceus contradicts the file, which says exchange binance", hints=Hints(exchange="binanceus"))
    raises(src, "--symbol ETH/USDT contradicts the file, which says symbol BTC/USDT", hints=Hints(symbol="ETH/USDT"))
    raises(p, r"cannot tell the symbol \(the path says interval 1d", hints=Hints())


# -- OHLCV CSVs ---------------------------------------------------------------------------------
def test_ohlcv_csv_with_a_datetime_column(shared: Path) -> None:
    path = shared / "binance-spot-btcusdt-1h-2022-2026/BTC_USDT_1h.csv.gz"
    name, (batch,) = parse(path)
    assert name == "ohlcv-csv"
    raw = csv_rows(path)
    assert batch.rows.select(pl.col("exchange", "market", "symbol", "interval").unique()).rows() == [
        ("binance", "spot", "BTC/USDT", "1h")
    ]
    assert batch.rows.select("ts", "high", "volume").rows() == [
        (int(r["timestamp"]) * 10**6, float(r["high"]), float(r["volume"])) for r in raw
    ]


def test_ohlcv_csv_in_odd_column_order_needs_one_venue(shared: Path, tmp_path: Path) -> None:
    path = shared / "coinbase-bitstamp-btcusd-daily/BTCUSD_1d_candles_full.csv"
    with pytest.raises(SkipFileError, match="venues coinbase and bitstamp.*pass --exchange"):
        parse(path)
    (batch,) = parse(path, Hints(exchange="bitstamp", market="spot"))[1]
    raw = csv_rows(path)
    assert batch.rows.select("exchange", "symbol", "interval").unique().rows() == [("bitstamp", "BTC/USD", "1d")]
    assert batch.rows.select("ts", "open", "high", "low", "close", "volume").rows() == [
        (int(r["unix_timestamp"]) * 10**9, float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]),
         float(r["volume"])) for r in raw
    ]
    # the two time columns must state the same instant
    text = path.read_text().splitlines()
    text[3] = text[3].replace("2011-08-20", "2011-08-21")
    p = tmp_path / "btcusd_1d.csv"
    p.write_text("\n".join(text) + "\n")
    raises(p, "timestamp and unix_timestamp state different instants", row=4, hints=Hints(exchange="bitstamp", market="spot"))


# -- /futures/data and derived daily series ------------------------------------------------------
API = "binance-futures-data-api-4h-2026-03"


def test_open_interest_hist_csv(shared: Path) -> None:
    path = shared / API / "btcusdt_futures_oi.csv.gz"
    (batch,) = parse(path)[1]
    assert batch.kind == "open_interest"
    assert batch.rows.select("exchange", "market", "symbol").unique().rows() == [("binance", "perp", "BTC/USDT")]
    assert batch.rows.select("ts", "oi", "oi_value").rows() == [
        (int(r["timestamp"]) * 10**6, float(r["sumOpenInterest"]), float(r["sumOpenInterestValue"])) for r in csv_rows(path)
    ]


@pytest.mark.parametrize("who", ["top", "global"])
def test_long_short_ratios_are_series(shared: Path, who: str) -> None:
    path = shared / API / f"btcusdt_futures_ls_{who}.csv.gz"
    (batch,) = parse(path)[1]
    rows = batch.rows
    ratio = rows.filter(pl.col("name") == f"long_short_account_ratio_{who}")
    assert ratio.select("ts", "value").rows() == [(int(r["timestamp"]) * 10**6, float(r["longShortRatio"])) for r in csv_rows(path)]
    assert set(ratio.get_column("source")) == {f"binance /futures/data/{who}LongShortAccountRatio"}


def test_taker_volume_series_and_a_file_without_symbol(shared: Path) -> None:
    path = shared / API / "btcusdt_futures_taker.csv.gz"
    rows = parse(path)[1][0].rows
    buy = rows.filter(pl.col("name") == "taker_buy_volume")
    assert set(buy.get_column("interval")) == {"4h"} and set(buy.get_column("unit")) == {"base"}
    assert buy.select("ts", "value").rows() == [(int(r["timestamp"]) * 10**6, float(r["buyVol"])) for r in csv_rows(path)]
    kaggle = shared / "binance-futures-taker-buysell-2023/taker_buy_sell_volume.csv.gz"
    with pytest.raises(SkipFileError, match="does not say its symbol"):
        parse(kaggle)
    rows = parse(kaggle, Hints(symbol="BTC/USDT"))[1][0].rows
    sell = rows.filter(pl.col("name") == "taker_sell_volume")
    assert set(sell.get_column("interval")) == {"5m"}
    assert sell.select("ts", "value").rows() == [(int(r["timestamp"]) * 10**6, float(r["sell_vol"])) for r in csv_rows(kaggle)]


def test_daily_metric_means_are_1d_series_not_open_interest(shared: Path, store: Store) -> None:
    path = shared / "binance-metrics-daily-2021-2026/BTC_USDT_metrics_1d.csv.gz"
    import_paths([path], store)
    assert store.read("open_interest").is_empty()
    series = store.read("series").with_columns(pl.col("ts").dt.epoch("ns"))
    raw = csv_rows(path)
    day = lambda d: ns(datetime.fromisoformat(d).replace(tzinfo=timezone.utc))  # noqa: E731
    oi = series.filter(pl.col("name") == "oi_mean").sort("ts")
    assert oi.select("ts", "value", "interval", "unit").rows() == [(day(r["date"]), float(r["oi"]), "1d", "base") for r in raw]
    assert set(oi.get_column("source")) == {"daily mean of the Binance USD-M metrics 5-minute rows (derived)"}
    # empty cells are not values: no row for them
    top = series.filter(pl.col("name") == "long_short_account_ratio_top_mean")
    filled = [r for r in raw if r["toptrader_acc_ls"]]
    assert len(filled) < len(raw) and top.height == len(filled)


def test_unlabelled_series_skipped_in_a_walk_error_when_named(shared: Path, store: Store) -> None:
    folder = shared / "daily-aggregate-oi-funding-unverified"
    report = import_paths([folder], store)
    assert report.files and all(f.skipped and "says neither its venue" in f.skipped for f in report.files)
    report = import_paths([folder / "open_interest.csv"], store)
    assert "says neither its venue, what it measures nor its unit" in report.files[0].error


def test_a_file_name_stating_venue_and_symbol_is_used(shared: Path, tmp_path: Path) -> None:
    """Real Coinbase 15m rows as an epoch-ms OHLCV CSV: the name ``coinbase_btc-usd_15m`` gives the key."""
    raw = feather_rows(shared / "freqtrade-coinbase-btcusd-2024-2026/BTC_USD-15m.feather")[:20]
    body = "".join(f"{ns(r['date']) // 10**6},{r['open']},{r['high']},{r['low']},{r['close']},{r['volume']}\n" for r in raw)
    p = tmp_path / "coinbase_btc-usd_15m.csv"
    p.write_text("timestamp,open,high,low,close,volume\n" + body)
    (batch,) = parse(p, Hints(market="spot"))[1]
    assert batch.rows.select("exchange", "symbol", "interval").unique().rows() == [("coinbase", "BTC/USD", "15m")]
    assert batch.rows.select("ts", "close", "volume").rows() == [(ns(r["date"]), r["close"], r["volume"]) for r in raw]
    q = tmp_path / "prices.csv"
    q.write_text(p.read_text())
    raises(q, r"cannot tell the market and symbol \(the path says nothing of venue, market, symbol or interval\); "
              "pass --market and --symbol")
