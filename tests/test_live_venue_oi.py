"""Bybit and OKX open interest polling of `tapewatch live`, against the replay exchange on
127.0.0.1 serving real recorded bodies (ccxt's static fixtures, tests/data/ccxt-static-oi): the
stored rows are the body's numbers read by hand (units: base coin; OKX's contracts × 0.01 BTC
equal its coin figure), a polled row equals the row backfill stores for the same value (ccxt's own
parser and backfill's `to_rows`), a 429 is waited out, a venue error is counted, and
`tapewatch live --replay PORT` points Bybit and OKX at the replay exchange."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import polars as pl
import pytest

from async_helpers import run_until
from tapewatch.backfill.manifest import SeriesKey
from tapewatch.backfill.rest import to_rows
from tapewatch.commands.live import _replay_endpoints
from tapewatch.config import config_from_dict
from tapewatch.live.endpoints import Endpoint
from tapewatch.live.polls import RestPoller, rest_pollers
from tapewatch.replay.faults import Faults
from tapewatch.replay.server import ReplayExchange
from tapewatch.sources import bybit, okx
from tapewatch.sources.messages import Context, Rows
from tapewatch.store import Store
from test_live_oi import serve

BODIES = {"bybit": Path("ccxt-static-oi/bybit_open-interest_BTCUSDT.json"),
          "okx": Path("ccxt-static-oi/okx_open-interest_BTC-USDT-SWAP.json")}
NATIVE = {"bybit": "BTCUSDT", "okx": "BTC-USDT-SWAP"}
# by hand from the recorded bodies: (ts in ms, oi in BTC, oi_value in USD)
BYBIT_ROW = (1739725200000, 62129.455, None)  # "openInterest": "62129.45500000", "timestamp": "1739725200000"
OKX_ROW = (1728728314766, 26631.0729999999861, 1676426045.349999124995)  # oiCcy, oiUsd, ts
HAND = {"bybit": BYBIT_ROW, "okx": OKX_ROW}


async def polled(poller: RestPoller, done: Callable[[], object], timeout: float = 8.0) -> None:
    """Run ``poller`` until ``done()`` is true (a TimeoutError, failing the test, after ``timeout`` s)."""
    await run_until(poller.run(), done, timeout)


def oi_poller(venue: str, exchange: ReplayExchange, session: aiohttp.ClientSession, rows: Rows, period: str,
              base: str = "BTC") -> RestPoller:
    """The open interest poller of ``oi.source`` on ``venue``, at the endpoints ``--replay PORT`` uses."""
    cfg = config_from_dict({"live": {"oi_period": period}, "oi": {"source": {"exchange": venue, "market": "perp"}}})
    [poller, _funding] = rest_pollers(cfg, base, _replay_endpoints(exchange.port), session, rows, lambda line: None)
    return poller


def stored(rows: Rows, root: Path) -> pl.DataFrame:
    store = Store(root)
    for b in rows.batches():
        store.append(b.kind, b.rows)
    return store.read("open_interest")


@pytest.mark.parametrize("venue", ["bybit", "okx"])
def test_polls_store_the_recorded_open_interest_read_by_hand(shared: Path, tmp_path: Path, venue: str) -> None:
    async def body(exchange: ReplayExchange, session: aiohttp.ClientSession) -> tuple[RestPoller, Rows, int]:
        rows = Rows()
        poller = oi_poller(venue, exchange, session, rows, "0.1s")
        await polled(poller, lambda: poller.polls >= 3)
        return poller, rows, exchange.rest_requests

    poller, rows, requests = serve([shared / BODIES[venue]], None, body)
    assert poller.url.endswith({"bybit": "/bybit/v5/market/open-interest", "okx": "/okx/api/v5/public/open-interest"}[venue])
    assert poller.native == NATIVE[venue] and poller.failed == 0 and requests >= 3
    assert poller.summary() == f"open interest {NATIVE[venue]}: {poller.polls} polls"
    got = stored(rows, tmp_path / venue)
    ts_ms, oi, value = HAND[venue]
    assert got.height == 1  # the same value polled three times is one row
    assert got.select("exchange", "market", "symbol").row(0) == (venue, "perp", "BTC/USDT")
    assert got["ts"].dt.epoch("ns").to_list() == [ts_ms * 1_000_000]
    assert got["oi"].to_list() == [oi] and got["oi_value"].to_list() == [value]


def test_the_units_are_the_base_coin(shared: Path) -> None:
    [entry] = json.loads((shared / BODIES["okx"]).read_text())["data"]
    # OKX: oi is in contracts of 0.01 BTC (BTC-USDT-SWAP's contract value); oiCcy, stored, is that in BTC
    assert abs(float(entry["oi"]) * 0.01 - OKX_ROW[1]) < 1e-6
    assert 50_000 < OKX_ROW[2] / OKX_ROW[1] < 80_000  # USD per BTC in October 2024: oiUsd / oiCcy is a BTC price
    [item] = json.loads((shared / BODIES["bybit"]).read_text())["result"]["list"]
    assert (item["openInterest"], json.loads((shared / BODIES["bybit"]).read_text())["result"]["category"]) == (
        "62129.45500000", "linear")  # linear: Bybit quotes open interest in the base coin


@pytest.mark.parametrize("venue", ["bybit", "okx"])
def test_a_polled_row_equals_the_backfilled_row_of_the_same_value(shared: Path, tmp_path: Path, venue: str) -> None:
    body = json.loads((shared / BODIES[venue]).read_text())
    live = Rows()
    {"bybit": bybit.parse_rest, "okx": okx.parse_rest}[venue](body, "openInterest", Context(market="perp"), live)
    # backfill: ccxt's own parser of the same entries (offline, no markets loaded), then to_rows
    market = {"symbol": "BTC/USDT:USDT", "id": NATIVE[venue], "linear": True, "inverse": False,
              "contractSize": {"bybit": 1.0, "okx": 0.01}[venue]}
    api = {"bybit": ccxt.bybit, "okx": ccxt.okx}[venue]()
    entries = body["result"]["list"] if venue == "bybit" else body["data"]
    items = [api.parse_open_interest(e, market) for e in entries]
    key = SeriesKey(venue, "perp", "open_interest", "BTC/USDT")
    ref = Store(tmp_path / "ref")
    ref.write("open_interest", to_rows(key, items, market, 0, 2**62))
    got, want = stored(live, tmp_path / "live"), ref.read("open_interest")
    assert got.height == 1 and got.equals(want)


def test_a_429_is_waited_out_and_a_venue_error_is_counted(shared: Path) -> None:
    async def refused(exchange: ReplayExchange, session: aiohttp.ClientSession) -> tuple[RestPoller, float, int, Rows]:
        rows = Rows()
        poller = oi_poller("bybit", exchange, session, rows, "0.5s")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await polled(poller, rows.batches)
        return poller, loop.time() - start, exchange.rest_requests, rows

    poller, got_at, requests, rows = serve([shared / BODIES["bybit"]], Faults(rest_error=429, retry_after=1), refused)
    # the first poll is refused; the next request comes only after the 1 s Retry-After
    assert requests == 2 and poller.log.refused == 1 and 1.0 <= got_at < 1.7
    assert poller.summary() == "open interest BTCUSDT: 2 polls, 1 failed (last: HTTP 429 (rate limited, waited 1 s))"
    [b] = rows.batches()
    assert b.rows["oi"].to_list() == [62129.455]

    async def unknown(exchange: ReplayExchange, session: aiohttp.ClientSession) -> list[RestPoller]:
        pollers = [oi_poller(v, exchange, session, Rows(), "0.1s", base="ETH") for v in ("bybit", "okx")]
        for p in pollers:
            await polled(p, lambda p=p: p.polls >= 2)
        return pollers

    by, ok = serve([shared / BODIES["bybit"], shared / BODIES["okx"]], None, unknown)
    assert by.failed == by.polls >= 2 and by.last_error == "bad body (Bybit retCode 10001: 'params error: Symbol Invalid')"
    assert ok.failed == ok.polls >= 2 and ok.last_error == "bad body (OKX code '51001': 'Instrument ID does not exist')"


def test_the_replay_routes_serve_the_recorded_bytes_and_venue_errors(shared: Path) -> None:
    async def body(exchange: ReplayExchange, session: aiohttp.ClientSession) -> list[tuple[int, Any]]:
        out = []
        for venue, path, param in (("bybit", "/bybit/v5/market/open-interest", "symbol"),
                                   ("okx", "/okx/api/v5/public/open-interest", "instId")):
            url = f"http://127.0.0.1:{exchange.port}{path}"
            for params in ({param: NATIVE[venue]}, {}):
                async with session.get(url, params=params) as r:
                    out.append((r.status, await r.text()))
        return out

    paths = [shared / BODIES["bybit"], shared / BODIES["okx"]]
    (b_ok, b_missing, o_ok, o_missing) = serve(paths, None, body)
    assert b_ok == (200, (shared / BODIES["bybit"]).read_text().strip())
    assert o_ok == (200, (shared / BODIES["okx"]).read_text().strip())
    assert b_missing[0] == 200 and json.loads(b_missing[1])["retCode"] == 10001
    assert o_missing[0] == 200 and json.loads(o_missing[1])["code"] == "50014"


def test_live_replay_points_bybit_and_okx_at_the_replay_exchange() -> None:
    e = _replay_endpoints(8765)
    assert e.of("bybit", "perp") == Endpoint("ws://127.0.0.1:8765/bybit", "http://127.0.0.1:8765/bybit")
    assert e.of("okx", "perp") == Endpoint("ws://127.0.0.1:8765/okx", "http://127.0.0.1:8765/okx")
    assert e.of("binance", "perp") == Endpoint("ws://127.0.0.1:8765/binance-usdm", "http://127.0.0.1:8765/binance-usdm")
