"""Open interest polling and the USDT/USD subscription of `tapewatch live`, against the replay
exchange on 127.0.0.1 serving a real recorded Binance USD-M `/fapi/v1/openInterest` body: the
polls come at the configured period, the stored rows equal `tapewatch import` of the same body
(and the body's numbers read by hand), a 429 / 418 is waited out for its Retry-After, failures are
counted without stopping the polls, and the USDT/USD markets the premium reads are subscribed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
import pytest

from tapewatch.config import ConfigError, config_from_dict
from tapewatch.errors import ImportFormatError
from tapewatch.importer import parse_file
from tapewatch.live.collector import Collector
from tapewatch.live.connection import ConnectionLog
from tapewatch.live.endpoints import Endpoint, Endpoints
from tapewatch.live.polls import RestPoller, rest_pollers
from tapewatch.live.run import build_feeds
from tapewatch.replay.faults import Faults
from tapewatch.replay.server import ReplayExchange
from tapewatch.replay.timeline import Feed, read_timeline
from tapewatch.sources import Hints
from tapewatch.sources.messages import Rows
from tapewatch.store import Store

OI_BODY = Path("reqwest-binance-usdm-oi/openInterest_BTCUSDT.json")
SPOT = Path("cryptofeed-recordings/BINANCE.ws.1.0")  # a Binance spot feed for the spot subscription
PERP, COINBASE = Feed("binance", "perp"), Feed("coinbase", "spot")


def endpoints(exchange: ReplayExchange) -> Endpoints:
    """Every Binance and Coinbase entry pointed at the replay exchange."""
    def at(feed: Feed) -> Endpoint:
        return Endpoint(exchange.base_url(feed, "ws"), exchange.base_url(feed))

    binance = type(Endpoints().binance)(spot=at(Feed("binance", "spot")), perp=at(PERP))
    return Endpoints(binance=binance, coinbase=type(Endpoints().coinbase)(spot=at(COINBASE)))


def serve(paths: list[Path], faults: Faults | None,
          body: Callable[[ReplayExchange, aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    """Run ``body`` against a replay exchange of ``paths`` on 127.0.0.1 (any free port)."""
    async def main() -> Any:
        exchange = ReplayExchange(read_timeline(paths), faults, speed=0)
        await exchange.start(port=0)
        try:
            async with aiohttp.ClientSession() as session:
                return await body(exchange, session)
        finally:
            await exchange.stop()

    return asyncio.run(main())


async def until(done: Callable[[], object], timeout: float = 8.0) -> None:
    """Wait until ``done()`` is true; a TimeoutError (the test fails) after ``timeout`` seconds."""
    async def wait() -> None:
        while not done():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


def poller_of(exchange: ReplayExchange, session: aiohttp.ClientSession, rows: Rows, period: str,
              base: str = "BTC") -> RestPoller:
    cfg = config_from_dict({"live": {"oi_period": period}})
    poller = rest_pollers(cfg, base, endpoints(exchange), session, rows, lambda line: None)[0]
    assert poller.kind == "openInterest"
    return poller


def test_polls_come_at_the_period_and_store_what_import_stores(shared: Path, tmp_path: Path) -> None:
    raw = (shared / OI_BODY).read_text()
    assert raw == '{"symbol":"BTCUSDT","openInterest":"70056.543","time":1723425441998}'  # the recorded bytes

    async def body(exchange: ReplayExchange, session: aiohttp.ClientSession) -> tuple[RestPoller, float, int]:
        collector = Collector(Store(tmp_path / "live"), flush_interval=0.05)
        poller = poller_of(exchange, session, collector.rows, "0.3s")
        loop = asyncio.get_running_loop()
        start = loop.time()
        task = asyncio.create_task(collector.run(session, [], None, [poller.run]))
        await asyncio.sleep(1.05)  # polls due at 0, 0.3, 0.6 and 0.9 s
        elapsed, requests = loop.time() - start, exchange.rest_requests
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return poller, elapsed, requests

    poller, elapsed, requests = serve([shared / OI_BODY], None, body)
    # one poll at start and one per 0.3 s tick passed (the last one may still be on its way)
    due = int(elapsed // 0.3) + 1
    assert poller.polls == requests and due - 1 <= requests <= due and requests >= 4
    assert poller.failed == 0 and poller.summary() == f"open interest BTCUSDT: {requests} polls"
    live = Store(tmp_path / "live").read("open_interest")
    ref = Store(tmp_path / "ref")
    _, batches = parse_file(shared / OI_BODY, Hints())
    for b in batches:
        ref.write(b.kind, b.rows)
    assert live.equals(ref.read("open_interest"))
    # by hand: one row (the same `time` polled four times), oi in BTC, ts = time in UTC ns
    assert live.select("exchange", "market", "symbol", "oi").rows() == [("binance", "perp", "BTC/USDT", 70056.543)]
    assert live["ts"].dt.epoch("ns").to_list() == [1723425441998 * 1_000_000] and live["oi_value"].is_null().all()


@pytest.mark.parametrize("status", [429, 418])
def test_a_refused_poll_waits_out_its_retry_after(shared: Path, status: int) -> None:
    async def body(exchange: ReplayExchange, session: aiohttp.ClientSession) -> tuple[RestPoller, float, int, Rows]:
        rows = Rows()
        poller = poller_of(exchange, session, rows, "0.5s")
        loop = asyncio.get_running_loop()
        start = loop.time()
        task = asyncio.create_task(poller.run())
        await until(rows.batches)
        got_at, requests = loop.time() - start, exchange.rest_requests
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return poller, got_at, requests, rows

    poller, got_at, requests, rows = serve([shared / OI_BODY], Faults(rest_error=status, retry_after=1), body)
    # the first poll is refused; the next request comes only after the 1 s Retry-After, at the
    # first tick of the 0.5 s grid not yet passed (without it, the polls at 0.5 and 1 s)
    assert requests == 2 and poller.log.refused == 1 and 1.0 <= got_at < 1.7
    why = "IP banned" if status == 418 else "rate limited"
    assert poller.failed == 1
    assert poller.summary() == f"open interest BTCUSDT: 2 polls, 1 failed (last: HTTP {status} ({why}, waited 1 s))"
    [b] = rows.batches()
    assert b.kind == "open_interest" and b.rows["oi"].to_list() == [70056.543]


def test_failed_polls_are_counted_and_the_polls_go_on(shared: Path) -> None:
    async def body(exchange: ReplayExchange, session: aiohttp.ClientSession) -> RestPoller:
        poller = poller_of(exchange, session, Rows(), "0.1s", base="ETH")  # no ETHUSDT body recorded: 400
        task = asyncio.create_task(poller.run())
        await until(lambda: poller.polls >= 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return poller

    poller = serve([shared / OI_BODY], None, body)
    assert poller.failed >= 2 and poller.last_error.startswith("HTTP 400: ") and "Invalid symbol" in poller.last_error
    assert poller.summary().startswith("open interest ETHUSDT: ") and "failed (last: HTTP 400: " in poller.summary()


def test_oi_period_is_validated_and_other_venues_are_named() -> None:
    for bad in ("0s", "5", "1x"):
        with pytest.raises(ConfigError, match=r"config key 'live.oi_period' must be a period like '30s'"):
            config_from_dict({"live": {"oi_period": bad}})
    lines: list[str] = []
    cfg = config_from_dict({"oi": {"source": {"exchange": "bybit", "market": "spot"}},
                            "funding": {"source": {"exchange": "okx", "market": "perp"}}})
    assert rest_pollers(cfg, "BTC", Endpoints(), None, Rows(), lines.append) == []  # type: ignore[arg-type]
    assert lines == ["not collected: open interest of bybit spot BTC/USDT (live polls Binance USD-M, Bybit and OKX "
                     "perpetual open interest only)",
                     "not collected: funding of okx perp BTC/USDT (live polls Binance USD-M funding only)"]


@pytest.mark.parametrize("basis", ["usdt_adjusted", "raw"])
def test_the_usdt_usd_markets_the_premium_reads_are_subscribed(shared: Path, tmp_path: Path, basis: str) -> None:
    recording = Path("cryptofeed-recordings/COINBASE.ws.28.0")
    cfg = config_from_dict({"premium": {"basis": basis}})  # usdt_usd: coinbase then kraken USDT/USD

    async def body(exchange: ReplayExchange, session: aiohttp.ClientSession) -> tuple[list[str], list[str]]:
        lines: list[str] = []
        collector = Collector(Store(tmp_path / basis), flush_interval=0.05)
        feeds = build_feeds(cfg, "BTC", endpoints(exchange), session, collector, lines.append)
        task = asyncio.create_task(collector.run(session, [(f, ConnectionLog()) for f in feeds]))
        await until(lambda: len(set(exchange.asked)) >= 4)  # binance spot and perp, two coinbase subscriptions
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return sorted(set(exchange.asked)), lines

    asked, lines = serve([shared / SPOT, shared / recording, shared / OI_BODY], None, body)
    binance = [a for a in asked if a.startswith("/binance")]
    coinbase = sorted((json.loads(a)["product_ids"], json.loads(a)["channels"]) for a in asked if a.startswith("{"))
    assert binance == ["/binance-spot/stream?streams=btcusdt@depth@100ms/btcusdt@trade",
                       "/binance-usdm/stream?streams=btcusdt@depth@0ms/btcusdt@trade"]
    # the premium's venue a (BTC-USD, its book too) and the USDT/USD rate (trades only), apart
    assert coinbase == [(["BTC-USD"], ["level2", "matches"]), (["USDT-USD"], ["matches"])]
    assert lines == ["not collected: kraken spot USDT/USD (live collects Binance spot and USD-M, and Coinbase spot)"]


def test_the_replay_route_serves_the_recorded_bytes_and_binance_errors(shared: Path, tmp_path: Path) -> None:
    async def body(exchange: ReplayExchange, session: aiohttp.ClientSession) -> list[tuple[int, str]]:
        url = exchange.base_url(PERP) + "/fapi/v1/openInterest"
        out = []
        for params in ({"symbol": "BTCUSDT"}, {}, {"symbol": "ETHUSDT"}):
            async with session.get(url, params=params) as r:
                out.append((r.status, await r.text()))
        return out

    assert serve([shared / OI_BODY], None, body) == [
        (200, (shared / OI_BODY).read_text()),
        (400, '{"code": -1102, "msg": "Mandatory parameter \'symbol\' was not sent, was empty/null, or malformed."}'),
        (400, '{"code": -1121, "msg": "Invalid symbol."}'),
    ]
    other = tmp_path / "other.json"
    other.write_text('{"symbol":"BTCUSDT","price":"1"}')
    with pytest.raises(ImportFormatError, match="saved Binance USD-M openInterest / fundingRate bodies or saved Bybit / OKX"):
        read_timeline([other])


FUNDING_BODY = Path("binance-usdm-fundingrate/fundingRate_BTCUSDT.json")


def test_settled_funding_is_polled_and_stored_as_import_stores_it(shared: Path, tmp_path: Path) -> None:
    raw = (shared / FUNDING_BODY).read_text()
    [settled] = json.loads(raw)  # the recorded answer: one settlement, read by hand
    assert (settled["fundingTime"], settled["fundingRate"], settled["markPrice"]) == (1788422400000, "0.00005866", "77622.37865217")

    async def body(exchange: ReplayExchange, session: aiohttp.ClientSession) -> tuple[RestPoller, Rows]:
        rows = Rows()
        cfg = config_from_dict({"live": {"funding_period": "0.2s"}})
        [_, poller] = rest_pollers(cfg, "BTC", endpoints(exchange), session, rows, lambda line: None)
        task = asyncio.create_task(poller.run())
        await until(lambda: poller.polls >= 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return poller, rows

    poller, rows = serve([shared / OI_BODY, shared / FUNDING_BODY], None, body)
    assert (poller.kind, poller.failed, poller.params) == ("fundingRate", 0, {"limit": "3"})
    assert poller.summary().startswith("funding BTCUSDT: ") and "failed" not in poller.summary()
    live, ref = Store(tmp_path / "live"), Store(tmp_path / "ref")
    for b in rows.batches():
        live.append(b.kind, b.rows)
    for b in parse_file(shared / FUNDING_BODY, Hints(market="perp"))[1]:
        ref.write(b.kind, b.rows)
    got = live.read("funding")
    assert got.height == 1 and got.equals(ref.read("funding"))  # three polls of one settlement: one row
    assert got.select(pl.col("ts").dt.epoch("ms"), "rate", "mark_price").row(0) == (1788422400000, 0.00005866, 77622.37865217)
