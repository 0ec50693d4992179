"""The replay exchange: the real spot capture served over Binance's websocket and REST protocols
(and a Coinbase recording over Coinbase's), checked against the capture's lines parsed here by hand."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from capture_book import hand_book
from tapewatch.book import rules
from tapewatch.errors import ImportFormatError
from tapewatch.replay.faults import Faults
from tapewatch.replay.server import ReplayExchange
from tapewatch.replay.timeline import Feed, read_timeline

SPOT = Path("hftbacktest-binance-ws/spot/btcusdt_20240808.gz")
USDM = Path("hftbacktest-binance-ws/usdm/btcusdt_20240808.gz")
COINBASE = Path("cryptofeed-recordings/COINBASE.ws.28.0")
SPOT_FEED = Feed("binance", "spot")
ALL_STREAMS = "btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"
TIMEOUT = 5.0  # generous: a receive that waits this long is a failure, never a race


def capture_lines(path: Path) -> tuple[list[str], list[str]]:
    """(websocket JSON lines, snapshot JSON lines) of a raw capture, split by hand."""
    messages, snapshots = [], []
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        _recv_ns, body = line.split(" ", 1)
        (snapshots if body.startswith('{"lastUpdateId"') else messages).append(body)
    return messages, snapshots


def stream_of(body: str) -> str:
    return json.loads(body)["stream"]


def run(scenario: Callable[[ReplayExchange, aiohttp.ClientSession], Awaitable[Any]], files: list[Path],
        faults: Faults | None = None, speed: float = 0.0) -> Any:
    """Start the exchange on a free port, run ``scenario`` with a client session, stop it."""

    async def main() -> Any:
        exchange = ReplayExchange(read_timeline(files), faults, speed)
        await exchange.start(port=0)
        try:
            async with aiohttp.ClientSession() as session:
                return await asyncio.wait_for(scenario(exchange, session), 9.0)
        finally:
            await exchange.stop()

    return asyncio.run(main())


async def receive(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[str]:
    """The next ``n`` text messages."""
    out = []
    for _ in range(n):
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append(msg.data)
    return out


async def silent(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """True when no further text message arrives within 0.3 s (called once the feed is done or stalled)."""
    try:
        msg = await ws.receive(timeout=0.3)
    except asyncio.TimeoutError:
        return True
    return msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


def ws_url(exchange: ReplayExchange, streams: str = ALL_STREAMS) -> str:
    return f"{exchange.base_url(SPOT_FEED, 'ws')}/stream?streams={streams}"


def test_stream_sends_the_captured_messages_of_the_streams_asked(shared: Path) -> None:
    messages, _ = capture_lines(shared / SPOT)
    wanted = [m for m in messages if stream_of(m) in ("btcusdt@depth@100ms", "btcusdt@trade")]
    assert len(messages) == 2999 and len(wanted) == 281 + 518

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(ws_url(ex, "btcusdt@depth@100ms/btcusdt@trade")) as ws:
            assert await receive(ws, len(wanted)) == wanted  # byte for byte, in capture order
            await ex.finished()
            assert await silent(ws)

    run(scenario, [shared / SPOT])


def test_rest_depth_answers_the_captured_snapshot(shared: Path) -> None:
    _, snapshots = capture_lines(shared / SPOT)
    assert len(snapshots) == 1
    captured = json.loads(snapshots[0])

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> None:
        base = ex.base_url(SPOT_FEED)
        async with s.get(f"{base}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "5000"}) as r:
            assert r.status == 200 and r.content_type == "application/json"
            assert await r.text() == snapshots[0]
        async with s.get(f"{base}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "5"}) as r:
            cut = await r.json()
        assert cut == {"lastUpdateId": 50093239218, "bids": captured["bids"][:5], "asks": captured["asks"][:5]}
        async with s.get(f"{base}/api/v3/depth", params={"symbol": "ETHUSDT"}) as r:
            assert r.status == 400 and await r.json() == {"code": -1121, "msg": "Invalid symbol."}
        async with s.get(f"{base}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "0"}) as r:
            assert r.status == 400 and (await r.json())["code"] == -1100

    run(scenario, [shared / SPOT])


def book_after(messages: list[str], snapshot: str, k: int, limit: int) -> str:
    """The venue's book after the first ``k`` feed messages, built by hand (:func:`hand_book`) as
    Binance's body: lastUpdateId the last diff's u, USD-M's E and T that diff's; ``limit`` levels
    a side, best first."""
    body = json.loads(snapshot)
    bids, asks, last = hand_book(body, (json.loads(m)["data"] for m in messages[:k]))
    if last is not None:
        body |= {"lastUpdateId": last["u"]} | {t: last[t] for t in ("E", "T") if t in body}
    body["bids"] = [list(lv) for lv in sorted(bids.items(), key=lambda lv: -float(lv[0]))[:limit]]
    body["asks"] = [list(lv) for lv in sorted(asks.items(), key=lambda lv: float(lv[0]))[:limit]]
    return json.dumps(body, separators=(",", ":"))


@pytest.mark.parametrize(("path", "market", "limit", "stops"), [
    (SPOT, "spot", 5000, (40, 700, 2900)), (SPOT, "spot", 7, (1500,)),
    (USDM, "perp", 1000, (60, 900, 2900)), (USDM, "perp", 3, (1500,)),
])
def test_rest_depth_is_the_book_at_the_replay_point(shared: Path, path: Path, market: str, limit: int,
                                                    stops: tuple[int, ...]) -> None:
    messages, [snapshot] = capture_lines(shared / path)
    feed = Feed("binance", market)
    depth_path = {"spot": "/api/v3/depth", "perp": "/fapi/v1/depth"}[market]
    data = [json.loads(m)["data"] for m in messages]
    diffs = [d for d in data if d.get("e") == "depthUpdate"]
    withheld = 20  # diff 20 is never sent (a gap fault), but the venue's book moved with it
    code = rules.rule(rules.rule_for("binance", market)).code

    def book_at(k: int) -> str:
        """Replay to feed position ``k`` (the stale fault stops the feed there), then ask for the depth."""

        async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> str:
            streams = "/".join(sorted({stream_of(m) for m in messages}))
            async with s.ws_connect(f"{ex.base_url(feed, 'ws')}/stream?streams={streams}") as ws:
                await receive(ws, k - (1 if diffs[withheld] in data[:k] else 0))
                assert ex.pumps[feed].position == k
                async with s.get(f"{ex.base_url(feed)}{depth_path}", params={"symbol": "BTCUSDT", "limit": str(limit)}) as r:
                    assert r.status == 200
                    return await r.text()

        return run(scenario, [shared / path], Faults(gap_at=withheld, stale_at=k))

    for k in stops:
        got = book_at(k)
        assert got == book_after(messages, snapshot, k, limit)
        last = json.loads(got)["lastUpdateId"]
        if k > data.index(diffs[withheld]):
            assert last >= diffs[withheld]["u"]  # the withheld diff is in the book
        # the diffs a client then keeps start with one that bridges the snapshot, by Binance's rule
        # (spot: drop u <= lastUpdateId, then U <= lastUpdateId + 1 <= u; USD-M: drop u < lastUpdateId,
        # then U <= lastUpdateId <= u), as the project's rule decides too
        kept = [d for d in diffs if (d["u"] > last if market == "spot" else d["u"] >= last)]
        bridge = kept[0]
        assert bridge["U"] <= (last + 1 if market == "spot" else last) <= bridge["u"]
        assert rules.decide(code, rules.S_AWAIT, last, False, False, bridge["u"], bridge["U"], bridge.get("pu", rules.NULL)) == rules.APPLY
        if market == "spot" and k < len(messages) - 1:
            assert bridge in data[k:]  # the next diff the feed sends
    assert len({book_at(k) for k in stops}) == len(stops)


def test_usdm_rest_depth_is_served_under_fapi(shared: Path) -> None:
    _, snapshots = capture_lines(shared / USDM)

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> None:
        async with s.get(f"{ex.base_url(Feed('binance', 'perp'))}/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as r:
            assert await r.text() == snapshots[0]

    run(scenario, [shared / USDM])


def test_drop_withholds_n_messages(shared: Path) -> None:
    messages, _ = capture_lines(shared / SPOT)
    expected = messages[:10] + messages[15:]

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(ws_url(ex)) as ws:
            assert await receive(ws, len(expected)) == expected
            await ex.finished()
            assert await silent(ws)

    run(scenario, [shared / SPOT], Faults(drop=5, drop_at=10))


def test_gap_breaks_the_depth_sequence_once(shared: Path) -> None:
    messages, _ = capture_lines(shared / SPOT)
    diffs = [json.loads(m)["data"] for m in messages if stream_of(m) == "btcusdt@depth@100ms"]
    # the capture itself is gapless: every diff starts right after the one before
    assert all(b["U"] == a["u"] + 1 for a, b in zip(diffs, diffs[1:]))

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with s.ws_connect(ws_url(ex, "btcusdt@depth@100ms")) as ws:
            return [json.loads(m)["data"] for m in await receive(ws, len(diffs) - 1)]

    got = run(scenario, [shared / SPOT], Faults(gap_at=3))
    assert got == diffs[:3] + diffs[4:]
    breaks = [i for i, (a, b) in enumerate(zip(got, got[1:])) if b["U"] != a["u"] + 1]
    assert breaks == [2] and got[3]["U"] == diffs[3]["u"] + 1


def test_stale_stream_keeps_the_socket_open_and_resumes_for_a_new_client(shared: Path) -> None:
    messages, _ = capture_lines(shared / SPOT)

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(ws_url(ex)) as first:
            assert await receive(first, 100) == messages[:100]
            assert await silent(first) and not first.closed  # stale: open but quiet
            async with s.ws_connect(ws_url(ex)) as second:
                assert await receive(second, len(messages) - 100) == messages[100:]
            assert await silent(first)  # the stale socket never hears again

    run(scenario, [shared / SPOT], Faults(stale_at=100))


@pytest.mark.parametrize("status", [429, 418])
def test_rest_rate_limit_and_ban_with_retry_after(shared: Path, status: int) -> None:
    _, snapshots = capture_lines(shared / SPOT)

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> None:
        url = f"{ex.base_url(SPOT_FEED)}/api/v3/depth?symbol=BTCUSDT&limit=1000"
        for _ in range(2):
            async with s.get(url) as r:
                assert r.status == status and r.headers["Retry-After"] == "7"
                assert (await r.json())["code"] == -1003
        async with s.get(url) as r:
            assert r.status == 200 and await r.text() == snapshots[0]

    run(scenario, [shared / SPOT], Faults(rest_error=status, rest_errors=2, retry_after=7))


def test_slow_snapshot(shared: Path) -> None:
    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> float:
        start = time.monotonic()
        async with s.get(f"{ex.base_url(SPOT_FEED)}/api/v3/depth?symbol=BTCUSDT") as r:
            assert r.status == 200
        return time.monotonic() - start

    assert run(scenario, [shared / SPOT], Faults(snapshot_delay=0.4)) >= 0.4


def test_speed_paces_at_n_times_the_captured_gaps(shared: Path) -> None:
    messages, _ = capture_lines(shared / SPOT)
    stamps = [int(line.split(" ", 1)[0]) for line in gzip.decompress((shared / SPOT).read_bytes()).decode().splitlines()
              if '"stream"' in line]
    n, speed = 400, 10.0
    captured_s = (stamps[n - 1] - stamps[0]) / 1e9
    assert 1.0 < captured_s < 40.0  # the pace below is measurable and the test stays short

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> float:
        async with s.ws_connect(ws_url(ex)) as ws:
            start = time.monotonic()
            assert await receive(ws, n) == messages[:n]
            return time.monotonic() - start

    elapsed = run(scenario, [shared / SPOT], speed=speed)
    assert elapsed >= captured_s / speed * 0.95  # never faster than N x (the loop may only be late)


def test_coinbase_subscribe_gets_the_recorded_messages(shared: Path) -> None:
    recorded = []
    for line in (shared / COINBASE).read_text().splitlines():
        head, sep, body = line.partition(": ")
        if sep and head.replace(".", "").isdigit():
            recorded.append(body)
    types = {"matches": ("match", "last_match"), "ticker": ("ticker",)}

    def wanted(body: str) -> bool:
        msg = json.loads(body)
        if "product_id" not in msg:
            return True  # subscriptions replies go to every client
        return msg["product_id"] == "SKL-USD" and msg["type"] in types["matches"] + types["ticker"]

    expected = [b for b in recorded if wanted(b)]
    assert 10 < len(expected) < 200

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(ex.base_url(Feed("coinbase", "spot"), "ws")) as ws:
            await ws.send_str("not json")
            assert json.loads((await ws.receive(timeout=TIMEOUT)).data)["type"] == "error"
            await ws.send_json({"type": "subscribe", "product_ids": ["SKL-USD"], "channels": ["matches", "ticker"]})
            assert await receive(ws, len(expected)) == expected
            await ex.finished()
            assert await silent(ws)

    run(scenario, [shared / COINBASE])


def test_stop_closes_sockets_and_frees_the_port(shared: Path) -> None:
    async def main() -> None:
        ex = ReplayExchange(read_timeline([shared / SPOT]), speed=0)
        port = await ex.start(port=0)
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(ws_url(ex)) as ws:
                await receive(ws, 5)
                await asyncio.wait_for(ex.stop(), TIMEOUT)
                while (msg := await ws.receive(timeout=TIMEOUT)).type == aiohttp.WSMsgType.TEXT:
                    pass
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001  # going away
            with pytest.raises(aiohttp.ClientConnectionError):
                async with s.get(f"http://127.0.0.1:{port}/binance-spot/api/v3/depth?symbol=BTCUSDT"):
                    pass

    asyncio.run(main())


def test_a_file_that_is_not_a_capture_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    with pytest.raises(ImportFormatError, match=r"notes\.txt: not a capture the replay exchange serves"):
        read_timeline([bad])
    broken = tmp_path / "spot" / "btcusdt_x.txt"
    broken.parent.mkdir()
    broken.write_text('1723161253937085768 {"stream":"btcusdt@trade","data":{"e":"trade"}}\n1723161253937085769 {"stream":\n')
    with pytest.raises(ImportFormatError, match=r"row 2: not a capture line|row 2: bad JSON"):
        read_timeline([broken])


def test_cli_serves_until_interrupted(shared: Path) -> None:
    env = dict(os.environ, COLUMNS="400")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tapewatch.cli import app; app()", "replay-exchange", "--port", "0", "--speed", "0",
         "--gap-at", "0", str(shared / SPOT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Serving binance spot: 2,999 messages, websocket ws://127.0.0.1:"), first
        url = first.split("websocket ", 1)[1].split("/stream", 1)[0]

        async def client() -> dict[str, Any]:
            async with aiohttp.ClientSession() as s, s.ws_connect(f"{url}/stream?streams=btcusdt@depth@100ms") as ws:
                return json.loads((await ws.receive(timeout=TIMEOUT)).data)

        messages, _ = capture_lines(shared / SPOT)
        diffs = [m for m in messages if stream_of(m) == "btcusdt@depth@100ms"]
        assert asyncio.run(client()) == json.loads(diffs[1])  # --gap-at 0 withheld the first diff
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        assert "Replay exchange stopped." in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_server_pings_and_closes_a_socket_that_never_pongs(shared: Path) -> None:
    messages, _ = capture_lines(shared / SPOT)

    async def main() -> None:
        ex = ReplayExchange(read_timeline([shared / SPOT]), Faults(stale_at=3), speed=0, ping_interval=0.1)
        await ex.start(port=0)
        try:
            async with aiohttp.ClientSession() as s, s.ws_connect(ws_url(ex), autoping=False) as ws:
                assert await receive(ws, 3) == messages[:3]
                assert (await ws.receive(timeout=TIMEOUT)).type == aiohttp.WSMsgType.PING  # the stream is stale, pings go on
                while (msg := await ws.receive(timeout=TIMEOUT)).type == aiohttp.WSMsgType.PING:
                    pass
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        finally:
            await ex.stop()

    asyncio.run(main())


def test_raw_streams_after_subscribe_as_binance_documents(shared: Path) -> None:
    messages, _ = capture_lines(shared / SPOT)
    wanted = [json.loads(m)["data"] for m in messages if stream_of(m) in ("btcusdt@depth@100ms", "btcusdt@trade")]

    async def scenario(ex: ReplayExchange, s: aiohttp.ClientSession) -> None:
        async with s.ws_connect(f"{ex.base_url(SPOT_FEED, 'ws')}/ws") as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms","btcusdt@trade"],"id":7}')
            got = await receive(ws, 1 + len(wanted))
            assert got[0] == '{"result":null,"id":7}'
            assert [json.loads(g) for g in got[1:]] == wanted  # the payloads alone, in capture order
            assert all(f'"data":{g}}}' in m for g, m in zip(got[1:], [m for m in messages if stream_of(m) != "btcusdt@bookTicker"]))
            await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":8}')
            assert json.loads((await receive(ws, 1))[0]) == {"result": ["btcusdt@depth@100ms", "btcusdt@trade"], "id": 8}
            await ws.send_str('{"method":"PING","id":9}')
            error = json.loads((await receive(ws, 1))[0])
            assert error["code"] == 2 and error["id"] == 9 and error["msg"].startswith("Invalid request")
            await ws.send_str("not json")
            assert json.loads((await receive(ws, 1))[0])["code"] == 3

    run(scenario, [shared / SPOT])
