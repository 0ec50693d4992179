"""Generic tables: the real 1-minute BTC perpetual OHLCV CSV and the real Binance trade / quote
Parquet files (hand-checked rows), key resolution from hints and names, and malformed input."""

from __future__ import annotations

import gzip
import shutil
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tapewatch.importer import import_paths
from tapewatch.schemas import conform
from tapewatch.sources import detect
from tapewatch.sources.base import Hints, RawFile
from tapewatch.sources.tables import infer_interval, name_info
from tapewatch.store import Store

from parse_helpers import one, parse, raises, write

MONTH = "nautilus-samples/btc-perp-20211231-20220201_1m.csv.gz"
TRADES = "nautilus-samples/binance/btcusdt-trades.parquet"
QUOTES = "nautilus-samples/binance/btcusdt-quotes.parquet"
HEADER = "timestamp,open,high,low,close,volume"


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def month_lines(shared: Path, n: int = 10) -> list[str]:
    with gzip.open(shared / MONTH, "rt") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


# -- OHLCV CSV ---------------------------------------------------------------------------------
def test_real_month_of_1m_bars(shared: Path) -> None:
    name, batches = parse(shared / MONTH)
    assert name == "ohlcv-csv"
    rows = conform("bar", batches[0].rows)
    assert rows.height == 45_031
    first = rows.row(0, named=True)
    assert first["ts"] == datetime(2021, 12, 31, 23, 1, tzinfo=timezone.utc)
    assert {k: first[k] for k in ("exchange", "market", "symbol", "interval")} == {
        "exchange": "unknown", "market": "perp", "symbol": "BTC/USD", "interval": "1m",
    }
    assert (first["open"], first["high"], first["low"], first["close"]) == (46319.0, 46385.0, 46319.0, 46377.0)
    # volume in this file is QUOTE currency: stored as quote_volume; base volume, taker split and
    # trade count are not in the file and stay null
    assert first["quote_volume"] == 2300413.7295
    assert rows.select(pl.col("volume", "taker_buy_volume", "trades").is_null().all()).row(0) == (True, True, True)
    last = rows.row(-1, named=True)
    assert last["ts"] == datetime(2022, 2, 1, 5, 31, tzinfo=timezone.utc)
    assert (last["close"], last["quote_volume"]) == (38544.0, 685906.9735)


def test_hints_override_the_file_name(shared: Path) -> None:
    rows = one(shared / MONTH, Hints(exchange="binance", market="perp", symbol="BTCUSDT", interval="1m"))
    assert rows.select(pl.col("exchange", "market", "symbol", "interval").unique()).rows() == [
        ("binance", "perp", "BTC/USDT", "1m")
    ]


def test_interval_is_inferred_from_spacing_when_the_name_does_not_say(shared: Path, tmp_path: Path) -> None:
    p = write(tmp_path, "btc-perp.csv", "\n".join(month_lines(shared, 50)) + "\n")
    assert one(p)["interval"].unique().to_list() == ["1m"]
    assert infer_interval(pl.Series([0, 300, 600, 1200, 1500]) * 1_000_000_000) == "5m"
    assert infer_interval(pl.Series([0, 3_600_000_000_000])) == "1h"
    assert infer_interval(pl.Series([5])) is None


def test_epoch_timestamps_and_venue_in_the_name(tmp_path: Path) -> None:
    p = write(
        tmp_path, "coinbase-btc-usd-spot_1h.csv",
        "time,open,high,low,close,volume\n1640995200000,100,110,90,105,1000\n1640998800000,105,106,104,104,10\n",
    )
    rows = one(p)
    assert rows["ts"].to_list() == [ns("2022-01-01T00:00:00"), ns("2022-01-01T01:00:00")]
    assert rows.select(pl.col("exchange", "market", "symbol", "interval").unique()).rows() == [
        ("coinbase", "spot", "BTC/USD", "1h")
    ]


def test_names_to_key() -> None:
    info = name_info(Path("/x/y/btc-perp-20211231-20220201_1m.csv"))
    assert (info.exchange, info.market, info.symbol, info.interval) == (None, "perp", "BTC/USD", "1m")
    info = name_info(Path("/data/binance/btcusdt-trades.parquet"))
    assert (info.exchange, info.market, info.symbol, info.interval) == ("binance", None, "BTC/USDT", None)
    assert name_info(Path("/binance/okx/eth-btc_5m.csv")).exchange == "okx"  # nearest folder wins
    assert name_info(Path("eth-btc_5m.csv")).symbol == "ETH/BTC"


def test_bars_off_the_interval_grid(shared: Path, tmp_path: Path) -> None:
    p = write(tmp_path, "btc-perp.csv", "\n".join(month_lines(shared, 10)) + "\n")
    raises(p, "not on the 5m grid", row=2, hints=Hints(interval="5m"))
    raises(p, "bad interval '5x'", hints=Hints(interval="5x"))


def test_malformed_ohlcv_rows(shared: Path, tmp_path: Path) -> None:
    lines = month_lines(shared, 8)

    def variant(line: int, new: str) -> Path:
        out = list(lines)
        out[line - 1] = new
        return write(tmp_path, "btc-perp_1m.csv", "\n".join(out) + "\n")

    raises(variant(3, "2021-12-31 23:02:00.000000,46377.0,46370.0,46377.0,46411.0,1.0"), "inconsistent bar", row=3)
    raises(variant(4, "2021-12-31 23:03:00.000000,46411.0,46425.0,46411.0,46425.0,abc"), "non-numeric volume", row=4)
    raises(variant(5, "2021-12-31 23:04:00.000000,46425.0,46425.0,46420.0,46420.0,-5"), "negative volume", row=5)
    raises(variant(6, "2021-12-31 23:61:00.000000,46425.0,46425.0,46420.0,46420.0,5"), "bad timestamp", row=6)
    raises(variant(6, "2021-12-31 23:01:00.000000,46425.0,46425.0,46420.0,46420.0,5"), "out of order", row=6)
    raises(variant(3, lines[1]), "duplicate bar timestamp", row=3)
    raises(variant(7, "2021-12-31 23:06:00.000000,46425.0,46425.0"), "column count|empty field", row=7)


def test_ohlcv_without_market_or_interval(tmp_path: Path) -> None:
    p = write(tmp_path, "prices.csv", HEADER + "\n2022-01-01 00:00:00,1,1,1,1,1\n2022-01-01 00:01:00,1,1,1,1,1\n")
    raises(p, "pass --market and --symbol")
    assert one(p, Hints(market="spot", symbol="BTC/USD"))["exchange"].to_list() == ["unknown", "unknown"]
    p = write(tmp_path, "btc-spot.csv", HEADER + "\n2022-01-01 00:00:00,1,1,1,1,1\n")
    raises(p, "cannot tell the bar interval")


# -- Parquet trades ----------------------------------------------------------------------------
def test_real_binance_trades_parquet(shared: Path) -> None:
    name, batches = parse(shared / TRADES)
    assert name == "parquet-trades" and [b.kind for b in batches] == ["trade"]
    rows = batches[0].rows
    src = pq.read_table(shared / TRADES).to_pylist()
    assert rows.height == len(src) == 2001
    assert rows.select(pl.col("exchange", "market", "symbol").unique()).rows() == [("binance", "spot", "BTC/USDT")]
    first = rows.row(0, named=True)
    assert first == {
        "exchange": "binance", "market": "spot", "symbol": "BTC/USDT",
        "ts": ns("2021-01-08T00:00:00") + 278_000_000, "price": 39432.48, "amount": 0.000263,
        "taker_side": "sell",  # buyer_maker True: the taker sold
        "trade_id": "553287559",
    }
    assert rows.row(1, named=True)["taker_side"] == "buy"
    for got, want in zip(rows.iter_rows(named=True), src, strict=True):
        assert got["ts"] == int(want["timestamp"].timestamp() * 1000) * 1_000_000
        assert (got["price"], got["amount"]) == (want["price"], want["quantity"])
        assert got["trade_id"] == str(want["trade_id"])
        assert got["taker_side"] == ("sell" if want["buyer_maker"] == "True" else "buy")


def test_parquet_key_from_hints_and_without_venue(shared: Path, tmp_path: Path) -> None:
    rows = one(shared / TRADES, Hints(market="perp", symbol="ETH/USDT", exchange="bybit"))
    assert rows.select(pl.col("exchange", "market", "symbol").unique()).rows() == [("bybit", "perp", "ETH/USDT")]
    copy = tmp_path / "btcusdt-trades.parquet"
    shutil.copy(shared / TRADES, copy)
    raises(copy, "cannot tell the exchange from the path; pass --exchange")
    assert one(copy, Hints(exchange="binance"))["exchange"][0] == "binance"


def _write_trades(tmp_path: Path, name: str, **cols: list) -> Path:
    p = tmp_path / "binance" / name
    p.parent.mkdir(exist_ok=True)
    pq.write_table(pa.table(cols), p)
    return p


def test_parquet_trades_variants(tmp_path: Path) -> None:
    # bool flag, epoch ms integers, alias names
    p = _write_trades(
        tmp_path, "ethusdt-trades.parquet",
        time=[1610064000278, 1610064000310], id=[1, 2], price=[1.5, 2.5], qty=[3.0, 4.0], is_buyer_maker=[False, True],
    )
    rows = one(p)
    assert rows["ts"].to_list() == [1610064000278_000_000, 1610064000310_000_000]
    assert rows["taker_side"].to_list() == ["buy", "sell"]
    assert rows["symbol"].unique().to_list() == ["ETH/USDT"]


@pytest.mark.parametrize(
    ("cols", "match", "row"),
    [
        ({"price": [1.0, None]}, "empty price", 2),
        ({"price": [1.0, -2.0]}, "negative price", 2),
        ({"timestamp": [1610064000310, 1610064000278]}, "out of order", 2),
        ({"buyer_maker": ["True", "maybe"]}, "buyer_maker must be true or false", 2),
        ({"quantity": ["1", "x"]}, "non-numeric quantity|non-numeric amount", 2),
    ],
)
def test_malformed_parquet_trades(tmp_path: Path, cols: dict, match: str, row: int) -> None:
    base = {
        "timestamp": [1610064000278, 1610064000310], "trade_id": [1, 2], "price": [1.0, 2.0],
        "quantity": [1.0, 1.0], "buyer_maker": ["True", "False"],
    }
    p = _write_trades(tmp_path, "btcusdt-trades.parquet", **{**base, **cols})
    raises(p, match, row=row)


# -- Parquet quotes ----------------------------------------------------------------------------
def test_real_binance_quotes_parquet(shared: Path) -> None:
    name, batches = parse(shared / QUOTES)
    assert name == "parquet-quotes" and [b.kind for b in batches] == ["quote"]
    rows = batches[0].rows
    src = pq.read_table(shared / QUOTES).to_pylist()
    assert rows.height == len(src) == 451
    assert rows.row(0, named=True) == {
        "exchange": "binance", "market": "spot", "symbol": "BTC/USDT", "ts": ns("2021-01-08T00:00:01") + 76_000_000,
        "bid_price": 39432.99, "bid_amount": 0.0031, "ask_price": src[0]["ask"], "ask_amount": src[0]["ask_size"],
    }
    for got, want in zip(rows.iter_rows(named=True), src, strict=True):
        assert (got["bid_price"], got["bid_amount"], got["ask_price"], got["ask_amount"]) == (
            want["bid"], want["bid_size"], want["ask"], want["ask_size"],
        )


def test_quote_symbol_column_against_the_file_name(shared: Path, tmp_path: Path) -> None:
    (tmp_path / "binance").mkdir()
    neutral = tmp_path / "binance" / "quotes.parquet"
    shutil.copy(shared / QUOTES, neutral)
    assert one(neutral)["symbol"].unique().to_list() == ["BTC/USDT"]  # from the symbol column
    wrong = tmp_path / "binance" / "ethusdt-quotes.parquet"
    shutil.copy(shared / QUOTES, wrong)
    raises(wrong, "symbol column says BTC/USDT but the file name says ETH/USDT")
    assert one(wrong, Hints(symbol="BTC/USDT")).height == 451


def test_trade_and_quote_tables_are_not_confused(shared: Path) -> None:
    assert detect(RawFile(shared / TRADES)).name == "parquet-trades"
    assert detect(RawFile(shared / QUOTES)).name == "parquet-quotes"


def test_import_tables_into_store_twice(shared: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    files = [shared / MONTH, shared / TRADES, shared / QUOTES]
    first = import_paths(files, store)
    assert not first.errors, [f.error for f in first.errors]
    assert [f.added for f in first.files] == [{"bar": 45_031}, {"trade": 2001}, {"quote": 451}]
    again = import_paths(files, store)
    assert [f.added for f in again.files] == [{"bar": 0}, {"trade": 0}, {"quote": 0}]
    bars = store.read("bar", "unknown", "perp", "BTC/USD")
    assert bars.height == 45_031 and bars["volume"].null_count() == 45_031
