"""Tardis.dev CSV importers: real nautilus_trader samples (hand-checked rows) and malformed input.

Rows written in tests follow the exact Tardis CSV layouts (docs.tardis.dev, "Data Types");
values are copied from the real samples and then altered where a test needs a defect.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

from tapewatch.importer import import_paths
from tapewatch.sources import detect
from tapewatch.sources.base import Hints, RawFile
from tapewatch.sources.tardis import UnknownContract, contract
from tapewatch.store import Store

from parse_helpers import one, parse, raises, write

US = 1_000  # Tardis µs → ns
TRADES = "tardis/bitmex_trades_XBTUSD.csv"
L2 = "tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv"
SNAP5 = "tardis/binance-futures_book_snapshot_5_BTCUSDT.csv"
SNAP25 = "tardis/binance-futures_book_snapshot_25_BTCUSDT.csv"
QUOTES = "tardis/huobi-dm-swap_quotes_BTC-USD.csv"
TICKER_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,"
    "open_interest,last_price,index_price,mark_price"
)


def edit(shared: Path, rel: str, tmp_path: Path, line: int, new: str, name: str | None = None) -> Path:
    """A copy of a real sample with 1-based ``line`` replaced by ``new``."""
    lines = (shared / "nautilus-samples" / rel).read_text().splitlines()
    lines[line - 1] = new
    return write(tmp_path, name or Path(rel).name, "\n".join(lines) + "\n")


# -- recognition -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rel", "fmt"),
    [
        (TRADES, "tardis-trades"),
        (L2, "tardis-incremental-book-l2"),
        (SNAP5, "tardis-book-snapshot"),
        (SNAP25, "tardis-book-snapshot"),
        (QUOTES, "tardis-quotes"),
    ],
)
def test_real_samples_are_recognised_from_their_header(shared: Path, tmp_path: Path, rel: str, fmt: str) -> None:
    # content decides, not the name: the same bytes under a neutral name
    neutral = write(tmp_path, "data.csv", (shared / "nautilus-samples" / rel).read_text())
    assert detect(RawFile(neutral)).name == fmt


# -- trades ------------------------------------------------------------------------------------
def test_bitmex_trades_hand_checked(shared: Path) -> None:
    rows = one(shared / "nautilus-samples" / TRADES)
    assert rows.height == 10
    first = rows.row(0, named=True)
    assert first == {
        "exchange": "bitmex", "market": "perp", "symbol": "BTC/USD", "ts": 1583020803145000 * US,
        "price": 8531.5, "amount": pytest.approx(2152 / 8531.5, rel=1e-15), "taker_side": "sell",
        "trade_id": "ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf",
    }
    # every row: XBTUSD is 1 USD per contract, so base = contracts / price; side is the taker's
    with open(shared / "nautilus-samples" / TRADES, newline="") as fh:
        src = list(csv.DictReader(fh))
    for got, want in zip(rows.iter_rows(named=True), src, strict=True):
        assert got["ts"] == int(want["timestamp"]) * US
        assert got["amount"] == pytest.approx(float(want["amount"]) / float(want["price"]), rel=1e-15)
        assert got["taker_side"] == want["side"]
        assert got["trade_id"] == want["id"]


def test_unknown_side_and_missing_id_become_null(tmp_path: Path) -> None:
    p = write(
        tmp_path, "t.csv",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "coinbase,BTC-USD,1583020803145000,1583020803307160,,unknown,8531.5,0.5\n"
        "coinbase,BTC-USD,1583020803146000,1583020803307161,7,BUY,8531.0,0.25\n",
    )
    rows = one(p)
    assert rows["exchange"].to_list() == ["coinbase", "coinbase"]
    assert rows["market"].to_list() == ["spot", "spot"]
    assert rows["symbol"].to_list() == ["BTC/USD", "BTC/USD"]
    assert rows["taker_side"].to_list() == [None, "buy"]
    assert rows["trade_id"].to_list() == [None, "7"]
    assert rows["amount"].to_list() == [0.5, 0.25]  # spot: already base units


def test_liquidations_are_told_apart_by_name(tmp_path: Path) -> None:
    body = (
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance-futures,BTCUSDT,1598918403696000,1598918403810979,,sell,11657.08,0.25\n"
    )
    kind_name, batches = parse(write(tmp_path, "binance-futures_liquidations_2020-09-01_BTCUSDT.csv", body))
    assert [b.kind for b in batches] == ["liquidation"]
    assert batches[0].rows.row(0, named=True) == {
        "exchange": "binance", "market": "perp", "symbol": "BTC/USDT", "ts": 1598918403696000 * US,
        "side": "sell", "price": 11657.08, "amount": 0.25,
    }


# -- book --------------------------------------------------------------------------------------
def test_deribit_incremental_l2_hand_checked(shared: Path) -> None:
    rows = one(shared / "nautilus-samples" / L2)
    assert rows.height == 15
    assert rows.row(0, named=True) == {
        "exchange": "deribit", "market": "perp", "symbol": "BTC/USD", "ts": 1585699200245000 * US,
        "seq": None, "side": "ask", "price": 6421.5, "amount": pytest.approx(18640 / 6421.5, rel=1e-15),
        "is_snapshot": True,
    }
    # BTC-PERPETUAL amounts are USD: base = usd / price, on every level
    with open(shared / "nautilus-samples" / L2, newline="") as fh:
        src = list(csv.DictReader(fh))
    assert rows["amount"].to_list() == pytest.approx([float(r["amount"]) / float(r["price"]) for r in src], rel=1e-15)
    assert rows["price"].to_list() == [float(r["price"]) for r in src]


@pytest.mark.parametrize(("rel", "depth"), [(SNAP5, 5), (SNAP25, 25)])
def test_book_snapshots_become_snapshot_deltas_with_line_number_seq(shared: Path, rel: str, depth: int) -> None:
    rows = one(shared / "nautilus-samples" / rel)
    with open(shared / "nautilus-samples" / rel, newline="") as fh:
        src = list(csv.DictReader(fh))
    assert rows.height == len(src) * depth * 2
    assert rows["is_snapshot"].all()
    assert rows.select(pl.col("exchange", "market", "symbol").unique()).rows() == [("binance", "perp", "BTC/USDT")]
    expected = []
    for line, r in enumerate(src, start=2):
        for side, name in (("asks", "ask"), ("bids", "bid")):
            for i in range(depth):
                price, amount = float(r[f"{side}[{i}].price"]), float(r[f"{side}[{i}].amount"])
                expected.append((int(r["timestamp"]) * US, line, name, price, amount))
    assert rows.select("ts", "seq", "side", "price", "amount").rows() == expected
    first = rows.filter(pl.col("seq") == 2)
    assert first.filter(pl.col("side") == "ask")["price"].to_list()[0] == 11657.08
    assert first.filter(pl.col("side") == "bid").row(0, named=True)["amount"] == 10.896


def test_snapshot_with_thin_book_leaves_out_empty_levels(shared: Path, tmp_path: Path) -> None:
    lines = (shared / "nautilus-samples" / SNAP5).read_text().splitlines()
    cells = lines[1].split(",")
    cells[-2:] = ["", ""]  # bids[4] empty: only 4 bid levels that moment
    p = write(tmp_path, "s.csv", "\n".join([lines[0], ",".join(cells)]) + "\n")
    rows = one(p)
    assert rows.height == 9
    assert rows.filter(pl.col("side") == "bid").height == 4


def test_snapshot_level_with_price_but_no_amount_is_an_error(shared: Path, tmp_path: Path) -> None:
    lines = (shared / "nautilus-samples" / SNAP5).read_text().splitlines()
    cells = lines[3].split(",")
    cells[5] = ""  # asks[0].amount
    p = edit(shared, SNAP5, tmp_path, 4, ",".join(cells))
    raises(p, r"asks\[0\]\.price and asks\[0\]\.amount must both be given", row=4)


# -- quotes and derivative ticker --------------------------------------------------------------
def test_huobi_swap_quotes_hand_checked(shared: Path) -> None:
    rows = one(shared / "nautilus-samples" / QUOTES)
    assert rows.height == 10
    # BTC-USD coin-margined swap: 100 USD per contract
    assert rows.row(0, named=True) == {
        "exchange": "huobi", "market": "perp", "symbol": "BTC/USD", "ts": 1588291201099000 * US,
        "bid_price": 8629.2, "bid_amount": pytest.approx(806 * 100 / 8629.2, rel=1e-15),
        "ask_price": 8629.3, "ask_amount": pytest.approx(5494 * 100 / 8629.3, rel=1e-15),
    }


def test_derivative_ticker_gives_funding_and_open_interest(tmp_path: Path) -> None:
    p = write(
        tmp_path, "deribit_derivative_ticker.csv",
        TICKER_HEADER + "\n"
        "deribit,BTC-PERPETUAL,1585699200245000,1585699200355684,1585728000000000,0.0001,0.0002,"
        "100000000,6421.5,6420,6421\n"
        "deribit,BTC-PERPETUAL,1585699201245000,1585699201355684,,,,,6422,6421,6422\n",
    )
    _, batches = parse(p)
    by = {b.kind: b.rows for b in batches}
    assert by["funding"].rows(named=True) == [
        {"exchange": "deribit", "market": "perp", "symbol": "BTC/USD", "ts": 1585699200245000 * US,
         "rate": 0.0001, "mark_price": 6421.0, "index_price": 6420.0}
    ]
    oi = by["open_interest"].row(0, named=True)
    assert by["open_interest"].height == 1
    assert oi["oi"] == pytest.approx(100_000_000 / 6421.0)  # USD open interest / mark price
    assert oi["oi_value"] == pytest.approx(100_000_000)


# -- venue and contract mapping ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("tardis", "native", "exchange", "market", "symbol", "usd", "mult"),
    [
        ("binance", "BTCUSDT", "binance", "spot", "BTC/USDT", None, 1.0),
        ("binance-futures", "BTCUSDT", "binance", "perp", "BTC/USDT", None, 1.0),
        ("binance-futures", "BTCUSDT_230331", "binance", "future", "BTC/USDT", None, 1.0),
        ("binance-delivery", "BTCUSD_PERP", "binance", "perp", "BTC/USD", 100.0, 1.0),
        ("binance-delivery", "ETHUSD_PERP", "binance", "perp", "ETH/USD", 10.0, 1.0),
        ("bitmex", "XBTUSD", "bitmex", "perp", "BTC/USD", 1.0, 1.0),
        ("bitmex", "XBTZ20", "bitmex", "future", "BTC/USD", 1.0, 1.0),
        ("deribit", "BTC-PERPETUAL", "deribit", "perp", "BTC/USD", 1.0, 1.0),
        ("deribit", "ETH-25SEP20", "deribit", "future", "ETH/USD", 1.0, 1.0),
        ("deribit", "BTC_USDC-PERPETUAL", "deribit", "perp", "BTC/USDC", None, 1.0),
        ("huobi-dm-swap", "BTC-USD", "huobi", "perp", "BTC/USD", 100.0, 1.0),
        ("huobi-dm-swap", "ETH-USD", "huobi", "perp", "ETH/USD", 10.0, 1.0),
        ("okex-swap", "BTC-USDT-SWAP", "okx", "perp", "BTC/USDT", None, 0.01),
        ("okex-swap", "BTC-USD-SWAP", "okx", "perp", "BTC/USD", 100.0, 1.0),
        ("bybit", "BTCUSD", "bybit", "perp", "BTC/USD", 1.0, 1.0),
        ("bybit", "BTCUSDT", "bybit", "perp", "BTC/USDT", None, 1.0),
        ("coinbase", "BTC-USD", "coinbase", "spot", "BTC/USD", None, 1.0),
        ("kraken", "XBT/USD", "kraken", "spot", "BTC/USD", None, 1.0),
    ],
)
def test_contract_mapping(
    tardis: str, native: str, exchange: str, market: str, symbol: str, usd: float | None, mult: float
) -> None:
    c = contract(tardis, native)
    got = (c.exchange, c.market, c.symbol, c.usd_per_contract, c.base_per_contract)
    assert got == (exchange, market, symbol, usd, mult)


@pytest.mark.parametrize(
    ("tardis", "native", "match"),
    [
        ("bitmex", "ETHUSD", "contract size not known"),
        ("deribit", "BTC-25SEP20-10000-C", "options"),
        ("okex-swap", "DOGE-USDT-SWAP", "contract size not known"),
        ("nosuchvenue", "BTCUSDT", "unknown Tardis exchange id"),
    ],
)
def test_unknown_contracts_are_errors_not_guesses(tardis: str, native: str, match: str) -> None:
    with pytest.raises(UnknownContract, match=match):
        contract(tardis, native)


def test_hints_override_names_but_not_the_conversion(shared: Path) -> None:
    rows = one(shared / "nautilus-samples" / TRADES, Hints(exchange="bitmex2", market="future", symbol="XBT-USD"))
    assert rows.select(pl.col("exchange", "market", "symbol").unique()).rows() == [("bitmex2", "future", "XBT/USD")]
    assert rows["amount"][0] == pytest.approx(2152 / 8531.5)
    # an unlisted venue imports with --exchange and --market, amounts as base units
    c = contract("newvenue", "ABCUSDT", Hints(exchange="newvenue", market="spot"))
    assert (c.exchange, c.market, c.symbol, c.usd_per_contract) == ("newvenue", "spot", "ABC/USDT", None)


# -- malformed input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rel", "line", "new", "match"),
    [
        pytest.param(TRADES, 4, "bitmex,XBTUSD,1583020803276000,1583020803336743,abc,sell,8531.5",
                     "wrong column count: 7 columns, expected 8", id="wrong-column-count"),
        pytest.param(TRADES, 3, "bitmex,XBTUSD,1583020803276000,1583020803336743,abc,sell,85x1.5,1",
                     "non-numeric price '85x1.5'", id="non-numeric-price"),
        pytest.param(L2, 5, "deribit,BTC-PERPETUAL,1585699200245000,1585699200355684,true,ask,,1400",
                     "empty price", id="empty-required-field"),
        pytest.param(L2, 2, "deribit,BTC-PERPETUAL,1585699200245000,1585699200355684,true,middle,6421.5,1",
                     "side must be one of bid, ask, got 'middle'", id="bad-book-side"),
        pytest.param(L2, 3, "deribit,BTC-PERPETUAL,1585699200245000,1585699200355684,yes,ask,6422,1",
                     "is_snapshot must be true or false", id="bad-snapshot-flag"),
        pytest.param(TRADES, 2, "bitmex,XBTUSD,1583020803145000,1583020803307160,x,sideways,8531.5,1",
                     "side must be one of buy, sell, unknown", id="bad-trade-side"),
        pytest.param(TRADES, 6, "bitmex,XBTUSD,1583020803276000,1583020803336743,x,sell,8531.5,-1",
                     "negative amount", id="negative-amount"),
        pytest.param(TRADES, 6, "bitmex,XBTUSD,1583020803276000,1583020803336743,x,sell,0,1",
                     "cannot convert a contract amount to base units", id="zero-price-of-inverse-contract"),
        pytest.param(QUOTES, 5, "huobi-dm-swap,BTC-USD,1588291201243000,1588291201000000,5495,8629.3,8629.2,806",
                     "out of order", id="arrival-times-out-of-order"),
        pytest.param(TRADES, 7, "bitmex,ETHUSD,1583020803276000,1583020803336743,x,sell,230.5,1",
                     "bitmex ETHUSD: contract size not known", id="unknown-contract"),
        pytest.param(QUOTES, 2, "huobi-dm-swap,BTC-USD,2020-05-01,1588291201234268,5494,8629.3,8629.2,806",
                     "non-integer timestamp '2020-05-01'", id="bad-timestamp"),
    ],
)
def test_malformed_line_is_an_error_naming_it(
    shared: Path, tmp_path: Path, rel: str, line: int, new: str, match: str
) -> None:
    """A real sample with one line replaced by a defective one: the error names that line."""
    raises(edit(shared, rel, tmp_path, line, new), match, row=line)


def test_header_only_is_an_error(tmp_path: Path) -> None:
    p = write(tmp_path, "h.csv", "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n")
    raises(p, "no data rows")


# -- into the store ----------------------------------------------------------------------------
def test_import_is_idempotent(shared: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    files = [shared / "nautilus-samples" / r for r in (TRADES, L2, SNAP5, QUOTES)]
    first = import_paths(files, store)
    assert not first.errors, [f.error for f in first.errors]
    assert [sum(f.added.values()) for f in first.files] == [10, 15, 100, 10]
    again = import_paths(files, store)
    assert sum(sum(f.added.values()) for f in again.files) == 0
    trades = store.trades("bitmex", "perp", "BTC/USD")
    assert trades.height == 10 and trades["taker_side"].unique().to_list() == ["sell"]
    book = store.read("book_delta", "binance", "perp", "BTC/USDT")
    assert book.height == 100 and book["seq"].n_unique() == 10
