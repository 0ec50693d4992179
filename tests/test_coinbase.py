"""Coinbase Exchange: candles and trades as JSON (REST bodies) and CSV in the documented layouts,
REST bodies inside recordings, feed messages, and clear errors.

Real bodies below come from ccxt's recorded responses (github.com/ccxt/ccxt,
ts/src/test/static/response/coinbaseexchange.json), copied as data; ccxt's own parsed result is
quoted beside them where it is a cross-check.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tapewatch.errors import ImportFormatError
from tapewatch.importer import import_paths, parse_file
from tapewatch.sources import Hints, RawFile, detect
from tapewatch.store import Store

S = 1_000_000_000
# ccxt fetchTrades BTC/USDT: httpResponse; ccxt parsed it as side "buy" (taker) at 1710327617710 ms
CCXT_TRADE = {"trade_id": "18502034", "side": "sell", "size": "0.00007448", "price": "73271.63000000",
              "time": "2024-03-13T11:00:17.710679Z"}
# ccxt fetchOHLCV BTC/USDT 1h: [time s, low, high, open, close, volume]
CCXT_CANDLE = [1710327600, 73241.5, 73402.47, 73243.33, 73370.65, 1.56794406]
BTC_USD = Hints(symbol="BTC-USD")

# Candles in the documented layout, newest first, 1-minute, with 12:03 missing (no trades then).
T0 = 1_710_331_200  # 2024-03-13 12:00:00 UTC
CANDLES = [
    [T0 + 240, 73300.0, 73350.5, 73310.0, 73340.0, 0.5],
    [T0 + 120, 73200.0, 73320.0, 73250.0, 73310.0, 1.25],
    [T0 + 60, 73180.0, 73260.0, 73200.0, 73250.0, 2.0],
    [T0, 73150.0, 73210.0, 73160.0, 73200.0, 0.75],
]


def _write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _only(batches: list, kind: str) -> pl.DataFrame:
    found = [b.rows for b in batches if b.kind == kind]
    assert len(found) == 1, [b.kind for b in batches]
    return found[0]


# -- candles -----------------------------------------------------------------------------------------
def test_candles_json_newest_first_become_ordered_bars_with_the_gap_kept(tmp_path: Path) -> None:
    path = _write(tmp_path / "candles.json", CANDLES)
    name, batches = parse_file(path, BTC_USD)
    assert name == "coinbase-json"
    bars = _only(batches, "bar")
    assert bars["ts"].to_list() == [(T0 + m * 60) * S for m in (0, 1, 2, 4)]  # 12:03 absent, not a zero bar
    assert bars["interval"].unique().to_list() == ["1m"]  # from the spacing
    first = bars.row(0, named=True)
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (73160.0, 73210.0, 73150.0, 73200.0, 0.75)
    assert bars["taker_buy_volume"].is_null().all()  # Coinbase candles have no taker split
    assert bars["quote_volume"].is_null().all() and bars["trades"].is_null().all()
    assert set(bars["exchange"]) == {"coinbase"} and set(bars["market"]) == {"spot"} and set(bars["symbol"]) == {"BTC/USD"}


def test_candles_interval_from_sparse_spacing_and_from_hint(tmp_path: Path) -> None:
    sparse = [c for c in CANDLES if c[0] in (T0, T0 + 120, T0 + 300)] + [[T0 + 300, 1.0, 1.0, 1.0, 1.0, 1.0]]
    path = _write(tmp_path / "c.json", sparse)
    bars = _only(parse_file(path, BTC_USD)[1], "bar")
    assert bars["interval"].unique().to_list() == ["1m"]  # gaps of 2 and 3 minutes: the grid is 1m
    one = _write(tmp_path / "one.json", [CCXT_CANDLE])
    with pytest.raises(ImportFormatError, match="pass --interval"):
        parse_file(one, BTC_USD)
    bars = _only(parse_file(one, Hints(symbol="BTC-USDT", interval="1h"))[1], "bar")
    assert bars.row(0) == ("coinbase", "spot", "BTC/USDT", 1710327600 * S, "1h", 73243.33, 73402.47, 73241.5,
                           73370.65, 1.56794406, None, None, None)
    with pytest.raises(ImportFormatError, match="not on the 1d grid"):
        parse_file(one, Hints(symbol="BTC-USDT", interval="1d"))


def test_candles_csv_documented_header(tmp_path: Path, store: Store) -> None:
    lines = ["time,low,high,open,close,volume"] + [",".join(str(v) for v in c) for c in CANDLES]
    path = _write(tmp_path / "export.csv", "\n".join(lines) + "\n")
    assert detect(RawFile(path)).name == "coinbase-candles-csv"
    json_bars = _only(parse_file(_write(tmp_path / "c.json", CANDLES), BTC_USD)[1], "bar")
    csv_bars = _only(parse_file(path, BTC_USD)[1], "bar")
    assert csv_bars.equals(json_bars)
    report = import_paths([path], store, BTC_USD)
    assert not report.errors and report.files[0].added == {"bar": 4}
    resampled = store.bars("coinbase", "spot", "BTC/USD", "5m")
    assert resampled.height == 1 and resampled["volume"][0] == pytest.approx(4.5)
    assert resampled["taker_buy_volume"][0] is None  # unknown stays unknown


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("1710331260,73180,73260,73200,73250,-2", "negative volume"),
        ("1710331260,73180,NaN,73200,73250,2", "not a finite number"),
        ("1710331260,73300,73260,73200,73250,2", "inconsistent candle"),
        ("1710331260,73180,73260,abc,73250,2", "non-numeric open"),
        ("1710331260,73180,73260,73200,73250", "column"),
        ("1710331200,73180,73260,73200,73250,2", "two candles for the same time"),
    ],
)
def test_candles_csv_errors_name_the_line(tmp_path: Path, row: str, reason: str) -> None:
    path = _write(tmp_path / "c.csv", "time,low,high,open,close,volume\n1710331200,1,2,1,2,3\n" + row + "\n")
    with pytest.raises(ImportFormatError) as err:
        parse_file(path, BTC_USD)
    assert reason in err.value.reason and err.value.row == 3, str(err.value)


def test_symbol_is_needed_where_the_file_does_not_say_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.json", CANDLES)
    with pytest.raises(ImportFormatError, match="pass --symbol"):
        parse_file(path, Hints())


# -- trades ------------------------------------------------------------------------------------------
def test_trades_json_side_is_the_makers_side(tmp_path: Path) -> None:
    body = [CCXT_TRADE, {**CCXT_TRADE, "trade_id": 18502033, "side": "buy", "time": "2024-03-13T11:00:17.700000Z"}]
    rows = _only(parse_file(_write(tmp_path / "t.json", body), Hints(symbol="BTC-USDT"))[1], "trade")
    # newest first from the venue -> oldest first here
    assert rows.select("ts", "trade_id", "price", "amount", "taker_side").rows() == [
        (1710327617700000000, "18502033", 73271.63, 0.00007448, "sell"),
        (1710327617710679000, "18502034", 73271.63, 0.00007448, "buy"),  # ccxt: side "buy", 1710327617710 ms
    ]


def test_trades_csv_matches_json(tmp_path: Path) -> None:
    body = [{"time": f"2024-03-13T11:00:{s:02d}.5Z", "trade_id": 100 + s, "price": str(73000 + s), "size": "0.1",
             "side": "sell" if s % 2 else "buy"} for s in range(5, 0, -1)]
    csv = "time,trade_id,price,size,side\n" + "".join(
        f"{t['time']},{t['trade_id']},{t['price']},{t['size']},{t['side']}\n" for t in body)
    from_json = _only(parse_file(_write(tmp_path / "t.json", body), BTC_USD)[1], "trade")
    path = _write(tmp_path / "t.csv", csv)
    assert detect(RawFile(path)).name == "coinbase-trades-csv"
    from_csv = _only(parse_file(path, BTC_USD)[1], "trade")
    assert from_csv.equals(from_json)
    assert from_csv["taker_side"].to_list() == ["buy", "sell", "buy", "sell", "buy"]  # opposite of maker side
    assert from_csv["ts"].is_sorted()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2024-03-13T11:00:06Z,7,73000,-0.1,buy", "negative size"),
        ("2024-03-13T11:00:06Z,7,nan,0.1,buy", "not a finite number"),
        ("2024-03-13T11:00:06Z,7,73000,0.1,long", "side must be buy or sell"),
        ("yesterday,7,73000,0.1,buy", "bad time"),
        ("2024-03-13T11:00:06Z,x7,73000,0.1,buy", "non-integer trade_id"),
    ],
)
def test_trades_csv_errors_name_the_line(tmp_path: Path, row: str, reason: str) -> None:
    path = _write(tmp_path / "t.csv", "time,trade_id,price,size,side\n2024-03-13T11:00:05Z,6,73000,0.1,sell\n" + row + "\n")
    with pytest.raises(ImportFormatError) as err:
        parse_file(path, BTC_USD)
    assert reason in err.value.reason and err.value.row == 3, str(err.value)


def test_trades_json_error_names_the_item(tmp_path: Path) -> None:
    body = [CCXT_TRADE, {k: v for k, v in CCXT_TRADE.items() if k != "price"}]
    with pytest.raises(ImportFormatError, match=r"item 2: missing field 'price'"):
        parse_file(_write(tmp_path / "t.json", body), BTC_USD)


# -- REST bodies inside a recording --------------------------------------------------------------------
def test_rest_bodies_in_a_recording(tmp_path: Path, store: Store) -> None:
    book = {"bids": [["73000.00", "1.5", 3], ["72999.00", "0.25", 1]], "asks": [["73001.00", "2", 2]], "sequence": 987654}
    book3 = {"bids": [["73000.00", "1", "a1b2c3d4-0000-0000-0000-000000000001"],
                      ["73000.00", "0.5", "a1b2c3d4-0000-0000-0000-000000000002"]],
             "asks": [["73001.00", "2", "a1b2c3d4-0000-0000-0000-000000000003"]], "sequence": 987700}
    lines = [
        f"https://api.exchange.coinbase.com/products/BTC-USD/candles?granularity=60 -> 1710331500.25: {json.dumps(CANDLES)}",
        f"https://api.exchange.coinbase.com/products/BTC-USD/trades -> 1710331501.5: {json.dumps([CCXT_TRADE])}",
        f"https://api.exchange.coinbase.com/products/BTC-USD/book?level=2 -> 1710331502.125: {json.dumps(book)}",
        f"https://api.exchange.coinbase.com/products/ETH-USD/book?level=3 -> 1710331503.0: {json.dumps(book3)}",
        'https://api.exchange.coinbase.com/products -> 1710331504.0: [{"id":"BTC-USD","base_currency":"BTC",'
        '"quote_currency":"USD","quote_increment":"0.01","base_increment":"0.00000001","status":"online"}]',
        'https://api.exchange.coinbase.com/products/NOPE-USD/book?level=2 -> 1710331505.0: {"message":"NotFound"}',
        "https://api.exchange.coinbase.com/time -> 1710331506.0: {\"iso\":\"2024-03-13T12:05:06Z\",\"epoch\":1710331506}",
    ]
    path = _write(tmp_path / "COINBASE.1", "\n".join(lines) + "\n")
    report = import_paths([path], store)
    assert not report.errors, report.errors[0].error
    assert report.files[0].rows == {"bar": 4, "trade": 1, "book_delta": 5, "instrument": 1}
    bars = store.read("bar", "coinbase", "spot", "BTC/USD")
    assert bars["interval"].unique().to_list() == ["1m"] and bars.height == 4
    snap = store.read("book_delta", "coinbase", "spot", "BTC/USD")
    assert snap["seq"].unique().to_list() == [987654] and snap["is_snapshot"].all()
    assert snap["ts"].dt.epoch("ns").unique().to_list() == [1710331502125000000]  # the recording time, exact
    eth = store.read("book_delta", "coinbase", "spot", "ETH/USD").sort("side")
    assert eth.select("side", "price", "amount").rows() == [("ask", 73001.0, 2.0), ("bid", 73000.0, 1.5)]  # level 3 summed
    inst = store.read("instrument", "coinbase", "spot", "BTC/USD").row(0, named=True)
    assert (inst["native_symbol"], inst["tick_size"], inst["step_size"], inst["status"]) == ("BTC-USD", 0.01, 1e-8, "online")


def test_products_and_book_bodies_alone_have_no_time(tmp_path: Path) -> None:
    products = [{"id": "BTC-USD", "base_currency": "BTC", "quote_currency": "USD"}]
    with pytest.raises(ImportFormatError, match="carries no time"):
        parse_file(_write(tmp_path / "p.json", products), Hints())
    book = {"sequence": 5, "bids": [["1.0", "2.0", 1], ["0.9", "1", 1]], "asks": [["1.1", "1", 1], ["1.2", "1", 1]]}
    with pytest.raises(ImportFormatError, match="carries no time"):
        parse_file(_write(tmp_path / "b.json", book), BTC_USD)
    dated = {**book, "time": "2024-03-13T12:00:00.000001Z"}
    rows = _only(parse_file(_write(tmp_path / "b2.json", dated), BTC_USD)[1], "book_delta")
    assert rows.height == 4 and rows["ts"].unique().to_list() == [1710331200000001000]


def test_level1_book_is_a_quote(tmp_path: Path) -> None:
    book = {"sequence": 5, "bids": [["73000.0", "1.5", 3]], "asks": [["73001.0", "0.5", 1]], "time": "2024-03-13T12:00:00Z"}
    quote = _only(parse_file(_write(tmp_path / "b.json", book), BTC_USD)[1], "quote")
    assert quote.row(0)[3:] == (1710331200 * S, 73000.0, 1.5, 73001.0, 0.5, None)  # no local receive time


# -- feed messages as JSON Lines -----------------------------------------------------------------------
def test_feed_messages_as_json_lines(tmp_path: Path) -> None:
    msgs = [
        {"type": "subscriptions", "channels": [{"name": "level2", "product_ids": ["BTC-USD"]}]},
        {"type": "snapshot", "product_id": "BTC-USD", "bids": [["73000.00", "1.5"]], "asks": [["73001.00", "2"]]},
        {"type": "l2update", "product_id": "BTC-USD", "changes": [["buy", "73000.00", "0"], ["sell", "73002.00", "1"]],
         "time": "2024-03-13T12:00:00.000002Z"},
        {"type": "match", "trade_id": 7, "side": "buy", "size": "0.1", "price": "73001.00", "product_id": "BTC-USD",
         "sequence": 1, "time": "2024-03-13T12:00:00.000003Z"},
        {"type": "heartbeat", "sequence": 2, "last_trade_id": 7, "product_id": "BTC-USD", "time": "2024-03-13T12:00:01Z"},
    ]
    path = _write(tmp_path / "feed.jsonl", "\n".join(json.dumps(m) for m in msgs) + "\n")
    _, batches = parse_file(path, Hints())
    book = _only(batches, "book_delta")
    # the snapshot has no time: just before its first update
    assert book.select("ts", "side", "price", "amount", "is_snapshot").rows() == [
        (1710331200000001999, "bid", 73000.0, 1.5, True), (1710331200000001999, "ask", 73001.0, 2.0, True),
        (1710331200000002000, "bid", 73000.0, 0.0, False), (1710331200000002000, "ask", 73002.0, 1.0, False)]
    trade = _only(batches, "trade").row(0, named=True)
    assert (trade["taker_side"], trade["trade_id"], trade["ts"]) == ("sell", "7", 1710331200000003000)


def test_feed_snapshot_without_any_time_is_an_error(tmp_path: Path) -> None:
    msg = {"type": "snapshot", "product_id": "BTC-USD", "bids": [["1", "1"]], "asks": [["2", "1"]]}
    with pytest.raises(ImportFormatError, match="no time and no update follows it"):
        parse_file(_write(tmp_path / "snap.json", msg), Hints())


def test_bad_feed_line_is_named(tmp_path: Path) -> None:
    good = {"type": "match", "trade_id": 7, "side": "buy", "size": "0.1", "price": "1", "product_id": "BTC-USD",
            "time": "2024-03-13T12:00:00Z"}
    lines = [json.dumps(good), json.dumps({**good, "trade_id": 8, "price": "-1"})]
    with pytest.raises(ImportFormatError) as err:
        parse_file(_write(tmp_path / "feed.jsonl", "\n".join(lines) + "\n"), Hints())
    assert err.value.row == 2 and "price must be > 0" in err.value.reason


def test_not_taken_for_a_binance_body(tmp_path: Path) -> None:
    klines = [[1712738460000, "71481.90", "71481.90", "71481.90", "71481.90", "0.002", 1712738519999, "142.96380", 1,
               "0.002", "142.96380", "0"]]
    assert detect(RawFile(_write(tmp_path / "k.json", klines))).name == "binance-json"
    assert detect(RawFile(_write(tmp_path / "c.json", CANDLES))).name == "coinbase-json"
