"""The live collector against the replay exchange serving the real spot capture: the stored rows
equal what `tapewatch import` makes of the same file, and the depth sync follows Binance's rules
(checked on the capture's update ids, read here by hand), also under faults."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import polars as pl
import pytest

from tapewatch.importer import parse_file
from tapewatch.live.binance import BinanceFeed
from tapewatch.live.coinbase import CoinbaseFeed
from tapewatch.live.collector import Collector
from tapewatch.live.connection import Backoff, ConnectionLog, VenueFeed
from tapewatch.live.endpoints import Endpoint
from tapewatch.replay.faults import Faults
from tapewatch.replay.server import ReplayExchange
from tapewatch.replay.timeline import Feed, read_timeline
from tapewatch.sources import Hints
from tapewatch.sources.messages import Rows
from tapewatch.store import Store

SPOT = Path("hftbacktest-binance-ws/spot/btcusdt_20240808.gz")
USDM = Path("hftbacktest-binance-ws/usdm/btcusdt_20240808.gz")
STREAMS = {"spot": ["btcusdt@depth@100ms", "btcusdt@trade"], "perp": ["btcusdt@depth@0ms", "btcusdt@trade"]}
TIMEOUT = 8.0


@dataclass
class Capture:
    """The capture read by hand: messages of the collected streams, in order, and the snapshot id."""

    market: str
    messages: list[dict]
    last_update_id: int
    positions: list[int]  # each message's index among all the feed's messages (every stream)

    @classmethod
    def read(cls, path: Path, market: str = "spot") -> Capture:
        msgs, positions, snap, n = [], [], None, 0
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            body = json.loads(line.split(" ", 1)[1])
            if "lastUpdateId" in body:
                snap = body["lastUpdateId"]
                continue
            if body["stream"] in STREAMS[market]:
                msgs.append(body)
                positions.append(n)
            n += 1
        assert snap is not None
        return cls(market, msgs, snap, positions)

    def diff_ids(self, messages: list[dict]) -> list[int]:
        """``u`` of the diffs a gapless book applies on the snapshot, in order: spot drops
        u <= lastUpdateId, USD-M drops u < lastUpdateId."""
        spot = self.market == "spot"
        return [m["data"]["u"] for m in messages if m["data"]["e"] == "depthUpdate"
                and (m["data"]["u"] > self.last_update_id if spot else m["data"]["u"] >= self.last_update_id)]


@dataclass
class Run:
    store: Store
    feed: BinanceFeed
    log: ConnectionLog
    rest_requests: int


async def run_until(collector: Collector, session: aiohttp.ClientSession, feed: VenueFeed, log: ConnectionLog,
                    ready: Callable[[], bool]) -> None:
    """Run the collector on one feed until ``ready()`` (checked every 10 ms, TIMEOUT at most), then stop it."""
    task = asyncio.create_task(collector.run(session, [(feed, log)]))

    async def settled() -> None:
        while not ready():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(settled(), TIMEOUT)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def collect(shared: Path, root: Path, faults: Faults | None, sent: int, done: Callable[[BinanceFeed], bool],
            stale_after: float = 30.0, capture: Path = SPOT, market: str = "spot", ping_interval: float | None = None,
            api_key: str | None = None) -> Run:
    """Collect from the replay exchange until ``sent`` messages arrived and ``done``; stop; flush
    (the trade coverage too: the feed is on the collector's ledger)."""

    async def main() -> Run:
        exchange = ReplayExchange(read_timeline([shared / capture]), faults, speed=0, ping_interval=ping_interval)
        await exchange.start(port=0)
        venue = Feed("binance", market)
        endpoint = Endpoint(exchange.base_url(venue, "ws"), exchange.base_url(venue))
        store = Store(root)
        collector = Collector(store, flush_interval=0.05, stale_after=stale_after, backoff=Backoff(0.01, 0.05, random.Random(0)))
        log = ConnectionLog()
        try:
            async with aiohttp.ClientSession() as session:
                feed = BinanceFeed(market, STREAMS[market], endpoint, session, collector.rows, Backoff(0.01, 0.2, random.Random(1)),
                                   collector.ledger, api_key)
                await run_until(collector, session, feed, log, lambda: log.messages >= sent and done(feed)
                                and (ping_interval is None or log.ends["stale"] > 0))
        finally:
            await exchange.stop()
        return Run(store, feed, log, exchange.rest_requests)

    return asyncio.run(main())


def imported(shared: Path, root: Path, capture: Path = SPOT) -> Store:
    """The store `tapewatch import` writes from the capture (its parse step and Store.write;
    the book_depth it derives afterwards is not compared here)."""
    store = Store(root)
    fmt, batches = parse_file(shared / capture, Hints())
    assert fmt == "binance-ws-capture"
    for b in batches:
        store.write(b.kind, b.rows)
    return store


def without_local(df: pl.DataFrame, *cols: str) -> pl.DataFrame:
    return df.drop("local_ts", *cols)


def check_trades(live: Store, ref: Store, capture: Capture) -> None:
    trades = live.read("trade").sort("trade_id")
    assert trades["trade_id"].to_list() == sorted(str(m["data"]["t"]) for m in capture.messages if m["data"]["e"] == "trade")
    assert trades.height == {"spot": 518, "perp": 469}[capture.market]
    assert without_local(trades).equals(without_local(ref.read("trade").sort("trade_id")))


def diffs(store: Store) -> pl.DataFrame:
    return store.read("book_delta").filter(~pl.col("is_snapshot"))


def check_book(live: Store, ref: Store, applied: list[int]) -> int:
    """The stored diffs are exactly the ``applied`` ones, row for row as imported; the snapshot
    rows of each snapshot fetched are the imported ones (but for the spot snapshot's time: the
    receive time); returns how many snapshots were stored."""
    got = diffs(live)
    assert got["seq"].unique(maintain_order=True).to_list() == applied
    want = diffs(ref).filter(pl.col("seq").is_in(applied))
    assert without_local(got).equals(without_local(want))
    snaps = live.read("book_delta").filter(pl.col("is_snapshot")).partition_by("ts", maintain_order=True)
    want_snap = without_local(ref.read("book_delta").filter(pl.col("is_snapshot")), "ts")
    assert snaps and all(without_local(s, "ts").equals(want_snap) for s in snaps)
    return len(snaps)


@pytest.mark.parametrize(("path", "market", "n_applied"), [(SPOT, "spot", 279), (USDM, "perp", 230)])
def test_collected_rows_equal_the_import_of_the_capture(shared: Path, tmp_path: Path, path: Path, market: str,
                                                         n_applied: int) -> None:
    capture = Capture.read(shared / path, market)
    depth = [m["data"] for m in capture.messages if m["data"]["e"] == "depthUpdate"]
    if market == "spot":  # the capture itself is gapless
        assert all(b["U"] == a["u"] + 1 for a, b in zip(depth, depth[1:]))
    else:
        assert all(b["pu"] == a["u"] for a, b in zip(depth, depth[1:]))
    applied = capture.diff_ids(capture.messages)
    assert len(applied) == n_applied  # the diffs that end before the snapshot are dropped
    run = collect(shared, tmp_path / "live", None, len(capture.messages), lambda f: f.log.synced == 1,
                  capture=path, market=market)
    ref = imported(shared, tmp_path / "ref", path)
    check_trades(run.store, ref, capture)
    assert check_book(run.store, ref, applied) == 1
    assert (run.feed.log.snapshots, run.feed.log.gaps, run.log.connects, run.feed.log.malformed) == (1, 0, 1, 0)


@pytest.mark.parametrize(
    ("faults", "refused"),
    [(Faults(rest_error=429, rest_errors=2, retry_after=0), 2), (Faults(rest_error=418, retry_after=0), 1),
     (Faults(snapshot_delay=0.5), 0)],
)
def test_refused_or_slow_snapshots_still_sync(shared: Path, tmp_path: Path, faults: Faults, refused: int) -> None:
    capture = Capture.read(shared / SPOT)
    run = collect(shared, tmp_path / "live", faults, len(capture.messages), lambda f: f.log.synced == 1)
    assert (run.feed.log.refused, run.feed.log.snapshots, run.rest_requests) == (refused, 1, refused + 1)
    ref = imported(shared, tmp_path / "ref")
    check_trades(run.store, ref, capture)
    assert check_book(run.store, ref, capture.diff_ids(capture.messages)) == 1


def test_gap_discards_the_book_and_fetches_a_new_snapshot(shared: Path, tmp_path: Path) -> None:
    capture = Capture.read(shared / SPOT)
    depth_at = [i for i, m in enumerate(capture.messages) if m["data"]["e"] == "depthUpdate"]
    # withhold diff 100: diff 101 no longer starts at the last u + 1
    run = collect(shared, tmp_path / "live", Faults(gap_at=100), len(capture.messages) - 1,
                  lambda f: f.log.snapshots >= 2)
    ref = imported(shared, tmp_path / "ref")
    check_trades(run.store, ref, capture)
    # the only snapshot on offer is older than the stream after the gap: no diff past it is stored
    stored = check_book(run.store, ref, capture.diff_ids(capture.messages[: depth_at[100]]))
    assert run.feed.log.gaps >= 1 and run.feed.log.synced == 1 and stored == run.feed.log.snapshots >= 2


def test_stale_stream_reconnects_and_loses_no_trade(shared: Path, tmp_path: Path) -> None:
    capture = Capture.read(shared / SPOT)
    run = collect(shared, tmp_path / "live", Faults(stale_at=1000), len(capture.messages),
                  lambda f: f.log.snapshots >= 2, stale_after=1.5)
    # stale once at the fault (and again whenever the finished replay idles past stale_after)
    assert run.log.ends["stale"] >= 1 and run.log.connects == 1 + sum(run.log.ends.values())
    ref = imported(shared, tmp_path / "ref")
    check_trades(run.store, ref, capture)  # the replay waited for the reconnect: every trade arrives
    # the book synced before the stale point (feed message 1000, every stream counted) only: after
    # the reconnect it needs a newer snapshot than the capture holds
    before = [m for m, at in zip(capture.messages, capture.positions) if at < 1000]
    assert check_book(run.store, ref, capture.diff_ids(before)) == run.feed.log.snapshots >= 2


def test_pings_are_answered_and_a_pinged_but_silent_stream_is_still_stale(shared: Path, tmp_path: Path) -> None:
    capture = Capture.read(shared / SPOT)
    before = sum(1 for at in capture.positions if at < 50)
    # the server pings every 1 s and closes a socket that does not pong within 0.5 s (aiohttp's
    # heartbeat / 2): two pings go by before the stream is declared stale
    run = collect(shared, tmp_path / "live", Faults(stale_at=50), before, lambda f: True, stale_after=2.5, ping_interval=1.0)
    assert run.log.ends["stale"] >= 1 and run.log.ends["closed"] == 0 and run.log.ends["error"] == 0


def test_a_malformed_message_is_counted_and_skipped(shared: Path) -> None:
    capture = Capture.read(shared / SPOT)
    trade = next(m for m in capture.messages if m["data"]["e"] == "trade")
    bad_price = {"stream": trade["stream"], "data": {**trade["data"], "p": "-5"}}
    no_first_id = {"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1723161255208, "s": "BTCUSDT",
                                                              "u": 50093239202, "b": [], "a": []}}

    async def main() -> tuple[BinanceFeed, list]:
        async with aiohttp.ClientSession() as session:
            rows = Rows()
            feed = BinanceFeed("spot", STREAMS["spot"], Endpoint("ws://127.0.0.1:9", "http://127.0.0.1:9"), session, rows)
            for n, text in enumerate(["{not json", json.dumps(bad_price), json.dumps(no_first_id), json.dumps(trade)]):
                feed.handle(text, n)
            return feed, rows.take()

    feed, batches = asyncio.run(main())
    assert feed.log.malformed == 3 and not feed.books
    assert feed.log.last_error is not None and feed.log.last_error.startswith("spot message '{\"stream\": \"btcusdt@depth")
    assert "U" in feed.log.last_error
    [b] = batches  # the good trade is kept, alone
    assert b.kind == "trade" and b.rows["trade_id"].to_list() == [str(trade["data"]["t"])] and b.rows["local_ts"].to_list() == [3]


def test_coinbase_feed_rows_equal_the_import_of_the_recording(shared: Path, tmp_path: Path) -> None:
    recording = Path("cryptofeed-recordings/COINBASE.ws.28.0")
    subscribe = next(json.loads(line.split(": ", 1)[1]) for line in (shared / recording).read_text().splitlines()
                     if " <- " in line)
    products = subscribe["product_ids"]
    sent = sum(1 for line in (shared / recording).read_text().splitlines() if line[:1].isdigit())
    assert len(products) == 10 and sent == 9946  # every recorded message is of these products or of none

    async def main() -> tuple[Store, CoinbaseFeed]:
        exchange = ReplayExchange(read_timeline([shared / recording]), speed=0)
        await exchange.start(port=0)
        venue = Feed("coinbase", "spot")
        store = Store(tmp_path / "live")
        collector = Collector(store, flush_interval=0.05)
        log = ConnectionLog()
        feed = CoinbaseFeed(products, ["level2", "ticker", "matches"], Endpoint(exchange.base_url(venue, "ws"), exchange.base_url(venue)),
                            collector.rows)
        try:
            async with aiohttp.ClientSession() as session:
                await run_until(collector, session, feed, log, lambda: log.messages >= sent)
        finally:
            await exchange.stop()
        return store, feed

    live, feed = asyncio.run(main())
    assert feed.log.malformed == 0
    ref = Store(tmp_path / "ref")
    _, batches = parse_file(shared / recording, Hints())
    for b in batches:
        ref.write(b.kind, b.rows)
    trades = live.read("trade").sort("symbol", "trade_id")
    assert trades.height == 97 + 10  # match + last_match
    assert without_local(trades).equals(without_local(ref.read("trade").sort("symbol", "trade_id")))
    key = ["symbol", "ts", "side", "price", "amount"]
    assert without_local(diffs(live).sort(key, maintain_order=True)).equals(without_local(diffs(ref).sort(key, maintain_order=True)))
    snaps = [live.read("book_delta").filter(pl.col("is_snapshot")), ref.read("book_delta").filter(pl.col("is_snapshot"))]
    live_snap, ref_snap = (without_local(s, "ts").sort("symbol", "side", "price", maintain_order=True) for s in snaps)
    assert live_snap.height > 0 and live_snap.equals(ref_snap)


def test_backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(base=0.5, cap=4.0, rng=random.Random(7))
    for attempt, full in enumerate([0.5, 1.0, 2.0, 4.0, 4.0, 4.0]):
        draws = [backoff.delay(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in draws)
        assert max(draws) - min(draws) > full / 4  # jittered, not constant
