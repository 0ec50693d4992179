"""cryptofeed recordings: every real recording imports, counts match the raw lines, bars built by
tapewatch from the recorded trades equal bars computed here straight from the raw JSON, with the
aggressor side right for each venue; malformed lines are errors naming the line."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tapewatch.bars import build_bars
from tapewatch.errors import ImportFormatError
from tapewatch.importer import import_paths, parse_file
from tapewatch.sources import Hints, RawFile, detect
from tapewatch.store import Store

from conftest import SHARED

REC = SHARED / "cryptofeed-recordings"
MIN_NS = 60_000_000_000
FILES = ["BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0", "BINANCE_FUTURES.0", "BINANCE_FUTURES.http.0.0",
         "BINANCE_FUTURES.ws.1.0", "COINBASE.0", "COINBASE.ws.28.0"]


# -- reading the raw lines independently of the importer ----------------------------------------
def raw_events(path: Path) -> list[dict[str, Any]]:
    """Each line as {"kind": "rest" | "ws", "url", "recv": recording-time text, "body"}: ws messages
    get the URL of the connect line before them. Written with plain str.split, not the module's regexes."""
    out: list[dict[str, Any]] = []
    url = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("configuration: "):
            continue
        head, sep, body = line.partition(": ")
        parts = head.split(" ")
        if len(parts) == 3 and parts[1] == "<->":
            url = parts[0]
        elif len(parts) == 3 and parts[1] == "->":
            out.append({"kind": "rest", "url": parts[0], "recv": parts[2], "body": json.loads(body)})
        elif len(parts) == 1 and sep:
            out.append({"kind": "ws", "url": url, "recv": head, "body": json.loads(body)})
    return out


def binance_events(path: Path, event: str) -> list[dict[str, Any]]:
    return [e["body"]["data"] for e in raw_events(path) if e["kind"] == "ws" and e["body"]["data"].get("e") == event]


def coinbase_messages(path: Path, *types: str) -> list[dict[str, Any]]:
    return [e["body"] for e in raw_events(path) if e["kind"] == "ws" and e["body"].get("type") in types]


def expected_counts(name: str) -> dict[str, int]:
    """Rows per kind each recording should give, derived from the raw JSON."""
    events = raw_events(REC / name)
    rest = [e["body"] for e in events if e["kind"] == "rest"]
    ws = [e["body"] for e in events if e["kind"] == "ws"]
    counts: dict[str, int] = defaultdict(int)
    for url, body in ((e["url"], e["body"]) for e in events if e["kind"] == "rest"):
        if "exchangeInfo" in url:
            perp = "fapi" in url
            counts["instrument"] += sum(1 for s in body["symbols"] if not perp or s["contractType"] == "PERPETUAL")
        elif "/depth" in url:
            counts["book_delta"] += len(body["bids"]) + len(body["asks"])
        elif url.endswith("/products"):
            counts["instrument"] += len(body)
    assert rest or ws
    for msg in ws:
        if "stream" in msg:  # Binance combined stream
            d = msg["data"]
            if d.get("e") == "aggTrade":
                counts["trade"] += 1
            elif d.get("e") == "depthUpdate":
                counts["book_delta"] += len(d["b"]) + len(d["a"])
            elif msg["stream"].endswith("@bookTicker"):
                counts["quote"] += 1
            elif d.get("e") == "kline" and d["k"]["x"]:
                counts["bar"] += 1
        else:  # Coinbase feed
            t = msg.get("type")
            if t in ("match", "last_match"):
                counts["trade"] += 1
            elif t == "snapshot":
                counts["book_delta"] += len(msg["bids"]) + len(msg["asks"])
            elif t == "l2update":
                counts["book_delta"] += len(msg["changes"])
            elif t == "ticker":
                counts["quote"] += 1
    return dict(counts)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, Any]]:
    """All real recordings imported once, file by file, into one store."""
    assert REC.is_dir(), f"real recordings not found at {REC}"
    store = Store(tmp_path_factory.mktemp("rec") / "store")
    results = {}
    for name in FILES:
        report = import_paths([REC / name], store)
        assert not report.errors, report.errors[0].error
        results[name] = report.files[0]
    return store, results


# -- every file imports, counts equal the raw lines -----------------------------------------------
@pytest.mark.parametrize("name", FILES)
def test_each_recording_imports_with_counts_from_the_raw_lines(imported: tuple[Store, dict], name: str) -> None:
    _, results = imported
    res = results[name]
    assert res.format == "cryptofeed-recording"
    assert res.rows == expected_counts(name)


def test_counts_match_the_provenance_notes() -> None:
    """Spot-check the derivation against numbers stated in PROVENANCE.md."""
    assert len(coinbase_messages(REC / "COINBASE.ws.28.0", "match")) == 97
    assert len(coinbase_messages(REC / "COINBASE.ws.28.0", "l2update")) == 9719
    assert len(coinbase_messages(REC / "COINBASE.ws.28.0", "snapshot")) == 10
    fut = REC / "BINANCE_FUTURES.ws.1.0"
    assert len(binance_events(fut, "aggTrade")) == 91
    assert len(binance_events(fut, "depthUpdate")) == 764
    assert len(binance_events(fut, "kline")) == 67
    assert len(binance_events(REC / "BINANCE.ws.1.0", "depthUpdate")) == 177
    assert expected_counts("COINBASE.ws.28.0")["trade"] == 97 + 10  # matches + last_match per product


def test_trades_and_bars_are_stored_once_each(imported: tuple[Store, dict]) -> None:
    store, results = imported
    trades = store.read("trade")
    assert trades.height == 2 + 91 + 107
    assert trades.group_by("exchange", "market").len().sort("exchange", "market").rows() == [
        ("binance", "perp", 91), ("binance", "spot", 2), ("coinbase", "spot", 107)]
    assert results["BINANCE_FUTURES.ws.1.0"].added["bar"] == 4


# -- MUST SHOW: bars from recorded trades equal bars computed from the raw JSON ---------------------
def _reference_bars(trades: list[tuple[int, int, float, float, bool]]) -> dict[int, dict[str, float]]:
    """1m bars from (ts ns, trade id, price, size, taker bought) straight from the raw lines;
    trades in time order, ties by the venue's trade id (which increases with time)."""
    bars: dict[int, dict[str, float]] = {}
    for ts, _tid, px, qty, taker_bought in sorted(trades, key=lambda t: (t[0], t[1])):
        minute = ts - ts % MIN_NS
        b = bars.setdefault(minute, {"open": px, "high": px, "low": px, "close": px, "volume": 0.0,
                                     "taker_buy_volume": 0.0, "taker_sell_volume": 0.0, "quote_volume": 0.0,
                                     "trades": 0})
        b["high"], b["low"], b["close"] = max(b["high"], px), min(b["low"], px), px
        b["volume"] += qty
        b["quote_volume"] += px * qty
        b["taker_buy_volume" if taker_bought else "taker_sell_volume"] += qty
        b["trades"] += 1
    return bars


def _iso_ns(text: str) -> int:
    """``2021-04-17T16:43:37.089723Z`` to ns, independently of the module under test."""
    from datetime import datetime, timezone

    whole, _, frac = text.rstrip("Z").partition(".")
    secs = int(datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp())
    return secs * 1_000_000_000 + int(frac.ljust(9, "0"))


def _raw_trades(name: str) -> tuple[str, str, dict[str, list[tuple[int, int, float, float, bool]]]]:
    """(exchange, market, symbol -> trades) of one recording, from the raw JSON only."""
    path = REC / name
    per_symbol: dict[str, list] = defaultdict(list)
    if name.startswith("COINBASE"):
        for m in coinbase_messages(path, "match", "last_match"):
            # Coinbase: side is the MAKER's side; a maker sell means the taker bought
            per_symbol[m["product_id"].replace("-", "/")].append(
                (_iso_ns(m["time"]), m["trade_id"], float(m["price"]), float(m["size"]), m["side"] == "sell"))
        return "coinbase", "spot", per_symbol
    market = "perp" if "FUTURES" in name else "spot"
    quotes = ("USDT", "BTC", "ETH", "EUR")
    for t in binance_events(path, "aggTrade"):
        base = next(t["s"][: -len(q)] for q in quotes if t["s"].endswith(q))
        # Binance: m = the buyer is the maker, so m=true means the taker SOLD
        per_symbol[f"{base}/{t['s'][len(base):]}"].append(
            (t["T"] * 1_000_000, t["a"], float(t["p"]), float(t["q"]), not t["m"]))
    return "binance", market, per_symbol


@pytest.mark.parametrize("name", ["BINANCE.ws.1.0", "BINANCE_FUTURES.ws.1.0", "COINBASE.ws.28.0"])
def test_bars_from_recorded_trades_equal_bars_from_the_raw_json(imported: tuple[Store, dict], name: str) -> None:
    store, _ = imported
    exchange, market, per_symbol = _raw_trades(name)
    assert per_symbol
    sides_seen = set()
    for symbol, trades in per_symbol.items():
        expected = _reference_bars(trades)
        # the bars of the recorded trades as stored (Store.bars would take the recorded closed
        # klines where the 30 s of trades cover only part of a minute: test_bars_coverage.py)
        got = build_bars(store.trades(exchange, market, symbol), "1m")
        assert got.get_column("ts").dt.epoch("ns").to_list() == sorted(expected), symbol
        for row in got.iter_rows(named=True):
            exp = expected[int(row["ts"].timestamp()) * 1_000_000_000]
            for col in ("open", "high", "low", "close", "trades"):
                assert row[col] == exp[col], (symbol, col)
            for col in ("volume", "taker_buy_volume", "taker_sell_volume", "quote_volume"):
                assert row[col] == pytest.approx(exp[col], rel=1e-12, abs=1e-12), (symbol, col)
            sides_seen |= {c for c in ("taker_buy_volume", "taker_sell_volume") if row[c] > 0}
    assert sides_seen == {"taker_buy_volume", "taker_sell_volume"} or name == "BINANCE.ws.1.0"


def test_bars_from_parsed_rows_match_the_store(imported: tuple[Store, dict]) -> None:
    store, _ = imported
    _, batches = parse_file(REC / "BINANCE_FUTURES.ws.1.0", Hints())
    trades = next(b.rows for b in batches if b.kind == "trade")
    direct = build_bars(trades, "1m").sort("symbol", "ts")
    via_store = pl.concat([build_bars(store.trades("binance", "perp", s), "1m") for s in sorted(set(trades["symbol"]))])
    assert_frame_equal(direct, via_store, check_exact=False, rel_tol=1e-12)


def test_aggressor_side_agrees_with_the_venues_own_ticker() -> None:
    """Coinbase's ticker reports the TAKER side of the trade it follows; our taker_side from the
    match (whose side is the maker's) must agree for every trade id present in both."""
    _, batches = parse_file(REC / "COINBASE.ws.28.0", Hints())
    trades = next(b.rows for b in batches if b.kind == "trade")
    ours = dict(zip(trades["trade_id"], trades["taker_side"]))
    tickers = coinbase_messages(REC / "COINBASE.ws.28.0", "ticker")
    checked = [(t["trade_id"], t["side"]) for t in tickers if str(t["trade_id"]) in ours]
    assert len(checked) >= 20
    assert all(ours[str(tid)] == side for tid, side in checked)


def test_binance_spot_aggtrade_side_and_time() -> None:
    _, batches = parse_file(REC / "BINANCE.ws.1.0", Hints())
    trades = next(b.rows for b in batches if b.kind == "trade").sort("ts")
    raw = binance_events(REC / "BINANCE.ws.1.0", "aggTrade")
    assert trades["ts"].to_list() == [t["T"] * 1_000_000 for t in raw]  # trade time T, not the receive time
    assert trades["taker_side"].to_list() == ["sell" if t["m"] else "buy" for t in raw]
    assert trades["trade_id"].to_list() == [str(t["a"]) for t in raw]


# -- book deltas carry what an L2 engine needs to sync ----------------------------------------------
@pytest.mark.parametrize("market", ["spot", "perp"])
def test_binance_depth_ids_allow_the_documented_sync_check(imported: tuple[Store, dict], market: str) -> None:
    store, _ = imported
    book = store.read("book_delta", "binance", market)
    assert book.height > 0
    for symbol in book["symbol"].unique():
        rows = book.filter(pl.col("symbol") == symbol)
        snap = rows.filter(pl.col("is_snapshot"))
        last = snap["seq"].unique().item()
        assert snap["first_seq"].is_null().all() and snap["prev_seq"].is_null().all()
        msgs = rows.filter(~pl.col("is_snapshot")).select("seq", "first_seq", "prev_seq").unique().sort("seq")
        assert msgs["prev_seq"].is_null().all() == (market == "spot")
        if market == "spot":  # drop u <= lastUpdateId; first kept U <= last+1 <= u; then U = previous u + 1
            kept = msgs.filter(pl.col("seq") > last).rows()
            assert kept[0][1] <= last + 1 <= kept[0][0]
            assert all(b[1] == a[0] + 1 for a, b in zip(kept, kept[1:]))
        else:  # USD-M: drop u < lastUpdateId; first kept U <= last <= u; then pu = previous u
            kept = msgs.filter(pl.col("seq") >= last).rows()
            assert kept[0][1] <= last <= kept[0][0]
            assert all(b[2] == a[0] for a, b in zip(kept, kept[1:]))


def test_binance_depth_rows_equal_the_raw_levels() -> None:
    _, batches = parse_file(REC / "BINANCE_FUTURES.ws.1.0", Hints())
    book = next(b.rows for b in batches if b.kind == "book_delta")
    expected = [
        (d["E"] * 1_000_000, d["u"], d["U"], d["pu"], side, float(p), float(q))
        for d in binance_events(REC / "BINANCE_FUTURES.ws.1.0", "depthUpdate")
        for side, key in (("bid", "b"), ("ask", "a")) for p, q in d[key]
    ]
    assert book.select("ts", "seq", "first_seq", "prev_seq", "side", "price", "amount").rows() == expected
    assert (book["amount"] == 0).any()  # removals kept as amount 0


def test_coinbase_snapshot_precedes_its_first_update_and_has_no_seq() -> None:
    _, batches = parse_file(REC / "COINBASE.ws.28.0", Hints())
    book = next(b.rows for b in batches if b.kind == "book_delta")
    assert book["seq"].is_null().all()
    recv = {e["body"]["product_id"].replace("-", "/"): int(e["recv"].replace(".", "").ljust(19, "0"))
            for e in raw_events(REC / "COINBASE.ws.28.0") if e["kind"] == "ws" and e["body"].get("type") == "snapshot"}
    per = book.group_by("symbol", "is_snapshot").agg(pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last"))
    snaps = {r["symbol"]: r for r in per.filter(pl.col("is_snapshot")).iter_rows(named=True)}
    updates = {r["symbol"]: r for r in per.filter(~pl.col("is_snapshot")).iter_rows(named=True)}
    assert len(snaps) == 10
    clamped = 0
    for symbol, s in snaps.items():
        assert s["first"] == s["last"]  # one time for the whole snapshot
        assert s["first"] <= recv[symbol]
        assert s["first"] < updates[symbol]["first"]
        clamped += s["first"] < recv[symbol]
    assert clamped >= 3  # real case: updates stamped by the exchange before the snapshot's receive time


def test_recording_time_is_converted_exactly() -> None:
    """Spot bookTicker has no time of its own: the recording time, to the nanosecond, no float error."""
    _, batches = parse_file(REC / "BINANCE.ws.1.0", Hints())
    quotes = next(b.rows for b in batches if b.kind == "quote")
    first = next(e for e in raw_events(REC / "BINANCE.ws.1.0") if e["body"]["stream"].endswith("@bookTicker"))
    whole, frac = first["recv"].split(".")
    assert quotes["ts"][0] == int(whole) * 1_000_000_000 + int(frac.ljust(9, "0"))
    assert first["recv"] == "1633998513.377805" and quotes["ts"][0] == 1_633_998_513_377_805_000


def test_closed_klines_only(imported: tuple[Store, dict]) -> None:
    store, _ = imported
    bars = store.read("bar", "binance", "perp").sort("symbol")
    closed = [d["k"] for d in binance_events(REC / "BINANCE_FUTURES.ws.1.0", "kline") if d["k"]["x"]]
    assert len(closed) == 4
    for k in closed:
        row = bars.filter(pl.col("symbol") == k["s"].replace("USDT", "/USDT")).row(0, named=True)
        assert int(row["ts"].timestamp() * 1000) == k["t"] and row["interval"] == "1m"
        assert (row["open"], row["high"], row["low"], row["close"]) == tuple(float(k[c]) for c in "ohlc")
        assert (row["volume"], row["taker_buy_volume"], row["quote_volume"], row["trades"]) == (
            float(k["v"]), float(k["V"]), float(k["q"]), k["n"])


def test_instruments_from_exchange_info_and_products(imported: tuple[Store, dict]) -> None:
    store, _ = imported
    inst = store.read("instrument", "binance", "perp", "BTC/USDT").row(0, named=True)
    assert (inst["native_symbol"], inst["tick_size"], inst["step_size"], inst["status"]) == ("BTCUSDT", 0.01, 0.001, "TRADING")
    spot = store.read("instrument", "binance", "spot", "ETH/BTC").row(0, named=True)
    assert (spot["tick_size"], spot["step_size"]) == (0.000001, 0.0001)
    cb = store.read("instrument", "coinbase", "spot", "SKL/EUR").row(0, named=True)
    assert (cb["native_symbol"], cb["tick_size"], cb["step_size"], cb["status"]) == ("SKL-EUR", 0.0001, 0.1, "online")


def test_interleaved_times_across_symbols_are_fine() -> None:
    """Real files interleave symbols out of time order (trade times across symbols, Coinbase
    updates around snapshots): imported as they are, in file order, in time order per symbol."""
    for name in ("BINANCE_FUTURES.ws.1.0", "COINBASE.ws.28.0"):
        _, batches = parse_file(REC / name, Hints())
        trades = next(b.rows for b in batches if b.kind == "trade")
        assert not trades["ts"].is_sorted()
        assert trades.group_by("symbol").agg(pl.col("ts").is_sorted().alias("ok"))["ok"].all()


def test_recognised_from_content_and_gzip(tmp_path: Path) -> None:
    renamed = tmp_path / "capture.txt"
    shutil.copy(REC / "BINANCE.ws.1.0", renamed)
    assert detect(RawFile(renamed)).name == "cryptofeed-recording"
    gz = tmp_path / "COINBASE.ws.28.0.gz"
    gz.write_bytes(gzip.compress((REC / "COINBASE.ws.28.0").read_bytes()))
    _, batches = parse_file(gz, Hints())
    assert {b.kind: b.rows.height for b in batches} == expected_counts("COINBASE.ws.28.0")


# -- malformed lines ------------------------------------------------------------------------------
CONNECT = "wss://fstream.binance.com/stream?streams=btcusdt@aggTrade <-> 1626992740.179554"
GOOD = ('1626992742.289739: {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1626992741575,"a":1,'
        '"s":"BTCUSDT","p":"32000.10","q":"0.5","f":1,"l":1,"T":1626992741421,"m":false}}')


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('1626992742.3: {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"', "bad JSON"),
        (GOOD.replace('"p":"32000.10",', ""), "missing field 'p'"),
        (GOOD.replace('"q":"0.5"', '"q":"-0.5"'), "negative q"),
        (GOOD.replace('"p":"32000.10"', '"p":"NaN"'), "not a finite number"),
        (GOOD.replace('"m":false', '"m":"maybe"'), "m must be true or false"),
        (GOOD.replace('"s":"BTCUSDT"', '"s":"???"'), "symbol"),
        ("this is not a recording line", "not a recording line"),
        ('https://api.kraken.com/0/public/Depth -> 1626992741.1: {"result": {}}', "api.kraken.com"),
    ],
)
def test_malformed_line_is_an_error_naming_the_line(tmp_path: Path, store: Store, bad: str, reason: str) -> None:
    path = tmp_path / "BINANCE_FUTURES.ws.9.0"
    path.write_text("\n".join([CONNECT, GOOD, GOOD.replace('"a":1', '"a":2'), bad, GOOD]) + "\n")
    with pytest.raises(ImportFormatError) as err:
        parse_file(path, Hints())
    assert err.value.row == 4 and reason in err.value.reason, str(err.value)
    report = import_paths([path], store)
    assert report.errors and "row 4" in report.errors[0].error
    assert store.inventory().is_empty()  # nothing of the bad file was written


def test_message_before_any_connect_line(tmp_path: Path) -> None:
    path = tmp_path / "rec"
    path.write_text("https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT -> 1.5: {\"code\": -1, \"msg\": \"x\"}\n"
                    + GOOD + "\n")
    with pytest.raises(ImportFormatError) as err:
        parse_file(path, Hints())
    assert err.value.row == 2 and "before any websocket connect line" in err.value.reason


def test_good_synthetic_recording_and_ignored_lines(tmp_path: Path) -> None:
    """Client-sent lines, subscription replies, REST error bodies and configuration lines are skipped."""
    path = tmp_path / "rec"
    path.write_text("\n".join([
        CONNECT,
        'wss://fstream.binance.com/stream <- 1626992740.2: {"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}',
        '1626992740.3: {"result":null,"id":1}',
        GOOD,
        "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=10 -> 1626992741.5: "
        '{"code":-1121,"msg":"Invalid symbol."}',
        'configuration: {"trades":["BTC-USDT-PERP"]}',
    ]) + "\n")
    _, batches = parse_file(path, Hints())
    assert [(b.kind, b.rows.height) for b in batches] == [("trade", 1)]
    row = batches[0].rows.row(0, named=True)
    assert (row["market"], row["symbol"], row["taker_side"], row["ts"]) == ("perp", "BTC/USDT", "buy", 1626992741421000000)
