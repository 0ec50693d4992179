"""Trades missed on the stream come back by REST; what cannot is a coverage hole, never a silent zero.

Against the replay exchange serving the real captures (Binance spot / USD-M raw websocket
captures, the Coinbase Exchange recording): trades withheld on an open socket (``drop``) or lost
while the socket was cut (``cut``) are fetched from historicalTrades by fromId (Binance) or from
the trades endpoint by cursor (Coinbase), and the store then equals `tapewatch import` of the
capture row for row. With the REST trades refused the missing ids are recorded as a hole whose
bounds are the neighbouring trades' times read here from the capture by hand; `tapewatch status`
lists it and no bar over it is built from the trades that did arrive.
"""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal
from pathlib import Path

import aiohttp
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tapewatch import coverage
from tapewatch.bars import bars_from_store
from tapewatch.cli import app
from tapewatch.config import config_from_dict
from tapewatch.errors import TapewatchError
from tapewatch.importer import parse_file
from tapewatch.live.coinbase import CoinbaseFeed
from tapewatch.live.collector import Collector
from tapewatch.live.connection import Backoff, ConnectionLog
from tapewatch.live.endpoints import Endpoint
from tapewatch.live.trades import LOST, TradeLedger
from tapewatch.replay.faults import Faults
from tapewatch.replay.server import ReplayExchange
from tapewatch.replay.timeline import Feed, read_timeline
from tapewatch.signals.compute import compute_signals
from tapewatch.sources import Hints
from tapewatch.sources.messages import Key
from tapewatch.store import Store
from tapewatch.timeutil import ns_to_iso
from test_live_collector import SPOT, USDM, Capture, check_trades, collect, imported, run_until, without_local

RECORDING = Path("cryptofeed-recordings/COINBASE.ws.28.0")
MS = 1_000_000
SECOND = 1_000_000_000


def binance_trades(capture: Capture) -> list[dict]:
    """The capture's @trade messages (their ``data``), each with its feed position as ``at``."""
    return [{**m["data"], "at": at} for m, at in zip(capture.messages, capture.positions) if m["data"]["e"] == "trade"]


def sent_without(capture: Capture, start: int, count: int) -> int:
    """Messages of the collected streams that reach the client when feed messages [start, start + count) do not."""
    return sum(1 for at in capture.positions if not start <= at < start + count)


def test_trades_dropped_on_an_open_spot_socket_are_fetched_by_from_id(shared: Path, tmp_path: Path) -> None:
    capture = Capture.read(shared / SPOT)
    trades = binance_trades(capture)
    missed = [t["t"] for t in trades if 652 <= t["at"] < 692]
    assert missed == list(range(3735683359, 3735683367))  # 8 consecutive ids, by hand from the file
    run = collect(shared, tmp_path / "live", Faults(drop=40, drop_at=652), sent_without(capture, 652, 40),
                  lambda f: f.log.recovered == 1)
    check_trades(run.store, imported(shared, tmp_path / "ref"), capture)  # all 518, as imported
    log = run.feed.log
    assert (log.recovered, log.recovered_trades, log.lost) == (1, 8, 0)
    assert log.lines == ["binance spot BTC/USDT trade ids 3735683359–3735683366: missed on the stream, 8 recovered by REST"]
    (cov,) = coverage.summary(run.store)  # one span from the first trade to the last, no hole
    assert (int(cov.starts[0]), int(cov.ends[-1]), cov.holes) == (trades[0]["T"] * MS, trades[-1]["T"] * MS + 1, [])


def test_trades_lost_while_the_usdm_socket_was_cut_are_fetched_with_the_key(shared: Path, tmp_path: Path) -> None:
    capture = Capture.read(shared / USDM, "perp")
    trades = binance_trades(capture)
    missed = [t["t"] for t in trades if 478 <= t["at"] < 518]
    assert missed == list(range(5266584035, 5266584046))  # 11 consecutive ids, by hand from the file
    run = collect(shared, tmp_path / "live", Faults(cut_at=478, cut=40), sent_without(capture, 478, 40),
                  lambda f: f.log.recovered == 1, capture=USDM, market="perp", api_key="replay-key")
    assert run.log.connects == 2 and run.log.ends["closed"] >= 1  # the cut closed the socket; the feed came back
    check_trades(run.store, imported(shared, tmp_path / "ref", USDM), capture)
    assert (run.feed.log.recovered, run.feed.log.recovered_trades, run.feed.log.lost) == (1, 11, 0)


def test_usdm_without_an_api_key_records_the_gap(shared: Path, tmp_path: Path) -> None:
    capture = Capture.read(shared / USDM, "perp")
    run = collect(shared, tmp_path / "live", Faults(cut_at=478, cut=40), sent_without(capture, 478, 40),
                  lambda f: f.log.lost == 1, capture=USDM, market="perp")
    (line,) = run.feed.log.lines
    assert "11 trades lost (USD-M historicalTrades needs an API key: set TAPEWATCH_BINANCE_API_KEY)" in line
    assert run.store.read("trade").height == 469 - 11


def test_refused_trade_requests_leave_a_hole_that_status_and_bars_respect(shared: Path, tmp_path: Path) -> None:
    capture = Capture.read(shared / SPOT)
    trades = binance_trades(capture)
    run = collect(shared, tmp_path / "live", Faults(drop=40, drop_at=652, trades_error=500), sent_without(capture, 652, 40),
                  lambda f: f.log.lost == 1)
    held = [t for t in trades if not 652 <= t["at"] < 692]
    before = max(t["T"] for t in held if t["t"] < 3735683359) * MS  # the last trade held before the missing ids
    after = min(t["T"] for t in held if t["t"] > 3735683366) * MS  # the first one after them
    assert (before, after) == (1723161259326 * MS, 1723161260469 * MS)
    stored = run.store.read("trade")
    assert sorted(map(int, stored["trade_id"])) == [t["t"] for t in held]
    log = run.feed.log
    assert (log.recovered, log.lost) == (0, 1)
    assert log.lines == ["binance spot BTC/USDT trade ids 3735683359–3735683366: 8 trades lost (HTTP 500: "
                         '{"code": -1000, "msg": "An unknown error occurred while processing the request."} after 3 tries); '
                         "coverage has a hole 2024-08-08 23:54:19 → 2024-08-08 23:54:20 UTC"]
    (cov,) = coverage.summary(run.store)
    assert cov.holes == [(before + 1, after)]
    assert (int(cov.starts[0]), int(cov.ends[-1])) == (trades[0]["T"] * MS, trades[-1]["T"] * MS + 1)

    res = CliRunner().invoke(app, ["status", "--store", str(run.store.root), "--no-gaps"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert f"{ns_to_iso(before + 1)} → {ns_to_iso(after)} (1s)" in res.output

    # 1s bars: every second with a held trade, but for those meeting the hole [before + 1, after)
    bars = bars_from_store(run.store, "binance", "spot", "BTC/USDT", "1s")
    opens = {t["T"] * MS - t["T"] * MS % SECOND for t in held}
    over_hole = {t for t in opens if t < after and t + SECOND > before + 1}
    assert over_hole == {1723161259 * SECOND, 1723161260 * SECOND}  # each holds trades that did arrive
    assert bars["ts"].dt.epoch("ns").to_list() == sorted(opens - over_hole)
    first_after = 1723161261 * SECOND  # the first whole second after the hole
    inside = [t for t in held if first_after <= t["T"] * MS < first_after + SECOND]
    row = bars.filter(pl.col("ts").dt.epoch("ns") == first_after).row(0, named=True)
    assert row["trades"] == len(inside) and row["volume"] == float(sum(Decimal(t["q"]) for t in inside))
    assert row["taker_buy_volume"] == float(sum(Decimal(t["q"]) for t in inside if not t["m"]))
    # the factors read those bars as unavailable: null net taker flow and CVD there, never 0
    sig = compute_signals(run.store, "BTC", "1s", None, None, config_from_dict({"interval": "1s"}), 2 * 10**18).frame
    hole_rows = sig.filter(pl.col("ts").dt.epoch("ns").is_in(sorted(over_hole)))
    assert hole_rows.height == 2 and hole_rows["spot_net_taker"].null_count() == 2 and hole_rows["spot_cvd"].null_count() == 2


def test_coinbase_matches_lost_in_a_cut_are_fetched_by_cursor(shared: Path, tmp_path: Path) -> None:
    lines = [ln for ln in (shared / RECORDING).read_text().splitlines() if ln[:1].isdigit()]
    products = json.loads(next(ln.split(": ", 1)[1] for ln in (shared / RECORDING).read_text().splitlines() if " <- " in ln))["product_ids"]
    matches = [(at, json.loads(ln.split(": ", 1)[1])) for at, ln in enumerate(lines) if '"type":"match"' in ln]
    cut = [m for at, m in matches if 7305 <= at < 7405]
    assert {m["product_id"] for m in cut} == {"SKL-USD"} and len(cut) == 9
    assert any(at >= 7405 and m["product_id"] == "SKL-USD" for at, m in matches)  # a later match reveals the gap

    async def main() -> tuple[Store, CoinbaseFeed, ConnectionLog]:
        exchange = ReplayExchange(read_timeline([shared / RECORDING]), Faults(cut_at=7305, cut=100), speed=0)
        await exchange.start(port=0)
        venue = Feed("coinbase", "spot")
        store = Store(tmp_path / "live")
        collector = Collector(store, flush_interval=0.05, backoff=Backoff(0.01, 0.05, random.Random(0)))
        log = ConnectionLog()
        try:
            async with aiohttp.ClientSession() as session:
                feed = CoinbaseFeed(products, ["level2", "ticker", "matches"],
                                    Endpoint(exchange.base_url(venue, "ws"), exchange.base_url(venue)), collector.rows,
                                    session, collector.ledger, Backoff(0.01, 0.2, random.Random(1)))
                await run_until(collector, session, feed, log, lambda: log.messages >= len(lines) - 100 and feed.log.recovered == 1)
        finally:
            await exchange.stop()
        return store, feed, log

    live, feed, log = asyncio.run(main())
    assert log.connects == 2
    assert (feed.log.recovered, feed.log.recovered_trades, feed.log.lost) == (1, 9, 0)
    ids = sorted(m["trade_id"] for m in cut)
    assert feed.log.lines == [f"coinbase spot SKL/USD trade ids {ids[0]}–{ids[-1]}: missed on the stream, 9 recovered by REST"]
    ref = Store(tmp_path / "ref")
    for b in parse_file(shared / RECORDING, Hints())[1]:
        ref.write(b.kind, b.rows)
    trades = live.read("trade").sort("symbol", "trade_id")
    assert trades.height == 97 + 10
    assert without_local(trades).equals(without_local(ref.read("trade").sort("symbol", "trade_id")))


def test_replay_rest_trades_are_the_captured_trades_at_the_replay_point(shared: Path) -> None:
    capture = Capture.read(shared / SPOT)
    trades = binance_trades(capture)

    async def main() -> tuple[list, list, int]:
        exchange = ReplayExchange(read_timeline([shared / SPOT, shared / RECORDING]), speed=0)
        await exchange.start(port=0)
        exchange.pumps[Feed("binance", "spot")].position = 700  # as if 700 feed messages were past
        exchange.pumps[Feed("coinbase", "spot")].position = 7400
        base = exchange.base_url(Feed("binance", "spot"))
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{base}/api/v3/historicalTrades", params={"symbol": "BTCUSDT", "fromId": "3735683300", "limit": "1000"}) as r:
                    binance = await r.json()
                url = f"{exchange.base_url(Feed('coinbase', 'spot'))}/products/SKL-USD/trades"
                async with s.get(url, params={"after": "1568300", "limit": "5"}) as r:
                    coinbase, cursor = await r.json(), int(r.headers["CB-AFTER"])
        finally:
            await exchange.stop()
        return binance, coinbase, cursor

    lines = [ln for ln in (shared / RECORDING).read_text().splitlines() if ln[:1].isdigit()]
    skl = [json.loads(ln.split(": ", 1)[1]) for at, ln in enumerate(lines[:7400]) if '"product_id":"SKL-USD"' in ln
           and ('"type":"match"' in ln or '"type":"last_match"' in ln)]
    older = sorted((m["trade_id"] for m in skl if m["trade_id"] < 1568300), reverse=True)[:5]
    binance, coinbase, cursor = asyncio.run(main())
    want = [t for t in trades if t["at"] < 700 and t["t"] >= 3735683300]
    assert [b["id"] for b in binance] == [t["t"] for t in want]
    first, t0 = binance[0], want[0]
    assert first == {"id": t0["t"], "price": t0["p"], "qty": t0["q"], "quoteQty": str(Decimal(t0["p"]) * Decimal(t0["q"])),
                     "time": t0["T"], "isBuyerMaker": t0["m"], "isBestMatch": True}
    assert [c["trade_id"] for c in coinbase] == older and cursor == older[-1] and len(older) == 5
    newest = next(m for m in skl if m["trade_id"] == older[0])
    assert coinbase[0] == {k: newest[k] for k in ("time", "trade_id", "price", "size", "side")}


def test_the_new_faults_refuse_bad_values() -> None:
    with pytest.raises(TapewatchError, match="--trades-error must be an HTTP error status"):
        Faults(trades_error=200)
    with pytest.raises(TapewatchError, match="--cut must be 0 or more"):
        Faults(cut_at=3, cut=-1)


def test_the_ledger_writes_no_coverage_past_a_pending_gap(shared: Path) -> None:
    trades = binance_trades(Capture.read(shared / SPOT))
    key = Key("binance", "spot", "BTC/USDT")
    ledger = TradeLedger()
    gaps = [g for t in trades if not 3735683359 <= t["t"] <= 3735683366
            if (g := ledger.seen(key, t["t"], t["T"] * MS)) is not None]
    assert [(g.lo, g.hi) for g in gaps] == [(3735683359, 3735683366)]
    before, after = 1723161259326 * MS, 1723161260469 * MS  # trades 3735683358 and 3735683367, by hand
    assert (gaps[0].before, gaps[0].after, ledger.pending_from()) == (before, after, before)
    spans = ledger.coverage().select(pl.col("ts").dt.epoch("ns"), pl.col("end").dt.epoch("ns")).rows()
    assert spans == [(trades[0]["T"] * MS, before + 1)]  # nothing past the trade before the gap yet
    ledger.resolve(gaps[0], LOST)
    spans += ledger.coverage().select(pl.col("ts").dt.epoch("ns"), pl.col("end").dt.epoch("ns")).rows()
    starts, ends = coverage.union(*map(np.array, zip(*spans)))
    assert list(zip(starts.tolist(), ends.tolist())) == [(trades[0]["T"] * MS, before + 1), (after, trades[-1]["T"] * MS + 1)]
    assert ledger.pending_from() is None and ledger.seen(key, 3735683360, after) is None  # an old id opens nothing
