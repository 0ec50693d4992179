"""Binance REST bodies and websocket messages as standalone JSON files and inside recordings.

Real bodies come from ccxt's recorded responses (github.com/ccxt/ccxt,
ts/src/test/static/response/binance.json: fetchOHLCV spot 1h and swap 1m, fetchOrderBook swap,
fetchTrades spot), copied as data; ccxt's recorder stores some JSON numbers as strings, which the
parsers accept as Binance itself does not send them. openInterestHist and fundingRate bodies are
the example responses of Binance's API documentation.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tapewatch.errors import ImportFormatError
from tapewatch.importer import parse_file
from tapewatch.sources import Hints, RawFile, detect

MS = 1_000_000
SPOT_BTC = Hints(market="spot", symbol="BTCUSDT")
PERP_BTC = Hints(market="perp", symbol="BTC/USDT")

CCXT_SPOT_1H = [
    [1706630400000, "43519.34000000", "43936.00000000", "43171.00000000", "43488.71000000", "20.55495000",
     1706633999999, "891428.42858070", 3743, "10.91428000", "473782.95739920", "0"],
    [1706634000000, "43488.71000000", "43832.08000000", "43084.00000000", "43374.80000000", "21.80865000",
     1706637599999, "946546.04941680", 4365, "11.70274000", "508392.74777040", "0"],
    [1706637600000, "43374.81000000", "44048.00000000", "43062.00000000", "43361.11000000", "23.66547000",
     1706641199999, "1027527.77116170", 4063, "15.19718000", "660419.73275280", "0"],
]
CCXT_SWAP_1M = [
    [1712738460000, "71481.90", "71481.90", "71481.90", "71481.90", "0.002", 1712738519999, "142.96380", 1, "0.002",
     "142.96380", "0"],
    [1712738520000, "71471.00", "71471.00", "70459.40", "70459.40", "0.120", 1712738579999, "8518.17600", 9, "0.061",
     "4359.72600", "0"],
]
CCXT_SWAP_BOOK = {"lastUpdateId": "35263532345", "E": "1706803917264", "T": "1706803917258",
                  "bids": [["42651.10", "470.672"], ["42650.00", "66.452"]],
                  "asks": [["42878.00", "7.011"], ["42950.90", "0.005"]]}
CCXT_SPOT_AGGTRADES = [{"a": "2913537567", "p": "73238.70000000", "q": "0.00109000", "f": "3479463557",
                        "l": "3479463557", "T": "1710327661939", "m": False, "M": True}]
DOC_OI_HIST = [{"symbol": "BTCUSDT", "sumOpenInterest": "34085.00000000",
                "sumOpenInterestValue": "1927265695.27131325", "timestamp": 1616438700000}]
DOC_FUNDING = [{"symbol": "BTCUSDT", "fundingRate": "-0.03750000", "fundingTime": 1570608000000, "markPrice": "34287.54619963"},
               {"symbol": "BTCUSDT", "fundingRate": "0.00010000", "fundingTime": 1570636800000, "markPrice": ""}]


def _file(tmp_path: Path, name: str, body: object) -> Path:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body, indent=2))
    return path


def _only(batches: list, kind: str) -> pl.DataFrame:
    assert [b.kind for b in batches] == [kind]
    return batches[0].rows


def test_spot_klines_body(tmp_path: Path) -> None:
    path = _file(tmp_path, "klines.json", CCXT_SPOT_1H)
    assert detect(RawFile(path)).name == "binance-json"
    bars = _only(parse_file(path, SPOT_BTC)[1], "bar")
    assert bars.row(0) == ("binance", "spot", "BTC/USDT", 1706630400000 * MS, "1h", 43519.34, 43936.0, 43171.0, 43488.71,
                           20.55495, 10.91428, 891428.4285807, 3743)
    assert bars["interval"].unique().to_list() == ["1h"]  # told by openTime .. closeTime
    assert bars.height == 3


def test_swap_klines_body_and_interval_check(tmp_path: Path) -> None:
    path = _file(tmp_path, "k.json", CCXT_SWAP_1M)
    bars = _only(parse_file(path, Hints(market="perp", symbol="BTCUSDT", interval="1m"))[1], "bar")
    assert bars.select("market", "interval", "volume", "taker_buy_volume", "trades").rows() == [
        ("perp", "1m", 0.002, 0.002, 1), ("perp", "1m", 0.12, 0.061, 9)]
    with pytest.raises(ImportFormatError, match="kline spans 1m but its interval says 5m"):
        parse_file(path, Hints(market="perp", symbol="BTCUSDT", interval="5m"))


@pytest.mark.parametrize(
    ("hints", "reason"),
    [(Hints(symbol="BTCUSDT"), "pass --market"), (Hints(market="spot"), "pass --symbol"),
     (Hints(market="swap", symbol="BTCUSDT"), "unknown market")],
)
def test_body_without_market_or_symbol_needs_hints(tmp_path: Path, hints: Hints, reason: str) -> None:
    with pytest.raises(ImportFormatError, match=reason):
        parse_file(_file(tmp_path, "k.json", CCXT_SPOT_1H), hints)


@pytest.mark.parametrize(
    ("change", "reason"),
    [((1, "NaN"), "not a finite number"), ((5, "-1"), "negative volume"), ((2, "43000"), "inconsistent OHLC"),
     ((9, "99"), "taker buy volume 99 exceeds volume"), ((6, 1706634000000), "not one Binance interval")],
)
def test_bad_kline_names_the_item(tmp_path: Path, change: tuple[int, object], reason: str) -> None:
    body = json.loads(json.dumps(CCXT_SPOT_1H))
    body[1][change[0]] = change[1]
    with pytest.raises(ImportFormatError) as err:
        parse_file(_file(tmp_path, "k.json", body), SPOT_BTC)
    assert err.value.reason.startswith("item 2: ") and reason in err.value.reason, str(err.value)


def test_depth_snapshot_bodies(tmp_path: Path) -> None:
    rows = _only(parse_file(_file(tmp_path, "book.json", CCXT_SWAP_BOOK), PERP_BTC)[1], "book_delta")
    assert rows.select("ts", "seq", "side", "price", "amount", "is_snapshot").rows() == [
        (1706803917264 * MS, 35263532345, "bid", 42651.1, 470.672, True),
        (1706803917264 * MS, 35263532345, "bid", 42650.0, 66.452, True),
        (1706803917264 * MS, 35263532345, "ask", 42878.0, 7.011, True),
        (1706803917264 * MS, 35263532345, "ask", 42950.9, 0.005, True)]
    spot = {k: v for k, v in CCXT_SWAP_BOOK.items() if k not in ("E", "T")}  # spot depth has no time
    with pytest.raises(ImportFormatError, match="carries no time of its own"):
        parse_file(_file(tmp_path, "spot.json", spot), SPOT_BTC)


def test_aggtrades_and_trades_bodies(tmp_path: Path) -> None:
    rows = _only(parse_file(_file(tmp_path, "agg.json", CCXT_SPOT_AGGTRADES), SPOT_BTC)[1], "trade")
    # m=false: the buyer was the taker (ccxt parsed it as side "buy")
    assert rows.row(0) == ("binance", "spot", "BTC/USDT", 1710327661939 * MS, 73238.7, 0.00109, "buy", "2913537567",
                           None)  # local_ts: a saved body has no receive time
    trades = [{"id": 28457, "price": "4.00000100", "qty": "12.00000000", "quoteQty": "48.000012",
               "time": 1499865549590, "isBuyerMaker": True, "isBestMatch": True}]
    rows = _only(parse_file(_file(tmp_path, "trades.json", trades), SPOT_BTC)[1], "trade")
    assert rows.select("ts", "taker_side", "trade_id").row(0) == (1499865549590 * MS, "sell", "28457")


def test_open_interest_and_funding_bodies(tmp_path: Path) -> None:
    oi = _only(parse_file(_file(tmp_path, "oi.json", DOC_OI_HIST), Hints())[1], "open_interest")
    assert oi.row(0) == ("binance", "perp", "BTC/USDT", 1616438700000 * MS, 34085.0, 1927265695.27131325)
    fr = _only(parse_file(_file(tmp_path, "fr.json", DOC_FUNDING), Hints())[1], "funding")
    assert fr.select("ts", "rate", "mark_price", "index_price").rows() == [
        (1570608000000 * MS, -0.0375, 34287.54619963, None), (1570636800000 * MS, 0.0001, None, None)]
    current = {"openInterest": "10659.509", "symbol": "BTCUSDT", "time": 1589437530011}
    oi = _only(parse_file(_file(tmp_path, "oi_now.json", current), Hints())[1], "open_interest")
    assert oi.select("ts", "oi", "oi_value").row(0) == (1589437530011 * MS, 10659.509, None)


def test_exchange_info_body(tmp_path: Path) -> None:
    info = {"timezone": "UTC", "serverTime": 1633998511098, "rateLimits": [], "exchangeFilters": [], "symbols": [
        {"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC", "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "922327.00000000", "tickSize": "0.00000100"},
            {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "100000.00000000", "stepSize": "0.00010000"}]},
        {"symbol": "1000SHIBUSDT", "status": "BREAK", "baseAsset": "1000SHIB", "quoteAsset": "USDT", "filters": []}]}
    rows = _only(parse_file(_file(tmp_path, "info.json", info), Hints())[1], "instrument")
    assert rows.rows() == [
        ("binance", "spot", "ETH/BTC", 1633998511098 * MS, "ETHBTC", "ETH", "BTC", 0.000001, 0.0001, "TRADING"),
        ("binance", "spot", "1000SHIB/USDT", 1633998511098 * MS, "1000SHIBUSDT", "1000SHIB", "USDT", None, None, "BREAK")]


def test_websocket_messages_as_json_lines(tmp_path: Path) -> None:
    msgs = [
        {"result": None, "id": 1},
        {"e": "aggTrade", "E": 1626992741575, "a": 16599292, "s": "CTKUSDT", "p": "1.01100", "q": "10", "f": 23961322,
         "l": 23961322, "T": 1626992741421, "m": True},
        {"e": "kline", "E": 1626992741424, "s": "CTKUSDT", "k": {"t": 1626992700000, "T": 1626992759999, "s": "CTKUSDT",
         "i": "1m", "f": 1, "L": 2, "o": "1.01", "c": "1.011", "h": "1.011", "l": "1.01", "v": "3917", "n": 48,
         "x": False, "q": "3957.899", "V": "1729", "Q": "1748.019", "B": "0"}},
        {"e": "depthUpdate", "E": 1626992741037, "T": 1626992741024, "s": "CTKUSDT", "U": 10, "u": 12, "pu": 9,
         "b": [["1.0100", "0"]], "a": [["1.0120", "5"]]},
        {"e": "bookTicker", "u": 12, "s": "CTKUSDT", "b": "1.0100", "B": "2", "a": "1.0110", "A": "3",
         "T": 1626992741012, "E": 1626992741017},
        {"e": "markPriceUpdate", "E": 1626992742000, "s": "CTKUSDT", "p": "1.01"},
    ]
    path = _file(tmp_path, "ws.jsonl", "\n".join(json.dumps(m) for m in msgs) + "\n")
    assert detect(RawFile(path)).name == "binance-json"
    with pytest.raises(ImportFormatError, match="pass --market"):
        parse_file(path, Hints())
    batches = {b.kind: b.rows for b in parse_file(path, Hints(market="perp"))[1]}
    assert set(batches) == {"trade", "book_delta", "quote"}  # the open kline is not a bar
    assert batches["trade"]["taker_side"].to_list() == ["sell"]
    assert batches["book_delta"].select("seq", "first_seq", "prev_seq", "side", "amount").rows() == [
        (12, 10, 9, "bid", 0.0), (12, 10, 9, "ask", 5.0)]
    assert batches["quote"]["ts"].to_list() == [1626992741017 * MS]
    bad = _file(tmp_path, "bad.jsonl", json.dumps(msgs[1]) + "\n" + json.dumps({**msgs[1], "q": "-10"}) + "\n")
    with pytest.raises(ImportFormatError) as err:
        parse_file(bad, Hints(market="perp"))
    assert err.value.row == 2 and "negative q" in err.value.reason


def test_rest_bodies_in_a_recording(tmp_path: Path) -> None:
    """In a recording the URL gives market, symbol and interval; a kline still open at the
    recording time is dropped; mark-price klines are not trade bars and are skipped."""
    recv = "1712738540.5"  # during the second kline of CCXT_SWAP_1M
    lines = [
        f"https://fapi.binance.com/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=2 -> {recv}: {json.dumps(CCXT_SWAP_1M)}",
        f"https://fapi.binance.com/fapi/v1/markPriceKlines?symbol=BTCUSDT&interval=1m -> {recv}: {json.dumps(CCXT_SWAP_1M)}",
        f"https://api.binance.com/api/v3/aggTrades?symbol=BTCUSDT -> 1710327662.0: {json.dumps(CCXT_SPOT_AGGTRADES)}",
        f"https://fapi.binance.com/futures/data/openInterestHist?symbol=BTCUSDT&period=5m -> 1616438800.0: {json.dumps(DOC_OI_HIST)}",
        f"https://fapi.binance.com/fapi/v1/fundingRate?symbol=BTCUSDT -> 1570640000.0: {json.dumps(DOC_FUNDING)}",
        f"https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=5 -> 1706803917.3: {json.dumps(CCXT_SWAP_BOOK)}",
    ]
    path = _file(tmp_path, "BINANCE_FUTURES.http.1.0", "\n".join(lines) + "\n")
    name, batches = parse_file(path, Hints())
    assert name == "cryptofeed-recording"
    got = {b.kind: b.rows for b in batches}
    assert {k: v.height for k, v in got.items()} == {"bar": 1, "trade": 1, "open_interest": 1, "funding": 2, "book_delta": 4}
    assert got["bar"].select("market", "symbol", "ts").row(0) == ("perp", "BTC/USDT", 1712738460000 * MS)
    assert got["trade"].select("market", "taker_side").row(0) == ("spot", "buy")
    with pytest.raises(ImportFormatError) as err:
        bad = _file(tmp_path, "bad", lines[0].replace('"0.120"', '"-0.120"') + "\n")
        parse_file(bad, Hints())
    assert err.value.row == 1 and err.value.reason.startswith("item 2: negative volume")


def test_coin_m_is_refused_clearly(tmp_path: Path) -> None:
    path = _file(tmp_path, "rec", "wss://dstream.binance.com/stream?streams=btcusd_perp@aggTrade <-> 1.0\n")
    with pytest.raises(ImportFormatError, match="COIN-M"):
        parse_file(path, Hints())


def test_exchange_flag_names_a_venue_speaking_binances_protocol(tmp_path: Path) -> None:
    """Binance.US serves the same klines body: with ``--exchange binanceus`` it is stored as such."""
    hints = Hints(exchange="binanceus", market="spot", symbol="BTCUSDT")
    bars = _only(parse_file(_file(tmp_path, "klines.json", CCXT_SPOT_1H), hints)[1], "bar")
    assert set(bars.get_column("exchange")) == {"binanceus"}
    assert bars.get_column("ts").to_list() == [int(k[0]) * MS for k in CCXT_SPOT_1H]
