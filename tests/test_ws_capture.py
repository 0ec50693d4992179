"""Raw Binance websocket captures (hftbacktest layout, ``<receive ns> <JSON>``) on real lines:
every trade, quote and book row compared with values read from the raw lines by hand."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from parse_helpers import parse, raises

from tapewatch.sources.base import Hints

SPOT = "hftbacktest-binance-ws/spot/btcusdt_20240808.gz"
USDM = "hftbacktest-binance-ws/usdm/btcusdt_20240808.gz"


def raw_lines(path: Path) -> list[tuple[int, dict]]:
    out = []
    for line in gzip.open(path, "rt"):
        recv, _, body = line.rstrip("\n").partition(" ")
        out.append((int(recv), json.loads(body)))
    return out


def by_kind(path: Path, hints: Hints | None = None) -> dict:
    name, batches = parse(path, hints)
    assert name == "binance-ws-capture"
    return {b.kind: b.rows for b in batches}


@pytest.mark.parametrize(("rel", "market"), [(SPOT, "spot"), (USDM, "perp")])
def test_trades_keep_exchange_and_receive_time(shared: Path, rel: str, market: str) -> None:
    lines = raw_lines(shared / rel)
    expected = [
        (d["T"] * 1_000_000, float(d["p"]), float(d["q"]), "sell" if d["m"] else "buy", str(d["t"]), recv)
        for recv, msg in lines if (d := msg.get("data", {})).get("e") == "trade"
    ]
    rows = by_kind(shared / rel)["trade"]
    assert set(rows.get_column("market")) == {market} and set(rows.get_column("symbol")) == {"BTC/USDT"}
    assert set(rows.get_column("exchange")) == {"binance"}
    got = rows.select("ts", "price", "amount", "taker_side", "trade_id", "local_ts").rows()
    assert got == expected and len(expected) > 10


def test_spot_quotes_and_snapshot(shared: Path) -> None:
    lines = raw_lines(shared / SPOT)
    kinds = by_kind(shared / SPOT)
    # spot bookTicker carries no exchange time: ts is the receive time, kept as local_ts too
    expected_quotes = [
        (recv, float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]), recv)
        for recv, msg in lines if (s := msg.get("stream", "")).endswith("@bookTicker") and (d := msg["data"])
    ]
    quotes = kinds["quote"].select("ts", "bid_price", "bid_amount", "ask_price", "ask_amount", "local_ts").rows()
    assert quotes == expected_quotes
    (recv, snap), = [(r, m) for r, m in lines if "lastUpdateId" in m]
    book = kinds["book_delta"]
    snap_rows = book.filter(book["is_snapshot"])
    assert snap_rows.height == len(snap["bids"]) + len(snap["asks"])
    assert set(snap_rows.get_column("seq")) == {snap["lastUpdateId"]}
    assert set(snap_rows.get_column("local_ts")) == {recv}
    bids = snap_rows.filter(snap_rows["side"] == "bid").select("price", "amount").rows()
    assert bids == [(float(p), float(q)) for p, q in snap["bids"]]
    # diffs: exchange event time E as ts, receive time beside it
    diffs = [(d["E"] * 1_000_000, recv, d["U"], d["u"]) for recv, m in lines if (d := m.get("data", {})).get("e") == "depthUpdate"]
    got = book.filter(~book["is_snapshot"]).select("ts", "local_ts", "first_seq", "seq").unique(maintain_order=True).rows()
    assert got == diffs


def test_usdm_quotes_use_exchange_time_and_pu(shared: Path) -> None:
    lines = raw_lines(shared / USDM)
    kinds = by_kind(shared / USDM)
    expected = [
        (d["E"] * 1_000_000, float(d["b"]), float(d["a"]), recv)
        for recv, m in lines if (d := m.get("data", {})).get("e") == "bookTicker"
    ]
    assert kinds["quote"].select("ts", "bid_price", "ask_price", "local_ts").rows() == expected
    pus = {d["pu"] for _, m in lines if (d := m.get("data", {})).get("e") == "depthUpdate"}
    book = kinds["book_delta"]
    assert set(book.filter(~book["is_snapshot"]).get_column("prev_seq")) == pus


def test_flags_are_honoured_and_contradictions_named(shared: Path, tmp_path: Path) -> None:
    p = tmp_path / "capture" / "btcusdt_20240808.gz"
    p.parent.mkdir()
    p.write_bytes((shared / SPOT).read_bytes())
    kinds = by_kind(p, Hints(exchange="binanceus"))
    assert set(kinds["trade"].get_column("exchange")) == {"binanceus"}
    assert set(kinds["trade"].get_column("market")) == {"spot"}  # told by the diffs (no pu)
    raises(shared / SPOT, "--market perp contradicts the file, which says market spot", hints=Hints(market="perp"))
    raises(shared / SPOT, "--symbol ETH/USDT contradicts the file, which says symbol BTC/USDT",
           hints=Hints(symbol="ETH/USDT"))


def test_bad_line_names_its_row(shared: Path, tmp_path: Path) -> None:
    lines = gzip.open(shared / SPOT, "rt").read().splitlines()
    lines[3] = lines[3].replace('"p":"', '"p":"-')  # the first trade
    p = tmp_path / "spot" / "btcusdt_20240808.gz"
    p.parent.mkdir()
    p.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    raises(p, "p must be > 0", row=4)
